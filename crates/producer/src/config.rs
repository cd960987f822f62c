//! The producer's configuration, read once at init from the environment.

use std::time::Duration;

use etl_aws::lambda::{list, optional, parsed, required, ConfigError, Lookup};
use etl_core::incremental::DEFAULT_LOOKBACK;
use etl_core::message::DEFAULT_MESSAGE_BUDGET;
use etl_core::FieldMap;

/// Everything the producer reads from its environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `SOURCE_TABLE`: the DynamoDB table to scan.
    pub source_table: String,
    /// `STATE_TABLE`: DynamoDB table (partition key `pk`, string) holding the
    /// watermark, the checkpoint of an unfinished run and the run lock.
    pub state_table: String,
    /// `QUEUE_URL`: the SQS queue messages are sent to.
    pub queue_url: String,
    /// `SCAN_SEGMENTS` (default 4): parallel Scan segments.
    pub segments: u32,
    /// `SCAN_PAGE_LIMIT` (optional): items per Scan page; unset lets
    /// DynamoDB fill 1 MB pages. Smaller pages mean finer checkpoints.
    pub page_limit: Option<i32>,
    /// `MAX_PAGES_PER_INVOCATION` (optional): stop (and checkpoint) after this
    /// many pages even if time remains, to bound one invocation's work.
    pub max_pages: Option<u64>,
    /// `MESSAGE_BUDGET_BYTES` (default 1,000,000): packing budget per message,
    /// measured as the consumer's event carries it (JSON-escaped), capped at
    /// SQS's 1 MiB. The template derives the consumer's batch size from it.
    pub message_budget: usize,
    /// `ID_FIELD`, `TEXT_FIELD`, `CREATED_AT_FIELD`, `UPDATED_AT_FIELD`
    /// (defaults `id`, `text`, `created_at`, `updated_at`) and
    /// `PASSTHROUGH_FIELDS` (comma-separated attributes copied into records).
    pub fields: FieldMap,
    /// `DEADLINE_MARGIN_MS` (default 15000): stop scanning this long before
    /// the invocation deadline, leaving time to send what is packed and save
    /// the checkpoint.
    pub deadline_margin: Duration,
    /// `LOOKBACK_SECONDS` (default 3600): how far behind the watermark an
    /// incremental run still looks, so records that become visible late (a
    /// writer whose clock is behind, an import keeping original times, a slow
    /// transaction) are picked up. The ledger of sent versions grows with the
    /// records updated within this window.
    pub lookback: Duration,
    /// `LEDGER_SPILL_DIR` (default the temporary directory, `/tmp` in
    /// Lambda): where the ledger of sent versions is kept, in sorted files,
    /// while a run works. About 24 bytes per version, up to three times over
    /// while a run loads, merges and saves it.
    pub ledger_spill_dir: std::path::PathBuf,
    /// `LEDGER_MEMORY_VERSIONS` (default 262,144, about 10 MB): versions of
    /// the ledger held in memory before they are written to a sorted file.
    /// Memory stays within this bound whatever the ledger's size.
    pub ledger_memory_versions: usize,
}

impl Config {
    /// Read the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&etl_aws::lambda::ProcessEnv)
    }

    /// Read the configuration from any lookup (tests use a map).
    pub fn from_lookup(env: &dyn Lookup) -> Result<Self, ConfigError> {
        let defaults = FieldMap::default();
        let segments: u32 = parsed(env, "SCAN_SEGMENTS", 4)?;
        if segments == 0 || segments > 1_000_000 {
            return Err(ConfigError::Invalid {
                var: "SCAN_SEGMENTS",
                value: segments.to_string(),
                reason: "must be between 1 and 1000000".into(),
            });
        }
        let page_limit = match optional(env, "SCAN_PAGE_LIMIT") {
            None => None,
            Some(_) => Some(parsed(env, "SCAN_PAGE_LIMIT", 0i32)?).filter(|n| *n > 0),
        };
        let max_pages = match optional(env, "MAX_PAGES_PER_INVOCATION") {
            None => None,
            Some(_) => Some(parsed(env, "MAX_PAGES_PER_INVOCATION", 0u64)?).filter(|n| *n > 0),
        };
        Ok(Self {
            source_table: required(env, "SOURCE_TABLE")?,
            state_table: required(env, "STATE_TABLE")?,
            queue_url: required(env, "QUEUE_URL")?,
            segments,
            page_limit,
            max_pages,
            message_budget: parsed(env, "MESSAGE_BUDGET_BYTES", DEFAULT_MESSAGE_BUDGET)?,
            fields: FieldMap {
                id: optional(env, "ID_FIELD").unwrap_or(defaults.id),
                text: optional(env, "TEXT_FIELD").unwrap_or(defaults.text),
                created_at: optional(env, "CREATED_AT_FIELD").unwrap_or(defaults.created_at),
                updated_at: optional(env, "UPDATED_AT_FIELD").unwrap_or(defaults.updated_at),
                passthrough: list(env, "PASSTHROUGH_FIELDS"),
            },
            deadline_margin: Duration::from_millis(parsed(env, "DEADLINE_MARGIN_MS", 15_000u64)?),
            lookback: lookback(env)?,
            ledger_spill_dir: optional(env, "LEDGER_SPILL_DIR")
                .map_or_else(std::env::temp_dir, Into::into),
            ledger_memory_versions: match parsed(
                env,
                "LEDGER_MEMORY_VERSIONS",
                etl_aws::ledger::DEFAULT_MEMORY_VERSIONS,
            )? {
                0 => {
                    return Err(ConfigError::Invalid {
                        var: "LEDGER_MEMORY_VERSIONS",
                        value: "0".into(),
                        reason: "must be at least 1".into(),
                    })
                }
                n => n,
            },
        })
    }
}

