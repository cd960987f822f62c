//! Amazon Athena as a core [`QueryEngine`], plus DDL for the two views
//! (`etl_core::views`) for an Athena database that did not get them from
//! template.yaml, which creates them at deploy time.
//!
//! Athena is asynchronous: StartQueryExecution returns an id, the state is
//! polled until it settles, and results are paged. Polling backs off, the
//! whole wait is capped by a timeout after which the query is cancelled with
//! StopQueryExecution (an abandoned query keeps scanning, and billing, in the
//! background), and result paging is bounded. Every value comes back as
//! text, so results are a RecordBatch of nullable Utf8 columns.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use async_trait::async_trait;
use aws_sdk_athena::types::{
    QueryExecutionContext, QueryExecutionState, ResultConfiguration, StatementType,
};
use aws_sdk_athena::Client;
use etl_core::output::TABLE_NAME;
use etl_core::views::views;
use etl_core::{BackendError, QueryEngine, RetryPolicy};
use tokio::sync::OnceCell;
use tracing::{info, warn};

use crate::error::backend_error;

/// What one query scanned, as Athena reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QueryStats {
    /// The query execution id.
    pub query_execution_id: String,
    /// Bytes scanned (what Athena bills: per TB, at least 10 MB a query).
    pub data_scanned_bytes: u64,
    /// Engine time in milliseconds.
    pub engine_execution_ms: u64,
}

impl QueryStats {
    /// The query's price at `usd_per_tb` (Athena's list price is 5 USD per
    /// TB scanned), with Athena's 10 MB minimum per query.
    pub fn cost_usd(&self, usd_per_tb: f64) -> f64 {
        let billed = self.data_scanned_bytes.max(10 * 1_000_000);
        billed as f64 / 1e12 * usd_per_tb
    }
}

/// Result pages read at most (1,000 rows each).
pub const MAX_RESULT_PAGES: usize = 1_000;

pub use etl_core::views::{DAILY_VIEW, LATEST_VIEW};

/// Athena in one workgroup and database. See the module docs.
#[derive(Debug)]
pub struct AthenaQuery {
    client: Client,
    workgroup: String,
    database: String,
    output_location: Option<String>,
    /// Polling: the delays between status checks (attempts are bounded by
    /// `timeout`, not counted).
    poll: RetryPolicy,
    timeout: Duration,
    views: OnceCell<()>,
}

impl AthenaQuery {
    /// Queries in `workgroup` with `database` as the default schema. Polls
    /// from 200 ms up to 2 s, and gives up (cancelling) after 2 minutes.
    pub fn new(client: Client, workgroup: impl Into<String>, database: impl Into<String>) -> Self {
        Self {
            client,
            workgroup: workgroup.into(),
            database: database.into(),
            output_location: None,
            poll: RetryPolicy::new(u32::MAX, Duration::from_millis(200), Duration::from_secs(2)),
            timeout: Duration::from_secs(120),
            views: OnceCell::new(),
        }
    }

    /// Results to this S3 location (only needed when the workgroup sets none).
    pub fn with_output_location(mut self, location: impl Into<String>) -> Self {
        self.output_location = Some(location.into());
        self
    }

    /// Change polling backoff and the overall timeout.
    pub fn with_polling(mut self, base: Duration, cap: Duration, timeout: Duration) -> Self {
        self.poll = RetryPolicy::new(u32::MAX, base, cap);
        self.timeout = timeout;
        self
    }

    fn target(&self, id: Option<&str>) -> String {
        match id {
            Some(id) => format!("Athena workgroup {} query {id}", self.workgroup),
            None => format!("Athena workgroup {}", self.workgroup),
        }
    }

