//! Delta Lake as the lake's table format.
//!
//! The consumer writes each message's Parquet objects in the Hive layout
//! under the table root, at a key of the attempt's own
//! (`dt=…/part-<content id>-<attempt>.parquet`, see [`attempt_key`]); this
//! crate then *commits* them: each message's files with an application
//! transaction (`txn`) whose id is derived from the message's content id,
//! one commit for the messages that finish together (a group commit). A
//! redelivered message finds its transaction in the table and is not
//! committed twice; two consumers racing on the same message meet in the
//! commit protocol (the loser sees `ConcurrentTransaction`, re-reads the
//! table and finds the winner's transaction). Concurrent commits of
//! different messages are blind appends: the log store's conditional PUT of
//! `_delta_log/<version>.json` orders them and delta-rs retries the loser on
//! the next version; there is no lock table.
//!
//! An object a committed version references is never written again: the
//! consumer asks [`DeltaLake::is_committed`] before scoring (a redelivery
//! after a lost acknowledgement does nothing), and two attempts racing past
//! that check write different keys, of which only the winner's is committed.
//! An object written but never committed (a crash between the two, or the
//! losing attempt) is not part of the table: readers never see it, and
//! `vacuum` removes it.
//!
//! With the `optimize` feature, [`maintain`] compacts partitions (one commit
//! that removes the small files and adds the big ones, so a reader sees each
//! row exactly once at every version), vacuums, and serves the table to
//! DataFusion.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use deltalake_core::kernel::transaction::{
    CommitBuilder, CommitConflictError, CommitProperties, TransactionError,
};
use deltalake_core::kernel::{Action, Add, Transaction};
use deltalake_core::protocol::{DeltaOperation, SaveMode};
use deltalake_core::{DataType, DeltaTable, DeltaTableError, TableProperty};
use etl_core::output::{output_schema, COLUMNS, PARTITION_COLUMN};
use etl_core::{BackendError, Catalog, Retry, TableCommit, WrittenFile};
use tokio::sync::{oneshot, Mutex};
use tracing::{debug, info};
use url::Url;

#[cfg(feature = "optimize")]
pub mod maintain;
pub mod stats;
mod txns;

/// How long a message's transaction is remembered by the table. Longer than
/// any queue keeps a message (SQS: 14 days at most), so every redelivery
/// finds its commit; expired ones are dropped from checkpoints, so the table
/// state does not grow with every message ever committed.
pub const TRANSACTION_RETENTION: &str = "interval 30 days";

/// Commits between checkpoints (delta-rs writes one after the commit whose
/// version + 1 is a multiple).
pub const CHECKPOINT_INTERVAL: u32 = 100;

/// The version every message's transaction carries: a message is committed
/// once, so any version present means "done".
const TXN_VERSION: i64 = 1;

/// Rounds of read-check-commit before a commit that keeps losing races is
/// reported as a (retryable) failure.
const COMMIT_ROUNDS: usize = 8;

/// Retries delta-rs itself makes within one round when another commit took
/// the version it wanted (blind appends rebase without conflict).
const COMMIT_RETRIES: usize = 30;

/// The key of one attempt's object for a message: the Hive layout's
/// `dt=…/part-<content id>.parquet` with a random attempt suffix, so that no
/// two attempts (a redelivery, two containers racing) ever write the same
/// object, and an object a committed `add` references is never rewritten
/// with other bytes, size or statistics.
pub fn attempt_key(dt: NaiveDate, content_id: &str) -> String {
    let attempt = uuid::Uuid::new_v4().simple();
    format!(
        "{}/part-{content_id}-{attempt}.parquet",
        etl_core::output::partition_path(dt)
    )
}

/// The application transaction id of a message: `etl-msg-<content id>`.
pub fn app_id(content_id: &str) -> String {
    format!("etl-msg-{content_id}")
}

/// What committing one message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    /// A new table version holds the message's files.
    Committed {
        /// The version.
        version: u64,
    },
    /// The message's transaction was already in the table (a redelivery, or
    /// another consumer won the race): nothing was added.
    AlreadyCommitted,
    /// No files: nothing to commit.
    Empty,
}

