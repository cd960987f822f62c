//! The operator's commands on a local lake: status, redrive, reconcile and
//! report, printed as text for people or JSON for scripts.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use etl_core::{FieldMap, QueryEngine};
use etl_local::format::{render, OutputFormat};
use etl_local::redrive::{RedriveConfig, RedriveSummary};
use etl_local::status::{LakeStatus, LockState};
use etl_local::{DataFusionQuery, InputFormat};

use crate::report::{parse_rows, render_html, DailyRow, ReportMeta};

/// The SQL both report sources run: one row per day and label.
pub const REPORT_SQL: &str =
    "SELECT dt, sentiment, records, avg_compound FROM daily_sentiment ORDER BY dt, sentiment";

/// Write to standard output; a closed pipe (`etl … | head`) is an error
/// [`is_broken_pipe`] recognises, so the command ends quietly.
pub fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("writing to standard output")
}

/// Whether the error is standard output's reader going away.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Bytes for people: 1.2 MiB.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `etl status --lake`.
pub fn status(lake: &Path, runs: usize, json: bool) -> Result<ExitCode> {
    let s = etl_local::status::status(lake, runs)
        .with_context(|| format!("reading the status of lake {}", lake.display()))?;
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&s)?))?;
    } else {
        emit(&status_text(&s))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn status_text(s: &LakeStatus) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "lake                {}", s.lake.display());
    match (&s.state, &s.state_error) {
        (_, Some(e)) => {
            let _ = writeln!(o, "state               DAMAGED: {e}");
        }
        (None, None) => {
            let _ = writeln!(o, "state               no completed run yet");
        }
        (Some(st), None) => {
            let t = |x: Option<chrono::DateTime<chrono::Utc>>| {
                x.map_or_else(|| "-".into(), |t| t.to_rfc3339())
            };
            let _ = writeln!(o, "last run started    {}", t(st.last_run_started_at));
            let _ = writeln!(o, "newest updated_at   {}", t(st.newest_updated_at));
            let _ = writeln!(o, "versions in lake    {}", st.versions);
            let _ = writeln!(
                o,
                "left to retry       {}  (sent, not landed: the next run sends them again)",
                st.pending_retry
            );
        }
    }
    match &s.lock {
        LockState::Free => {
            let _ = writeln!(o, "lock                free");
        }
        LockState::Held { holder } => {
            let _ = writeln!(o, "lock                held by {holder}");
        }
    }
    if s.unfinished_redrive.is_empty() {
        let _ = writeln!(o, "unfinished          none");
    } else {
        let _ = writeln!(
            o,
            "unfinished          an interrupted redrive ({} file(s)): run `etl redrive --lake {}`",
            s.unfinished_redrive.len(),
            s.lake.display()
        );
    }
    if s.staged_messages > 0 {
        let _ = writeln!(
            o,
            "staged              {} message(s) of an interrupted run: the next `etl run` re-sends them as they were",
            s.staged_messages
        );
    }
    let _ = writeln!(o, "queue               in-process (empty between runs)");
    let _ = writeln!(
        o,
        "dead letters        {} message(s), {} record(s){}",
        s.dead_letters.entries,
        s.dead_letters.records,
        s.dead_letters
            .file
            .as_ref()
            .map(|f| format!("  {}", f.display()))
            .unwrap_or_default()
    );
    for d in &s.dead_letters.newest {
        let _ = writeln!(
            o,
            "  {}  {} record(s)  {}",
            d.dead_lettered_at,
            d.records,
            one_line(&d.reason, 100)
        );
    }
    let _ = writeln!(
        o,
        "rejects             {} line(s){}",
        s.rejects.entries,
        s.rejects
            .file
            .as_ref()
            .map(|f| format!("  {}", f.display()))
            .unwrap_or_default()
    );
    for r in &s.rejects.newest {
        let _ = writeln!(
            o,
            "  {}{}{}: {}",
            r.location,
            r.id.as_ref()
                .map(|i| format!(" id {i}"))
                .unwrap_or_default(),
            r.field
                .as_ref()
                .map(|f| format!(" field {f}"))
                .unwrap_or_default(),
            one_line(&r.reason, 100)
        );
    }
    let _ = writeln!(
        o,
        "partitions          {} partition(s), {} file(s), {}",
        s.partitions.len(),
        s.files(),
        human_bytes(s.bytes())
    );
    for p in tail(&s.partitions, 10) {
        let _ = writeln!(
            o,
            "  dt={}  {:>5} file(s)  {:>10}",
            p.dt,
            p.files,
            human_bytes(p.bytes)
        );
    }
    if s.partitions.len() > 10 {
        let _ = writeln!(o, "  … {} older partition(s)", s.partitions.len() - 10);
    }
    let _ = writeln!(o, "last runs           {}", s.runs.len());
    if !s.runs.is_empty() {
        let _ = writeln!(
            o,
            "  {:<20}  {:<11}  {:>9}  {:>9}  {:>9}  {:>9}  {:>7}",
            "completed", "mode", "read", "sent", "rejected", "scored", "failed"
        );
    }
    for r in &s.runs {
        let _ = writeln!(
            o,
            "  {:<20}  {:<11}  {:>9}  {:>9}  {:>9}  {:>9}  {:>7}",
            r.completed_at.format("%Y-%m-%d %H:%M:%S"),
            r.mode,
            r.read,
            r.sent,
            r.rejected,
            r.scored,
            r.failed
        );
    }
    o
}

