//! CloudWatch metrics as Embedded Metric Format log lines.
//!
//! A Lambda function's stdout goes to CloudWatch Logs, which turns EMF JSON
//! lines into metrics asynchronously: no PutMetricData call, no added latency,
//! no extra permission. Both functions emit one line per invocation in the
//! `SentimentEtl` namespace with a `Function` dimension.

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{json, Map, Value};

/// The metrics namespace.
pub const NAMESPACE: &str = "SentimentEtl";

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

    /// The EMF JSON document, stamped with `timestamp_ms`.
    pub fn to_json(&self, timestamp_ms: i64) -> Value {
        let definitions: Vec<Value> = self
            .values
            .iter()
            .map(|(name, _, unit)| json!({"Name": name, "Unit": unit.as_str()}))
            .collect();
        let mut root = Map::new();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Function"]],
                    "Metrics": definitions,
                }],
            }),
        );
        root.insert("Function".into(), Value::String(self.function.clone()));
        for (name, value, _) in &self.values {
            root.insert((*name).into(), json!(value));
        }
        Value::Object(root)
    }

    /// Print the EMF line to stdout (where the Lambda log agent picks it up).
    pub fn emit(&self) {
        println!("{}", self.to_json(chrono::Utc::now().timestamp_millis()));
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

    #[test]
    fn emits_valid_emf() {
        let m = Metrics::new("producer")
            .count("RecordsRead", 12)
            .bytes("BytesWritten", 2048);
        let j = m.to_json(1_700_000_000_000);
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
    }

    #[test]
    fn cold_start_is_reported_once() {
        let _ = cold_start();
        assert_eq!(cold_start(), 0);
    }
}