/// The lake's Delta table at a URL (`file:///…/sentiment/` or
/// `s3://bucket/prefix/sentiment/`).
pub struct DeltaLake {
    url: Url,
    options: HashMap<String, String>,
    include_text: bool,
    /// Create the table when the location holds none (writers); maintenance
    /// and readers open what is there.
    create: bool,
    table: Mutex<Option<DeltaTable>>,
    /// The table's transaction ids (see `txns`); `Unusable` when this
    /// process cannot read them itself and asks delta-rs each time.
    txns: Mutex<Txns>,
    /// Messages waiting for the commit under way (see
    /// [`DeltaLake::commit_message`]).
    queue: std::sync::Mutex<Vec<Queued>>,
}

/// Commits held back by [`DeltaLake::hold_commits`] while it lives.
#[must_use = "commits resume when the hold is dropped"]
pub struct CommitHold<'a> {
    _table: tokio::sync::MutexGuard<'a, Option<DeltaTable>>,
}

/// A message waiting to be committed, and where its caller waits for the
/// outcome.
struct Queued {
    content_id: String,
    /// `etl-msg-<content id>`.
    app_id: String,
    adds: Vec<Action>,
    done: oneshot::Sender<Result<CommitOutcome, BackendError>>,
}

/// Answer every message of a group with `e` (each names its message).
fn fail_all(group: Vec<Queued>, e: &BackendError) {
    for q in group {
        let _ = q.done.send(Err(BackendError::new(
            e.retry,
            e.operation.clone(),
            e.target.clone(),
            format!("message {}: {}", q.content_id, e.message),
        )));
    }
}

#[derive(Debug, Default)]
enum Txns {
    #[default]
    NotLoaded,
    Loaded(txns::TxnIndex),
    Unusable,
}

impl std::fmt::Debug for DeltaLake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeltaLake")
            .field("url", &self.url.as_str())
            .field("include_text", &self.include_text)
            .finish_non_exhaustive()
    }
}

