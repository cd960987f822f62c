//! `etl redrive --stack`: the dead-letter queue's messages back to the work
//! queue, then what came back and what failed again.
//!
//! `auto` uses SQS StartMessageMoveTask (rate-limited, run by SQS itself)
//! and falls back to receive, send and delete where the API is missing (an
//! emulator, a partition without it). In the fallback a message is deleted
//! from the dead-letter queue only after the work queue accepted it, so an
//! interruption can at worst send one twice (the consumer's output is keyed
//! by content id, so a repeat rewrites its own objects), never lose one.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use aws_sdk_cloudformation::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use etl_aws::rate::RateLimiter;
use etl_aws::sqs::split_sizes;
use etl_aws::Clients;
use serde::Serialize;

use super::status::queue_depth;
use super::{clients, resolve};
use crate::ops::emit;
use crate::Target;

/// How messages are moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// StartMessageMoveTask, else receive/send/delete.
    Auto,
    /// StartMessageMoveTask only.
    MoveTask,
    /// Receive, send and delete.
    Receive,
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Method::Auto),
            "move-task" => Ok(Method::MoveTask),
            "receive" => Ok(Method::Receive),
            o => Err(format!(
                "unknown --method {o:?}: expected auto, move-task or receive"
            )),
        }
    }
}

/// Options of a cloud redrive.
#[derive(Debug, Clone)]
pub struct RedriveOptions {
    /// Messages per second.
    pub rate: u32,
    /// How long to wait for the work queue to drain afterwards.
    pub wait: Duration,
    /// How to move.
    pub method: Method,
}

/// What a cloud redrive did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CloudRedrive {
    /// The method used.
    pub method: String,
    /// Why `auto` fell back, when it did.
    pub fallback_reason: Option<String>,
    /// Messages in the dead-letter queue before.
    pub dead_letters_before: u64,
    /// Messages moved to the work queue.
    pub moved: u64,
    /// Messages the work queue refused (they stay in the dead-letter queue).
    pub not_moved: u64,
    /// Whether the work queue drained within `--wait`.
    pub drained: bool,
    /// Messages in the dead-letter queue after waiting: what failed again
    /// (and anything else dead-lettered meanwhile).
    pub failed_again: Option<u64>,
    /// Messages moved that did not come back to the dead-letter queue.
    pub came_back: Option<u64>,
}

async fn queue_arn(c: &Clients, url: &str) -> Result<String> {
    c.sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| anyhow!("GetQueueAttributes {url}: {}", DisplayErrorContext(&e)))?
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or_else(|| anyhow!("GetQueueAttributes {url}: no QueueArn"))
}

