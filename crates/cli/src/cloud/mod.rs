//! The operator's commands on a deployed stack (the `cloud` feature).
//!
//! Resources are found from the CloudFormation stack's outputs
//! (DescribeStacks), and each can be named (or overridden) by a flag or
//! environment variable, so the commands also work on resources created by
//! hand or on a local emulator (`AWS_ENDPOINT_URL`). Every loop over an AWS
//! API is bounded; long ones show progress on a terminal.

mod reconcile;
mod redrive;
mod status;

use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use aws_sdk_cloudformation::error::DisplayErrorContext;
use chrono::{DateTime, Utc};
use etl_aws::athena::AthenaQuery;
use etl_aws::Clients;
use etl_local::format::{render, OutputFormat};

pub use reconcile::reconcile;
pub use redrive::{redrive, RedriveOptions};
pub use status::status;

use crate::ops::{emit, human_bytes, write_report, REPORT_SQL};
use crate::Target;

/// Whether this build has the cloud commands.
pub const AVAILABLE: bool = true;

/// Athena's list price, USD per TB scanned.
const ATHENA_USD_PER_TB: f64 = 5.0;

/// The resources of one deployed pipeline.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Stack {
    /// The CloudFormation stack, when resources came from one.
    pub name: Option<String>,
    /// Source table.
    pub source_table: Option<String>,
    /// Producer state table.
    pub state_table: Option<String>,
    /// Work queue URL.
    pub queue_url: Option<String>,
    /// Dead-letter queue URL.
    pub dlq_url: Option<String>,
    /// Lake bucket.
    pub bucket: Option<String>,
    /// Key prefix of the table (`<prefix>/sentiment/`).
    pub table_prefix: Option<String>,
    /// Glue database.
    pub database: Option<String>,
    /// Athena workgroup.
    pub workgroup: Option<String>,
    /// Producer function.
    pub producer_function: Option<String>,
    /// The table format the stack was deployed with (output `LakeTableFormat`:
    /// `hive` or `delta`); unknown for resources given by flags.
    pub table_format: Option<String>,
}

impl Stack {
    /// A resource the command needs, or an error saying where it comes from.
    pub fn need<'a>(
        &'a self,
        value: &'a Option<String>,
        what: &str,
        flag: &str,
        output: &str,
    ) -> Result<&'a str> {
        value.as_deref().ok_or_else(|| {
            anyhow!(
                "no {what}: pass --{flag} or use a stack whose outputs include {output}{}",
                self.name
                    .as_ref()
                    .map(|n| format!(" (stack {n} has none)"))
                    .unwrap_or_default()
            )
        })
    }
}

/// Split `s3://bucket/key/prefix/` into the bucket and the key prefix
/// (ending in `/`, or empty).
pub fn parse_s3_location(loc: &str) -> Result<(String, String)> {
    let rest = loc
        .strip_prefix("s3://")
        .ok_or_else(|| anyhow!("lake location {loc:?} is not an s3:// URL"))?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        bail!("lake location {loc:?} names no bucket");
    }
    let mut key = key.trim_start_matches('/').to_owned();
    if !key.is_empty() && !key.ends_with('/') {
        key.push('/');
    }
    Ok((bucket.to_owned(), key))
}

/// The AWS clients (region, credentials and `AWS_ENDPOINT_URL` from the
/// environment, as the SDK reads them).
pub async fn clients() -> Result<Clients> {
    Clients::from_env()
        .await
        .map_err(|e| anyhow!("reading the AWS configuration: {e}"))
}

/// Amazon Comprehend as the pipeline's analyzer (`etl eval --engine
/// comprehend`): the same client and batching the consumer uses.
pub async fn comprehend_analyzer(
    language: &str,
) -> Result<std::sync::Arc<dyn etl_core::SentimentAnalyzer>> {
    let c = clients().await?;
    let mode: etl_aws::comprehend::LanguageMode = language
        .parse()
        .map_err(|e: String| anyhow!("--language {language}: {e}"))?;
    Ok(std::sync::Arc::new(
        etl_aws::comprehend::ComprehendAnalyzer::new(c.comprehend.clone(), mode),
    ))
}