    /// Run a statement and page its results, with what Athena says it cost.
    pub async fn query_with_stats(
        &self,
        sql: &str,
    ) -> Result<(RecordBatch, QueryStats), BackendError> {
        let (id, dml) = self.run(sql).await?;
        let batch = self.results(&id, dml).await?;
        let stats = self
            .client
            .get_query_execution()
            .query_execution_id(&id)
            .send()
            .await
            .map_err(|e| backend_error("GetQueryExecution", self.target(Some(&id)), &e))?
            .query_execution
            .and_then(|q| q.statistics);
        Ok((
            batch,
            QueryStats {
                data_scanned_bytes: stats
                    .as_ref()
                    .and_then(|s| s.data_scanned_in_bytes)
                    .unwrap_or(0)
                    .max(0) as u64,
                engine_execution_ms: stats
                    .as_ref()
                    .and_then(|s| s.engine_execution_time_in_millis)
                    .unwrap_or(0)
                    .max(0) as u64,
                query_execution_id: id,
            },
        ))
    }

    /// Start a statement and wait for it; returns the execution id and
    /// whether it was a SELECT-like statement (whose first result row is the header).
    async fn run(&self, sql: &str) -> Result<(String, bool), BackendError> {
        let mut start = self
            .client
            .start_query_execution()
            .query_string(sql)
            .work_group(&self.workgroup)
            .query_execution_context(
                QueryExecutionContext::builder()
                    .database(&self.database)
                    .build(),
            );
        if let Some(loc) = &self.output_location {
            start = start
                .result_configuration(ResultConfiguration::builder().output_location(loc).build());
        }
        let id = start
            .send()
            .await
            .map_err(|e| backend_error("StartQueryExecution", self.target(None), &e))?
            .query_execution_id
            .ok_or_else(|| {
                BackendError::permanent("StartQueryExecution", self.target(None), "no execution id")
            })?;
        let began = Instant::now();
        let mut attempt = 0u32;
        loop {
            let exec = self
                .client
                .get_query_execution()
                .query_execution_id(&id)
                .send()
                .await
                .map_err(|e| backend_error("GetQueryExecution", self.target(Some(&id)), &e))?
                .query_execution
                .ok_or_else(|| {
                    BackendError::permanent(
                        "GetQueryExecution",
                        self.target(Some(&id)),
                        "no execution in response",
                    )
                })?;
            let status = exec.status.clone();
            let state = status.as_ref().and_then(|s| s.state.clone());
            match state {
                Some(QueryExecutionState::Succeeded) => {
                    let dml = exec.statement_type.is_none_or(|t| t == StatementType::Dml);
                    return Ok((id, dml));
                }
                Some(QueryExecutionState::Failed) | Some(QueryExecutionState::Cancelled) => {
                    let status = status.unwrap_or_else(|| {
                        aws_sdk_athena::types::QueryExecutionStatus::builder().build()
                    });
                    let reason = status.state_change_reason.unwrap_or_default();
                    let retryable = status.athena_error.is_some_and(|e| e.retryable);
                    let msg = format!(
                        "query {}: {reason}",
                        state.map(|s| s.as_str().to_owned()).unwrap_or_default()
                    );
                    return Err(if retryable {
                        BackendError::retryable("GetQueryExecution", self.target(Some(&id)), msg)
                    } else {
                        BackendError::permanent("GetQueryExecution", self.target(Some(&id)), msg)
                    });
                }
                _ => {}
            }
            if began.elapsed() >= self.timeout {
                if let Err(e) = self
                    .client
                    .stop_query_execution()
                    .query_execution_id(&id)
                    .send()
                    .await
                {
                    warn!(message = "Could not cancel timed-out query.", query_execution_id = %id, error = %aws_smithy_types::error::display::DisplayErrorContext(&e));
                }
                return Err(BackendError::retryable(
                    "GetQueryExecution",
                    self.target(Some(&id)),
                    format!("still running after {:?}; cancelled", self.timeout),
                ));
            }
            let remaining = self.timeout.saturating_sub(began.elapsed());
            tokio::time::sleep(self.poll.delay(attempt, u64::from(attempt)).min(remaining)).await;
            attempt = attempt.saturating_add(1);
        }
    }

