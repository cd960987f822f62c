//! `ObjectSink` conformance: objects keyed by their Hive path, written
//! whole, replaced whole.
//!
//! The trait has no read (the pipeline never reads the lake back), so each
//! behaviour takes a [`SinkProbe`] that the backend's tests implement: a
//! file read and a directory walk for the local lake, GetObject and
//! ListObjectsV2 under the table prefix for S3. Behaviours use keys of
//! their own and assert only about those (plus that every object below the
//! table root has the Hive shape, which catches leftover temporary files),
//! so they can share one sink, as [`all`] does.

use async_trait::async_trait;
use bytes::Bytes;
use chrono::NaiveDate;
use etl_core::output::object_key;
use etl_core::{ObjectSink, Retry};

use super::date;

/// Reads what a sink wrote, for the contract.
#[async_trait]
pub trait SinkProbe: Send + Sync {
    /// The object at `key` (relative to the table root), `None` when absent.
    async fn get(&self, key: &str) -> Option<Bytes>;
    /// Every object below the table root, as keys relative to it, in any
    /// order; temporary or hidden files included.
    async fn keys(&self) -> Vec<String>;
}

/// A key as the consumer makes it: `dt=YYYY-MM-DD/part-<64 hex>.parquet`.
pub fn hive_key(dt: NaiveDate, n: u64) -> String {
    object_key(dt, &format!("{n:064x}"))
}

/// Whether `key` has the shape [`hive_key`] (and the consumer) gives keys.
pub fn is_hive_key(key: &str) -> bool {
    let Some((dir, file)) = key.split_once('/') else {
        return false;
    };
    let dt_ok = dir
        .strip_prefix("dt=")
        .is_some_and(|d| d.len() == 10 && NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok());
    let id_ok = file
        .strip_prefix("part-")
        .and_then(|f| f.strip_suffix(".parquet"))
        .is_some_and(|h| {
            h.len() == 64
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
    dt_ok && id_ok
}

/// Bytes that no text-mangling layer would leave alone: every byte value,
/// NULs and invalid UTF-8 included.
fn binary_body(len: usize) -> Bytes {
    (0..=255u8).cycle().take(len).collect::<Vec<u8>>().into()
}

/// Assert that `key` is listed exactly once and holds `body`, and that
/// every listed key has the Hive shape.
async fn assert_holds(probe: &dyn SinkProbe, key: &str, body: &Bytes) {
    let got = probe.get(key).await;
    assert!(got.is_some(), "{key} is missing after put");
    let got = got.unwrap_or_default();
    assert_eq!(got.len(), body.len(), "{key}: length");
    assert!(got == *body, "{key}: bytes differ from what was put");
    let keys = probe.keys().await;
    assert_eq!(
        keys.iter().filter(|k| *k == key).count(),
        1,
        "{key} listed once: {keys:?}"
    );
    for k in &keys {
        assert!(is_hive_key(k), "not a Hive key (a leftover?): {k:?}");
    }
}

/// What is put is what is stored, byte for byte.
pub async fn put_then_get_returns_the_bytes(sink: &dyn ObjectSink, probe: &dyn SinkProbe) {
    let key = hive_key(date("2024-05-01"), 1);
    let body = binary_body(70_000);
    sink.put(&key, body.clone()).await.expect("put");
    assert_holds(probe, &key, &body).await;
}

/// A second put on a key replaces the object: the second body, whole
/// (shorter than the first, so a non-truncating overwrite shows), and still
/// one object.
pub async fn put_replaces_the_object(sink: &dyn ObjectSink, probe: &dyn SinkProbe) {
    let key = hive_key(date("2024-05-02"), 2);
    let first = Bytes::from_static(b"first version, longer than the second one");
    let second = Bytes::from_static(b"second");
    sink.put(&key, first).await.expect("first put");
    sink.put(&key, second.clone()).await.expect("second put");
    assert_holds(probe, &key, &second).await;
}

/// Keys in several partitions (a leap day, the turn of a century) are each
/// stored under their own Hive path.
pub async fn keys_keep_the_hive_layout(sink: &dyn ObjectSink, probe: &dyn SinkProbe) {
    let keys: Vec<String> = ["2024-02-29", "1999-12-31", "2000-01-01"]
        .iter()
        .enumerate()
        .map(|(i, d)| hive_key(date(d), 0xa0 + i as u64))
        .collect();
    for (i, k) in keys.iter().enumerate() {
        sink.put(k, Bytes::from(format!("object {i}")))
            .await
            .expect("put");
    }
    for (i, k) in keys.iter().enumerate() {
        assert_holds(probe, k, &Bytes::from(format!("object {i}"))).await;
    }
}

/// An empty body is an object too (an empty file, a zero-byte S3 object).
pub async fn empty_object_is_stored(sink: &dyn ObjectSink, probe: &dyn SinkProbe) {
    let key = hive_key(date("2024-05-03"), 3);
    sink.put(&key, Bytes::new()).await.expect("put of no bytes");
    assert_holds(probe, &key, &Bytes::new()).await;
}

/// `location` names the key (so logs and errors lead to the object), and
/// distinct keys have distinct locations.
pub async fn location_names_the_key(sink: &dyn ObjectSink) {
    let a = hive_key(date("2024-05-01"), 4);
    let b = hive_key(date("2024-05-02"), 4);
    for k in [&a, &b] {
        let loc = sink.location(k);
        assert!(loc.contains(k.as_str()), "location {loc:?} of {k:?}");
    }
    assert_ne!(sink.location(&a), sink.location(&b));
}

/// A put the sink cannot take for good (a bucket that does not exist, a lake
/// root that is a file) fails as `Retry::Permanent`, naming the operation
/// and what it was on: the consumer then fails the message instead of
/// retrying a write that cannot succeed. `sink` must be such a sink.
pub async fn refused_put_is_permanent(sink: &dyn ObjectSink) {
    let key = hive_key(date("2024-03-01"), 7);
    let err = sink
        .put(&key, Bytes::from_static(b"PAR1"))
        .await
        .expect_err("a put to a sink that cannot take it fails");
    assert_eq!(err.retry, Retry::Permanent, "{err}");
    assert!(!err.operation.is_empty(), "the operation is named: {err}");
    assert!(!err.target.is_empty(), "the target is named: {err}");
}

/// Every behaviour, in sequence, on one sink.
pub async fn all(sink: &dyn ObjectSink, probe: &dyn SinkProbe) {
    put_then_get_returns_the_bytes(sink, probe).await;
    put_replaces_the_object(sink, probe).await;
    keys_keep_the_hive_layout(sink, probe).await;
    empty_object_is_stored(sink, probe).await;
    location_names_the_key(sink).await;
}
