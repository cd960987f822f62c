//! The source table as a core [`RecordSource`]: a parallel, paginated Scan.
//!
//! Each of N segments is scanned by its own task; pages flow through a bounded
//! channel per segment (so a slow queue slows the scan instead of buffering
//! the table in memory) and come out of [`DynamoSource::next_chunk`] one page
//! at a time, in a fixed round-robin order over the unfinished segments
//! (segment 0's next page, then segment 1's, …) whatever order the pages
//! arrive in. The records, and so the messages packed from them and their
//! content ids, are then the same every time the same table is scanned from
//! the same checkpoint: a run that fails or is killed before it saves its
//! checkpoint, run again, re-sends identical messages, and the consumer
//! overwrites its own objects instead of writing the records a second time
//! under other keys.
//! The source remembers, per segment, the LastEvaluatedKey of the last page it
//! *handed out*, so the producer can checkpoint at a page boundary after the
//! records of those pages are sent, and resume exactly there.

mod attr;
mod filter;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use etl_core::{BackendError, FieldMap, RecordSource, Rejection, SourceItem};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use attr::{item_to_json, key_from_json, key_to_json, to_json};
pub use filter::{incremental as incremental_filter, Filter};

use crate::error::backend_error;

/// What to scan and how.
#[derive(Debug, Clone)]
pub struct ScanConfig {
    /// Source table name.
    pub table: String,
    /// Parallel scan segments (1 = sequential). Ignored when resuming: the
    /// checkpoint's segment count wins, since segments cannot be re-split.
    pub segments: u32,
    /// Items per Scan page (`Limit`); `None` lets DynamoDB fill 1 MB pages.
    pub page_limit: Option<i32>,
    /// Attribute names and pass-through attributes.
    pub fields: FieldMap,
    /// Incremental mode: add a server-side filter dropping items certainly
    /// older than this (the run's floor). The caller must still test every
    /// record (core's `incremental::LedgerFilter` does).
    pub since: Option<DateTime<Utc>>,
    /// Resume from a checkpoint instead of the start of every segment.
    pub resume: Option<ScanCheckpoint>,
}

impl ScanConfig {
    /// A full scan of `table` with default field names and 4 segments.
    pub fn new(table: impl Into<String>) -> Self {
        Self {
            table: table.into(),
            segments: 4,
            page_limit: None,
            fields: FieldMap::default(),
            since: None,
            resume: None,
        }
    }
}

/// Where one segment's scan stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SegmentPosition {
    /// Not started.
    Start,
    /// Pages up to `pages` were handed out; continue after `key`
    /// (LastEvaluatedKey in typed DynamoDB JSON).
    After {
        /// ExclusiveStartKey for the next page.
        key: serde_json::Value,
        /// Pages handed out so far.
        pages: u64,
    },
    /// Finished.
    Done,
}

/// Per-segment positions: what a producer persists to resume a scan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanCheckpoint {
    /// One position per segment, in segment order.
    pub segments: Vec<SegmentPosition>,
}

impl ScanCheckpoint {
    /// Every segment at its start.
    pub fn start(segments: u32) -> Self {
        Self {
            segments: vec![SegmentPosition::Start; segments.max(1) as usize],
        }
    }

    /// Whether every segment is finished.
    pub fn is_done(&self) -> bool {
        self.segments.iter().all(|s| *s == SegmentPosition::Done)
    }
}

/// One Scan page, converted.
struct Page {
    segment: usize,
    number: u64,
    items: Vec<SourceItem>,
    next: Option<HashMap<String, AttributeValue>>,
}

/// The immutable part of every Scan request.
struct ScanRequest {
    table: String,
    total_segments: i32,
    limit: Option<i32>,
    projection: String,
    names: HashMap<String, String>,
    filter: Option<Filter>,
    fields: FieldMap,
}

/// A parallel Scan of the source table. See the module docs.
pub struct DynamoSource {
    table: String,
    /// The unfinished segments' channels, in segment order.
    rxs: Vec<mpsc::Receiver<Result<Page, BackendError>>>,
    /// Index into `rxs` of the segment whose page comes next.
    next: usize,
    tasks: Vec<JoinHandle<()>>,
    positions: Vec<SegmentPosition>,
    pages: u64,
}

impl std::fmt::Debug for DynamoSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoSource")
            .field("table", &self.table)
            .field("positions", &self.positions)
            .field("pages", &self.pages)
            .finish()
    }
}

