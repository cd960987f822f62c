//! CloudWatch metrics as Embedded Metric Format log lines.
//!
//! A Lambda function's stdout goes to CloudWatch Logs, which turns EMF JSON
//! lines into metrics asynchronously: no PutMetricData call, no added latency,
//! no extra permission. Both functions emit one line per invocation in the
//! `SentimentEtl` namespace with a `Function` dimension, and a `Stack`
//! dimension when `METRICS_STACK` is set (template.yaml sets it to the stack
//! name), so two stacks in one Region do not add up into the same series.
//!
//! The lines bypass `tracing` (its filter must not drop them) and carry a
//! `level` equal to the function's `AWS_LAMBDA_LOG_LEVEL`: with JSON logs,
//! Lambda assigns INFO to a line without a level and drops it under
//! `ApplicationLogLevel` WARN or ERROR, which would silence every metric.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use crate::lambda::{optional, Lookup, ProcessEnv};

use serde_json::{json, Map, Value};

/// The metrics namespace.
pub const NAMESPACE: &str = "SentimentEtl";

/// The environment variable naming the stack (the `Stack` dimension).
pub const STACK_VAR: &str = "METRICS_STACK";

/// How metric lines are tagged: read once per process from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmfContext {
    /// The `Stack` dimension value (`METRICS_STACK`), if any.
    pub stack: Option<String>,
    /// The `level` the line carries: the configured application log level,
    /// so Lambda's log-level filter always keeps it.
    pub level: &'static str,
}

impl EmfContext {
    /// The context from `METRICS_STACK` and `AWS_LAMBDA_LOG_LEVEL`.
    pub fn from_lookup(env: &dyn Lookup) -> Self {
        let level = match optional(env, "AWS_LAMBDA_LOG_LEVEL")
            .map(|l| l.to_ascii_uppercase())
            .as_deref()
        {
            // No log-level filtering configured: Lambda's default level.
            None => "INFO",
            Some("TRACE") => "TRACE",
            Some("DEBUG") => "DEBUG",
            Some("INFO") => "INFO",
            Some("WARN" | "WARNING") => "WARN",
            Some("ERROR") => "ERROR",
            // FATAL, or a level Lambda does not know: the one no filter drops.
            Some(_) => "FATAL",
        };
        Self {
            stack: optional(env, STACK_VAR),
            level,
        }
    }

    /// The process's context, read on first use.
    pub fn process() -> &'static Self {
        static CONTEXT: OnceLock<EmfContext> = OnceLock::new();
        CONTEXT.get_or_init(|| Self::from_lookup(&ProcessEnv))
    }
}

/// A metric's unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A count.
    Count,
    /// Bytes.
    Bytes,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Bytes => "Bytes",
        }
    }
}

/// One invocation's metrics for one function.
#[derive(Debug, Clone)]
pub struct Metrics {
    function: String,
    values: Vec<(&'static str, f64, Unit)>,
}

impl Metrics {
    /// Metrics for `function` (the `Function` dimension value).
    pub fn new(function: impl Into<String>) -> Self {
        Self {
            function: function.into(),
            values: Vec::new(),
        }
    }

    /// Add a count.
    pub fn count(mut self, name: &'static str, value: u64) -> Self {
        self.values.push((name, value as f64, Unit::Count));
        self
    }

    /// Add a byte size.
    pub fn bytes(mut self, name: &'static str, value: u64) -> Self {
        self.values.push((name, value as f64, Unit::Bytes));
        self
    }

    /// The EMF JSON document under the process's [`EmfContext`], stamped
    /// with `timestamp_ms`.
    pub fn to_json(&self, timestamp_ms: i64) -> Value {
        self.document(EmfContext::process(), timestamp_ms)
    }

