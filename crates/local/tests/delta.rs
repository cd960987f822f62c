//! The Delta lake under production's failures: redeliveries, two consumers
//! racing on the same messages, a crash between the object write and the
//! commit (before the commit, and after it with the answer lost), and a
//! compaction while consumers commit. Each ends with the exact accounting
//! (the multiset of record versions, text included) of what the table
//! holds, read by a log replay that shares no code with the writer, at
//! *every* version of the table, and by the Python `deltalake` package.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use etl_core::output::{TableFormat, TABLE_NAME};
use etl_core::{
    BackendError, Catalog, ConsumeOptions, Consumer, OutgoingMessage, SourceRecord, TableCommit,
    VaderAnalyzer, SYSTEM_CLOCK,
};
use etl_delta::maintain;
use etl_delta::DeltaLake;
use etl_local::{FsSink, LocalCatalog};
use etl_testkit::accounting::{assert_ok, exactly_once, FromLake, Version};
use etl_testkit::delta_log::{live_files_per_version, python_reader_agrees, read_delta};
use etl_testkit::fixtures::hostile_records_with_edits;
use etl_testkit::records::pack;

/// Records with two versions of some ids (an update after creation), ids
/// with `/`, `..`, spaces and 200 characters, every kind of Unicode.
fn records(n: usize) -> Vec<SourceRecord> {
    hostile_records_with_edits(
        n,
        5,
        " (edited: now it is awful)",
        chrono::Duration::seconds(30),
    )
}

fn table_dir(lake: &Path) -> PathBuf {
    lake.join(TABLE_NAME)
}

/// One consumer "container": its own sink and catalog (its own view of the
/// Delta table), as two Lambda instances have.
struct Container {
    sink: FsSink,
    catalog: Arc<dyn Catalog>,
}

impl Container {
    async fn new(lake: &Path) -> Self {
        let catalog = LocalCatalog::with_format(lake, true, TableFormat::Delta).unwrap();
        catalog.ensure_table().await.unwrap();
        Self::with_catalog(lake, Arc::new(catalog))
    }

    fn with_catalog(lake: &Path, catalog: Arc<dyn Catalog>) -> Self {
        Self {
            sink: FsSink::new(lake),
            catalog,
        }
    }

