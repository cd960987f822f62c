//! What an invocation is asked to do: the EventBridge rule envelope, an
//! EventBridge Scheduler input, or the producer's own `resume`, read into a
//! [`Request`]; and the invocation deadline as Lambda (or an emulator) gives it.

use std::time::{Duration, SystemTime};

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use etl_aws::lambda::InvocationError;
use serde::Deserialize;
use serde_json::Value;

/// What the invocation was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// An EventBridge schedule (or an empty event): resume an unfinished run,
    /// else run incrementally.
    Scheduled,
    /// `{"mode":"incremental"}`: same as a schedule tick.
    Incremental,
    /// `{"mode":"full"}`: send everything, ignoring the watermark.
    Full,
    /// `{"since":"<RFC 3339>"}`: send what was updated at or after a time.
    Since(DateTime<Utc>),
    /// `{"mode":"resume"}`: continue an unfinished run; idle when there is none.
    Resume,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SchedulerInput {
    mode: Option<String>,
    since: Option<DateTime<Utc>>,
}

impl Request {
    /// The run mode this request asks for, for logs and summaries.
    pub fn mode_name(&self) -> &'static str {
        match self {
            Request::Scheduled | Request::Incremental => "incremental",
            Request::Full => "full",
            Request::Since(_) => "since",
            Request::Resume => "resume",
        }
    }

    /// Read the event: an EventBridge rule envelope (`"detail-type":
    /// "Scheduled Event"`), an EventBridge Scheduler input, or nothing.
    pub fn from_event(event: &Value) -> Result<Self, InvocationError> {
        match event {
            Value::Null => return Ok(Request::Scheduled),
            Value::Object(m) if m.is_empty() => return Ok(Request::Scheduled),
            Value::Object(m) if m.contains_key("detail-type") => {
                let e: EventBridgeEvent = serde_json::from_value(event.clone()).map_err(|e| {
                    InvocationError::permanent(format!("malformed EventBridge event: {e}"))
                })?;
                return if e.detail_type == "Scheduled Event" {
                    Ok(Request::Scheduled)
                } else {
                    Err(InvocationError::permanent(format!(
                        "unsupported EventBridge detail-type {:?} (expected \"Scheduled Event\")",
                        e.detail_type
                    )))
                };
            }
            _ => {}
        }
        let input: SchedulerInput = serde_json::from_value(event.clone()).map_err(|e| {
            InvocationError::permanent(format!(
                "unsupported event (expected a Scheduled Event or {{\"mode\": \"full\"|\"incremental\"|\"resume\", \"since\": \"<RFC 3339>\"}}): {e}"
            ))
        })?;
        match (input.mode.as_deref(), input.since) {
            (Some("resume"), Some(_)) => Err(InvocationError::permanent(
                "\"since\" cannot be combined with mode \"resume\"",
            )),
            (_, Some(t)) => Ok(Request::Since(t)),
            (None | Some("incremental"), None) => Ok(Request::Incremental),
            (Some("full"), None) => Ok(Request::Full),
            (Some("resume"), None) => Ok(Request::Resume),
            (Some(other), None) => Err(InvocationError::permanent(format!(
                "unknown mode {other:?}: expected \"full\", \"incremental\" or \"resume\""
            ))),
        }
    }
}

pub use etl_aws::producer_state::RunSpec;

/// The invocation deadline from Lambda's `deadline` (epoch milliseconds).
/// Real Lambda always sends an absolute time; local emulators do not
/// (`cargo lambda watch` sends its timeout, 600000, others 0), and taken
/// literally that deadline passed in 1970 and every run would stop at once.
/// A value before the year 2000 is therefore read as a duration from now
/// (0 as Lambda's 15-minute maximum).
pub fn effective_deadline(deadline_ms: u64) -> SystemTime {
    const Y2000_MS: u64 = 946_684_800_000;
    match deadline_ms {
        0 => SystemTime::now() + Duration::from_secs(900),
        ms if ms < Y2000_MS => SystemTime::now() + Duration::from_millis(ms),
        ms => SystemTime::UNIX_EPOCH + Duration::from_millis(ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn fixtures_and_inputs_parse_into_requests() {
        let scheduled: Value =
            serde_json::from_str(include_str!("../../../events/scheduled-event.json")).unwrap();
        assert_eq!(Request::from_event(&scheduled).unwrap(), Request::Scheduled);
        let backfill: Value =
            serde_json::from_str(include_str!("../../../events/scheduler-backfill.json")).unwrap();
        assert_eq!(Request::from_event(&backfill).unwrap(), Request::Full);
        assert_eq!(
            Request::from_event(&Value::Null).unwrap(),
            Request::Scheduled
        );
        assert_eq!(
            Request::from_event(&json!({"mode":"resume"})).unwrap(),
            Request::Resume
        );
        assert_eq!(
            Request::from_event(&json!({"mode":"incremental"})).unwrap(),
            Request::Incremental
        );
        assert_eq!(
            Request::from_event(&json!({"since":"2024-05-01T00:00:00+02:00"})).unwrap(),
            Request::Since(Utc.with_ymd_and_hms(2024, 4, 30, 22, 0, 0).unwrap())
        );
        for bad in [
            json!({"mode":"sometimes"}),
            json!({"mood":"full"}),
            json!([1]),
            json!({"detail-type":"Object Created","source":"aws.s3","detail":{}}),
        ] {
            let e = Request::from_event(&bad).unwrap_err();
            assert_eq!(e.error_type(), "NonRetryable", "{bad}");
        }
    }

    #[test]
    fn emulator_deadlines_are_read_as_durations() {
        let real = 1_900_000_000_000;
        assert_eq!(
            effective_deadline(real),
            SystemTime::UNIX_EPOCH + Duration::from_millis(real)
        );
        let left = |d: SystemTime| {
            d.duration_since(SystemTime::now())
                .unwrap_or_default()
                .as_secs()
        };
        assert!((595..=600).contains(&left(effective_deadline(600_000))));
        assert!((895..=900).contains(&left(effective_deadline(0))));
    }
}