impl DeltaLake {
    /// The table at `url`, opened (or created with the contract schema) on
    /// first use. `options` are object store settings (for S3: endpoint,
    /// region, credentials; empty in Lambda, where the role's are used).
    pub fn new(url: Url, options: HashMap<String, String>, include_text: bool) -> Self {
        #[cfg(feature = "s3")]
        if url.scheme() == "s3" || url.scheme() == "s3a" {
            register_s3();
        }
        Self {
            url,
            options,
            include_text,
            create: true,
            table: Mutex::new(None),
            txns: Mutex::new(Txns::NotLoaded),
            queue: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The table already at `url`, as it is: never created, its schema
    /// taken as found (for compaction, vacuum and queries).
    pub fn existing(url: Url, options: HashMap<String, String>) -> Self {
        Self {
            create: false,
            ..Self::new(url, options, true)
        }
    }

    /// The table of a directory (created if missing).
    pub fn at_dir(dir: &std::path::Path, include_text: bool) -> Result<Self, BackendError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            BackendError::io("create table directory", dir.display().to_string(), e)
        })?;
        Ok(Self::new(dir_url(dir)?, HashMap::new(), include_text))
    }

    /// The table already in a directory, as it is (see [`Self::existing`]).
    pub fn existing_dir(dir: &std::path::Path) -> Result<Self, BackendError> {
        Ok(Self::existing(dir_url(dir)?, HashMap::new()))
    }

    /// The table's URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Object store settings the table was opened with.
    pub fn options(&self) -> &HashMap<String, String> {
        &self.options
    }

    fn target(&self) -> String {
        self.url.to_string()
    }

    /// Open the table, creating it when the location holds none.
    pub async fn open(&self) -> Result<DeltaTable, BackendError> {
        let table = self.load_or_create().await?;
        self.check_schema(&table)?;
        Ok(table)
    }

    async fn load_or_create(&self) -> Result<DeltaTable, BackendError> {
        let table = if self.create && !self.exists_locally().unwrap_or(true) {
            // A new local table: nothing to load (delta-rs would log the
            // empty log segment as an error first).
            deltalake_core::DeltaTableBuilder::from_url(self.url.clone())
                .and_then(|b| b.with_storage_options(self.options.clone()).build())
                .map_err(|e| delta_error("open table", &self.target(), e))?
        } else {
            self.try_load().await?
        };
        if table.version().is_some() {
            return Ok(table);
        }
        if !self.create {
            return Err(BackendError::permanent(
                "open table",
                self.target(),
                "no Delta table here yet (no _delta_log): nothing has been committed",
            ));
        }
        let mut create = table
            .create()
            .with_table_name(etl_core::output::TABLE_NAME)
            .with_partition_columns([PARTITION_COLUMN])
            .with_configuration_property(
                TableProperty::SetTransactionRetentionDuration,
                Some(TRANSACTION_RETENTION),
            )
            .with_configuration_property(
                TableProperty::CheckpointInterval,
                Some(CHECKPOINT_INTERVAL.to_string()),
            )
            .with_save_mode(SaveMode::Ignore)
            // Two processes creating at once: the loser must not commit a
            // second table definition on top (delta-rs would retry it as a
            // new version); it fails here and opens the winner's table.
            .with_commit_properties(CommitProperties::default().with_max_retries(0));
        let schema = output_schema(self.include_text);
        for (name, hive_type) in COLUMNS {
            let Ok(field) = schema.field_with_name(name) else {
                continue;
            };
            let data_type = match *hive_type {
                "timestamp" => DataType::TIMESTAMP,
                "double" => DataType::DOUBLE,
                _ => DataType::STRING,
            };
            create = create.with_column(*name, data_type, field.is_nullable(), None);
        }
        create = create.with_column(PARTITION_COLUMN, DataType::STRING, true, None);
        match create.await {
            Ok(t) => {
                info!(message = "created the Delta table", table = %self.url);
                Ok(t)
            }
            Err(e) if lost_race(&e) => {
                debug!(message = "another writer created the Delta table first", table = %self.url);
                self.try_load().await
            }
            Err(e) => Err(delta_error("create table", &self.target(), e)),
        }
    }

    async fn try_load(&self) -> Result<DeltaTable, BackendError> {
        DeltaTable::try_from_url_with_storage_options(self.url.clone(), self.options.clone())
            .await
            .map_err(|e| delta_error("open table", &self.target(), e))
    }

    fn check_schema(&self, table: &DeltaTable) -> Result<(), BackendError> {
        if !self.create {
            return Ok(());
        }
        let snapshot = table
            .snapshot()
            .map_err(|e| delta_error("open table", &self.target(), e))?;
        let has_text = snapshot.schema().field("text").is_some();
        if has_text != self.include_text {
            return Err(BackendError::permanent(
                "open table",
                self.target(),
                format!(
                    "the Delta table was created with include_text={has_text}, this run has include_text={}; use another lake",
                    self.include_text
                ),
            ));
        }
        Ok(())
    }

    /// Whether the location holds a Delta table (a commit log) yet.
    pub async fn exists(&self) -> Result<bool, BackendError> {
        // delta-rs refuses to open a directory that does not exist.
        if self.exists_locally() == Some(false) {
            return Ok(false);
        }
        Ok(self.try_load().await?.version().is_some())
    }

    /// For a local table, whether its log exists; `None` for remote ones.
    fn exists_locally(&self) -> Option<bool> {
        let dir = self.url.to_file_path().ok()?;
        Some(dir.join("_delta_log").is_dir())
    }

    /// Make sure the table exists (creating it if needed) and is loaded.
    pub async fn ensure(&self) -> Result<(), BackendError> {
        let mut guard = self.table.lock().await;
        if guard.is_none() {
            *guard = Some(self.open().await?);
        }
        Ok(())
    }

    /// Commit one message's files, once per content id. Messages committed
    /// concurrently through this handle (a consumer's batch, a local run's
    /// workers) share one table version: a caller that finds another's
    /// commit under way queues its message, and the next caller to get the
    /// table commits every queued message in one commit that carries each
    /// one's transaction (a group commit). Each caller returns once its own
    /// message is committed (or known to be), so a message is acknowledged
    /// only after the version holding it exists.
    pub async fn commit_message(
        &self,
        content_id: &str,
        files: &[WrittenFile],
    ) -> Result<CommitOutcome, BackendError> {
        if files.is_empty() {
            return Ok(CommitOutcome::Empty);
        }
        let now_ms = chrono::Utc::now().timestamp_millis();
        let adds: Vec<Action> = files
            .iter()
            .map(|f| add_action(f, now_ms).map(Action::Add))
            .collect::<Result<_, _>>()?;
        let (done, mut outcome) = oneshot::channel();
        self.queued().push(Queued {
            content_id: content_id.to_owned(),
            app_id: app_id(content_id),
            adds,
            done,
        });
        let mut guard = self.table.lock().await;
        match outcome.try_recv() {
            // Committed (or found committed) with the group of the caller
            // that had the table before us.
            Ok(result) => return result,
            // That caller was cancelled mid-commit: whether its commit
            // landed is unknown; the redelivery finds out.
            Err(oneshot::error::TryRecvError::Closed) => {
                return Err(BackendError::retryable(
                    "commit",
                    self.target(),
                    format!(
                        "message {content_id}: the group commit it was part of was interrupted"
                    ),
                ))
            }
            // Still queued: commit the queue (ours included) now.
            Err(oneshot::error::TryRecvError::Empty) => {}
        }
        let group = std::mem::take(&mut *self.queued());
        if guard.is_none() {
            match self.open().await {
                Ok(table) => *guard = Some(table),
                Err(e) => {
                    fail_all(group, &e);
                    return Err(e);
                }
            }
        }
        let table = guard.as_mut().expect("loaded just above");
        self.commit_group(table, group, now_ms).await;
        outcome.try_recv().unwrap_or_else(|_| {
            Err(BackendError::permanent(
                "commit",
                self.target(),
                format!("message {content_id}: its group commit gave no answer"),
            ))
        })
    }

    /// The messages waiting for a commit.
    fn queued(&self) -> std::sync::MutexGuard<'_, Vec<Queued>> {
        // A panic while pushing or taking leaves the vector whole.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many messages wait for the commit under way.
    pub fn queued_messages(&self) -> usize {
        self.queued().len()
    }

    /// Hold this handle's commits until the hold is dropped: messages
    /// committed meanwhile queue up, and the first caller after it commits
    /// them together (what a commit under way does; tests use it to make
    /// a group deterministic).
    pub async fn hold_commits(&self) -> CommitHold<'_> {
        CommitHold {
            _table: self.table.lock().await,
        }
    }

    /// Commit `group` as one version (those not committed yet), answering
    /// each message's caller.
    async fn commit_group(&self, table: &mut DeltaTable, mut group: Vec<Queued>, now_ms: i64) {
        let target = self.target();
        for round in 0..COMMIT_ROUNDS {
            let snapshot = match table.update_state().await.and_then(|()| table.snapshot()) {
                Ok(s) => s,
                Err(e) => return fail_all(group, &delta_error("refresh table", &target, e)),
            };
            // Checked on the very snapshot the commit is built on: anything
            // committed after it is caught by the conflict check instead.
            let version = table.version().unwrap_or_default();
            let log_store = table.log_store();
            let mut open = Vec::with_capacity(group.len());
            for q in group {
                match self
                    .committed(log_store.as_ref(), snapshot, version, &q.app_id)
                    .await
                {
                    Ok(true) => {
                        debug!(message = "message already committed", content_id = %q.content_id, table = %target);
                        let _ = q.done.send(Ok(CommitOutcome::AlreadyCommitted));
                    }
                    Ok(false) => open.push(q),
                    Err(e) => {
                        let _ = q.done.send(Err(e));
                    }
                }
            }
            group = open;
            if group.is_empty() {
                return;
            }
            let txns = group
                .iter()
                .map(|q| Transaction::new_with_last_update(&q.app_id, TXN_VERSION, Some(now_ms)))
                .collect();
            let props = CommitProperties::default()
                .with_application_transactions(txns)
                .with_max_retries(COMMIT_RETRIES)
                // Listing the whole log on every commit is the vacuum's job.
                .with_cleanup_expired_logs(Some(false));
            let operation = DeltaOperation::Write {
                mode: SaveMode::Append,
                partition_by: Some(vec![PARTITION_COLUMN.to_owned()]),
                predicate: None,
            };
            let actions: Vec<Action> = group.iter().flat_map(|q| q.adds.iter().cloned()).collect();
            let files = actions.len();
            let result = CommitBuilder::from(props)
                .with_actions(actions)
                .build(Some(snapshot), table.log_store(), operation)
                .await;
            match result {
                Ok(done) => {
                    let version = done.version();
                    table.state = Some(done.snapshot());
                    if let Txns::Loaded(index) = &mut *self.txns.lock().await {
                        for q in &group {
                            index.insert(q.app_id.clone());
                        }
                    }
                    debug!(message = "committed messages", messages = group.len(), version, files, table = %target);
                    for q in group {
                        let _ = q.done.send(Ok(CommitOutcome::Committed { version }));
                    }
                    return;
                }
                Err(e) if lost_race(&e) => {
                    // Another commit took the version, or committed one of
                    // these messages: read the table again and decide afresh.
                    debug!(message = "commit lost a race; reading the table again", messages = group.len(), round, error = %e);
                }
                // The commit itself may have landed (a post-commit hook or
                // the answer failed): the redeliveries find the transactions.
                Err(e) => return fail_all(group, &delta_error("commit", &target, e)),
            }
        }
        let e = BackendError::retryable(
            "commit",
            target,
            format!("still losing commit races after {COMMIT_ROUNDS} rounds"),
        );
        fail_all(group, &e);
    }

    /// Whether the table at `version` (`snapshot`) holds `app_id`.
    async fn committed(
        &self,
        log_store: &dyn deltalake_core::logstore::LogStore,
        snapshot: &deltalake_core::table::state::DeltaTableState,
        version: u64,
        app_id: &str,
    ) -> Result<bool, BackendError> {
        if let Some(known) = self.known(log_store, version, app_id).await {
            return Ok(known);
        }
        Ok(snapshot
            .transaction_version(log_store, app_id)
            .await
            .map_err(|e| delta_error("read transactions", &self.target(), e))?
            .is_some())
    }

    /// Whether the table at `version` holds `app_id`, from the index (read
    /// on first use, then caught up with new commits); `None` when the
    /// index cannot say.
    async fn known(
        &self,
        log_store: &dyn deltalake_core::logstore::LogStore,
        version: u64,
        app_id: &str,
    ) -> Option<bool> {
        let mut txns = self.txns.lock().await;
        if matches!(*txns, Txns::NotLoaded) {
            *txns = match txns::TxnIndex::load(log_store, version).await {
                Some(index) => Txns::Loaded(index),
                None => {
                    tracing::warn!(message = "reading the table's transactions through delta-rs for every commit (checkpoint format not read here)", table = %self.url);
                    Txns::Unusable
                }
            };
        }
        let Txns::Loaded(index) = &mut *txns else {
            return None;
        };
        if !index.catch_up(log_store, version).await {
            *txns = Txns::Unusable;
            return None;
        }
        Some(index.contains(app_id))
    }

    /// Whether the message `content_id` is committed in the table's latest
    /// version (false when there is no table yet). Asked before a message is
    /// scored, so a redelivery of a committed message costs one log read.
    pub async fn is_committed(&self, content_id: &str) -> Result<bool, BackendError> {
        let mut guard = self.table.lock().await;
        if guard.is_none() {
            if !self.exists().await? {
                return Ok(false);
            }
            *guard = Some(self.open().await?);
        }
        let table = guard.as_mut().expect("loaded just above");
        table
            .update_state()
            .await
            .map_err(|e| delta_error("refresh table", &self.target(), e))?;
        let snapshot = table
            .snapshot()
            .map_err(|e| delta_error("refresh table", &self.target(), e))?;
        let version = table.version().unwrap_or_default();
        let log_store = table.log_store();
        self.committed(log_store.as_ref(), snapshot, version, &app_id(content_id))
            .await
    }

    /// How many transactions this process's index holds, or `None` when it
    /// reads them through delta-rs (a checkpoint format it does not read).
    pub async fn indexed_transactions(&self) -> Option<usize> {
        match &*self.txns.lock().await {
            Txns::Loaded(index) => Some(index.len()),
            _ => None,
        }
    }

    /// The loaded table (opened on first use), refreshed to its latest version.
    pub async fn latest(&self) -> Result<DeltaTable, BackendError> {
        let mut guard = self.table.lock().await;
        if guard.is_none() {
            *guard = Some(self.open().await?);
        }
        let table = guard.as_mut().expect("loaded just above");
        table
            .update_state()
            .await
            .map_err(|e| delta_error("refresh table", &self.target(), e))?;
        Ok(table.clone())
    }
}