    async fn consume(&self, m: &OutgoingMessage) -> Result<(), String> {
        let analyzer = VaderAnalyzer::new();
        let consumer = Consumer {
            analyzer: &analyzer,
            sink: &self.sink,
            catalog: self.catalog.as_ref(),
            options: ConsumeOptions::default(),
            clock: &SYSTEM_CLOCK,
        };
        consumer
            .consume(&m.content_id, &m.body)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// The table's versions of records, as the independent log replay reads them.
fn table_versions(lake: &Path, version: Option<usize>) -> Vec<Version> {
    Version::of_local(&read_delta(&table_dir(lake), version))
}

/// Every version of the table holds no record version twice.
fn assert_no_version_has_duplicates(lake: &Path) {
    let versions = live_files_per_version(&table_dir(lake));
    for v in 0..versions.len() {
        let rows = table_versions(lake, Some(v));
        let distinct: BTreeSet<_> = rows.iter().collect();
        assert_eq!(
            distinct.len(),
            rows.len(),
            "table version {v} holds a row twice"
        );
    }
}

/// Commits in the log (version 0 is the table's creation).
fn commits(lake: &Path) -> usize {
    live_files_per_version(&table_dir(lake)).len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redelivered_and_raced_messages_are_committed_once() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let recs = records(240);
    let msgs = pack(recs.clone(), 6 * 1024);
    assert!(msgs.len() >= 10, "{} messages", msgs.len());

    // Two containers receive every message at the same time (a visibility
    // timeout that ran out under a slow consumer), then one of them gets
    // the first few again (a lost delete).
    let (a, b) = (Container::new(&lake).await, Container::new(&lake).await);
    let deliveries = AtomicUsize::new(0);
    async fn deliver_all(c: &Container, msgs: &[OutgoingMessage], n: &AtomicUsize) {
        for m in msgs {
            c.consume(m).await.unwrap();
            n.fetch_add(1, Ordering::Relaxed);
        }
    }
    tokio::join!(
        deliver_all(&a, &msgs, &deliveries),
        deliver_all(&b, &msgs, &deliveries)
    );
    for m in &msgs[..3] {
        a.consume(m).await.unwrap();
        deliveries.fetch_add(1, Ordering::Relaxed);
    }
    assert_eq!(deliveries.load(Ordering::Relaxed), 2 * msgs.len() + 3);

    // One commit per message, whatever the deliveries.
    assert_eq!(commits(&lake), msgs.len() + 1);
    assert_ok(&exactly_once(&recs, &table_versions(&lake, None)));
    assert_no_version_has_duplicates(&lake);
    python_reader_agrees(&table_dir(&lake), &recs);
}

/// How a [`Crashing`] catalog fails one message's commit.
#[derive(Clone, Copy, PartialEq)]
enum Crash {
    /// The consumer dies after writing the objects, before committing.
    BeforeCommit,
    /// The commit lands but its answer is lost (the consumer times out).
    AnswerLost,
}

/// A catalog that crashes once for each of some content ids.
struct Crashing {
    inner: LocalCatalog,
    crashes: std::sync::Mutex<Vec<(String, Crash)>>,
    fired: AtomicUsize,
}

#[async_trait]
impl Catalog for Crashing {
    async fn ensure_table(&self) -> Result<(), BackendError> {
        self.inner.ensure_table().await
    }

    async fn add_partitions(&self, dts: &[NaiveDate]) -> Result<(), BackendError> {
        self.inner.add_partitions(dts).await
    }

    async fn is_committed(&self, content_id: &str) -> Result<bool, BackendError> {
        self.inner.is_committed(content_id).await
    }

    fn object_key(&self, dt: NaiveDate, content_id: &str) -> String {
        self.inner.object_key(dt, content_id)
    }

    async fn commit(&self, commit: &TableCommit<'_>) -> Result<(), BackendError> {
        let crash = {
            let mut c = self.crashes.lock().unwrap();
            let i = c.iter().position(|(id, _)| id == commit.content_id);
            i.map(|i| c.remove(i).1)
        };
        match crash {
            None => self.inner.commit(commit).await,
            Some(how) => {
                self.fired.fetch_add(1, Ordering::Relaxed);
                if how == Crash::AnswerLost {
                    self.inner.commit(commit).await?;
                }
                Err(BackendError::retryable(
                    "commit",
                    "test",
                    "the consumer died",
                ))
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_write_and_commit_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let recs = records(120);
    let msgs = pack(recs.clone(), 6 * 1024);
    let inner = LocalCatalog::with_format(&lake, true, TableFormat::Delta).unwrap();
    let crashing = Arc::new(Crashing {
        inner,
        crashes: std::sync::Mutex::new(vec![
            (msgs[0].content_id.clone(), Crash::BeforeCommit),
            (msgs[1].content_id.clone(), Crash::AnswerLost),
        ]),
        fired: AtomicUsize::new(0),
    });
    crashing.ensure_table().await.unwrap();
    let c = Container::with_catalog(&lake, crashing.clone());
    let mut failed = Vec::new();
    for m in &msgs {
        if c.consume(m).await.is_err() {
            failed.push(m.content_id.clone());
        }
    }
    assert_eq!(
        crashing.fired.load(Ordering::Relaxed),
        2,
        "both crashes fired"
    );
    assert_eq!(
        failed,
        vec![msgs[0].content_id.clone(), msgs[1].content_id.clone()]
    );

    // Message 0's object is on disk but not in the table: readers do not see it.
    let orphans = objects_of(&lake, &msgs[0]);
    assert_eq!(orphans.len(), 1, "{orphans:?}");
    let orphan_key = orphans[0].clone();
    let live = live_files_per_version(&table_dir(&lake));
    assert!(!live.last().unwrap().contains_key(&orphan_key));
    let first = etl_core::decode_message(&msgs[0].body).unwrap().records;
    let without_first: Vec<SourceRecord> = recs
        .iter()
        .filter(|r| !first.contains(r))
        .cloned()
        .collect();
    assert_ok(&exactly_once(&without_first, &table_versions(&lake, None)));

    // The queue redelivers both; message 1 is found committed before
    // anything is written, message 0 writes an object of its own (the
    // orphan stays untouched) and commits it.
    let committed_1 = objects_of(&lake, &msgs[1]);
    let bytes_1 = std::fs::read(table_dir(&lake).join(&committed_1[0])).unwrap();
    for m in &msgs[..2] {
        c.consume(m).await.unwrap();
    }
    assert_eq!(
        commits(&lake),
        msgs.len() + 1,
        "message 1 is not committed twice"
    );
    assert_eq!(
        objects_of(&lake, &msgs[1]),
        committed_1,
        "no second object for message 1"
    );
    assert_eq!(
        std::fs::read(table_dir(&lake).join(&committed_1[0])).unwrap(),
        bytes_1,
        "the committed object is never rewritten"
    );
    assert_eq!(
        objects_of(&lake, &msgs[0]).len(),
        2,
        "the orphan and the committed attempt"
    );
    let live = etl_testkit::delta_log::assert_live_sizes_match(&table_dir(&lake));
    assert!(!live.contains_key(&orphan_key));
    assert_ok(&exactly_once(&recs, &table_versions(&lake, None)));
    assert_no_version_has_duplicates(&lake);

    // An object that is never committed (its message dead-lettered after
    // the write) is removed by vacuum; committed files stay.
    let stray = format!(
        "{}/part-{}.parquet",
        etl_core::output::partition_path(msgs_dt(&msgs[2])),
        "f".repeat(64)
    );
    std::fs::copy(
        table_dir(&lake).join(&orphan_key),
        table_dir(&lake).join(&stray),
    )
    .unwrap();
    let table = DeltaLake::existing(url_of(&table_dir(&lake)), Default::default());
    let dry = maintain::vacuum(&table, chrono::Duration::zero(), true)
        .await
        .unwrap();
    assert_eq!(dry.files_deleted.len(), 2, "{:?}", dry.files_deleted);
    assert!(
        table_dir(&lake).join(&stray).exists(),
        "a dry run deletes nothing"
    );
    let done = maintain::vacuum(&table, chrono::Duration::zero(), false)
        .await
        .unwrap();
    assert_eq!(done.files_deleted.len(), 2);
    assert!(done
        .files_deleted
        .iter()
        .any(|f| f.ends_with(&format!("part-{}.parquet", "f".repeat(64)))));
    assert!(done.files_deleted.iter().any(|f| f.ends_with(&orphan_key)));
    assert!(!table_dir(&lake).join(&stray).exists());
    assert!(!table_dir(&lake).join(&orphan_key).exists());
    assert_ok(&exactly_once(&recs, &table_versions(&lake, None)));
}

/// The objects on disk written for message `m` (any attempt), relative to
/// the table, sorted.
fn objects_of(lake: &Path, m: &OutgoingMessage) -> Vec<String> {
    let part = etl_core::output::partition_path(msgs_dt(m));
    let prefix = format!("part-{}-", m.content_id);
    let mut out: Vec<String> = std::fs::read_dir(table_dir(lake).join(&part))
        .map(|d| {
            d.filter_map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                (name.starts_with(&prefix) && name.ends_with(".parquet"))
                    .then(|| format!("{part}/{name}"))
            })
            .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// A catalog whose first `is_committed` answer is held until another
/// container has asked too: both attempts pass the check before either
/// commits (the race the check alone cannot close).
struct Racing {
    inner: LocalCatalog,
    gate: Arc<tokio::sync::Barrier>,
    asked: AtomicUsize,
}

#[async_trait]
impl Catalog for Racing {
    async fn ensure_table(&self) -> Result<(), BackendError> {
        self.inner.ensure_table().await
    }

    async fn add_partitions(&self, dts: &[NaiveDate]) -> Result<(), BackendError> {
        self.inner.add_partitions(dts).await
    }

    async fn is_committed(&self, content_id: &str) -> Result<bool, BackendError> {
        let answer = self.inner.is_committed(content_id).await?;
        if self.asked.fetch_add(1, Ordering::SeqCst) == 0 {
            self.gate.wait().await;
        }
        Ok(answer)
    }

    fn object_key(&self, dt: NaiveDate, content_id: &str) -> String {
        self.inner.object_key(dt, content_id)
    }

    async fn commit(&self, commit: &TableCommit<'_>) -> Result<(), BackendError> {
        self.inner.commit(commit).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_attempts_write_their_own_objects_and_a_committed_one_is_never_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let msgs = pack(records(40), 64 * 1024);
    let m = &msgs[0];
    let gate = Arc::new(tokio::sync::Barrier::new(2));
    let racer = || async {
        let inner = LocalCatalog::with_format(&lake, true, TableFormat::Delta).unwrap();
        inner.ensure_table().await.unwrap();
        let catalog = Arc::new(Racing {
            inner,
            gate: gate.clone(),
            asked: AtomicUsize::new(0),
        });
        (Container::with_catalog(&lake, catalog.clone()), catalog)
    };
    let ((a, ca), (b, cb)) = (racer().await, racer().await);
    let (ra, rb) = tokio::join!(a.consume(m), b.consume(m));
    ra.unwrap();
    rb.unwrap();
    assert_eq!(
        (
            ca.asked.load(Ordering::SeqCst),
            cb.asked.load(Ordering::SeqCst)
        ),
        (1, 1),
        "both attempts passed the check before either committed"
    );
    let written = objects_of(&lake, m);
    assert_eq!(
        written.len(),
        2,
        "each attempt wrote a key of its own: {written:?}"
    );
    assert_eq!(commits(&lake), 2, "the message is committed once");
    let live = etl_testkit::delta_log::assert_live_sizes_match(&table_dir(&lake));
    let committed: Vec<&String> = written.iter().filter(|k| live.contains_key(*k)).collect();
    assert_eq!(committed.len(), 1, "{live:?}");
    let before = std::fs::read(table_dir(&lake).join(committed[0])).unwrap();

    // A redelivery after the acknowledgement was lost: nothing is scored or written.
    Container::new(&lake).await.consume(m).await.unwrap();
    assert_eq!(objects_of(&lake, m), written, "no new object");
    assert_eq!(
        std::fs::read(table_dir(&lake).join(committed[0])).unwrap(),
        before
    );
    assert_eq!(commits(&lake), 2);
    etl_testkit::delta_log::assert_live_sizes_match(&table_dir(&lake));
    let recs = etl_core::decode_message(&m.body).unwrap().records;
    assert_ok(&exactly_once(&recs, &table_versions(&lake, None)));

    // The losing attempt's object was never part of the table: vacuum takes it.
    let table = DeltaLake::existing(url_of(&table_dir(&lake)), Default::default());
    let dry = maintain::vacuum(&table, chrono::Duration::zero(), true)
        .await
        .unwrap();
    let loser = written.iter().find(|k| !live.contains_key(*k)).unwrap();
    assert_eq!(dry.files_deleted.len(), 1, "{:?}", dry.files_deleted);
    assert!(dry.files_deleted[0].ends_with(loser.as_str()));
}

fn msgs_dt(m: &OutgoingMessage) -> NaiveDate {
    etl_core::decode_message(&m.body).unwrap().records[0]
        .created_at
        .date_naive()
}

fn url_of(dir: &Path) -> url::Url {
    url::Url::from_directory_path(dir.canonicalize().unwrap()).unwrap()
}

/// The writer's catalog in the compaction scenario: its second commit
/// waits until the compaction has taken its lock (so it lands while the
/// compaction plans and rewrites), and its last three wait until the
/// compaction has committed (so some land after it, whatever the speeds).
struct Gated {
    inner: LocalCatalog,
    commits: AtomicUsize,
    last_three_from: usize,
    lock: PathBuf,
    compacted: tokio::sync::watch::Receiver<bool>,
}

#[async_trait]
impl Catalog for Gated {
    async fn ensure_table(&self) -> Result<(), BackendError> {
        self.inner.ensure_table().await
    }

    async fn add_partitions(&self, dts: &[NaiveDate]) -> Result<(), BackendError> {
        self.inner.add_partitions(dts).await
    }

    async fn commit(&self, commit: &TableCommit<'_>) -> Result<(), BackendError> {
        let k = self.commits.fetch_add(1, Ordering::SeqCst);
        if k == 1 {
            // Bounded: the compaction takes its lock at once.
            let mut waited = 0;
            while !self.lock.exists() && !*self.compacted.borrow() {
                assert!(waited < 30_000, "the compaction never took its lock");
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                waited += 1;
            }
        }
        if k == self.last_three_from {
            let mut rx = self.compacted.clone();
            rx.wait_for(|done| *done).await.unwrap();
        }
        self.inner.commit(commit).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_compaction_while_consumers_commit_never_shows_a_row_twice_or_drops_one() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let recs = records(400);
    let msgs = pack(recs.clone(), 2 * 1024);
    let half = msgs.len() / 2;
    assert!(half >= 20, "{} messages", msgs.len());
    let first = Container::new(&lake).await;
    for m in &msgs[..half] {
        first.consume(m).await.unwrap();
    }
    let table = DeltaLake::existing(url_of(&table_dir(&lake)), Default::default());
    let before = maintain::files(&table).await.unwrap();
    assert_eq!(before.files, half, "one small file per message");

    // A second container commits the other half while the compaction runs.
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let rest = msgs[half..].to_vec();
    let gated = Arc::new(Gated {
        inner: LocalCatalog::with_format(&lake, true, TableFormat::Delta).unwrap(),
        commits: AtomicUsize::new(0),
        last_three_from: rest.len() - 3,
        lock: table_dir(&lake).join("_etl_compaction.lock"),
        compacted: done_rx,
    });
    gated.ensure_table().await.unwrap();
    let second = Container::with_catalog(&lake, gated.clone());
    let (committed_tx, mut committed_rx) = tokio::sync::mpsc::unbounded_channel();
    let writer = tokio::spawn(async move {
        for m in &rest {
            second.consume(m).await.unwrap();
            let _ = committed_tx.send(());
        }
    });
    // Start compacting once the writer is under way.
    committed_rx.recv().await.unwrap();
    let report = maintain::compact(&table, maintain::DEFAULT_TARGET_SIZE, &[], "test")
        .await
        .unwrap();
    done_tx.send(true).unwrap();
    writer.await.unwrap();
    assert_eq!(gated.commits.load(Ordering::SeqCst), msgs.len() - half);
    let compaction_version = report.version.expect("the compaction committed") as usize;
    assert!(report.files_removed >= half as u64, "{report:?}");
    // The writer committed before the compaction's commit and after it.
    let total = commits(&lake);
    assert_eq!(
        total,
        msgs.len() + 2,
        "one commit per message and the compaction's"
    );
    assert!(
        compaction_version > half + 1 && compaction_version < total - 3,
        "compaction at version {compaction_version} of {total}: not between the writer's commits"
    );
    assert_no_version_has_duplicates(&lake);
    assert_ok(&exactly_once(&recs, &table_versions(&lake, None)));

    // Once nobody writes, a second compaction leaves one file per partition
    // (each partition is far below 128 MiB).
    let last = maintain::compact(&table, maintain::DEFAULT_TARGET_SIZE, &[], "test")
        .await
        .unwrap();
    for (dt, (files, bytes)) in &last.after.partitions {
        assert_eq!(
            *files, 1,
            "partition {dt}: {files} files of {bytes} bytes in all"
        );
    }
    assert_no_version_has_duplicates(&lake);
    assert_ok(&exactly_once(&recs, &table_versions(&lake, None)));
    python_reader_agrees(&table_dir(&lake), &recs);
    // Small files, compacted ones (their strings typed Utf8View) and the
    // replaced ones alike: a Java reader reads what each file's writer wrote.
    etl_testkit::lake::assert_java_reads_what_was_written(&lake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_compaction_is_refused_while_one_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let c = Container::new(&lake).await;
    for m in pack(records(30), 2048) {
        c.consume(&m).await.unwrap();
    }
    // The lock object a running compaction leaves, not yet expired.
    let lock = table_dir(&lake).join("_etl_compaction.lock");
    let now = chrono::Utc::now();
    std::fs::write(
        &lock,
        serde_json::json!({"owner": "other host", "taken_at": now, "expires_at": now + chrono::Duration::minutes(30)}).to_string(),
    )
    .unwrap();
    let table = DeltaLake::existing(url_of(&table_dir(&lake)), Default::default());
    let err = maintain::compact(&table, maintain::DEFAULT_TARGET_SIZE, &[], "test")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("other host"), "{err}");
    assert_eq!(err.retry, etl_core::Retry::Retryable);
    // An expired lock (a compaction that crashed) is broken.
    std::fs::write(
        &lock,
        serde_json::json!({"owner": "crashed", "taken_at": now - chrono::Duration::hours(3), "expires_at": now - chrono::Duration::hours(2)}).to_string(),
    )
    .unwrap();
    let r = maintain::compact(&table, maintain::DEFAULT_TARGET_SIZE, &[], "test")
        .await
        .unwrap();
    assert!(r.files_removed > 0);
    assert!(!lock.exists(), "released after the compaction");
}
