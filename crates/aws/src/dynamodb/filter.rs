//! The server-side half of incremental scans: a FilterExpression that drops
//! only items that are *certainly* older than the run's floor.
//!
//! Source timestamps are RFC 3339 strings (S) or epoch seconds/milliseconds
//! (N), and DynamoDB compares values of different types as false, so a naive
//! `updated_at > :since` would silently drop every item stored in the other
//! type. The filter therefore states "certainly old" per type and keeps
//! everything else; the exact test is core's `incremental::LedgerFilter`,
//! re-applied client-side to every item that comes back. A Scan still reads (and bills)
//! the whole table: the filter only saves transfer and parsing.
//!
//! * N below the epoch-seconds threshold (1e11, as core reads it): old when
//!   `< floor(since seconds)`.
//! * N at or above it (milliseconds): old when `<= since millis - 1`.
//! * S of at least 20 characters (the shortest RFC 3339 form; digit-string
//!   epochs are shorter and are kept): old when its date prefix is more than
//!   two days before `since`, a margin that covers any UTC offset.
//! * `updated_at` absent or NULL: the same test on `created_at`.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, Utc};

/// A FilterExpression with its placeholders.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// The expression.
    pub expression: String,
    /// `#name` placeholders.
    pub names: Vec<(String, String)>,
    /// `:value` placeholders.
    pub values: Vec<(String, AttributeValue)>,
}

/// Epoch numbers at or above this are milliseconds (core's threshold).
const MILLIS_THRESHOLD: i64 = 100_000_000_000;

/// The filter for items updated (or, without an update time, created) at or
/// after `since`, in the conservative sense described in the module docs.
pub fn incremental(updated_at: &str, created_at: &str, since: DateTime<Utc>) -> Filter {
    let secs = since.timestamp();
    let millis_hi = since.timestamp_millis() - 1;
    let floor = (since - Duration::days(2)).format("%Y-%m-%d").to_string();
    let mut values = vec![
        (":tn".to_owned(), AttributeValue::S("N".into())),
        (":ts".to_owned(), AttributeValue::S("S".into())),
        (":tnull".to_owned(), AttributeValue::S("NULL".into())),
        (":secs".to_owned(), AttributeValue::N(secs.to_string())),
        (":minlen".to_owned(), AttributeValue::N("20".into())),
        (":floor".to_owned(), AttributeValue::S(floor)),
    ];
    let with_millis = millis_hi >= MILLIS_THRESHOLD;
    if with_millis {
        values.push((
            ":mslo".to_owned(),
            AttributeValue::N(MILLIS_THRESHOLD.to_string()),
        ));
        values.push((":mshi".to_owned(), AttributeValue::N(millis_hi.to_string())));
    }
    // attribute_type comes first in every conjunction so that no comparison is
    // ever evaluated between values of different types.
    let old = |a: &str| {
        let mut clauses = vec![
            format!("(attribute_type({a}, :tn) AND {a} < :secs)"),
            format!("(attribute_type({a}, :ts) AND size({a}) >= :minlen AND {a} < :floor)"),
        ];
        if with_millis {
            clauses.push(format!(
                "(attribute_type({a}, :tn) AND {a} BETWEEN :mslo AND :mshi)"
            ));
        }
        clauses.join(" OR ")
    };
    let expression = format!(
        "NOT ({} OR ((attribute_not_exists(#u) OR attribute_type(#u, :tnull)) AND ({})))",
        old("#u"),
        old("#c")
    );
    Filter {
        expression,
        names: vec![
            ("#u".to_owned(), updated_at.to_owned()),
            ("#c".to_owned(), created_at.to_owned()),
        ],
        values,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn placeholders_are_all_declared() {
        let since = Utc.with_ymd_and_hms(2024, 5, 3, 10, 0, 0).unwrap();
        let f = incremental("updated_at", "created_at", since);
        for (v, _) in &f.values {
            assert!(f.expression.contains(v.as_str()), "{v} unused");
        }
        assert!(f.expression.contains(":mshi"));
        let floor = f.values.iter().find(|(k, _)| k == ":floor").unwrap();
        assert_eq!(floor.1, AttributeValue::S("2024-05-01".into()));
        let secs = f.values.iter().find(|(k, _)| k == ":secs").unwrap();
        assert_eq!(secs.1, AttributeValue::N(since.timestamp().to_string()));
    }

    #[test]
    fn early_watermarks_skip_the_millisecond_clause() {
        let f = incremental("u", "c", Utc.timestamp_opt(1_000, 0).unwrap());
        assert!(!f.expression.contains(":mshi"));
        assert!(f
            .values
            .iter()
            .all(|(k, _)| f.expression.contains(k.as_str())));
    }
}
