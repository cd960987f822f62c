//! `QueryEngine` conformance: a SELECT returns exactly the rows the table
//! holds, whatever the engine's column types; a statement the engine
//! refuses is a permanent error.
//!
//! The caller prepares the data: the local tests write Parquet objects
//! into a lake and open DataFusion over it; on moto, Athena runs nothing,
//! so the AWS tests register the rows as moto's canned results for the
//! next query (`/moto-api/static/athena/query-results`), and the contract
//! checks what the backend does with them: the header row skipped, pages
//! joined, cells and nulls converted. Results are compared as text (see
//! [`text_rows`]): DataFusion answers with typed columns (`Utf8View`,
//! `Float64`, dictionaries), Athena with `Utf8`, and only the values are
//! the contract.

use arrow_array::{Array, RecordBatch};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use etl_core::{QueryEngine, Retry};

/// Rows as text, `None` for SQL NULL.
pub type Rows = Vec<Vec<Option<String>>>;

/// A query and exactly what it must return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectCase {
    /// The statement (with an ORDER BY when there is more than one row: the
    /// rows are compared in order).
    pub sql: String,
    /// The result's column names, in order.
    pub columns: Vec<String>,
    /// The rows, in order.
    pub rows: Rows,
}

/// Column names and rows of `batches` as text: each cell as Arrow displays
/// it, `None` for null. Panics when batches disagree on their columns.
pub fn text_rows(batches: &[RecordBatch]) -> (Vec<String>, Rows) {
    let mut columns: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    let options = FormatOptions::default();
    for batch in batches {
        let names: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let first = columns.get_or_insert_with(|| names.clone());
        assert_eq!(*first, names, "batches of one result disagree on columns");
        let formatters: Vec<ArrayFormatter<'_>> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("a displayable column"))
            .collect();
        for row in 0..batch.num_rows() {
            rows.push(
                batch
                    .columns()
                    .iter()
                    .zip(&formatters)
                    .map(|(col, f)| (!col.is_null(row)).then(|| f.value(row).to_string()))
                    .collect(),
            );
        }
    }
    (columns.unwrap_or_default(), rows)
}

/// The SELECT returns exactly `case.columns` and `case.rows`, in order.
/// The fixtures' hostile texts make good cells: astral, RTL, controls.
pub async fn select_returns_exactly(engine: &dyn QueryEngine, case: &SelectCase) {
    let batches = engine.query(&case.sql).await.expect("the SELECT");
    let (columns, rows) = text_rows(&batches);
    assert_eq!(columns, case.columns, "columns of {}", case.sql);
    assert_eq!(rows.len(), case.rows.len(), "row count of {}", case.sql);
    for (i, (got, want)) in rows.iter().zip(&case.rows).enumerate() {
        assert_eq!(got, want, "row {i} of {}", case.sql);
    }
}

/// A query matching nothing returns no rows (and no error). Zero batches
/// or empty batches are both fine.
pub async fn empty_result_has_no_rows(engine: &dyn QueryEngine, sql: &str) {
    let batches = engine.query(sql).await.expect("a query matching nothing");
    let n: usize = batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(n, 0, "{sql} should match nothing");
}

/// A statement the engine refuses fails with a permanent error naming an
/// operation and a target: retrying the same SQL cannot help.
///
/// Locally, bad SQL or a missing table. On moto, Athena cannot fail a
/// statement (it runs none and reports every query SUCCEEDED), so the AWS
/// tests pass an engine in a workgroup that does not exist, which
/// StartQueryExecution refuses: the same error path, reached one call earlier.
pub async fn refused_statement_is_permanent(engine: &dyn QueryEngine, sql: &str) {
    let err = match engine.query(sql).await {
        Ok(batches) => panic!("{sql:?} should fail, returned {} batches", batches.len()),
        Err(e) => e,
    };
    assert_eq!(err.retry, Retry::Permanent, "{err}");
    assert!(!err.operation.is_empty(), "{err:?}");
    assert!(!err.target.is_empty(), "{err:?}");
}

/// [`select_returns_exactly`] then [`empty_result_has_no_rows`] on one
/// engine (on moto, register the canned results in that order), then
/// [`refused_statement_is_permanent`] on `refusing`, which may be the same
/// engine.
pub async fn all(
    engine: &dyn QueryEngine,
    case: &SelectCase,
    empty_sql: &str,
    refusing: &dyn QueryEngine,
    refused_sql: &str,
) {
    select_returns_exactly(engine, case).await;
    empty_result_has_no_rows(engine, empty_sql).await;
    refused_statement_is_permanent(refusing, refused_sql).await;
}
