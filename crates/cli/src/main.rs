//! `etl`: run the sentiment pipeline locally, and operate it, on a local
//! lake or a deployed stack: status, redrive, reconcile, backfill, query,
//! report.
//!
//! Exit codes: 0 success (rejected input lines are reported, not fatal);
//! 1 the command failed (unreadable input, unwritable lake, damaged lake
//! state, the lake locked by another run, bad SQL, an AWS call that failed);
//! 2 usage error; 3 the work completed but some of it was dead-lettered
//! (`run`, `redrive`: see its summary); 4 `reconcile` found versions missing
//! from the lake or in it more than once.

/// The commands on a deployed stack (the `cloud` feature), or, in the
/// default build, stand-ins that say which build has them.
#[cfg(feature = "cloud")]
mod cloud;
#[cfg(not(feature = "cloud"))]
#[path = "cloud_off.rs"]
mod cloud;
mod eval;
mod gen;
mod ops;
mod report;
mod table;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use etl_core::{Codec, Engine, FieldMap, QueryEngine};
use etl_local::format::{render, OutputFormat};
use etl_local::{DataFusionQuery, InputFormat, RunConfig, RunCounters};
use indicatif::{ProgressBar, ProgressStyle};

const EXAMPLES: &str = "Examples:
  etl run --input posts.jsonl --lake lake          score new and changed posts into ./lake
  etl status --lake lake                           last runs, dead letters, rejects, partitions
  etl redrive --lake lake                          send dead-lettered work through again
  etl reconcile --lake lake --input posts.jsonl    every version in the lake exactly once?
  etl backfill --lake lake --input posts.jsonl --since 2026-11-01T00:00:00Z
  etl report --lake lake                           HTML report with a chart (lake/report.html)
  etl run --input posts.jsonl --lake dlake --table-format delta   the lake as a Delta table
  etl compact --lake dlake                         small files into 128 MiB ones, one commit
  etl vacuum --lake dlake --retention-hours 168    delete files no version of the last week uses
  etl query --lake lake \"SELECT * FROM daily_sentiment ORDER BY dt\"
  etl status --stack sentiment-etl                 the same for a deployed stack (cloud build)
  etl query --stack sentiment-etl --athena \"SELECT count(*) FROM sentiment\"

Exit codes: 0 success; 1 failure (the error names its cause); 2 usage error;
3 completed but some work was dead-lettered; 4 reconcile found missing or duplicated versions.";

#[derive(Parser)]
#[command(
    name = "etl",
    version,
    about = "Serverless sentiment ETL: run it locally (VADER into a Parquet lake, SQL with DataFusion) and operate it, locally or on a deployed stack.",
    after_help = EXAMPLES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipeline: input file → queue → VADER → Parquet lake → catalog.
    Run(RunArgs),
    /// Run SQL against a lake (tables: sentiment, daily_sentiment, sentiment_latest).
    Query(QueryArgs),
    /// Write deterministic synthetic posts as JSON lines.
    Gen(GenArgs),
    /// What happened and what is waiting: state, lock, last runs, queue and
    /// dead letters, partitions, rejects.
    Status(StatusArgs),
    /// Send dead-lettered work back through the pipeline and report what
    /// came back and what failed again.
    Redrive(RedriveArgs),
    /// Compare the source with the lake: versions missing or duplicated
    /// (exit 4 when there are any).
    Reconcile(ReconcileArgs),
    /// Re-send everything (`--full`) or everything updated since a time.
    Backfill(BackfillArgs),
    /// Write an HTML report with a chart of daily sentiment.
    Report(ReportArgs),
    /// Rewrite each partition's small files into files of a target size, in
    /// one atomic commit (Delta lakes; a Hive lake cannot be compacted safely).
    Compact(CompactArgs),
    /// Delete files no recent version of a Delta lake refers to: those
    /// compaction replaced and objects never committed.
    Vacuum(VacuumArgs),
    /// How right an engine's labels are on texts people labelled: accuracy,
    /// macro-F1, per-class precision and recall, the confusion matrix.
    Eval(EvalArgs),
}