    /// The EMF JSON document under `context`, stamped with `timestamp_ms`.
    pub fn document(&self, context: &EmfContext, timestamp_ms: i64) -> Value {
        let definitions: Vec<Value> = self
            .values
            .iter()
            .map(|(name, _, unit)| json!({"Name": name, "Unit": unit.as_str()}))
            .collect();
        let dimensions = match context.stack {
            Some(_) => json!([["Stack", "Function"]]),
            None => json!([["Function"]]),
        };
        let mut root = Map::new();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": dimensions,
                    "Metrics": definitions,
                }],
            }),
        );
        root.insert("level".into(), Value::String(context.level.into()));
        if let Some(stack) = &context.stack {
            root.insert("Stack".into(), Value::String(stack.clone()));
        }
        root.insert("Function".into(), Value::String(self.function.clone()));
        for (name, value, _) in &self.values {
            root.insert((*name).into(), json!(value));
        }
        Value::Object(root)
    }

    /// Write the EMF line to stdout (where the Lambda log agent picks it
    /// up), as one write, outside `tracing` so no log filter applies. A
    /// failed write is ignored: metrics must never fail an invocation.
    pub fn emit(&self) {
        let mut line = self
            .to_json(chrono::Utc::now().timestamp_millis())
            .to_string();
        line.push('\n');
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(line.as_bytes()).and_then(|()| out.flush());
    }
}

/// 1 on the first call in this process, 0 afterwards: the `ColdStart` metric.
pub fn cold_start() -> u64 {
    static WARM: AtomicBool = AtomicBool::new(false);
    u64::from(!WARM.swap(true, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::HashMap;

    fn context(pairs: &[(&str, &str)]) -> EmfContext {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        EmfContext::from_lookup(&env)
    }

    #[test]
    fn emits_valid_emf() {
        let m = Metrics::new("producer")
            .count("RecordsRead", 12)
            .bytes("BytesWritten", 2048);
        let j = m.document(&context(&[]), 1_700_000_000_000);
        assert_eq!(
            j["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "SentimentEtl"
        );
        assert_eq!(
            j["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function"]])
        );
        assert_eq!(
            j["_aws"]["CloudWatchMetrics"][0]["Metrics"][1],
            json!({"Name":"BytesWritten","Unit":"Bytes"})
        );
        assert_eq!(j["Function"], "producer");
        assert_eq!(j["RecordsRead"], 12.0);
        assert_eq!(j["_aws"]["Timestamp"], 1_700_000_000_000_i64);
        assert_eq!(j["level"], "INFO");
        assert!(j.get("Stack").is_none());
    }

    #[test]
    fn the_stack_is_a_dimension_when_set() {
        let ctx = context(&[(STACK_VAR, "etl-prod")]);
        let j = Metrics::new("consumer")
            .count("MessagesIn", 3)
            .document(&ctx, 0);
        assert_eq!(
            j["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Stack", "Function"]])
        );
        // Every dimension named in the metadata has its value at the root.
        assert_eq!(
            (&j["Stack"], &j["Function"]),
            (&json!("etl-prod"), &json!("consumer"))
        );
    }

    #[test]
    fn the_line_is_at_the_configured_level_so_lambda_never_filters_it() {
        // Lambda drops JSON lines below ApplicationLogLevel, and a line
        // without a level counts as INFO: at WARN or ERROR every metric
        // would be lost.
        for (configured, level) in [
            ("WARN", "WARN"),
            ("error", "ERROR"),
            ("DEBUG", "DEBUG"),
            ("INFO", "INFO"),
            ("TRACE", "TRACE"),
            ("FATAL", "FATAL"),
        ] {
            let ctx = context(&[("AWS_LAMBDA_LOG_LEVEL", configured)]);
            assert_eq!(ctx.level, level, "{configured}");
            let line = Metrics::new("producer")
                .count("RunsCompleted", 1)
                .document(&ctx, 0);
            assert_eq!(line["level"], level);
        }
        assert_eq!(context(&[]).level, "INFO");
    }

    #[test]
    fn cold_start_is_reported_once() {
        let _ = cold_start();
        assert_eq!(cold_start(), 0);
    }
}
