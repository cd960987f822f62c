//! The local catalog: the table's schema and its partitions, kept in
//! `<lake>/_catalog/sentiment.json` (the Glue Data Catalog's role), and the
//! table format the lake was created with. A Delta lake's table is its
//! `sentiment/_delta_log`; committing a message there is what makes its
//! files part of the table (see `etl_delta`), and the catalog file keeps
//! the schema and partitions for `etl status` alike.
//!
//! Updates are serialised by a mutex and written atomically; partitions
//! already known are not rewritten, so registering is idempotent and cheap.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::NaiveDate;
use etl_core::output::{TableFormat, COLUMNS, PARTITION_COLUMN, TABLE_NAME};
use etl_core::{BackendError, Catalog, TableCommit};
use etl_delta::DeltaLake;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::Mutex;

use crate::sink::write_atomic;

/// The catalog file's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableEntry {
    /// Table name.
    pub table: String,
    /// Columns and their Athena types, in order.
    pub columns: Vec<(String, String)>,
    /// The partition column.
    pub partition_key: String,
    /// Whether the `text` column is stored.
    pub include_text: bool,
    /// Registered partitions (`YYYY-MM-DD`).
    pub partitions: BTreeSet<NaiveDate>,
    /// The table format (lakes written before Delta existed are Hive).
    #[serde(default)]
    pub format: TableFormat,
}

/// A catalog stored as a file inside the lake.
#[derive(Debug)]
pub struct LocalCatalog {
    path: PathBuf,
    include_text: bool,
    format: TableFormat,
    delta: Option<Arc<DeltaLake>>,
    state: Mutex<Option<TableEntry>>,
}

impl LocalCatalog {
    /// The catalog of a Hive-layout `lake`; `include_text` is what new tables record.
    pub fn new(lake: &Path, include_text: bool) -> Self {
        Self {
            path: catalog_path(lake),
            include_text,
            format: TableFormat::Hive,
            delta: None,
            state: Mutex::new(None),
        }
    }

    /// The catalog of `lake` in `format` (a lake keeps the format it was
    /// created with: another one is refused by `ensure_table`).
    pub fn with_format(
        lake: &Path,
        include_text: bool,
        format: TableFormat,
    ) -> Result<Self, BackendError> {
        let delta = match format {
            TableFormat::Hive => None,
            TableFormat::Delta => Some(Arc::new(DeltaLake::at_dir(
                &lake.join(TABLE_NAME),
                include_text,
            )?)),
        };
        Ok(Self {
            format,
            delta,
            ..Self::new(lake, include_text)
        })
    }

    /// The Delta table, for a Delta lake.
    pub fn delta(&self) -> Option<&Arc<DeltaLake>> {
        self.delta.as_ref()
    }

    /// Read the catalog of a lake, if it has one.
    pub fn load(lake: &Path) -> Result<Option<TableEntry>, BackendError> {
        read_entry(&catalog_path(lake))
    }

    fn save(&self, entry: &TableEntry) -> Result<(), BackendError> {
        let json = serde_json::to_vec_pretty(entry).map_err(|e| {
            BackendError::permanent_from("encode", self.path.display().to_string(), e)
        })?;
        write_atomic(&self.path, &json, 0)
            .map_err(|e| BackendError::permanent_from("write", self.path.display().to_string(), e))
    }
}

fn catalog_path(lake: &Path) -> PathBuf {
    lake.join("_catalog").join(format!("{TABLE_NAME}.json"))
}

fn read_entry(path: &Path) -> Result<Option<TableEntry>, BackendError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            BackendError::permanent_from("parse catalog", path.display().to_string(), e)
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(BackendError::permanent(
            "read",
            path.display().to_string(),
            e,
        )),
    }
}

#[async_trait]
impl Catalog for LocalCatalog {
    async fn ensure_table(&self) -> Result<(), BackendError> {
        let mut state = self.state.lock().await;
        if state.is_some() {
            return Ok(());
        }
        let entry = match read_entry(&self.path)? {
            Some(e) => {
                if e.format != self.format {
                    return Err(BackendError::permanent(
                        "ensure table",
                        self.path.display().to_string(),
                        format!(
                            "the lake is a {} table, this run asked for {}; use another lake (or `etl compact`/`etl query` on this one as it is)",
                            e.format, self.format
                        ),
                    ));
                }
                if e.include_text != self.include_text {
                    return Err(BackendError::permanent(
                        "ensure table",
                        self.path.display().to_string(),
                        format!(
                            "the lake was created with include_text={}, this run has include_text={}; use another lake",
                            e.include_text, self.include_text
                        ),
                    ));
                }
                e
            }
            None => {
                let e = TableEntry {
                    table: TABLE_NAME.into(),
                    columns: COLUMNS
                        .iter()
                        .filter(|(n, _)| self.include_text || *n != "text")
                        .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
                        .collect(),
                    partition_key: PARTITION_COLUMN.into(),
                    include_text: self.include_text,
                    partitions: BTreeSet::new(),
                    format: self.format,
                };
                self.save(&e)?;
                e
            }
        };
        if let Some(delta) = &self.delta {
            delta.ensure().await?;
        }
        *state = Some(entry);
        Ok(())
    }

    async fn commit(&self, commit: &TableCommit<'_>) -> Result<(), BackendError> {
        if let Some(delta) = &self.delta {
            delta
                .commit_message(commit.content_id, commit.files)
                .await?;
        }
        self.add_partitions(&commit.partitions()).await
    }

    async fn is_committed(&self, content_id: &str) -> Result<bool, BackendError> {
        match &self.delta {
            Some(delta) => delta.is_committed(content_id).await,
            None => Ok(false),
        }
    }

    fn object_key(&self, dt: NaiveDate, content_id: &str) -> String {
        match &self.delta {
            Some(_) => etl_delta::attempt_key(dt, content_id),
            None => etl_core::output::object_key(dt, content_id),
        }
    }

    async fn add_partitions(&self, dts: &[NaiveDate]) -> Result<(), BackendError> {
        let mut state = self.state.lock().await;
        let entry = state.as_mut().ok_or_else(|| {
            BackendError::permanent(
                "add partitions",
                self.path.display().to_string(),
                "ensure_table was not called",
            )
        })?;
        let before = entry.partitions.len();
        entry.partitions.extend(dts.iter().copied());
        if entry.partitions.len() != before {
            self.save(entry)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn partitions_are_registered_once_and_survive_reload() {
        let dir = tempfile::tempdir().unwrap();
        let c = LocalCatalog::new(dir.path(), true);
        assert!(
            c.add_partitions(&[]).await.is_err(),
            "table must exist first"
        );
        c.ensure_table().await.unwrap();
        let d1 = NaiveDate::from_ymd_opt(2024, 1, 2).unwrap();
        let d2 = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
        c.add_partitions(&[d1, d2]).await.unwrap();
        c.add_partitions(&[d1]).await.unwrap();
        let e = LocalCatalog::load(dir.path()).unwrap().unwrap();
        assert_eq!(e.partitions.into_iter().collect::<Vec<_>>(), vec![d2, d1]);
        assert_eq!(e.columns.len(), COLUMNS.len());
        let other = LocalCatalog::new(dir.path(), false);
        assert!(
            other.ensure_table().await.is_err(),
            "schema mismatch is refused"
        );
    }
}