/// Engines `etl eval` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum EvalEngine {
    /// The embedded VADER, as `etl run` and the VADER consumer score.
    Vader,
    /// Amazon Comprehend (cloud build; AWS credentials; billed per text).
    Comprehend,
    /// The embedded transformer engine (not in this build yet).
    Minilm,
    /// The embedded engine with Comprehend where it is unsure (not in this build yet).
    Cascade,
}

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  etl eval --labels tweets.csv\n  etl eval --labels labelled.jsonl --json\n  etl eval --labels tweets.csv --engine comprehend --language en   (cloud build; billed)"
)]
struct EvalArgs {
    /// Labelled texts: JSON lines, or CSV with a header (by the extension),
    /// with a text and a label (negative, neutral, positive; mixed is
    /// counted apart).
    #[arg(long)]
    labels: PathBuf,
    /// The engine to evaluate.
    #[arg(long, value_enum, default_value = "vader")]
    engine: EvalEngine,
    /// Field holding the text.
    #[arg(long, default_value = "text")]
    text_field: String,
    /// Field holding the label (default: `label`, else `sentiment`).
    #[arg(long)]
    label_field: Option<String>,
    /// Language for Comprehend (`en`, … or `auto`).
    #[arg(long, default_value = "en")]
    language: String,
    /// Print the figures as JSON (fields `accuracy`, `macro_f1`, `classes`,
    /// `confusion`, …).
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct CompactArgs {
    #[command(flatten)]
    target: Target,
    /// Size the rewritten files aim for, in bytes.
    #[arg(long, default_value_t = etl_delta::maintain::DEFAULT_TARGET_SIZE)]
    target_size: u64,
    /// Only these partitions (`YYYY-MM-DD`, repeatable); all by default.
    #[arg(long = "partition")]
    partitions: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct VacuumArgs {
    #[command(flatten)]
    target: Target,
    /// Keep files any version of this many hours back still refers to (and
    /// uncommitted objects younger than that: a consumer may be about to
    /// commit them).
    #[arg(long, default_value_t = 168)]
    retention_hours: u64,
    /// Say what would be deleted, delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Where a command works: a local lake, or a deployed stack.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Target {
    /// Local lake directory (written by `etl run`).
    #[arg(long, env = "ETL_LAKE", conflicts_with = "stack")]
    pub lake: Option<PathBuf>,
    /// Deployed stack: its resources are found from the CloudFormation
    /// stack's outputs (cloud build only; flags below override them).
    #[arg(long, env = "ETL_STACK")]
    pub stack: Option<String>,
    /// The stack's resources, one flag each.
    #[command(flatten)]
    pub resources: Resources,
}

/// AWS resources of a deployed pipeline, each overriding the stack's output.
#[derive(clap::Args, Debug, Clone, Default)]
#[command(next_help_heading = "AWS resources (override the stack's outputs)")]
pub struct Resources {
    /// Source DynamoDB table (output SourceTableName).
    #[arg(long, env = "ETL_SOURCE_TABLE")]
    pub source_table: Option<String>,
    /// Producer state table (output StateTableName).
    #[arg(long, env = "ETL_STATE_TABLE")]
    pub state_table: Option<String>,
    /// Work queue URL (output WorkQueueUrl).
    #[arg(long, env = "ETL_QUEUE_URL")]
    pub queue_url: Option<String>,
    /// Dead-letter queue URL (output WorkDeadLetterQueueUrl).
    #[arg(long, env = "ETL_DLQ_URL")]
    pub dlq_url: Option<String>,
    /// Lake location, s3://bucket/prefix/sentiment/ (output LakeLocation).
    #[arg(long, env = "ETL_LAKE_LOCATION")]
    pub lake_location: Option<String>,
    /// Glue database (output GlueDatabaseName).
    #[arg(long, env = "ETL_GLUE_DATABASE")]
    pub database: Option<String>,
    /// Athena workgroup (output AthenaWorkGroupName).
    #[arg(long, env = "ETL_WORKGROUP")]
    pub workgroup: Option<String>,
    /// Producer function name or ARN (output ProducerFunctionArn).
    #[arg(long, env = "ETL_PRODUCER_FUNCTION")]
    pub producer_function: Option<String>,
}

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  etl status --lake lake\n  etl status --stack sentiment-etl --json"
)]
struct StatusArgs {
    #[command(flatten)]
    target: Target,
    /// Runs to show.
    #[arg(long, default_value_t = etl_local::status::RECENT_RUNS)]
    runs: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  etl redrive --lake lake\n  etl redrive --stack sentiment-etl --rate 50 --wait 600"
)]
struct RedriveArgs {
    #[command(flatten)]
    target: Target,
    /// Cloud: messages per second moved from the dead-letter queue.
    #[arg(long, default_value_t = 50)]
    rate: u32,
    /// Cloud: seconds to wait for the moved messages to be consumed and
    /// report what failed again (0: return once they are moved).
    #[arg(long, default_value_t = 300)]
    wait: u64,
    /// Cloud: how to move them: `auto` (StartMessageMoveTask, falling back
    /// to receive, send and delete where the API is missing), `move-task`
    /// or `receive`.
    #[arg(long, default_value = "auto", value_parser = ["auto", "move-task", "receive"])]
    method: String,
    /// Local: receives before a message that fails again is dead-lettered again.
    #[arg(long, default_value_t = 3)]
    max_receive_count: u32,
    /// Local: when a run holds the lake, wait for it.
    #[arg(long)]
    wait_lock: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  etl reconcile --lake lake --input posts.jsonl\n  etl reconcile --stack sentiment-etl --json"
)]
struct ReconcileArgs {
    #[command(flatten)]
    target: Target,
    /// Local: the input file that is the source.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Local: input format (default from the extension).
    #[arg(long)]
    format: Option<InputFormat>,
    #[command(flatten)]
    fields: FieldArgs,
    /// Missing and duplicated versions listed (the counts are always complete).
    #[arg(long, default_value_t = 20)]
    show: usize,
    /// Print JSON instead of text (every missing and duplicated version).
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  etl backfill --lake lake --input posts.jsonl --full\n  etl backfill --stack sentiment-etl --since 2026-11-01T00:00:00Z"
)]
struct BackfillArgs {
    #[command(flatten)]
    target: Target,
    /// Re-send every record updated at or after this time (RFC 3339).
    #[arg(long, conflicts_with = "full", required_unless_present = "full")]
    since: Option<chrono::DateTime<chrono::Utc>>,
    /// Re-send everything.
    #[arg(long)]
    full: bool,
    /// Local: the input file.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  etl report --lake lake\n  etl report --stack sentiment-etl -o report.html"
)]
struct ReportArgs {
    #[command(flatten)]
    target: Target,
    /// Output file (default: <lake>/report.html locally, report.html for a stack).
    #[arg(long, short)]
    output: Option<PathBuf>,
}