/// The `file://` URL of a directory, absolute and ending in `/` (a table root).
fn dir_url(dir: &std::path::Path) -> Result<Url, BackendError> {
    let abs = std::path::absolute(dir)
        .map_err(|e| BackendError::io("open table directory", dir.display().to_string(), e))?;
    Url::from_directory_path(&abs).map_err(|()| {
        BackendError::permanent(
            "open table directory",
            abs.display().to_string(),
            "not an absolute path",
        )
    })
}

/// Whether a Delta error means another writer got there first (retry after
/// reading the table again), not that something is broken.
fn lost_race(e: &DeltaTableError) -> bool {
    match e {
        DeltaTableError::VersionAlreadyExists(_) => true,
        DeltaTableError::Transaction { source } => matches!(
            source,
            TransactionError::VersionAlreadyExists(_)
                | TransactionError::MaxCommitAttempts(_)
                | TransactionError::CommitConflict(
                    CommitConflictError::ConcurrentTransaction
                        | CommitConflictError::ConcurrentAppend
                )
        ),
        _ => false,
    }
}

/// A Delta error as the pipeline's error: storage trouble is retryable (the
/// message is redelivered), a table that is not what the contract says is
/// permanent.
pub fn delta_error(operation: &str, target: &str, e: DeltaTableError) -> BackendError {
    let retry = match &e {
        DeltaTableError::InvalidTableLocation(_)
        | DeltaTableError::NotATable(_)
        | DeltaTableError::Transaction {
            source:
                TransactionError::DeltaTableAppendOnly
                | TransactionError::UnsupportedTableFeatures(_)
                | TransactionError::TableFeaturesRequired(_)
                | TransactionError::CommitConflict(
                    CommitConflictError::MetadataChanged
                    | CommitConflictError::ProtocolChanged(_)
                    | CommitConflictError::UnsupportedReaderVersion(_)
                    | CommitConflictError::UnsupportedWriterVersion(_),
                ),
        } => Retry::Permanent,
        _ => Retry::Retryable,
    };
    BackendError::caused_by(retry, operation, target, e)
}