impl DynamoSource {
    /// Start scanning (spawns one task per unfinished segment on the current
    /// Tokio runtime). Fails when a resume checkpoint holds an unreadable key.
    pub fn open(client: Client, config: ScanConfig) -> Result<Self, BackendError> {
        let positions = match &config.resume {
            Some(cp) => cp.segments.clone(),
            None => ScanCheckpoint::start(config.segments).segments,
        };
        let total = positions.len();
        let (projection, names) = projection(&config.fields);
        let filter = config
            .since
            .map(|t| filter::incremental(&config.fields.updated_at, &config.fields.created_at, t));
        let request = Arc::new(ScanRequest {
            table: config.table.clone(),
            total_segments: total as i32,
            limit: config.page_limit,
            projection,
            names,
            filter,
            fields: config.fields,
        });
        // Each segment has at most one page queued and one in flight.
        let mut rxs = Vec::with_capacity(total);
        let mut tasks = Vec::with_capacity(total);
        for (segment, pos) in positions.iter().enumerate() {
            let (start, pages) = match pos {
                SegmentPosition::Done => continue,
                SegmentPosition::Start => (None, 0),
                SegmentPosition::After { key, pages } => {
                    let key = key_from_json(key).map_err(|e| {
                        BackendError::permanent(
                            "Scan",
                            format!("table {} segment {segment}", config.table),
                            format!("checkpoint key is unreadable: {e}"),
                        )
                    })?;
                    (Some(key), *pages)
                }
            };
            let (tx, rx) = mpsc::channel(1);
            rxs.push(rx);
            tasks.push(tokio::spawn(scan_segment(
                client.clone(),
                Arc::clone(&request),
                segment,
                start,
                pages,
                tx,
            )));
        }
        Ok(Self {
            table: config.table,
            rxs,
            next: 0,
            tasks,
            positions,
            pages: 0,
        })
    }

    /// Positions after the pages handed out so far: persist this only once
    /// every record of those pages has been sent.
    pub fn checkpoint(&self) -> ScanCheckpoint {
        ScanCheckpoint {
            segments: self.positions.clone(),
        }
    }

    /// Pages handed out by this source (since it was opened).
    pub fn pages(&self) -> u64 {
        self.pages
    }
}

