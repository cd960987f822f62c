//! `etl status --stack`: the producer's state (watermark, unfinished
//! checkpoint, lock, last runs), the queues, and the lake's partitions.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use aws_sdk_cloudformation::error::DisplayErrorContext;
use aws_sdk_sqs::types::QueueAttributeName;
use chrono::{DateTime, Utc};
use etl_aws::producer_state::{ProducerState, RunCheckpoint, RunReport};
use etl_aws::{Clients, LockOutcome, StateStore};
use serde::Serialize;

use super::{clients, resolve, Stack};
use crate::ops::{emit, human_bytes};
use crate::Target;

/// Object listing pages read at most (1,000 keys each).
pub(super) const MAX_LIST_PAGES: usize = 10_000;

/// One queue's depth.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QueueDepth {
    /// The queue URL.
    pub url: String,
    /// Messages waiting.
    pub visible: u64,
    /// Messages being processed.
    pub in_flight: u64,
    /// Messages delayed.
    pub delayed: u64,
    /// Age of the oldest message in seconds (CloudWatch's
    /// ApproximateAgeOfOldestMessage, last 15 minutes), when known.
    pub oldest_age_secs: Option<f64>,
}

/// One Hive partition in S3.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Partition {
    /// `YYYY-MM-DD`.
    pub dt: String,
    /// Parquet objects.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Everything `etl status --stack` shows.
#[derive(Debug, Clone, Serialize)]
pub struct CloudStatus {
    /// The resources.
    pub stack: Stack,
    /// The watermark: the last completed run's start.
    pub watermark: Option<DateTime<Utc>>,
    /// The unfinished run, when an invocation stopped early.
    pub checkpoint: Option<RunCheckpoint>,
    /// The run lock's holder and expiry (epoch seconds), when held.
    pub lock: Option<(String, i64)>,
    /// Messages the producer staged and has not yet recorded as done (a
    /// failed invocation's: the next one re-sends the unconfirmed ones
    /// verbatim), and how many of them SQS had not confirmed.
    pub staged: Staged,
    /// The last completed runs, oldest first.
    pub runs: Vec<RunReport>,
    /// The work queue.
    pub queue: Option<QueueDepth>,
    /// The dead-letter queue.
    pub dead_letters: Option<QueueDepth>,
    /// Partitions of the table.
    pub partitions: Vec<Partition>,
}

/// The producer's outbox, as `etl status --stack` shows it.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Staged {
    /// Messages staged.
    pub messages: usize,
    /// Of those, not confirmed by SQS.
    pub unconfirmed: usize,
}

/// Read the state item and checkpoint of the stack's producer.
pub(super) async fn producer_state(
    s: &Stack,
    c: &Clients,
) -> Result<(
    Option<ProducerState>,
    Option<RunCheckpoint>,
    Option<(String, i64)>,
)> {
    let table = s.need(
        &s.state_table,
        "state table",
        "state-table",
        "StateTableName",
    )?;
    let scope = s.need(
        &s.source_table,
        "source table",
        "source-table",
        "SourceTableName",
    )?;
    let store = StateStore::new(c.dynamodb.clone(), table, scope);
    let state = store
        .load_watermark::<ProducerState>()
        .await
        .context("reading the producer's state")?
        .map(|v| v.value);
    let checkpoint = store
        .load_checkpoint::<RunCheckpoint>()
        .await
        .context("reading the producer's checkpoint")?
        .map(|v| v.value);
    let lock = match store.lock_holder().await.context("reading the run lock")? {
        Some(LockOutcome::Held { owner, expires_at }) => Some((owner, expires_at)),
        _ => None,
    };
    Ok((state, checkpoint, lock))
}

