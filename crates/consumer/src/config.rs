//! The consumer's configuration, read once at init from the environment.

use etl_aws::lambda::{optional, parsed, required, ConfigError, Lookup};
use etl_aws::LanguageMode;
use std::time::Duration;

use etl_core::{Codec, Engine};

/// Everything the consumer reads from its environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `OUTPUT_BUCKET`: the lake's bucket.
    pub output_bucket: String,
    /// `OUTPUT_PREFIX` (default empty): key prefix; objects go under
    /// `s3://OUTPUT_BUCKET/OUTPUT_PREFIX/sentiment/`.
    pub output_prefix: String,
    /// `GLUE_DATABASE`: the catalog database (created when missing).
    pub glue_database: String,
    /// `GLUE_TABLE`: the catalog table (created when missing).
    pub glue_table: String,
    /// `ATHENA_WORKGROUP` (optional; unset disables): where the
    /// `sentiment_latest` and `daily_sentiment` views are (re)created, once
    /// per container. template.yaml leaves it unset: the stack creates the
    /// views at deploy time (Glue `VIRTUAL_VIEW` tables), so no cold start
    /// waits for their DDL, races another container or undoes an edit.
    pub athena_workgroup: Option<String>,
    /// `ATHENA_OUTPUT_LOCATION` (optional): query results location, for
    /// workgroups that do not set one.
    pub athena_output_location: Option<String>,
    /// `SENTIMENT_ENGINE`: `comprehend` (billed per record) or `vader` (free, embedded).
    pub engine: Engine,
    /// `LANGUAGE` (default `en`): the documents' language for Comprehend, or
    /// `auto` to detect it per document (an extra billed call).
    pub language: LanguageMode,
    /// `PARQUET_COMPRESSION` (default `snappy`): `snappy`, `zstd` or `none`.
    pub codec: Codec,
    /// `INCLUDE_TEXT` (default `true`): keep the scored text in the lake.
    pub include_text: bool,
    /// `TABLE_FORMAT` (default `hive`): `hive` writes partition directories
    /// and registers them in Glue; `delta` commits each message's objects to
    /// the Delta table at the same location, once per content id (the Glue
    /// table is the template's `table_type=DELTA` one; nothing to register).
    pub table_format: etl_core::output::TableFormat,
    /// `MESSAGE_CONCURRENCY` (default 4): messages processed at once.
    pub concurrency: usize,
    /// `DEAD_LETTER_QUEUE_URL` (optional): where records the analyzer refuses
    /// go, as one message of only those records per source message, with the
    /// reasons as message attributes. Unset: a refused record fails its
    /// whole message, which the queue's redrive policy then dead-letters.
    pub dead_letter_queue_url: Option<String>,
    /// Comprehend calls per second for this container, shared by every
    /// message it processes at once: `COMPREHEND_MAX_TPS` when set, else
    /// `COMPREHEND_ACCOUNT_TPS` (default 10, Comprehend's default
    /// BatchDetectSentiment quota for the account) divided by
    /// `MAX_CONSUMER_CONCURRENCY` (default 1, the containers that may run at
    /// once), so all containers together stay within the account's quota.
    pub comprehend_max_tps: f64,
    /// `DEADLINE_MARGIN_MS` (default 10000): no message is started when less
    /// than this is left before the invocation's deadline; those not started
    /// are reported as failed (redelivered later, nothing billed).
    pub deadline_margin: Duration,
}

impl Config {
    /// Read the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&etl_aws::lambda::ProcessEnv)
    }

    /// Read the configuration from any lookup (tests use a map).
    pub fn from_lookup(env: &dyn Lookup) -> Result<Self, ConfigError> {
        let concurrency: usize = parsed(env, "MESSAGE_CONCURRENCY", 4)?;
        Ok(Self {
            output_bucket: required(env, "OUTPUT_BUCKET")?,
            output_prefix: optional(env, "OUTPUT_PREFIX").unwrap_or_default(),
            glue_database: required(env, "GLUE_DATABASE")?,
            glue_table: required(env, "GLUE_TABLE")?,
            athena_workgroup: optional(env, "ATHENA_WORKGROUP"),
            athena_output_location: optional(env, "ATHENA_OUTPUT_LOCATION"),
            engine: required(env, "SENTIMENT_ENGINE")?
                .parse()
                .map_err(|reason| ConfigError::Invalid {
                    var: "SENTIMENT_ENGINE",
                    value: optional(env, "SENTIMENT_ENGINE").unwrap_or_default(),
                    reason,
                })?,
            language: parsed(env, "LANGUAGE", LanguageMode::Fixed("en".into()))?,
            codec: parsed(env, "PARQUET_COMPRESSION", Codec::Snappy)?,
            include_text: parsed(env, "INCLUDE_TEXT", true)?,
            table_format: parsed(env, "TABLE_FORMAT", etl_core::output::TableFormat::Hive)?,
            concurrency: concurrency.max(1),
            dead_letter_queue_url: optional(env, "DEAD_LETTER_QUEUE_URL"),
            comprehend_max_tps: comprehend_tps(env)?,
            deadline_margin: Duration::from_millis(parsed(env, "DEADLINE_MARGIN_MS", 10_000u64)?),
        })
    }
}