impl Drop for DynamoSource {
    fn drop(&mut self) {
        // Stop scanning segments nobody will read (early stop, error).
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[async_trait]
impl RecordSource for DynamoSource {
    async fn next_chunk(&mut self) -> Result<Option<Vec<SourceItem>>, BackendError> {
        // Cancel-safe: nothing changes until a page (or the end of a segment)
        // has been received.
        while !self.rxs.is_empty() {
            let i = self.next % self.rxs.len();
            match self.rxs[i].recv().await {
                // The segment's task ended without a last page (aborted):
                // drop it from the rotation.
                None => {
                    self.rxs.remove(i);
                    self.next = i;
                }
                Some(Err(e)) => return Err(e),
                Some(Ok(page)) => {
                    self.pages += 1;
                    self.positions[page.segment] = match page.next {
                        Some(key) => SegmentPosition::After {
                            key: key_to_json(&key),
                            pages: page.number,
                        },
                        None => SegmentPosition::Done,
                    };
                    if self.positions[page.segment] == SegmentPosition::Done {
                        self.rxs.remove(i);
                        self.next = i;
                    } else {
                        self.next = i + 1;
                    }
                    return Ok(Some(page.items));
                }
            }
        }
        Ok(None)
    }
}

/// ProjectionExpression over `#pN` placeholders (attribute names such as
/// `text` or `name` are reserved words).
fn projection(fields: &FieldMap) -> (String, HashMap<String, String>) {
    let mut wanted: BTreeSet<&str> = BTreeSet::new();
    let mut ordered = Vec::new();
    for name in [
        &fields.id,
        &fields.text,
        &fields.created_at,
        &fields.updated_at,
    ]
    .into_iter()
    .chain(fields.passthrough.iter())
    {
        if wanted.insert(name.as_str()) {
            ordered.push(name.clone());
        }
    }
    let names: HashMap<String, String> = ordered
        .iter()
        .enumerate()
        .map(|(i, n)| (format!("#p{i}"), n.clone()))
        .collect();
    let expr = (0..ordered.len())
        .map(|i| format!("#p{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    (expr, names)
}

async fn scan_segment(
    client: Client,
    req: Arc<ScanRequest>,
    segment: usize,
    mut start: Option<HashMap<String, AttributeValue>>,
    mut page: u64,
    tx: mpsc::Sender<Result<Page, BackendError>>,
) {
    let target = format!("table {} segment {segment}", req.table);
    loop {
        page += 1;
        let mut scan = client
            .scan()
            .table_name(&req.table)
            .projection_expression(&req.projection)
            .set_exclusive_start_key(start.clone())
            .set_limit(req.limit);
        if req.total_segments > 1 {
            scan = scan
                .segment(segment as i32)
                .total_segments(req.total_segments);
        }
        for (k, v) in &req.names {
            scan = scan.expression_attribute_names(k, v);
        }
        if let Some(f) = &req.filter {
            scan = scan.filter_expression(&f.expression);
            for (k, v) in &f.names {
                scan = scan.expression_attribute_names(k, v);
            }
            for (k, v) in &f.values {
                scan = scan.expression_attribute_values(k, v.clone());
            }
        }
        let out = match scan.send().await {
            Ok(out) => out,
            Err(e) => {
                let _ = tx
                    .send(Err(backend_error(
                        "Scan",
                        format!("{target} page {page}"),
                        &e,
                    )))
                    .await;
                return;
            }
        };
        let items = out
            .items()
            .iter()
            .enumerate()
            .map(|(i, item)| convert(&req.fields, item, i, segment, page))
            .collect();
        let next = out.last_evaluated_key;
        if next.is_some() && next == start {
            // A server that hands back the key it was given would loop forever.
            let _ = tx
                .send(Err(BackendError::permanent(
                    "Scan",
                    format!("{target} page {page}"),
                    "LastEvaluatedKey did not advance",
                )))
                .await;
            return;
        }
        let done = next.is_none();
        if tx
            .send(Ok(Page {
                segment,
                number: page,
                items,
                next: next.clone(),
            }))
            .await
            .is_err()
        {
            return; // the source was dropped
        }
        if done {
            return;
        }
        start = next;
    }
}

/// One item to a record or a rejection naming where it was and which field failed.
/// (Public for the fuzz targets in `fuzz/`.)
#[doc(hidden)]
pub fn convert(
    fields: &FieldMap,
    item: &HashMap<String, AttributeValue>,
    index: usize,
    segment: usize,
    page: u64,
) -> SourceItem {
    let obj = item_to_json(item);
    match fields.parse_object(&obj) {
        Ok(r) => SourceItem::Record(r),
        Err(e) => {
            let id = e.id.clone().or_else(|| match item.get(&fields.id) {
                Some(AttributeValue::S(s)) => Some(s.clone()),
                Some(AttributeValue::N(n)) => Some(n.clone()),
                _ => None,
            });
            let which = id.clone().unwrap_or_else(|| format!("#{index}"));
            SourceItem::Rejected(Rejection {
                location: format!("item {which} in segment {segment} page {page}"),
                id,
                field: Some(e.field),
                reason: e.reason,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_deduplicates_and_uses_placeholders() {
        let f = FieldMap {
            passthrough: vec!["author".into(), "text".into()],
            ..FieldMap::default()
        };
        let (expr, names) = projection(&f);
        assert_eq!(expr, "#p0, #p1, #p2, #p3, #p4");
        assert_eq!(names["#p1"], "text");
        assert_eq!(names["#p4"], "author");
    }

    #[test]
    fn rejections_name_item_segment_page_and_field() {
        let item: HashMap<String, AttributeValue> = [
            ("id".to_string(), AttributeValue::S("x1".into())),
            ("text".to_string(), AttributeValue::N("5".into())),
            (
                "created_at".to_string(),
                AttributeValue::N("1700000000".into()),
            ),
        ]
        .into();
        let SourceItem::Rejected(r) = convert(&FieldMap::default(), &item, 3, 2, 7) else {
            panic!("expected a rejection")
        };
        assert_eq!(r.location, "item x1 in segment 2 page 7");
        assert_eq!(r.field.as_deref(), Some("text"));
        let no_id: HashMap<String, AttributeValue> =
            [("text".to_string(), AttributeValue::S("t".into()))].into();
        let SourceItem::Rejected(r) = convert(&FieldMap::default(), &no_id, 3, 0, 1) else {
            panic!("expected a rejection")
        };
        assert_eq!(r.location, "item #3 in segment 0 page 1");
        assert_eq!(r.field.as_deref(), Some("id"));
    }

    #[test]
    fn checkpoint_serializes_per_segment_state() {
        let cp = ScanCheckpoint {
            segments: vec![
                SegmentPosition::Start,
                SegmentPosition::After {
                    key: serde_json::json!({"id":{"S":"k"}}),
                    pages: 2,
                },
                SegmentPosition::Done,
            ],
        };
        let j = serde_json::to_string(&cp).unwrap();
        assert!(
            j.contains(r#"{"state":"after","key":{"id":{"S":"k"}},"pages":2}"#),
            "{j}"
        );
        assert_eq!(serde_json::from_str::<ScanCheckpoint>(&j).unwrap(), cp);
        assert!(!cp.is_done());
    }
}
