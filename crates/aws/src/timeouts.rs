//! Timeouts for every AWS client, from the environment.
//!
//! Without them a request whose answer never comes (a lost packet, a
//! half-open connection, a service that accepts and stalls) holds its
//! caller until the Lambda function itself times out: the producer then
//! never saves its checkpoint and the consumer's whole batch comes back. The
//! SDK sets only a connect timeout by default, so [`Timeouts`] sets all four
//! of [`TimeoutConfig`]'s limits, and the SDK's retries turn a timed-out
//! attempt into a new one.
//!
//! | variable | default | limit on |
//! |---|---|---|
//! | `AWS_CONNECT_TIMEOUT_MS` | 3100 | opening a connection (TCP, TLS) |
//! | `AWS_READ_TIMEOUT_MS` | 10000 | sending a request until the first byte of its answer |
//! | `AWS_ATTEMPT_TIMEOUT_MS` | 12000 | one attempt, answer body included |
//! | `AWS_OPERATION_TIMEOUT_MS` | 30000 | one call, every retry and backoff included |
//!
//! Why these defaults: 3.1 s is the SDK's own connect default, just above
//! the 3 s after which a lost SYN is sent again, so one dropped packet does
//! not fail a connect. No call this pipeline makes needs 10 s before it is
//! answered — a 1 MB Scan page, a SendMessageBatch of at most 1 MiB, a
//! PutObject of one message's Parquet, a BatchDetectSentiment of 25
//! documents all take well under a second in region — so 10 s only fires on
//! a request that is not coming back. The attempt limit adds the body's
//! download to that; the operation limit (three attempts' worth, with
//! backoff, capped) keeps one stuck call to a tenth of the consumer's 300 s
//! and a thirtieth of the producer's 900 s function timeout, so the deadline
//! logic around it still gets to run.

use std::time::Duration;

use aws_smithy_types::timeout::TimeoutConfig;

use crate::lambda::{optional, ConfigError, Lookup, ProcessEnv};

/// `AWS_CONNECT_TIMEOUT_MS`.
pub const CONNECT_VAR: &str = "AWS_CONNECT_TIMEOUT_MS";
/// `AWS_READ_TIMEOUT_MS`.
pub const READ_VAR: &str = "AWS_READ_TIMEOUT_MS";
/// `AWS_ATTEMPT_TIMEOUT_MS`.
pub const ATTEMPT_VAR: &str = "AWS_ATTEMPT_TIMEOUT_MS";
/// `AWS_OPERATION_TIMEOUT_MS`.
pub const OPERATION_VAR: &str = "AWS_OPERATION_TIMEOUT_MS";

/// Longest value accepted: the longest a Lambda function may run (15 min).
const MAX_MS: u64 = 900_000;

/// The four client timeouts. See the module docs for what each limits and
/// why the defaults are what they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// `AWS_CONNECT_TIMEOUT_MS` (default 3100): opening a connection.
    pub connect: Duration,
    /// `AWS_READ_TIMEOUT_MS` (default 10000): from sending a request to the
    /// first byte of its answer.
    pub read: Duration,
    /// `AWS_ATTEMPT_TIMEOUT_MS` (default 12000): one attempt, start to end.
    pub attempt: Duration,
    /// `AWS_OPERATION_TIMEOUT_MS` (default 30000): one call, all attempts
    /// and the backoff between them.
    pub operation: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_millis(3_100),
            read: Duration::from_millis(10_000),
            attempt: Duration::from_millis(12_000),
            operation: Duration::from_millis(30_000),
        }
    }
}