fn tail<T>(v: &[T], n: usize) -> &[T] {
    &v[v.len().saturating_sub(n)..]
}

/// The first `max` characters of `s` on one line.
pub fn one_line(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() > max {
        let cut: String = flat.chars().take(max).collect();
        format!("{cut}…")
    } else {
        flat
    }
}

/// `etl redrive --lake`.
pub async fn redrive(cfg: RedriveConfig, json: bool) -> Result<ExitCode> {
    let lake = cfg.lake.clone();
    let s = etl_local::redrive::redrive(cfg)
        .await
        .with_context(|| format!("redriving the dead letters of lake {}", lake.display()))?;
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&s)?))?;
    } else {
        emit(&redrive_text(&s))?;
    }
    Ok(if s.failed_again > 0 || s.unreadable > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

fn redrive_text(s: &RedriveSummary) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "dead letters read   {:>10}  ({} records)",
        s.letters, s.records
    );
    if s.unreadable > 0 {
        let _ = writeln!(
            o,
            "  unreadable        {:>10}  (kept in the dead-letter file as they were)",
            s.unreadable
        );
    }
    let _ = writeln!(
        o,
        "  already in lake   {:>10}  (landed since, by a later run)",
        s.already_in_lake
    );
    if s.repeated > 0 {
        let _ = writeln!(
            o,
            "  repeated          {:>10}  (the same version in another letter)",
            s.repeated
        );
    }
    let _ = writeln!(
        o,
        "redriven            {:>10}  records in {} messages",
        s.records_sent, s.messages_sent
    );
    let _ = writeln!(
        o,
        "came back           {:>10}  (scored, in the lake)",
        s.landed
    );
    let _ = writeln!(
        o,
        "failed again        {:>10}  (dead-lettered again with the new reason)",
        s.failed_again
    );
    for f in &s.failures {
        let _ = writeln!(o, "  {} record(s): {}", f.records, one_line(&f.reason, 120));
    }
    let _ = writeln!(o, "files written       {:>10}", s.files_written);
    o
}

