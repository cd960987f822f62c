//! The two views over the output table, defined once for every engine.
//!
//! DataFusion (`etl query`) and Athena run the same SQL text: the local query
//! engine creates the views from these definitions when it opens a lake, and
//! template.yaml declares them as Glue `VIRTUAL_VIEW` tables, created at
//! deploy time, whose embedded `originalSql` tests/iac checks against the
//! constants here. Both texts name the table and the other view unqualified
//! (`sentiment`, `sentiment_latest`); Athena resolves them in the view's
//! database, DataFusion in its session.
//!
//! `sentiment_latest` is one row per `id` and day of `created_at`: its
//! newest version by `updated_at`, then `processed_at` (a re-scored copy of
//! the same version wins the tie). `daily_sentiment` aggregates
//! `sentiment_latest`, not the raw table, so each id counts once a day, as
//! its newest version, however many updates, backfills or re-sends the raw
//! table holds.
//!
//! The window is partitioned by `id` *and* `dt`. `dt` is the day of
//! `created_at`, which the versions of an id share, so the result is the
//! same; but a filter on `dt` (the dashboard's, any `WHERE dt = …`) is then
//! on a partitioning column of the window, which engines push below it to
//! the scan: only that day's files are read, where a window over `id` alone
//! reads every version of every day first (and Athena's per-query scan cap
//! fails it as the lake grows). The cost: an id whose `created_at` was
//! itself edited to another day keeps a newest version on each of the two
//! days, so `daily_sentiment` counts it on both (the old day with its old
//! label).

use crate::output::{COLUMNS, PARTITION_COLUMN};

/// Name of the newest-version-per-id view.
pub const LATEST_VIEW: &str = "sentiment_latest";

/// Name of the per-day aggregate view.
pub const DAILY_VIEW: &str = "daily_sentiment";

/// The `sentiment_latest` query. `{columns}` stands for the table's columns in
/// order followed by `dt` (see [`sentiment_latest_sql`]); tests/iac expands it
/// the same way.
pub const SENTIMENT_LATEST_SQL: &str = "SELECT {columns} FROM (SELECT *, row_number() OVER (PARTITION BY id, dt ORDER BY updated_at DESC, processed_at DESC) AS rn FROM sentiment) ranked WHERE rn = 1";

/// The `daily_sentiment` query: per `dt` and label, the ids whose newest
/// version has that label (`records`) and their mean VADER compound score
/// (`avg_compound`, null for Comprehend rows).
pub const DAILY_SENTIMENT_SQL: &str = "SELECT dt, sentiment, count(*) AS records, avg(score_compound) AS avg_compound FROM sentiment_latest GROUP BY dt, sentiment";

/// Columns of `daily_sentiment` with their Athena (Hive) types.
pub const DAILY_COLUMNS: &[(&str, &str)] = &[
    ("dt", "string"),
    ("sentiment", "string"),
    ("records", "bigint"),
    ("avg_compound", "double"),
];

/// The `sentiment_latest` query over a table with the columns of
/// [`COLUMNS`], `text` left out when the lake was written without it.
pub fn sentiment_latest_sql(include_text: bool) -> String {
    let columns: Vec<&str> = COLUMNS
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| include_text || *name != "text")
        .chain([PARTITION_COLUMN])
        .collect();
    SENTIMENT_LATEST_SQL.replace("{columns}", &columns.join(", "))
}

/// Both views as (name, query), in creation order (`daily_sentiment` reads
/// `sentiment_latest`).
pub fn views(include_text: bool) -> [(&'static str, String); 2] {
    [
        (LATEST_VIEW, sentiment_latest_sql(include_text)),
        (DAILY_VIEW, DAILY_SENTIMENT_SQL.to_owned()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_lists_every_output_column_then_dt() {
        let sql = sentiment_latest_sql(true);
        assert!(sql.starts_with(
            "SELECT id, text, created_at, updated_at, language, sentiment, score_positive, \
             score_negative, score_neutral, score_mixed, score_compound, engine, processed_at, dt FROM ("
        ), "{sql}");
        assert!(!sql.contains('{'));
        let without = sentiment_latest_sql(false);
        assert!(without.starts_with("SELECT id, created_at,"), "{without}");
    }

    #[test]
    fn daily_counts_latest_versions_not_raw_rows() {
        assert!(DAILY_SENTIMENT_SQL.contains("FROM sentiment_latest "));
        let [(first, _), (second, daily)] = views(true);
        assert_eq!((first, second), (LATEST_VIEW, DAILY_VIEW));
        assert_eq!(daily, DAILY_SENTIMENT_SQL);
        for (column, _) in DAILY_COLUMNS {
            assert!(
                daily.contains(&format!(" {column}")) || daily.contains(&format!("{column},")),
                "{column}"
            );
        }
    }
}