impl Timeouts {
    /// Read the four variables from the process environment (once per
    /// container: [`crate::Clients::from_env`] calls it).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&ProcessEnv)
    }

    /// Read the four variables from any lookup; unset or empty means the
    /// default. A value must be a whole number of milliseconds between 1 and
    /// 900000, and the attempt limit may not exceed the operation limit (it
    /// could never fire); anything else is an error naming the variable.
    pub fn from_lookup(env: &dyn Lookup) -> Result<Self, ConfigError> {
        let d = Self::default();
        let t = Self {
            connect: millis(env, CONNECT_VAR, d.connect)?,
            read: millis(env, READ_VAR, d.read)?,
            attempt: millis(env, ATTEMPT_VAR, d.attempt)?,
            operation: millis(env, OPERATION_VAR, d.operation)?,
        };
        if t.attempt > t.operation {
            return Err(ConfigError::Invalid {
                var: ATTEMPT_VAR,
                value: t.attempt.as_millis().to_string(),
                reason: format!(
                    "exceeds {OPERATION_VAR} ({} ms), so it could never fire",
                    t.operation.as_millis()
                ),
            });
        }
        Ok(t)
    }

    /// As the SDK's [`TimeoutConfig`] (for `aws_config::defaults(..).timeout_config`).
    pub fn config(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect)
            .read_timeout(self.read)
            .operation_attempt_timeout(self.attempt)
            .operation_timeout(self.operation)
            .build()
    }
}

fn millis(env: &dyn Lookup, var: &'static str, default: Duration) -> Result<Duration, ConfigError> {
    let Some(value) = optional(env, var) else {
        return Ok(default);
    };
    let invalid = |reason: String| ConfigError::Invalid {
        var,
        value: value.clone(),
        reason,
    };
    let ms: u64 = value
        .parse()
        .map_err(|e| invalid(format!("not a whole number of milliseconds ({e})")))?;
    if ms == 0 || ms > MAX_MS {
        return Err(invalid(format!("must be between 1 and {MAX_MS} ms")));
    }
    Ok(Duration::from_millis(ms))
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
    fn unset_or_empty_variables_take_the_lambda_defaults() {
        let t = Timeouts::from_lookup(&env(&[])).unwrap();
        assert_eq!(t, Timeouts::default());
        assert_eq!(t.connect, Duration::from_millis(3_100));
        assert_eq!(t.read, Duration::from_secs(10));
        assert_eq!(t.attempt, Duration::from_secs(12));
        assert_eq!(t.operation, Duration::from_secs(30));
        let t = Timeouts::from_lookup(&env(&[(READ_VAR, "  ")])).unwrap();
        assert_eq!(t, Timeouts::default());
    }

    #[test]
    fn values_are_milliseconds_and_reach_the_sdk_config() {
        let t = Timeouts::from_lookup(&env(&[
            (CONNECT_VAR, "250"),
            (READ_VAR, " 400 "),
            (ATTEMPT_VAR, "500"),
            (OPERATION_VAR, "2000"),
        ]))
        .unwrap();
        let c = t.config();
        assert_eq!(c.connect_timeout(), Some(Duration::from_millis(250)));
        assert_eq!(c.read_timeout(), Some(Duration::from_millis(400)));
        assert_eq!(
            c.operation_attempt_timeout(),
            Some(Duration::from_millis(500))
        );
        assert_eq!(c.operation_timeout(), Some(Duration::from_secs(2)));
    }

    #[test]
    fn invalid_values_are_errors_naming_the_variable() {
        for (var, value) in [
            (CONNECT_VAR, "3s"),
            (READ_VAR, "-1"),
            (ATTEMPT_VAR, "0"),
            (OPERATION_VAR, "900001"),
            (READ_VAR, "1.5"),
        ] {
            let err = Timeouts::from_lookup(&env(&[(var, value)])).unwrap_err();
            match &err {
                ConfigError::Invalid {
                    var: v, value: got, ..
                } => {
                    assert_eq!((*v, got.as_str()), (var, value));
                }
                other => panic!("{other:?}"),
            }
            let text = err.to_string();
            assert!(text.contains(var) && text.contains(value), "{text}");
        }
    }

    #[test]
    fn an_attempt_longer_than_the_operation_is_refused() {
        let err = Timeouts::from_lookup(&env(&[(ATTEMPT_VAR, "40000")])).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(ATTEMPT_VAR) && text.contains(OPERATION_VAR),
            "{text}"
        );
        Timeouts::from_lookup(&env(&[(ATTEMPT_VAR, "40000"), (OPERATION_VAR, "40000")])).unwrap();
    }
}
