//! Which messages the table has committed: the application transaction ids
//! in its log, read once per process (the last checkpoint's `txn` column and
//! the commits after it) and then only from the commits that are new.
//!
//! delta-rs answers "is this transaction in the table?" by replaying the log
//! segment each time (the checkpoint and up to a checkpoint interval of
//! commits: on S3, that many GETs per message). This index gives the same
//! answer from memory, at the cost of reading each new commit once. Races
//! are still settled by the commit protocol: a transaction committed by
//! someone else after the snapshot the commit is built on fails the commit
//! with `ConcurrentTransaction`, whatever this index said.
//!
//! Tables this reader does not understand (a multi-part or V2 checkpoint, a
//! commit missing from the log) make it step aside: the caller falls back to
//! delta-rs's own replay.

use std::collections::HashSet;

use arrow_array::cast::AsArray;
use arrow_array::Array;
use bytes::Bytes;
use deltalake_core::logstore::LogStore;
use object_store::path::Path;
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

/// The transaction ids of a table, complete for versions `< next`.
#[derive(Debug, Default)]
pub(crate) struct TxnIndex {
    next: u64,
    ids: HashSet<String>,
}

impl TxnIndex {
    /// Read the table's transactions through `version`, or `None` when this
    /// reader cannot (the caller then asks delta-rs).
    pub(crate) async fn load(log_store: &dyn LogStore, version: u64) -> Option<Self> {
        let store = log_store.object_store(None);
        let mut index = TxnIndex::default();
        let last = match store.get(&Path::from("_delta_log/_last_checkpoint")).await {
            Ok(r) => Some(r.bytes().await.ok()?),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(_) => return None,
        };
        if let Some(last) = last {
            let v: serde_json::Value = serde_json::from_slice(&last).ok()?;
            let cp = v.get("version")?.as_u64()?;
            if v.get("parts")
                .and_then(|p| p.as_u64())
                .is_some_and(|p| p != 1)
                || v.get("v2Checkpoint").is_some()
            {
                return None;
            }
            if cp <= version {
                let path = Path::from(format!("_delta_log/{cp:020}.checkpoint.parquet"));
                let bytes = store.get(&path).await.ok()?.bytes().await.ok()?;
                checkpoint_txns(bytes, &mut index.ids)?;
                index.next = cp + 1;
            }
        }
        index.catch_up(log_store, version).await.then_some(index)
    }

    /// Read the commits up to `version` not read yet; `false` when one is
    /// missing or unreadable (the index is then unusable).
    pub(crate) async fn catch_up(&mut self, log_store: &dyn LogStore, version: u64) -> bool {
        while self.next <= version {
            let Ok(Some(commit)) = log_store.read_commit_entry(self.next).await else {
                return false;
            };
            commit_txns(&commit, &mut self.ids);
            self.next += 1;
        }
        true
    }

    /// Whether `app_id` is among the table's transactions.
    pub(crate) fn contains(&self, app_id: &str) -> bool {
        self.ids.contains(app_id)
    }

    /// Transactions known.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// Record a transaction this process just committed.
    pub(crate) fn insert(&mut self, app_id: String) {
        self.ids.insert(app_id);
    }
}

/// The `txn.appId`s of one commit file (newline-delimited JSON actions).
fn commit_txns(commit: &[u8], ids: &mut HashSet<String>) {
    for line in commit.split(|&b| b == b'\n') {
        // Only the lines that can hold one are parsed (add lines are big).
        if !line.windows(6).any(|w| w == b"\"txn\":") {
            continue;
        }
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) {
            if let Some(id) = v
                .get("txn")
                .and_then(|t| t.get("appId"))
                .and_then(|a| a.as_str())
            {
                ids.insert(id.to_owned());
            }
        }
    }
}

/// The `txn.appId`s of a checkpoint (a Parquet file of actions).
fn checkpoint_txns(bytes: Bytes, ids: &mut HashSet<String>) -> Option<()> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).ok()?;
    let schema = builder.parquet_schema();
    let Some(root) = schema
        .root_schema()
        .get_fields()
        .iter()
        .position(|f| f.name() == "txn")
    else {
        return Some(());
    };
    let mask = ProjectionMask::roots(schema, [root]);
    for batch in builder.with_projection(mask).build().ok()? {
        let batch = batch.ok()?;
        let txn = batch.column(0).as_struct_opt()?;
        let app = txn.column_by_name("appId")?;
        let put = |ids: &mut HashSet<String>, i: usize, s: &str| {
            if txn.is_valid(i) {
                ids.insert(s.to_owned());
            }
        };
        if let Some(a) = app.as_string_opt::<i32>() {
            for i in 0..a.len() {
                if a.is_valid(i) {
                    put(ids, i, a.value(i));
                }
            }
        } else if let Some(a) = app.as_string_view_opt() {
            for i in 0..a.len() {
                if a.is_valid(i) {
                    put(ids, i, a.value(i));
                }
            }
        } else {
            return None;
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_yields_its_transaction_ids_only() {
        let commit = br#"{"commitInfo":{"timestamp":1,"operation":"WRITE"}}
{"txn":{"appId":"etl-msg-abc","version":1,"lastUpdated":5}}
{"add":{"path":"dt=2026-01-01/part-x.parquet","partitionValues":{"dt":"2026-01-01"},"size":1,"modificationTime":1,"dataChange":true,"stats":"{\"txn\":1}"}}
{"txn":{"appId":"etl-msg-def","version":1}}
"#;
        let mut ids = HashSet::new();
        commit_txns(commit, &mut ids);
        assert_eq!(
            ids,
            HashSet::from(["etl-msg-abc".to_owned(), "etl-msg-def".to_owned()])
        );
    }
}