/// A queue's depth from GetQueueAttributes, and its oldest message's age
/// from CloudWatch.
pub(super) async fn queue_depth(c: &Clients, url: &str) -> Result<QueueDepth> {
    let attrs = c
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .map_err(|e| anyhow!("GetQueueAttributes {url}: {}", DisplayErrorContext(&e)))?
        .attributes
        .unwrap_or_default();
    let n = |k: QueueAttributeName| {
        attrs
            .get(&k)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let name = url.rsplit('/').next().unwrap_or(url);
    Ok(QueueDepth {
        url: url.to_owned(),
        visible: n(QueueAttributeName::ApproximateNumberOfMessages),
        in_flight: n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        delayed: n(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        oldest_age_secs: oldest_age(c, name).await,
    })
}

/// The newest ApproximateAgeOfOldestMessage datapoint of the last 15
/// minutes (SQS publishes it every minute for active queues). `None` when
/// CloudWatch has none or cannot be read: status never fails on it.
async fn oldest_age(c: &Clients, queue_name: &str) -> Option<f64> {
    use aws_sdk_cloudwatch::primitives::DateTime as AwsTime;
    use aws_sdk_cloudwatch::types::{Dimension, Statistic};
    let cw = aws_sdk_cloudwatch::Client::new(&c.config);
    let now = Utc::now().timestamp();
    let out = cw
        .get_metric_statistics()
        .namespace("AWS/SQS")
        .metric_name("ApproximateAgeOfOldestMessage")
        .dimensions(
            Dimension::builder()
                .name("QueueName")
                .value(queue_name)
                .build(),
        )
        .start_time(AwsTime::from_secs(now - 900))
        .end_time(AwsTime::from_secs(now + 60))
        .period(60)
        .statistics(Statistic::Maximum)
        .send()
        .await
        .ok()?;
    out.datapoints()
        .iter()
        .filter_map(|d| Some((d.timestamp()?.secs(), d.maximum()?)))
        .max_by_key(|(t, _)| *t)
        .map(|(_, v)| v)
}

/// The table's partitions: of the objects that hold its rows (a Delta
/// table's live files, a Hive table's listing).
pub(super) async fn partitions(s: &Stack, c: &Clients) -> Result<Vec<Partition>> {
    let prefix = s.table_prefix.clone().unwrap_or_default();
    let mut out: BTreeMap<String, Partition> = BTreeMap::new();
    for (key, size) in super::lake_objects(s, c).await? {
        let Some(dt) = key
            .strip_prefix(prefix.as_str())
            .and_then(|k| k.split('/').next())
            .and_then(|d| d.strip_prefix("dt="))
        else {
            continue;
        };
        let p = out.entry(dt.to_owned()).or_insert_with(|| Partition {
            dt: dt.to_owned(),
            ..Default::default()
        });
        p.files += 1;
        p.bytes += size;
    }
    Ok(out.into_values().collect())
}

/// `etl status --stack`.
pub async fn status(t: &Target, runs: usize, json: bool) -> Result<ExitCode> {
    let c = clients().await?;
    let s = resolve(t, &c).await?;
    let bar = crate::ops::spinner("reading the stack's state");
    let (state, checkpoint, lock) = producer_state(&s, &c).await?;
    let staged = match (&s.state_table, &s.source_table) {
        (Some(table), Some(scope)) => {
            let outbox = etl_aws::DynamoOutbox::new(c.dynamodb.clone(), table, scope, "etl-status");
            let all = outbox
                .load()
                .await
                .context("reading the producer's outbox")?;
            Staged {
                messages: all.len(),
                unconfirmed: all.iter().filter(|m| !m.sent).count(),
            }
        }
        _ => Staged::default(),
    };
    let queue = match &s.queue_url {
        Some(u) => Some(queue_depth(&c, u).await?),
        None => None,
    };
    let dead_letters = match &s.dlq_url {
        Some(u) => Some(queue_depth(&c, u).await?),
        None => None,
    };
    bar.set_message("listing the lake");
    let partitions = if s.bucket.is_some() {
        partitions(&s, &c).await?
    } else {
        Vec::new()
    };
    bar.finish_and_clear();
    let mut history = state
        .as_ref()
        .map(|s| s.history.clone())
        .unwrap_or_default();
    if history.is_empty() {
        // State written before the history was kept: the last run alone.
        history.extend(state.as_ref().and_then(|s| s.last_run.clone()));
    }
    let skip = history.len().saturating_sub(runs);
    let st = CloudStatus {
        stack: s,
        watermark: state.as_ref().and_then(|s| s.watermark),
        checkpoint,
        lock,
        staged,
        runs: history.split_off(skip),
        queue,
        dead_letters,
        partitions,
    };
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&st)?))?;
    } else {
        emit(&text(&st))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn depth_line(o: &mut String, label: &str, q: &Option<QueueDepth>) {
    match q {
        None => {
            let _ = writeln!(o, "{label:<20}unknown (no queue URL)");
        }
        Some(q) => {
            let _ = writeln!(
                o,
                "{label:<20}{} waiting, {} in flight, {} delayed; oldest {}",
                q.visible,
                q.in_flight,
                q.delayed,
                q.oldest_age_secs.map_or_else(
                    || "unknown (no CloudWatch datapoint)".into(),
                    |a| format!("{a:.0} s")
                )
            );
        }
    }
}

fn text(s: &CloudStatus) -> String {
    let mut o = String::new();
    if let Some(n) = &s.stack.name {
        let _ = writeln!(o, "stack               {n}");
    }
    let _ = writeln!(
        o,
        "watermark           {}",
        s.watermark
            .map_or_else(|| "none (no completed run)".into(), |w| w.to_rfc3339())
    );
    match &s.checkpoint {
        None => {
            let _ = writeln!(o, "unfinished          none");
        }
        Some(c) => {
            let _ = writeln!(
                o,
                "unfinished          run {} ({}) started {}, {} invocation(s), {} read and {} sent so far; the next invocation resumes it",
                c.run_id,
                c.spec.name(),
                c.started_at.to_rfc3339(),
                c.invocations,
                c.totals.read,
                c.totals.sent_records
            );
        }
    }
    if s.staged.messages > 0 {
        let _ = writeln!(
            o,
            "staged              {} message(s) of a failed invocation, {} not confirmed by SQS: the next invocation re-sends those verbatim",
            s.staged.messages, s.staged.unconfirmed
        );
    }
    match &s.lock {
        None => {
            let _ = writeln!(o, "lock                free");
        }
        Some((owner, exp)) => {
            let _ = writeln!(
                o,
                "lock                held by {owner} until {}",
                DateTime::from_timestamp(*exp, 0)
                    .map_or_else(|| exp.to_string(), |t| t.to_rfc3339())
            );
        }
    }
    depth_line(&mut o, "queue", &s.queue);
    depth_line(&mut o, "dead letters", &s.dead_letters);
    let files: u64 = s.partitions.iter().map(|p| p.files).sum();
    let bytes: u64 = s.partitions.iter().map(|p| p.bytes).sum();
    let _ = writeln!(
        o,
        "partitions          {} partition(s), {files} file(s), {}",
        s.partitions.len(),
        human_bytes(bytes)
    );
    let shown = &s.partitions[s.partitions.len().saturating_sub(10)..];
    for p in shown {
        let _ = writeln!(
            o,
            "  dt={}  {:>5} file(s)  {:>10}",
            p.dt,
            p.files,
            human_bytes(p.bytes)
        );
    }
    if s.partitions.len() > shown.len() {
        let _ = writeln!(
            o,
            "  … {} older partition(s)",
            s.partitions.len() - shown.len()
        );
    }
    let _ = writeln!(o, "last runs           {}", s.runs.len());
    if !s.runs.is_empty() {
        let _ = writeln!(
            o,
            "  {:<20}  {:<11}  {:>5}  {:>9}  {:>9}  {:>9}",
            "completed", "mode", "inv.", "read", "sent", "rejected"
        );
    }
    for r in &s.runs {
        let _ = writeln!(
            o,
            "  {:<20}  {:<11}  {:>5}  {:>9}  {:>9}  {:>9}",
            r.completed_at.format("%Y-%m-%d %H:%M:%S"),
            r.mode,
            r.invocations,
            r.read,
            r.sent_records,
            r.rejected
        );
    }
    o
}