    /// Page through the results of a finished query into one batch.
    async fn results(&self, id: &str, skip_header: bool) -> Result<RecordBatch, BackendError> {
        let mut names: Option<Vec<String>> = None;
        let mut columns: Vec<Vec<Option<String>>> = Vec::new();
        let mut token: Option<String> = None;
        for page in 0..MAX_RESULT_PAGES {
            let out = self
                .client
                .get_query_results()
                .query_execution_id(id)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| backend_error("GetQueryResults", self.target(Some(id)), &e))?;
            let (rows, metadata) = out
                .result_set
                .map(|s| (s.rows, s.result_set_metadata))
                .unwrap_or_default();
            if names.is_none() {
                let cols: Vec<String> = metadata
                    .and_then(|m| m.column_info)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|c| c.name)
                    .collect();
                columns = vec![Vec::new(); cols.len()];
                names = Some(cols);
            }
            let rows = rows.unwrap_or_default();
            let skip = usize::from(page == 0 && skip_header && !rows.is_empty());
            for row in rows.into_iter().skip(skip) {
                let mut data = row.data.unwrap_or_default().into_iter();
                for col in columns.iter_mut() {
                    col.push(data.next().and_then(|d| d.var_char_value));
                }
            }
            token = out.next_token;
            if token.is_none() {
                let names = names.unwrap_or_default();
                let schema = Arc::new(Schema::new(
                    names
                        .iter()
                        .map(|n| Field::new(n, DataType::Utf8, true))
                        .collect::<Vec<_>>(),
                ));
                let arrays: Vec<ArrayRef> = columns
                    .into_iter()
                    .map(|c| Arc::new(StringArray::from(c)) as ArrayRef)
                    .collect();
                return RecordBatch::try_new(schema, arrays).map_err(|e| {
                    BackendError::permanent("GetQueryResults", self.target(Some(id)), e)
                });
            }
        }
        Err(BackendError::permanent(
            "GetQueryResults",
            self.target(Some(id)),
            format!("more than {MAX_RESULT_PAGES} result pages; add a LIMIT"),
        ))
    }

    /// Create or replace the `sentiment_latest` and `daily_sentiment` views
    /// over `table`, which must be the `sentiment` table the shared
    /// definitions read. Runs once per instance: later calls return at once.
    /// A deployed stack does not call this: template.yaml creates the views.
    pub async fn ensure_views(&self, table: &str) -> Result<(), BackendError> {
        if table != TABLE_NAME {
            return Err(BackendError::permanent(
                "create views",
                format!("{}.{table}", self.database),
                format!("the views are defined over the table `{TABLE_NAME}`, not `{table}`"),
            ));
        }
        self.views
            .get_or_try_init(|| async {
                for sql in view_statements() {
                    self.run(&sql).await?;
                }
                info!(message = "Athena views are in place.", database = %self.database, table);
                Ok(())
            })
            .await
            .map(|_| ())
    }
}

/// The DDL of both views, from the definitions shared with the local views
/// and the template (`etl_core::views`): `sentiment_latest` (one row per id,
/// its newest version) first, then `daily_sentiment`, which reads it. Both
/// name `sentiment` unqualified, so they resolve in the query's database.
pub fn view_statements() -> [String; 2] {
    views(true).map(|(name, sql)| format!("CREATE OR REPLACE VIEW {name} AS\n{sql}"))
}

#[async_trait]
impl QueryEngine for AthenaQuery {
    async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>, BackendError> {
        let (id, dml) = self.run(sql).await?;
        Ok(vec![self.results(&id, dml).await?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_are_the_shared_definitions_latest_first() {
        let [latest, daily] = view_statements();
        assert!(latest.starts_with("CREATE OR REPLACE VIEW sentiment_latest AS\nSELECT id, text, "));
        assert!(latest.contains("PARTITION BY id, dt ORDER BY updated_at DESC, processed_at DESC"));
        assert!(latest.contains("processed_at, dt FROM"));
        assert_eq!(
            daily,
            format!(
                "CREATE OR REPLACE VIEW daily_sentiment AS\n{}",
                etl_core::views::DAILY_SENTIMENT_SQL
            )
        );
    }
}
