//! `etl`: run the sentiment pipeline locally, query the lake, generate data.
//!
//! Exit codes: 0 success (rejected input lines are reported, not fatal);
//! 1 the command failed (unreadable input, unwritable lake, damaged lake
//! state, the lake locked by another run, bad SQL);
//! 2 usage error; 3 the run completed but some messages were dead-lettered.

mod gen;

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

#[derive(Parser)]
#[command(
    name = "etl",
    version,
    about = "Serverless sentiment ETL, run locally: score texts with VADER into a Parquet lake and query it with SQL."
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
}

#[derive(clap::Args)]
struct QueryArgs {
    /// Lake directory written by `etl run`.
    #[arg(long)]
    lake: PathBuf,
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
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
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
            rt.block_on(async {
                let q = DataFusionQuery::open(&a.lake).await?;
                let batches = q.query(&a.sql).await?;
                print!(
                    "{}",
                    render(&batches, a.format).map_err(anyhow::Error::msg)?
                );
                if a.format == OutputFormat::Table {
                    println!();
                }
                Ok(ExitCode::SUCCESS)
            })
        }
        Command::Run(a) => run(a),
    }
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
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary);
    }
    if !a.no_table && !a.json {
        let table = rt.block_on(async {
            let q = DataFusionQuery::open(&a.lake).await?;
            let b = q
                .query("SELECT dt, sentiment, records, ROUND(avg_compound, 4) AS avg_compound FROM daily_sentiment ORDER BY dt, sentiment")
                .await?;
            anyhow::Ok(render(&b, OutputFormat::Table).map_err(anyhow::Error::msg)?)
        })?;
        println!("\ndaily_sentiment ({}):\n{table}", a.lake.display());
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