#[derive(clap::Args, Clone)]
struct FieldArgs {
    /// Source attribute holding the id.
    #[arg(long, default_value = "id")]
    id_field: String,
    /// Source attribute holding the text.
    #[arg(long, default_value = "text")]
    text_field: String,
    /// Source attribute holding the creation time.
    #[arg(long, default_value = "created_at")]
    created_at_field: String,
    /// Source attribute holding the update time.
    #[arg(long, default_value = "updated_at")]
    updated_at_field: String,
}

impl FieldArgs {
    fn field_map(&self) -> FieldMap {
        FieldMap {
            id: self.id_field.clone(),
            text: self.text_field.clone(),
            created_at: self.created_at_field.clone(),
            updated_at: self.updated_at_field.clone(),
            passthrough: Vec::new(),
        }
    }
}

#[derive(clap::Args)]
struct RunArgs {
    /// Input file: JSON lines (one object per line) or CSV with a header.
    #[arg(long)]
    input: PathBuf,
    /// Lake directory (created if missing).
    #[arg(long)]
    lake: PathBuf,
    /// Input format; guessed from the extension (.csv is CSV, else JSON lines).
    #[arg(long)]
    format: Option<InputFormat>,
    /// Sentiment engine. Locally only `vader` is available (Comprehend needs AWS).
    #[arg(long, default_value = "vader")]
    engine: Engine,
    /// Parallel consumers.
    #[arg(long, default_value_t = default_workers())]
    workers: usize,
    /// Messages per consumer batch (like the SQS event source batch size).
    #[arg(long, default_value_t = 10)]
    batch_size: usize,
    /// Byte budget of one queue message (many records are packed into each).
    #[arg(long, default_value_t = etl_core::message::DEFAULT_MESSAGE_BUDGET)]
    message_bytes: usize,
    /// Parquet compression: snappy, zstd or none.
    #[arg(long, default_value = "snappy")]
    compression: Codec,
    /// Leave the `text` column out of the lake.
    #[arg(long)]
    no_text: bool,
    /// Table format of a new lake: `hive` (partition directories) or `delta`
    /// (a Delta Lake table: atomic commits, once per message; compaction). An
    /// existing lake keeps the format it was created with.
    #[arg(long, env = "TABLE_FORMAT")]
    table_format: Option<etl_core::output::TableFormat>,
    /// Send every record again, ignoring (and not reading) what earlier runs
    /// sent, and rebuild the lake's state from what lands. Recovers a damaged
    /// or old-format state.
    #[arg(long)]
    full: bool,
    /// When another `etl run` holds the lake, wait for it instead of exiting 1.
    #[arg(long)]
    wait_lock: bool,
    /// Receives before a failing message is dead-lettered.
    #[arg(long, default_value_t = 3)]
    max_receive_count: u32,
    /// Source attribute holding the id.
    #[arg(long, default_value = "id")]
    id_field: String,
    /// Source attribute holding the text.
    #[arg(long, default_value = "text")]
    text_field: String,
    /// Source attribute holding the creation time.
    #[arg(long, default_value = "created_at")]
    created_at_field: String,
    /// Source attribute holding the update time.
    #[arg(long, default_value = "updated_at")]
    updated_at_field: String,
    /// Print the summary as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Do not print the daily_sentiment table after the run.
    #[arg(long)]
    no_table: bool,
    /// After the run, write the HTML report to this file (and print its path
    /// instead of the daily_sentiment table).
    #[arg(long)]
    report: Option<PathBuf>,
}

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  etl query --lake lake \"SELECT * FROM daily_sentiment ORDER BY dt\"\n  etl query --stack sentiment-etl --athena \"SELECT sentiment, count(*) FROM sentiment_latest GROUP BY 1\""
)]
struct QueryArgs {
    #[command(flatten)]
    target: Target,
    /// Run the query in the stack's Athena workgroup (cloud build).
    #[arg(long)]
    athena: bool,
    /// Output format: table, csv or json (one object per line).
    #[arg(long, default_value = "table")]
    format: OutputFormat,
    /// The SQL statement.
    sql: String,
}