/// Comprehend calls per second for one container (see
/// [`Config::comprehend_max_tps`]).
fn comprehend_tps(env: &dyn Lookup) -> Result<f64, ConfigError> {
    if optional(env, "COMPREHEND_MAX_TPS").is_some() {
        return positive(env, "COMPREHEND_MAX_TPS", etl_aws::DEFAULT_COMPREHEND_TPS);
    }
    let account: f64 = parsed(
        env,
        "COMPREHEND_ACCOUNT_TPS",
        etl_aws::DEFAULT_COMPREHEND_TPS,
    )?;
    if !(account.is_finite() && account > 0.0) {
        return Err(ConfigError::Invalid {
            var: "COMPREHEND_ACCOUNT_TPS",
            value: account.to_string(),
            reason: "must be a number above zero".into(),
        });
    }
    let containers: u32 = parsed(env, "MAX_CONSUMER_CONCURRENCY", 1)?;
    if containers == 0 {
        return Err(ConfigError::Invalid {
            var: "MAX_CONSUMER_CONCURRENCY",
            value: "0".into(),
            reason: "must be at least 1".into(),
        });
    }
    Ok(account / f64::from(containers))
}

/// A number that must be finite and above zero.
fn positive(env: &dyn Lookup, var: &'static str, default: f64) -> Result<f64, ConfigError> {
    let v: f64 = parsed(env, var, default)?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(ConfigError::Invalid {
            var,
            value: v.to_string(),
            reason: "must be a number above zero".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const BASE: &[(&str, &str)] = &[
        ("OUTPUT_BUCKET", "lake"),
        ("GLUE_DATABASE", "db"),
        ("GLUE_TABLE", "sentiment"),
        ("SENTIMENT_ENGINE", "vader"),
    ];

    #[test]
    fn defaults_apply() {
        let c = Config::from_lookup(&env(BASE)).unwrap();
        assert_eq!(c.engine, Engine::Vader);
        assert_eq!(c.language, LanguageMode::Fixed("en".into()));
        assert_eq!(
            (c.codec, c.include_text, c.concurrency),
            (Codec::Snappy, true, 4)
        );
        assert_eq!(
            (c.output_prefix.as_str(), c.athena_workgroup.as_deref()),
            ("", None)
        );
        assert_eq!(c.dead_letter_queue_url, None);
        assert_eq!(c.comprehend_max_tps, 10.0);
        assert_eq!(c.deadline_margin, Duration::from_secs(10));
        let mut e = env(BASE);
        e.insert("DEAD_LETTER_QUEUE_URL".into(), "http://q/dlq".into());
        e.insert("COMPREHEND_MAX_TPS".into(), "2.5".into());
        e.insert("DEADLINE_MARGIN_MS".into(), "1500".into());
        let c = Config::from_lookup(&e).unwrap();
        assert_eq!(c.dead_letter_queue_url.as_deref(), Some("http://q/dlq"));
        assert_eq!(c.comprehend_max_tps, 2.5);
        assert_eq!(c.deadline_margin, Duration::from_millis(1500));
    }

    #[test]
    fn each_container_takes_its_share_of_the_accounts_comprehend_quota() {
        // As the template sets them: 10 calls/s for the account, up to 20
        // containers at once: half a call per second each.
        let mut e = env(BASE);
        e.insert("COMPREHEND_ACCOUNT_TPS".into(), "10".into());
        e.insert("MAX_CONSUMER_CONCURRENCY".into(), "20".into());
        assert_eq!(Config::from_lookup(&e).unwrap().comprehend_max_tps, 0.5);
        // An explicit per-container rate wins.
        e.insert("COMPREHEND_MAX_TPS".into(), "3".into());
        assert_eq!(Config::from_lookup(&e).unwrap().comprehend_max_tps, 3.0);
        for (var, value) in [
            ("MAX_CONSUMER_CONCURRENCY", "0"),
            ("COMPREHEND_ACCOUNT_TPS", "-1"),
        ] {
            let mut e = env(BASE);
            e.insert(var.into(), value.into());
            let err = Config::from_lookup(&e).unwrap_err().to_string();
            assert!(err.contains(var), "{err}");
        }
    }

    #[test]
    fn missing_and_invalid_variables_are_named() {
        let e = env(&BASE[1..]);
        assert_eq!(
            Config::from_lookup(&e).unwrap_err(),
            ConfigError::Missing("OUTPUT_BUCKET")
        );
        for (var, value) in [
            ("SENTIMENT_ENGINE", "gpt"),
            ("LANGUAGE", "tlh"),
            ("PARQUET_COMPRESSION", "lz4"),
            ("INCLUDE_TEXT", "maybe"),
            ("COMPREHEND_MAX_TPS", "0"),
            ("DEADLINE_MARGIN_MS", "soon"),
        ] {
            let mut e = env(BASE);
            e.insert(var.into(), value.into());
            let err = Config::from_lookup(&e).unwrap_err().to_string();
            assert!(err.contains(var) && err.contains(value), "{err}");
        }
        let mut e = env(BASE);
        e.insert("ATHENA_WORKGROUP".into(), "".into());
        assert_eq!(
            Config::from_lookup(&e).unwrap().athena_workgroup,
            None,
            "empty disables views"
        );
    }
}