/// `LOOKBACK_SECONDS`: at most 30 days, so a typo cannot make every run
/// rescan and remember months of versions.
fn lookback(env: &dyn Lookup) -> Result<Duration, ConfigError> {
    const MAX: u64 = 30 * 24 * 3600;
    let secs: u64 = parsed(env, "LOOKBACK_SECONDS", DEFAULT_LOOKBACK.as_secs())?;
    if secs > MAX {
        return Err(ConfigError::Invalid {
            var: "LOOKBACK_SECONDS",
            value: secs.to_string(),
            reason: format!("must be at most {MAX} (30 days)"),
        });
    }
    Ok(Duration::from_secs(secs))
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

    #[test]
    fn defaults_apply_and_missing_variables_are_named() {
        let e = env(&[
            ("SOURCE_TABLE", "posts"),
            ("STATE_TABLE", "state"),
            ("QUEUE_URL", "http://q"),
        ]);
        let c = Config::from_lookup(&e).unwrap();
        assert_eq!(c.segments, 4);
        assert_eq!(c.message_budget, DEFAULT_MESSAGE_BUDGET);
        assert_eq!(c.fields, FieldMap::default());
        assert_eq!(c.deadline_margin, Duration::from_secs(15));
        assert_eq!((c.page_limit, c.max_pages), (None, None));
        assert_eq!(c.lookback, Duration::from_secs(3600));
        assert_eq!(c.ledger_memory_versions, 1 << 18);
        assert_eq!(c.ledger_spill_dir, std::env::temp_dir());

        let e = env(&[("SOURCE_TABLE", "posts"), ("QUEUE_URL", "http://q")]);
        assert_eq!(
            Config::from_lookup(&e).unwrap_err(),
            ConfigError::Missing("STATE_TABLE")
        );
    }

    #[test]
    fn fields_and_numbers_are_read() {
        let e = env(&[
            ("SOURCE_TABLE", "posts"),
            ("STATE_TABLE", "state"),
            ("QUEUE_URL", "http://q"),
            ("SCAN_SEGMENTS", "8"),
            ("SCAN_PAGE_LIMIT", "50"),
            ("TEXT_FIELD", "body"),
            ("PASSTHROUGH_FIELDS", "author, lang"),
            ("DEADLINE_MARGIN_MS", "2500"),
            ("LOOKBACK_SECONDS", "600"),
        ]);
        let c = Config::from_lookup(&e).unwrap();
        assert_eq!((c.segments, c.page_limit), (8, Some(50)));
        assert_eq!(c.fields.text, "body");
        assert_eq!(c.fields.passthrough, ["author", "lang"]);
        assert_eq!(c.deadline_margin, Duration::from_millis(2500));
        assert_eq!(c.lookback, Duration::from_secs(600));
        for (v, needle) in [("-5", "LOOKBACK_SECONDS"), ("2592001", "30 days")] {
            let e = env(&[
                ("SOURCE_TABLE", "p"),
                ("STATE_TABLE", "s"),
                ("QUEUE_URL", "q"),
                ("LOOKBACK_SECONDS", v),
            ]);
            let err = Config::from_lookup(&e).unwrap_err().to_string();
            assert!(err.contains(needle), "{v}: {err}");
        }
        let bad = env(&[
            ("SOURCE_TABLE", "p"),
            ("STATE_TABLE", "s"),
            ("QUEUE_URL", "q"),
            ("SCAN_SEGMENTS", "0"),
        ]);
        assert!(Config::from_lookup(&bad)
            .unwrap_err()
            .to_string()
            .contains("SCAN_SEGMENTS"));
    }
}