#[derive(clap::Args)]
struct GenArgs {
    /// Number of posts.
    #[arg(long)]
    count: u64,
    /// Days the posts are spread over (ending 2026-11-01).
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output file (default: standard output).
    #[arg(long, short)]
    output: Option<PathBuf>,
}

fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ETL_LOG")
                // delta-rs's kernel reports a table that does not exist yet
                // (the first Delta run creates it) as an error of its own.
                .unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new(
                        "error,buoyant_kernel::snapshot::builder=off",
                    )
                }),
        )
        .with_writer(std::io::stderr)
        .init();
    match dispatch(cli) {
        Ok(code) => code,
        // `etl query … | head`: the reader has what it wanted.
        Err(e) if ops::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // Every cause once: library errors carry their cause's text in
            // their own message, so `{e:#}` would say it twice.
            eprintln!("error: {}", etl_core::Chain(&*e));
            ExitCode::from(1)
        }
    }
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Gen(a) => {
            let mut out: Box<dyn Write> = match &a.output {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("cannot create {}", p.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            gen::generate(&mut out, a.count, a.days, a.seed, gen::default_end())
                .context("writing generated posts")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Query(a) => {
            let rt = runtime(default_workers())?;
            if a.athena || a.target.lake.is_none() {
                return cloud_only(&a.target, "query --athena", |t| {
                    rt.block_on(cloud::query(t, &a.sql, a.format))
                });
            }
            let lake = a.target.lake.clone().expect("checked above");
            rt.block_on(async {
                let q = DataFusionQuery::open(&lake).await?;
                let batches = q.query(&a.sql).await?;
                let mut text = render(&batches, a.format)?;
                if a.format == OutputFormat::Table {
                    text.push('\n');
                }
                ops::emit(&text)?;
                Ok(ExitCode::SUCCESS)
            })
        }
        Command::Run(a) => run(a),
        Command::Eval(a) => {
            let rt = runtime(default_workers())?;
            let fields = etl_local::labels::LabelFields {
                text: a.text_field.clone(),
                label: a.label_field.clone(),
            };
            let (name, analyzer): (&str, std::sync::Arc<dyn etl_core::SentimentAnalyzer>) = match a
                .engine
            {
                EvalEngine::Vader => ("vader", std::sync::Arc::new(etl_core::VaderAnalyzer::new())),
                EvalEngine::Comprehend => {
                    if !cloud::AVAILABLE {
                        eprintln!("error: `etl eval --engine comprehend` needs the cloud build (cargo build --features cloud)");
                        return Ok(ExitCode::from(2));
                    }
                    (
                        "comprehend",
                        rt.block_on(cloud::comprehend_analyzer(&a.language))?,
                    )
                }
                EvalEngine::Minilm | EvalEngine::Cascade => {
                    eprintln!("error: the embedded engines (minilm, cascade) are not in this build of etl yet; evaluate vader or comprehend");
                    return Ok(ExitCode::from(2));
                }
            };
            rt.block_on(eval::eval(&*analyzer, name, &a.labels, &fields, a.json))
        }
        Command::Status(a) => match a.target.lake.clone() {
            Some(lake) => ops::status(&lake, a.runs, a.json),
            None => cloud_only(&a.target, "status", |t| {
                runtime(2)?.block_on(cloud::status(t, a.runs, a.json))
            }),
        },
        Command::Redrive(a) => match a.target.lake.clone() {
            Some(lake) => {
                let mut cfg = etl_local::redrive::RedriveConfig::new(lake);
                cfg.max_receive_count = a.max_receive_count.max(1);
                cfg.wait_lock = a.wait_lock;
                cfg.workers = default_workers();
                runtime(cfg.workers)?.block_on(ops::redrive(cfg, a.json))
            }
            None => cloud_only(&a.target, "redrive", |t| {
                runtime(2)?.block_on(cloud::redrive(
                    t,
                    cloud::RedriveOptions {
                        rate: a.rate.max(1),
                        wait: Duration::from_secs(a.wait),
                        method: a.method.parse().map_err(anyhow::Error::msg)?,
                    },
                    a.json,
                ))
            }),
        },
        Command::Reconcile(a) => match a.target.lake.clone() {
            Some(lake) => {
                let Some(input) = a.input.clone() else {
                    eprintln!("error: --input FILE is required with --lake: the source to reconcile the lake with");
                    return Ok(ExitCode::from(2));
                };
                runtime(default_workers())?.block_on(ops::reconcile(
                    &input,
                    a.format,
                    a.fields.field_map(),
                    &lake,
                    a.show,
                    a.json,
                ))
            }
            None => cloud_only(&a.target, "reconcile", |t| {
                runtime(2)?.block_on(cloud::reconcile(t, a.fields.field_map(), a.show, a.json))
            }),
        },
        Command::Backfill(a) => match a.target.lake.clone() {
            Some(lake) => {
                let input = a.input.clone().ok_or_else(|| {
                    anyhow::anyhow!(
                        "--input FILE is required with --lake: the file to backfill from"
                    )
                })?;
                let mut cfg = RunConfig::new(&input, &lake);
                cfg.full = a.full;
                cfg.since = a.since;
                cfg.workers = default_workers();
                run_local(cfg, a.json, false, None)
            }
            None => cloud_only(&a.target, "backfill", |t| {
                runtime(2)?.block_on(cloud::backfill(t, a.full, a.since, a.json))
            }),
        },
        Command::Compact(a) => match a.target.lake.clone() {
            Some(lake) => runtime(default_workers())?.block_on(async {
                let table = table::local_table(&lake)?;
                table::compact(&table, a.target_size, &a.partitions, a.json).await
            }),
            None => cloud_only(&a.target, "compact", |t| {
                runtime(default_workers())?.block_on(async {
                    let table = cloud::delta_table(t).await?;
                    table::compact(&table, a.target_size, &a.partitions, a.json).await
                })
            }),
        },
        Command::Vacuum(a) => {
            let retention = chrono::Duration::hours(
                i64::try_from(a.retention_hours).unwrap_or(i64::MAX / 3_600_000),
            );
            match a.target.lake.clone() {
                Some(lake) => runtime(default_workers())?.block_on(async {
                    let table = table::local_table(&lake)?;
                    table::vacuum(&table, retention, a.dry_run, a.json).await
                }),
                None => cloud_only(&a.target, "vacuum", |t| {
                    runtime(default_workers())?.block_on(async {
                        let table = cloud::delta_table(t).await?;
                        table::vacuum(&table, retention, a.dry_run, a.json).await
                    })
                }),
            }
        }
        Command::Report(a) => match a.target.lake.clone() {
            Some(lake) => {
                let out = a.output.clone().unwrap_or_else(|| lake.join("report.html"));
                runtime(default_workers())?.block_on(ops::report(&lake, &out))
            }
            None => cloud_only(&a.target, "report", |t| {
                runtime(2)?.block_on(cloud::report(
                    t,
                    &a.output
                        .clone()
                        .unwrap_or_else(|| PathBuf::from("report.html")),
                ))
            }),
        },
    }
}

/// Run a command that needs a deployed stack: with the `cloud` feature, on
/// the stack (or the resources named by flags); without it, a usage error
/// saying which build has it. Without `--lake` or `--stack` either, say so.
fn cloud_only(
    target: &Target,
    what: &str,
    f: impl FnOnce(&Target) -> Result<ExitCode>,
) -> Result<ExitCode> {
    let named = target.stack.is_some()
        || target.resources.queue_url.is_some()
        || target.resources.source_table.is_some()
        || target.resources.workgroup.is_some()
        || target.resources.state_table.is_some()
        || target.resources.lake_location.is_some()
        || target.resources.producer_function.is_some()
        || target.resources.dlq_url.is_some();
    if !named {
        eprintln!("error: `etl {what}` needs --lake DIR (a local lake) or --stack NAME (a deployed stack)");
        return Ok(ExitCode::from(2));
    }
    if !cloud::AVAILABLE {
        eprintln!(
            "error: `etl {what}` on a deployed stack needs the cloud build of etl: \
             `make etl-cloud` (cargo build --profile cli -p etl-cli --features cloud); \
             this build works on local lakes only (--lake DIR)"
        );
        return Ok(ExitCode::from(2));
    }
    f(target)
}

fn runtime(workers: usize) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run(a: RunArgs) -> Result<ExitCode> {
    if a.engine != Engine::Vader {
        anyhow::bail!(
            "engine `{}` needs AWS; `etl run` scores locally with `vader`",
            a.engine
        );
    }
    let mut cfg = RunConfig::new(&a.input, &a.lake);
    cfg.format = a.format;
    cfg.workers = a.workers.max(1);
    cfg.batch_size = a.batch_size.max(1);
    cfg.message_budget = a.message_bytes.max(1024);
    cfg.codec = a.compression;
    cfg.include_text = !a.no_text;
    cfg.table_format = a.table_format;
    cfg.full = a.full;
    cfg.wait_lock = a.wait_lock;
    cfg.on_lock_wait = |holder| {
        eprintln!("waiting for another `etl run` on this lake to finish (lock held by {holder})")
    };
    cfg.max_receive_count = a.max_receive_count.max(1);
    cfg.fields = FieldMap {
        id: a.id_field,
        text: a.text_field,
        created_at: a.created_at_field,
        updated_at: a.updated_at_field,
        passthrough: Vec::new(),
    };
    run_local(cfg, a.json, !a.no_table, a.report)
}

/// Run (or backfill) on a local lake with a progress bar, print the summary,
/// then the report's path or the daily table.
fn run_local(cfg: RunConfig, json: bool, table: bool, report: Option<PathBuf>) -> Result<ExitCode> {
    let lake = cfg.lake.clone();
    let rt = runtime(cfg.workers)?;
    let counters = Arc::new(RunCounters::default());
    let bar = progress_bar();
    let printed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let on_reject = {
        let bar = bar.clone();
        let printed = printed.clone();
        Box::new(move |r: &etl_core::Rejection| {
            // Every rejection is kept in the rejects file; the terminal gets the first 200.
            if printed.fetch_add(1, Ordering::Relaxed) < 200 {
                bar.suspend(|| eprintln!("rejected {r}"));
            }
        })
    };
    // Refreshes the bar every 100 ms; stops as soon as the run ends (the
    // sender is dropped), so it never adds a tick to the run's time.
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let ticker = {
        let (bar, counters) = (bar.clone(), counters.clone());
        std::thread::spawn(move || loop {
            bar.set_length(counters.total_bytes.load(Ordering::Relaxed).max(1));
            bar.set_position(counters.bytes_read.load(Ordering::Relaxed));
            bar.set_message(format!(
                "{} scored",
                counters.scored.load(Ordering::Relaxed)
            ));
            if stopped.recv_timeout(Duration::from_millis(100))
                != Err(std::sync::mpsc::RecvTimeoutError::Timeout)
            {
                return;
            }
        })
    };
    let result = rt.block_on(etl_local::run(cfg, counters.clone(), on_reject));
    drop(stop);
    let _ = ticker.join();
    bar.finish_and_clear();
    let summary = result?;
    let rejected = summary.produce.rejected;
    if rejected > 200 {
        eprintln!("… {} more rejected lines not shown", rejected - 200);
    }
    if json {
        ops::emit(&format!("{}\n", serde_json::to_string_pretty(&summary)?))?;
    } else {
        print_summary(&summary);
    }
    if let Some(out) = report {
        rt.block_on(ops::report(&lake, &out))?;
    } else if table && !json {
        let table = rt.block_on(async {
            let q = DataFusionQuery::open(&lake).await?;
            let b = q
                .query("SELECT dt, sentiment, records, ROUND(avg_compound, 4) AS avg_compound FROM daily_sentiment ORDER BY dt, sentiment")
                .await?;
            anyhow::Ok(render(&b, OutputFormat::Table)?)
        })?;
        ops::emit(&format!(
            "\ndaily_sentiment ({}):\n{table}\n",
            lake.display()
        ))?;
    }
    Ok(if summary.dead_lettered_messages > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(1);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} read, {msg} ({eta})",
        )
        .expect("valid template"),
    );
    bar
}

