//! The local catalog: the table's schema and its partitions, kept in
//! `<lake>/_catalog/sentiment.json` (the Glue Data Catalog's role).
//!
//! Updates are serialised by a mutex and written atomically; partitions
//! already known are not rewritten, so registering is idempotent and cheap.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::NaiveDate;
use etl_core::output::{COLUMNS, PARTITION_COLUMN, TABLE_NAME};
use etl_core::{BackendError, Catalog};
use serde::{Deserialize, Serialize};
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
}

/// A catalog stored as a file inside the lake.
#[derive(Debug)]
pub struct LocalCatalog {
    path: PathBuf,
    include_text: bool,
    state: Mutex<Option<TableEntry>>,
}

impl LocalCatalog {
    /// The catalog of `lake`; `include_text` is what new tables record.
    pub fn new(lake: &Path, include_text: bool) -> Self {
        Self {
            path: catalog_path(lake),
            include_text,
            state: Mutex::new(None),
        }
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
                };
                self.save(&e)?;
                e
            }
        };
        *state = Some(entry);
        Ok(())
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