/// Resolve the target's resources: the stack's outputs, then the flags.
pub async fn resolve(t: &Target, c: &Clients) -> Result<Stack> {
    let mut s = Stack {
        name: t.stack.clone(),
        ..Default::default()
    };
    if let Some(name) = &t.stack {
        let cfn = aws_sdk_cloudformation::Client::new(&c.config);
        let out = cfn
            .describe_stacks()
            .stack_name(name)
            .send()
            .await
            .map_err(|e| anyhow!("DescribeStacks {name}: {}", DisplayErrorContext(&e)))?;
        let stack = out
            .stacks
            .unwrap_or_default()
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("DescribeStacks {name}: no such stack"))?;
        for o in stack.outputs.unwrap_or_default() {
            let (Some(k), Some(v)) = (o.output_key, o.output_value) else {
                continue;
            };
            match k.as_str() {
                "SourceTableName" => s.source_table = Some(v),
                "StateTableName" => s.state_table = Some(v),
                "WorkQueueUrl" => s.queue_url = Some(v),
                "WorkDeadLetterQueueUrl" => s.dlq_url = Some(v),
                "LakeLocation" => {
                    let (b, p) = parse_s3_location(&v)
                        .with_context(|| format!("stack {name} output LakeLocation"))?;
                    s.bucket = Some(b);
                    s.table_prefix = Some(p);
                }
                "GlueDatabaseName" => s.database = Some(v),
                "AthenaWorkGroupName" => s.workgroup = Some(v),
                "ProducerFunctionArn" => s.producer_function = Some(v),
                "LakeTableFormat" => s.table_format = Some(v),
                _ => {}
            }
        }
    }
    let r = &t.resources;
    let set = |slot: &mut Option<String>, v: &Option<String>| {
        if v.is_some() {
            slot.clone_from(v);
        }
    };
    set(&mut s.source_table, &r.source_table);
    set(&mut s.state_table, &r.state_table);
    set(&mut s.queue_url, &r.queue_url);
    set(&mut s.dlq_url, &r.dlq_url);
    set(&mut s.database, &r.database);
    set(&mut s.workgroup, &r.workgroup);
    set(&mut s.producer_function, &r.producer_function);
    if let Some(loc) = &r.lake_location {
        let (b, p) = parse_s3_location(loc).context("--lake-location")?;
        s.bucket = Some(b);
        s.table_prefix = Some(p);
        // Another location than the stack's: its own log says its format.
        s.table_format = None;
    }
    Ok(s)
}

fn athena(s: &Stack, c: &Clients) -> Result<AthenaQuery> {
    let wg = s.need(
        &s.workgroup,
        "Athena workgroup",
        "workgroup",
        "AthenaWorkGroupName",
    )?;
    let db = s.need(&s.database, "Glue database", "database", "GlueDatabaseName")?;
    Ok(AthenaQuery::new(c.athena.clone(), wg, db))
}

/// `etl query --athena`: the statement in the stack's workgroup, paged,
/// with the bytes it scanned and what that costs.
pub async fn query(t: &Target, sql: &str, format: OutputFormat) -> Result<ExitCode> {
    let c = clients().await?;
    let s = resolve(t, &c).await?;
    let q = athena(&s, &c)?;
    let bar = crate::ops::spinner("waiting for Athena");
    let result = q.query_with_stats(sql).await;
    bar.finish_and_clear();
    let (batch, stats) = result.context("Athena query")?;
    let mut text = render(&[batch], format)?;
    if format == OutputFormat::Table {
        text.push('\n');
    }
    emit(&text)?;
    eprintln!(
        "scanned {} in {} ms, about ${:.6} at ${ATHENA_USD_PER_TB}/TB (10 MB minimum); query {}",
        human_bytes(stats.data_scanned_bytes),
        stats.engine_execution_ms,
        stats.cost_usd(ATHENA_USD_PER_TB),
        stats.query_execution_id
    );
    Ok(ExitCode::SUCCESS)
}

/// The producer event a backfill sends (what its scheduler input accepts).
pub fn backfill_event(full: bool, since: Option<DateTime<Utc>>) -> serde_json::Value {
    match (full, since) {
        (_, Some(t)) => {
            serde_json::json!({ "since": t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true) })
        }
        _ => serde_json::json!({ "mode": "full" }),
    }
}