fn print_summary(s: &etl_local::RunSummary) {
    let p = &s.produce;
    println!("records read        {:>12}", p.read);
    println!("  rejected          {:>12}", p.rejected);
    println!(
        "  unchanged         {:>12}  (sent by an earlier run)",
        p.unchanged
    );
    println!(
        "  sent              {:>12}  in {} messages",
        p.sent_records, p.messages
    );
    if s.retried_records > 0 {
        println!(
            "  retried           {:>12}  (retrying records dead-lettered by an earlier run)",
            s.retried_records
        );
    }
    println!("records scored      {:>12}", s.scored);
    println!(
        "dead-lettered       {:>12}  in {} messages",
        s.dead_lettered_records, s.dead_lettered_messages
    );
    if s.pending_retry > 0 {
        println!(
            "  left to retry     {:>12}  (not recorded as sent: the next run retries them)",
            s.pending_retry
        );
    }
    println!("files written       {:>12}", s.files_written);
    println!("bytes written       {:>12}", s.bytes_written);
    println!("elapsed             {:>11.2}s", s.elapsed_secs);
    println!("records/s           {:>12.0}", s.records_per_sec());
    if let Some(f) = &s.rejects_file {
        println!("rejects             {}", f.display());
    }
    if let Some(f) = &s.dead_letter_file {
        println!("dead letters        {}", f.display());
    }
}