/// `etl reconcile --lake --input`.
pub async fn reconcile(
    input: &Path,
    format: Option<InputFormat>,
    fields: FieldMap,
    lake: &Path,
    show: usize,
    json: bool,
) -> Result<ExitCode> {
    let r = etl_local::reconcile::reconcile(input, format, fields, lake)
        .await
        .with_context(|| {
            format!(
                "reconciling lake {} with {}",
                lake.display(),
                input.display()
            )
        })?;
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&r)?))?;
    } else {
        let mut o = reconciliation_text(&r.result, show);
        if r.rejected_input > 0 {
            let _ = writeln!(
                o,
                "rejected input      {:>10}  (invalid lines: not versions, see _rejects/)",
                r.rejected_input
            );
        }
        if r.unreadable_dead_letters > 0 {
            let _ = writeln!(
                o,
                "unreadable letters  {:>10}  (dead letters whose records cannot be placed)",
                r.unreadable_dead_letters
            );
        }
        emit(&o)?;
    }
    Ok(if r.result.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(4)
    })
}

/// The text form of a reconciliation (shared with the cloud command).
pub fn reconciliation_text(r: &etl_core::accounting::Reconciliation, show: usize) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "source versions     {:>10}", r.source_versions);
    let _ = writeln!(o, "lake rows           {:>10}", r.lake_rows);
    let _ = writeln!(o, "in lake once        {:>10}", r.in_lake);
    let _ = writeln!(
        o,
        "dead-lettered       {:>10}  (out of the lake, with a reason)",
        r.dead_lettered.len()
    );
    let _ = writeln!(o, "missing             {:>10}", r.missing.len());
    for v in r.missing.iter().take(show) {
        let _ = writeln!(
            o,
            "  id {:?} updated_at {} dt {}",
            v.id,
            micros(v.updated_at_us),
            v.dt
        );
    }
    let _ = writeln!(o, "duplicated          {:>10}", r.duplicated.len());
    for d in r.duplicated.iter().take(show) {
        let _ = writeln!(
            o,
            "  id {:?} updated_at {} dt {}: {} rows",
            d.version.id,
            micros(d.version.updated_at_us),
            d.version.dt,
            d.rows
        );
    }
    let _ = writeln!(
        o,
        "superseded          {:>10}  (older versions of current records, kept on purpose)",
        r.superseded
    );
    let _ = writeln!(
        o,
        "not in source       {:>10}  (ids the source no longer holds)",
        r.not_in_source
    );
    let _ = writeln!(
        o,
        "{}",
        if r.ok() {
            "OK: every source version is in the lake exactly once or dead-lettered with its reason"
        } else {
            "NOT OK: versions are missing or duplicated"
        }
    );
    o
}

fn micros(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us).map_or_else(|| us.to_string(), |t| t.to_rfc3339())
}

/// `etl report --lake`: query the daily view and write the HTML.
pub async fn report(lake: &Path, out: &Path) -> Result<ExitCode> {
    let q = DataFusionQuery::open(lake).await?;
    let batches = q.query(REPORT_SQL).await?;
    let json = render(&batches, OutputFormat::Json)?;
    let rows = parse_rows(&json)?;
    let abs = std::fs::canonicalize(lake).unwrap_or_else(|_| lake.to_owned());
    write_report(
        out,
        &format!("Sentiment, lake {}", lake.display()),
        &format!("local lake {}", abs.display()),
        &rows,
    )
}

/// Write the report and print its path.
pub fn write_report(out: &Path, title: &str, source: &str, rows: &[DailyRow]) -> Result<ExitCode> {
    let html = render_html(
        &ReportMeta {
            title,
            source,
            generated_at: chrono::Utc::now(),
        },
        rows,
    );
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(out, html).with_context(|| format!("writing {}", out.display()))?;
    emit(&format!(
        "report: {} ({} days, {} rows)\n",
        out.display(),
        rows.iter()
            .map(|r| r.dt)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        rows.len()
    ))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "cloud")]
/// A spinner on a terminal (hidden otherwise) for long cloud calls.
pub fn spinner(message: &str) -> indicatif::ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(message.to_owned());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// A bar counting to `len` on a terminal (hidden otherwise).
pub fn counter_bar(len: u64, message: &str) -> indicatif::ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} {wide_bar} {pos}/{len} ({eta})")
            .expect("valid template"),
    );
    bar.set_message(message.to_owned());
    bar
}