/// `etl backfill --stack`: invoke the producer asynchronously with a
/// `full` or `since` request. The run then goes on in Lambda, checkpointing
/// across invocations; `etl status` follows it.
pub async fn backfill(
    t: &Target,
    full: bool,
    since: Option<DateTime<Utc>>,
    json: bool,
) -> Result<ExitCode> {
    let c = clients().await?;
    let s = resolve(t, &c).await?;
    let function = s.need(
        &s.producer_function,
        "producer function",
        "producer-function",
        "ProducerFunctionArn",
    )?;
    let event = backfill_event(full, since);
    let lambda = aws_sdk_lambda::Client::new(&c.config);
    let out = lambda
        .invoke()
        .function_name(function)
        .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
        .payload(aws_sdk_lambda::primitives::Blob::new(event.to_string()))
        .send()
        .await
        .map_err(|e| anyhow!("Invoke {function}: {}", DisplayErrorContext(&e)))?;
    if let Some(err) = out.function_error() {
        bail!("Invoke {function}: the function reported {err}");
    }
    let result = serde_json::json!({
        "function": function,
        "event": event,
        "status_code": out.status_code(),
        "accepted": out.status_code() == 202,
    });
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&result)?))?;
    } else {
        emit(&format!(
            "backfill started: {function} invoked asynchronously with {event} (status {}); follow it with `etl status{}`\n",
            out.status_code(),
            s.name.as_ref().map(|n| format!(" --stack {n}")).unwrap_or_default()
        ))?;
    }
    if out.status_code() != 202 {
        bail!(
            "Invoke {function}: expected status 202 for an asynchronous invocation, got {}",
            out.status_code()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `etl report --stack`: the daily view from Athena, as the HTML report.
pub async fn report(t: &Target, out: &Path) -> Result<ExitCode> {
    let c = clients().await?;
    let s = resolve(t, &c).await?;
    let q = athena(&s, &c)?;
    let bar = crate::ops::spinner("waiting for Athena");
    let result = q.query_with_stats(REPORT_SQL).await;
    bar.finish_and_clear();
    let (batch, stats) = result.context("Athena query of daily_sentiment")?;
    let json = render(&[batch], OutputFormat::Json)?;
    let rows = crate::report::parse_rows(&json)?;
    eprintln!(
        "scanned {}, about ${:.6}; query {}",
        human_bytes(stats.data_scanned_bytes),
        stats.cost_usd(ATHENA_USD_PER_TB),
        stats.query_execution_id
    );
    write_report(
        out,
        &format!(
            "Sentiment, {}",
            s.name
                .as_deref()
                .map_or_else(|| "deployed pipeline".to_owned(), |n| format!("stack {n}"))
        ),
        &format!(
            "Athena workgroup {}, database {}",
            s.workgroup.as_deref().unwrap_or("-"),
            s.database.as_deref().unwrap_or("-")
        ),
        &rows,
    )
}

/// The Parquet objects that hold the table's rows, as its readers see them,
/// with their sizes. A Hive table is every
/// `.parquet` under its prefix; a Delta table is the live files its log
/// names (not the files a compaction replaced, an attempt that lost its
/// commit, or the checkpoints, which hold no rows). The stack's
/// `LakeTableFormat` output says which; for resources given by flags, a
/// `_delta_log/` under the prefix does.
pub async fn lake_objects(s: &Stack, c: &Clients) -> Result<Vec<(String, u64)>> {
    let bucket = s.need(&s.bucket, "lake bucket", "lake-location", "LakeLocation")?;
    let prefix = s.table_prefix.clone().unwrap_or_default();
    let delta = match s.table_format.as_deref() {
        Some("delta") => true,
        Some(_) => false,
        None => {
            let log = format!("{prefix}_delta_log/");
            let page =
                c.s3.list_objects_v2()
                    .bucket(bucket)
                    .prefix(&log)
                    .max_keys(1)
                    .send()
                    .await
                    .map_err(|e| {
                        anyhow!(
                            "ListObjectsV2 s3://{bucket}/{log}: {}",
                            DisplayErrorContext(&e)
                        )
                    })?;
            !page.contents().is_empty()
        }
    };
    if !delta {
        return reconcile::list_parquet(c, bucket, &prefix).await;
    }
    let location = format!("s3://{bucket}/{prefix}");
    let lake = etl_aws::delta::existing_delta_lake(&c.config, &location).await?;
    let (_, files) = etl_delta::maintain::live_files(&lake)
        .await
        .with_context(|| format!("reading the Delta log of {location}"))?;
    Ok(files
        .into_iter()
        .map(|(path, size)| (format!("{prefix}{path}"), size))
        .collect())
}

/// The stack's lake as a Delta table (`etl compact --stack`, `etl vacuum
/// --stack`): `s3://<bucket>/<prefix>`, as it is. Credentials, region and
/// `AWS_ENDPOINT_URL` come from the environment, as for the SDK clients.
pub async fn delta_table(t: &Target) -> Result<etl_delta::DeltaLake> {
    let c = clients().await?;
    let s = resolve(t, &c).await?;
    let bucket = s.need(&s.bucket, "lake bucket", "lake-location", "LakeLocation")?;
    let prefix = s.table_prefix.clone().unwrap_or_default();
    Ok(etl_aws::delta::existing_delta_lake(&c.config, &format!("s3://{bucket}/{prefix}")).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lake_locations_split_into_bucket_and_prefix() {
        assert_eq!(
            parse_s3_location("s3://b/p/sentiment/").unwrap(),
            ("b".into(), "p/sentiment/".into())
        );
        assert_eq!(
            parse_s3_location("s3://b/p/sentiment").unwrap(),
            ("b".into(), "p/sentiment/".into())
        );
        assert_eq!(
            parse_s3_location("s3://b").unwrap(),
            ("b".into(), String::new())
        );
        assert!(parse_s3_location("https://b/x").is_err());
        assert!(parse_s3_location("s3:///x").is_err());
    }

    #[test]
    fn backfill_events_are_what_the_producer_accepts() {
        assert_eq!(
            backfill_event(true, None),
            serde_json::json!({"mode": "full"})
        );
        let t = DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            backfill_event(false, Some(t)),
            serde_json::json!({"since": "2026-11-01T00:00:00Z"})
        );
    }
}