/// Start a move task and follow it to the end (bounded by `limit`).
async fn move_task(
    c: &Clients,
    dlq_arn: &str,
    work_arn: &str,
    rate: u32,
    limit: Duration,
) -> Result<u64> {
    let handle = c
        .sqs
        .start_message_move_task()
        .source_arn(dlq_arn)
        .destination_arn(work_arn)
        .max_number_of_messages_per_second(rate.min(500) as i32)
        .send()
        .await
        .map_err(|e| anyhow!("StartMessageMoveTask: {}", DisplayErrorContext(&e)))?
        .task_handle
        .unwrap_or_default();
    let bar = crate::ops::spinner("moving dead letters (StartMessageMoveTask)");
    let began = Instant::now();
    loop {
        let tasks = c
            .sqs
            .list_message_move_tasks()
            .source_arn(dlq_arn)
            .max_results(10)
            .send()
            .await
            .map_err(|e| anyhow!("ListMessageMoveTasks: {}", DisplayErrorContext(&e)))?
            .results
            .unwrap_or_default();
        let task = tasks
            .iter()
            .find(|t| t.task_handle.as_deref() == Some(handle.as_str()))
            .or_else(|| tasks.first());
        if let Some(t) = task {
            let moved = t.approximate_number_of_messages_moved.max(0) as u64;
            bar.set_message(format!(
                "moving dead letters: {moved} of {} moved",
                t.approximate_number_of_messages_to_move.unwrap_or(0)
            ));
            match t.status.as_deref() {
                Some("COMPLETED") => {
                    bar.finish_and_clear();
                    return Ok(moved);
                }
                Some("FAILED") | Some("CANCELLED") => {
                    bar.finish_and_clear();
                    bail!(
                        "message move task {}: {} after {moved} messages: {}",
                        handle,
                        t.status.as_deref().unwrap_or_default(),
                        t.failure_reason.as_deref().unwrap_or("no reason given")
                    );
                }
                _ => {}
            }
        }
        if began.elapsed() > limit {
            bar.finish_and_clear();
            bail!("message move task {handle} still running after {limit:?}; `etl status` shows what is left");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Receive from the dead-letter queue, send to the work queue, then delete;
/// at most `budget` messages, at `rate` per second.
async fn receive_send_delete(
    c: &Clients,
    dlq: &str,
    work: &str,
    rate: u32,
    budget: u64,
) -> Result<(u64, u64)> {
    let limiter = RateLimiter::per_second(f64::from(rate.max(1)));
    let bar = crate::ops::counter_bar(budget, "moving dead letters");
    let (mut moved, mut not_moved) = (0u64, 0u64);
    // Every receive counts against the budget, moved or not: a work queue
    // that refuses every send cannot keep this loop going.
    let mut received = 0u64;
    let mut empty = 0;
    while received < budget && empty < 2 {
        let out = c
            .sqs
            .receive_message()
            .queue_url(dlq)
            .max_number_of_messages(10.min((budget - received).max(1)) as i32)
            .wait_time_seconds(1)
            .visibility_timeout(120)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(|e| anyhow!("ReceiveMessage {dlq}: {}", DisplayErrorContext(&e)))?;
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            empty += 1;
            continue;
        }
        empty = 0;
        received += messages.len() as u64;
        let mut entries = Vec::new();
        let mut sizes = Vec::new();
        let mut handles = HashMap::new();
        for (i, m) in messages.iter().enumerate() {
            limiter.acquire().await;
            let id = format!("m{i}");
            let body = m.body.clone().unwrap_or_default();
            let mut size = body.len();
            let mut e = SendMessageBatchRequestEntry::builder()
                .id(&id)
                .message_body(body);
            // The reasons stay with the message: a consumer ignores them,
            // an operator reading the queue later still sees its history.
            for (k, v) in m.message_attributes.clone().unwrap_or_default() {
                size += k.len() + v.data_type().len() + v.string_value().map_or(0, str::len);
                e = e.message_attributes(k, v);
            }
            sizes.push(size);
            entries.push(
                e.build()
                    .map_err(|e| anyhow!("SendMessageBatch entry: {e}"))?,
            );
            handles.insert(id, m.receipt_handle.clone().unwrap_or_default());
        }
        // Ten entries fit one call only while their bodies and attributes
        // stay within SQS's batch limit: packed messages are near it alone.
        let ranges = split_sizes(&sizes).map_err(|i| {
            anyhow!(
                "dead letter {} is {} bytes, over SQS's batch limit",
                messages[i].message_id().unwrap_or_default(),
                sizes[i]
            )
        })?;
        let mut successful = Vec::new();
        for range in ranges {
            let chunk = entries[range].to_vec();
            let sent = c
                .sqs
                .send_message_batch()
                .queue_url(work)
                .set_entries(Some(chunk))
                .send()
                .await
                .map_err(|e| anyhow!("SendMessageBatch {work}: {}", DisplayErrorContext(&e)))?;
            for f in sent.failed() {
                not_moved += 1;
                eprintln!(
                    "could not move a message ({}: {}); it stays in the dead-letter queue",
                    f.code(),
                    f.message().unwrap_or_default()
                );
            }
            successful.extend(sent.successful().iter().map(|s| s.id().to_owned()));
        }
        let deletes: Vec<DeleteMessageBatchRequestEntry> = successful
            .iter()
            .filter_map(|id| handles.get(id).map(|h| (id, h)))
            .map(|(id, h)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(id)
                    .receipt_handle(h)
                    .build()
                    .map_err(|e| anyhow!("DeleteMessageBatch entry: {e}"))
            })
            .collect::<Result<_>>()?;
        let n = deletes.len() as u64;
        if !deletes.is_empty() {
            let del = c
                .sqs
                .delete_message_batch()
                .queue_url(dlq)
                .set_entries(Some(deletes))
                .send()
                .await
                .map_err(|e| anyhow!("DeleteMessageBatch {dlq}: {}", DisplayErrorContext(&e)))?;
            for f in del.failed() {
                eprintln!(
                    "moved a message but could not delete it from the dead-letter queue ({}): it will be redriven again",
                    f.code()
                );
            }
        }
        moved += n;
        bar.set_position(moved);
    }
    bar.finish_and_clear();
    Ok((moved, not_moved))
}

/// `etl redrive --stack`.
pub async fn redrive(t: &Target, o: RedriveOptions, json: bool) -> Result<ExitCode> {
    let c = clients().await?;
    let s = resolve(t, &c).await?;
    let dlq = s
        .need(
            &s.dlq_url,
            "dead-letter queue",
            "dlq-url",
            "WorkDeadLetterQueueUrl",
        )?
        .to_owned();
    let work = s
        .need(&s.queue_url, "work queue", "queue-url", "WorkQueueUrl")?
        .to_owned();
    let before = queue_depth(&c, &dlq).await?;
    let waiting = before.visible + before.delayed;
    let mut r = CloudRedrive {
        dead_letters_before: waiting + before.in_flight,
        ..Default::default()
    };
    // Bounded: what is there now, plus what arrives while moving (a little).
    let budget = waiting + before.in_flight + 100;
    let limit =
        Duration::from_secs(60) + Duration::from_secs(budget / u64::from(o.rate.max(1)) * 2);
    (r.moved, r.not_moved) = match o.method {
        Method::Receive => {
            r.method = "receive".into();
            receive_send_delete(&c, &dlq, &work, o.rate, budget).await?
        }
        Method::MoveTask | Method::Auto => {
            let arns = async {
                Ok::<_, anyhow::Error>((queue_arn(&c, &dlq).await?, queue_arn(&c, &work).await?))
            }
            .await?;
            match move_task(&c, &arns.0, &arns.1, o.rate, limit).await {
                Ok(n) => {
                    r.method = "move-task".into();
                    (n, 0)
                }
                Err(e)
                    if o.method == Method::Auto
                        && e.to_string().starts_with("StartMessageMoveTask") =>
                {
                    eprintln!("StartMessageMoveTask is not available here ({e:#}); moving by receive, send and delete");
                    r.fallback_reason = Some(format!("{e:#}"));
                    r.method = "receive".into();
                    receive_send_delete(&c, &dlq, &work, o.rate, budget).await?
                }
                Err(e) => return Err(e),
            }
        }
    };
    if !o.wait.is_zero() && r.moved > 0 {
        let bar = crate::ops::spinner("waiting for the consumer");
        let began = Instant::now();
        loop {
            let q = queue_depth(&c, &work).await?;
            bar.set_message(format!(
                "waiting for the consumer: {} waiting, {} in flight",
                q.visible, q.in_flight
            ));
            if q.visible + q.in_flight + q.delayed == 0 {
                r.drained = true;
                break;
            }
            if began.elapsed() >= o.wait {
                break;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        bar.finish_and_clear();
        let after = queue_depth(&c, &dlq).await?;
        let failed = after.visible + after.in_flight + after.delayed;
        r.failed_again = Some(failed);
        // Until the work queue drained, what is not back yet may still be.
        r.came_back = r.drained.then(|| r.moved.saturating_sub(failed));
    }
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&r)?))?;
    } else {
        let mut t = String::new();
        let _ = writeln!(t, "dead letters before {:>10}", r.dead_letters_before);
        let _ = writeln!(t, "moved               {:>10}  ({})", r.moved, r.method);
        if r.not_moved > 0 {
            let _ = writeln!(
                t,
                "not moved           {:>10}  (refused by the work queue; still dead-lettered)",
                r.not_moved
            );
        }
        match (r.failed_again, r.came_back) {
            (Some(f), b) => {
                if let Some(b) = b {
                    let _ = writeln!(t, "came back           {b:>10}  (not dead-lettered again)");
                }
                let _ = writeln!(
                    t,
                    "failed again        {f:>10}  (in the dead-letter queue now)"
                );
                if !r.drained {
                    let _ = writeln!(
                        t,
                        "the work queue had not drained after {:?}: run `etl status` later",
                        o.wait
                    );
                }
            }
            _ => {
                let _ = writeln!(t, "not waited for: `etl status` shows what failed again");
            }
        }
        emit(&t)?;
    }
    Ok(if r.not_moved > 0 {
        ExitCode::FAILURE
    } else if r.failed_again.is_some_and(|f| f > 0)
        || (!o.wait.is_zero() && !r.drained && r.moved > 0)
    {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}