/// The Add action of one written object: its path relative to the table
/// root (as the sink wrote it), its partition value, size and statistics.
pub fn add_action(file: &WrittenFile, modification_time_ms: i64) -> Result<Add, BackendError> {
    let stats = stats::stats_json(&file.body)
        .map_err(|e| BackendError::permanent("read statistics", &file.key, e))?;
    Ok(Add {
        path: file.key.clone(),
        partition_values: HashMap::from([(
            PARTITION_COLUMN.to_owned(),
            Some(partition_value(file.dt)),
        )]),
        size: i64::try_from(file.body.len()).unwrap_or(i64::MAX),
        modification_time: modification_time_ms,
        data_change: true,
        stats: Some(stats),
        ..Default::default()
    })
}

/// A date as the `dt` partition value (`YYYY-MM-DD`, as in the Hive layout).
pub fn partition_value(dt: NaiveDate) -> String {
    dt.format("%Y-%m-%d").to_string()
}

/// The catalog of a Delta lake: committing is what makes files part of the
/// table; there are no partitions to register.
#[derive(Debug, Clone)]
pub struct DeltaCatalog {
    lake: Arc<DeltaLake>,
}

impl DeltaCatalog {
    /// The catalog of `lake`.
    pub fn new(lake: Arc<DeltaLake>) -> Self {
        Self { lake }
    }
}

#[async_trait]
impl Catalog for DeltaCatalog {
    async fn ensure_table(&self) -> Result<(), BackendError> {
        self.lake.ensure().await
    }

    async fn add_partitions(&self, _dts: &[NaiveDate]) -> Result<(), BackendError> {
        // A Delta table's partitions are its files' partition values.
        Ok(())
    }

    async fn commit(&self, commit: &TableCommit<'_>) -> Result<(), BackendError> {
        self.lake
            .commit_message(commit.content_id, commit.files)
            .await
            .map(|_| ())
    }

    async fn is_committed(&self, content_id: &str) -> Result<bool, BackendError> {
        self.lake.is_committed(content_id).await
    }

    fn object_key(&self, dt: NaiveDate, content_id: &str) -> String {
        attempt_key(dt, content_id)
    }
}

/// Register the `s3://` scheme with delta-rs (once per process).
#[cfg(feature = "s3")]
pub fn register_s3() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| deltalake_aws::register_handlers(None));
}
