//! The `etl` binary as a user runs it: exit codes, messages, output formats.
// Test helpers unwrap too: a failed setup is the test failing
// (`allow-unwrap-in-tests` only covers the `#[test]` functions themselves).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

mod common;
use common::{etl, text};

fn gen(dir: &Path, n: u32) -> String {
    let input = dir.join("posts.jsonl");
    let out = etl(&[
        "gen",
        "--count",
        &n.to_string(),
        "--days",
        "5",
        "--seed",
        "3",
        "-o",
        input.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    input.to_str().unwrap().to_owned()
}

#[test]
fn run_prints_summary_and_daily_table_then_query_reads_the_lake() {
    let dir = tempfile::tempdir().unwrap();
    let input = gen(dir.path(), 500);
    let lake = dir.path().join("lake");
    let out = etl(&[
        "run",
        "--input",
        &input,
        "--lake",
        lake.to_str().unwrap(),
        "--workers",
        "2",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("records scored"), "{stdout}");
    assert!(
        stdout.contains("daily_sentiment") && stdout.contains("| dt "),
        "{stdout}"
    );

    let out = etl(&[
        "query",
        "--lake",
        lake.to_str().unwrap(),
        "--format",
        "csv",
        "SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS ids FROM sentiment",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "n,ids\n500,500\n");

    let out = etl(&[
        "query",
        "--lake",
        lake.to_str().unwrap(),
        "--format",
        "json",
        "SELECT SUM(records) AS n FROM daily_sentiment",
    ]);
    let v: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(v["n"], 500);

    let out = etl(&[
        "run",
        "--input",
        &input,
        "--lake",
        lake.to_str().unwrap(),
        "--json",
    ]);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        summary["produce"]["sent_records"], 0,
        "second run sends nothing"
    );
    assert_eq!(summary["produce"]["unchanged"], 500);
}

#[test]
fn unreadable_input_and_unwritable_lake_exit_1_with_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let out = etl(&[
        "run",
        "--input",
        "/nonexistent/in.jsonl",
        "--lake",
        lake.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot read input") && err.contains("/nonexistent/in.jsonl"),
        "{err}"
    );

    let input = gen(dir.path(), 50);
    let blocker = dir.path().join("file-not-dir");
    std::fs::write(&blocker, b"x").unwrap();
    let out = etl(&[
        "run",
        "--input",
        &input,
        "--lake",
        blocker.join("lake").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot write lake"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bad_sql_bad_flags_and_missing_lake_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = etl(&["query", "--lake", dir.path().to_str().unwrap(), "SELECT 1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no catalog found"),
        "{}",
        text(&out.stderr)
    );

    let input = gen(dir.path(), 20);
    let lake = dir.path().join("lake");
    assert!(etl(&[
        "run",
        "--input",
        &input,
        "--lake",
        lake.to_str().unwrap(),
        "--no-table"
    ])
    .status
    .success());
    let out = etl(&["query", "--lake", lake.to_str().unwrap(), "SELEC nonsense"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("error:"));

    let out = etl(&[
        "run",
        "--input",
        &input,
        "--lake",
        lake.to_str().unwrap(),
        "--compression",
        "lz77",
    ]);
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
    let out = etl(&[
        "run",
        "--input",
        &input,
        "--lake",
        lake.to_str().unwrap(),
        "--engine",
        "comprehend",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("needs AWS"));
}

#[test]
fn rejected_lines_are_printed_with_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"id\":\"a\",\"text\":\"good\",\"created_at\":1}\n{oops\n{\"id\":\"b\",\"text\":\"x\"}\n",
    )
    .unwrap();
    let out = etl(&[
        "run",
        "--input",
        input.to_str().unwrap(),
        "--lake",
        dir.path().join("lake").to_str().unwrap(),
        "--no-table",
    ]);
    assert!(out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("rejected line 2: not valid JSON"), "{err}");
    assert!(
        err.contains("rejected line 3 (id b): field `created_at`: missing"),
        "{err}"
    );
}

/// Every file of a lake and its bytes, except the lock file (whose
/// contents only describe the last holder).
fn snapshot(lake: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    fn walk(dir: &Path, out: &mut std::collections::BTreeMap<std::path::PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.file_name().is_some_and(|n| n != ".lock") {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(lake, &mut out);
    out
}

fn live_lines(prefix: &str, n: usize, hours_ago: i64) -> String {
    let now = chrono::Utc::now();
    (0..n)
        .map(|i| {
            let t = now - chrono::Duration::hours(hours_ago) + chrono::Duration::seconds(i as i64);
            format!(
                "{{\"id\":\"{prefix}/{i}\",\"text\":\"{} number {i}\",\"created_at\":\"{}\"}}\n",
                ["I love it", "I hate it", "It is a table"][i % 3],
                t.to_rfc3339()
            )
        })
        .collect()
}

fn run_args<'a>(input: &'a str, lake: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["run", "--input", input, "--lake", lake, "--no-table"];
    v.extend_from_slice(extra);
    v
}

#[test]
fn damaged_state_file_stops_the_run_with_exit_1_naming_it_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, live_lines("a", 300, 30)).unwrap();
    let lake = dir.path().join("lake");
    let (i, l) = (input.to_str().unwrap(), lake.to_str().unwrap());
    let out = etl(&run_args(i, l, &[]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    // New input arrives: a run that went ahead would write files for it.
    let mut more = live_lines("a", 300, 30);
    more.push_str(&live_lines("b", 50, 1));
    std::fs::write(&input, more).unwrap();

    let sent = lake.join("_state/sent.fp");
    let wm = lake.join("_state/watermark.json");
    let good_sent = std::fs::read(&sent).unwrap();
    let good_wm = std::fs::read(&wm).unwrap();
    let damages: Vec<(&Path, Vec<u8>, &str)> = vec![
        (
            &sent,
            good_sent[..good_sent.len() - 16].to_vec(),
            "truncated",
        ),
        (
            &sent,
            good_sent[..good_sent.len() / 2].to_vec(),
            "truncated",
        ),
        (&sent, Vec::new(), "shorter than its header"),
        (
            &sent,
            {
                let mut b = good_sent.clone();
                b[20] ^= 0x40;
                b
            },
            "",
        ),
        (&wm, good_wm[..good_wm.len() - 3].to_vec(), "not JSON"),
        (&wm, b"\0\0\0\0".to_vec(), "not JSON"),
    ];
    for (file, bytes, what) in damages {
        std::fs::write(&sent, &good_sent).unwrap();
        std::fs::write(&wm, &good_wm).unwrap();
        std::fs::write(file, &bytes).unwrap();
        let before = snapshot(&lake);
        let out = etl(&run_args(i, l, &[]));
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {err}", file.display());
        assert!(
            err.starts_with("error: lake state file ")
                && err.contains(&file.display().to_string())
                && err.contains("corrupt")
                && err.contains(what)
                && err.contains("--full")
                && err.contains("wrote nothing"),
            "{err}"
        );
        assert_eq!(text(&out.stdout), "", "no summary");
        assert!(
            snapshot(&lake) == before,
            "the lake changed: {}",
            file.display()
        );
    }

    // A state from the build that ignored the text: named, with the way out.
    std::fs::write(&wm, &good_wm).unwrap();
    std::fs::write(&sent, b"ETLFP01\n\x01\x02\x03\x04\x05\x06\x07\x08").unwrap();
    let before = snapshot(&lake);
    let out = etl(&run_args(i, l, &[]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("older etl") && err.contains("--full"), "{err}");
    assert!(snapshot(&lake) == before);

    // The way out works: --full rebuilds, the next run is incremental again.
    let out = etl(&run_args(i, l, &["--full", "--json"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["produce"]["sent_records"], 350);
    assert_eq!(s["versions_in_lake"], 350);
    let out = etl(&run_args(i, l, &["--json"]));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&s["produce"]["sent_records"], &s["produce"]["unchanged"]),
        (&serde_json::json!(0), &serde_json::json!(350))
    );
}

/// Run `etl` and return its output with its peak resident memory (KiB),
/// from `wait4` on that one child.
#[cfg(target_os = "linux")]
#[allow(clippy::zombie_processes)] // reaped by wait4 below, which also reads its peak
fn etl_peak(args: &[&str]) -> (i32, String, String, i64) {
    use std::io::Read;
    let mut child = Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (mut so, mut se) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let t = std::thread::spawn(move || {
        let mut s = String::new();
        so.read_to_string(&mut s).unwrap();
        s
    });
    let mut err = String::new();
    se.read_to_string(&mut err).unwrap();
    let out = t.join().unwrap();
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    assert!(libc::WIFEXITED(status));
    (libc::WEXITSTATUS(status), out, err, usage.ru_maxrss)
}

#[cfg(target_os = "linux")]
#[test]
fn line_longer_than_the_message_limit_is_rejected_by_number_and_memory_does_not_grow() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now();
    let good = |id: &str| {
        format!(
            "{{\"id\":\"{id}\",\"text\":\"what a lovely day\",\"created_at\":\"{}\"}}\n",
            now.to_rfc3339()
        )
    };
    let small = dir.path().join("small.jsonl");
    std::fs::write(&small, format!("{}{}", good("before"), good("after"))).unwrap();
    // 50 MB of one line, written in 1 MiB pieces (never held by the test).
    let big = dir.path().join("big.jsonl");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
    f.write_all(good("before").as_bytes()).unwrap();
    let head = format!(
        "{{\"id\":\"huge\",\"created_at\":\"{}\",\"text\":\"",
        now.to_rfc3339()
    );
    f.write_all(head.as_bytes()).unwrap();
    let piece = "great ".repeat((1 << 20) / 6);
    let mut line_len = head.len();
    while line_len < 50_000_000 {
        f.write_all(piece.as_bytes()).unwrap();
        line_len += piece.len();
    }
    f.write_all(b"\"}\n").unwrap();
    line_len += 2;
    f.write_all(good("after").as_bytes()).unwrap();
    drop(f);

    let lake = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let (l1, l2) = (lake("lake-small"), lake("lake-big"));
    let (code, out, err, big_kib) = etl_peak(&run_args(
        big.to_str().unwrap(),
        &l2,
        &["--workers", "1", "--json"],
    ));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!(
            "rejected line 2: line is {line_len} bytes, longer than the queue's message limit of 1048576 bytes"
        )),
        "{err}"
    );
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (&s["produce"]["rejected"], &s["scored"]),
        (&1.into(), &2.into())
    );
    // Measured after the long-line run: a child's peak includes its
    // parent's at spawn (the memory it is cloned from), which only grows, so
    // the baseline is never the lower of the two for that reason.
    let (code, _, base_err, base_kib) =
        etl_peak(&run_args(small.to_str().unwrap(), &l1, &["--workers", "1"]));
    assert_eq!(code, 0, "{base_err}");
    let q = etl(&[
        "query",
        "--lake",
        &l2,
        "--format",
        "csv",
        "SELECT id FROM sentiment ORDER BY id",
    ]);
    assert_eq!(text(&q.stdout), "id\nafter\nbefore\n");
    eprintln!(
        "peak RSS: {base_kib} KiB for 2 short lines, {big_kib} KiB with a {line_len}-byte line"
    );
    // Holding the line would add at least its 50 MB; reading past it adds
    // only the fixed read buffer and a line buffer of about twice the limit.
    assert!(
        big_kib < base_kib + 16 * 1024,
        "peak {big_kib} KiB with the long line vs {base_kib} KiB without"
    );
}

/// A child killed when the test ends, whatever ends it.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Read a child's stderr up to the first line containing `marker`.
fn read_until(r: &mut impl std::io::BufRead, marker: &str) -> String {
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap() == 0 {
            panic!("stderr ended before {marker:?}: {seen}");
        }
        seen.push_str(&line);
        if line.contains(marker) {
            return seen;
        }
    }
}

#[cfg(unix)]
#[test]
fn concurrent_runs_on_one_lake_second_exits_1_naming_the_lock_or_waits_with_wait_lock() {
    use std::io::{BufReader, Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let l = lake.to_str().unwrap();
    // Run A reads a named pipe: it takes the lock, then waits for input
    // until the test writes it, so the runs overlap without any sleep.
    let fifo = dir.path().join("a.jsonl");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let shared = live_lines("shared", 200, 2);
    let a_lines = format!("{shared}{}", live_lines("a", 100, 2));
    let b_input = dir.path().join("b.jsonl");
    let b_lines = format!("{shared}{}", live_lines("b", 100, 1));
    std::fs::write(&b_input, &b_lines).unwrap();
    let b = b_input.to_str().unwrap();

    let mut a = Running(
        Command::new(env!("CARGO_BIN_EXE_etl"))
            .args(run_args(fifo.to_str().unwrap(), l, &["--json"]))
            .env("ETL_LOG", "etl_local::lock=info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let a_pid = a.0.id();
    let mut a_err = BufReader::new(a.0.stderr.take().unwrap());
    read_until(&mut a_err, "Lake locked.");

    // Without --wait-lock: exit 1, naming the lock file and its holder; nothing written.
    let out = etl(&run_args(b, l, &[]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&lake.join(".lock").display().to_string())
            && err.contains(&format!("pid {a_pid}"))
            && err.contains("--wait-lock"),
        "{err}"
    );
    assert!(
        !lake.join("sentiment").exists()
            || std::fs::read_dir(lake.join("sentiment"))
                .unwrap()
                .next()
                .is_none()
    );

    // With --wait-lock: it says whom it waits for, then runs after A.
    let mut b_run = Running(
        Command::new(env!("CARGO_BIN_EXE_etl"))
            .args(run_args(b, l, &["--json", "--wait-lock"]))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut b_err = BufReader::new(b_run.0.stderr.take().unwrap());
    let waiting = read_until(&mut b_err, "waiting for another `etl run`");
    assert!(waiting.contains(&format!("pid {a_pid}")), "{waiting}");

    std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .unwrap()
        .write_all(a_lines.as_bytes())
        .unwrap(); // closed here: A sees the end of its input
    let summary = |r: &mut Running| {
        let mut out = String::new();
        r.0.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        assert!(r.0.wait().unwrap().success(), "{out}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    let sa = summary(&mut a);
    let sb = summary(&mut b_run);
    assert_eq!(sa["produce"]["sent_records"], 300);
    assert_eq!(
        (&sb["produce"]["sent_records"], &sb["produce"]["unchanged"]),
        (&100.into(), &200.into()),
        "B saw A's state: the shared records are not sent twice"
    );
    // Every version exactly once: the multiset of (id, updated_at, text, dt).
    let q = etl(&[
        "query", "--lake", l, "--format", "csv",
        "SELECT id, CAST(updated_at AS BIGINT) AS u, text, dt, COUNT(*) AS n FROM sentiment GROUP BY id, updated_at, text, dt ORDER BY id",
    ]);
    let got: Vec<String> = text(&q.stdout).lines().skip(1).map(str::to_owned).collect();
    let mut want = std::collections::BTreeSet::new();
    for line in a_lines.lines().chain(b_lines.lines()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let t = chrono::DateTime::parse_from_rfc3339(v["created_at"].as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc);
        want.insert(format!(
            "{},{},{},{},1",
            v["id"].as_str().unwrap(),
            t.timestamp_micros(),
            v["text"].as_str().unwrap(),
            t.format("%Y-%m-%d")
        ));
    }
    let got_set: std::collections::BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(got.len(), 400, "200 shared + 100 from each run");
    assert_eq!(got_set, want);
}

#[cfg(unix)]
#[test]
fn a_killed_runs_lock_does_not_block_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let l = lake.to_str().unwrap();
    let fifo = dir.path().join("held.jsonl");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let mut held = Running(
        Command::new(env!("CARGO_BIN_EXE_etl"))
            .args(run_args(fifo.to_str().unwrap(), l, &[]))
            .env("ETL_LOG", "etl_local::lock=info")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut err = std::io::BufReader::new(held.0.stderr.take().unwrap());
    read_until(&mut err, "Lake locked.");
    // SIGKILL: no destructor, no clean-up; the OS drops the lock with the process.
    held.0.kill().unwrap();
    held.0.wait().unwrap();
    assert!(
        lake.join(".lock").exists(),
        "the file stays; only its lock went"
    );
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, live_lines("k", 20, 1)).unwrap();
    let out = etl(&run_args(input.to_str().unwrap(), l, &["--json"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["scored"], 20);
}

/// `etl run` killed (SIGKILL) after some of its messages landed and before
/// it saved the lake's state, then run again on a grown input in which some
/// of the versions it staged were edited meanwhile: the second run re-sends
/// what the first staged, verbatim, and packs only the rest, so every
/// version (the staged old ones and the input's current ones) is in the
/// lake once. For each table format; the Delta table is read by a log replay
/// that shares no code with the writer, and every live file's size is the
/// size its `add` logged.
#[cfg(unix)]
fn killed_run_then_a_grown_input_lands_every_version_once(format: &str) {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let l = lake.to_str().unwrap();
    let fifo = dir.path().join("live.jsonl");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // More than two of the reader's 1,024-line chunks: the first two are
    // handed out while the pipe stays open.
    let first = live_lines("x/../a b", 3000, 30);
    let mut run = Running(
        Command::new(env!("CARGO_BIN_EXE_etl"))
            .args(run_args(
                fifo.to_str().unwrap(),
                l,
                &[
                    "--format",
                    "jsonl",
                    "--message-bytes",
                    "2000",
                    "--table-format",
                    format,
                ],
            ))
            .env_remove("ETL_LAKE")
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The run reads the pipe as it is written; it stays open, so the run
    // cannot finish: it is killed with messages landed and its state unsaved.
    let mut pipe = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    pipe.write_all(first.as_bytes()).unwrap();
    pipe.flush().unwrap();
    let outbox = etl_local::outbox::outbox_path(&lake);
    let landed = || etl_testkit::lake::parquet_files(&lake).len();
    let mut polls = 0;
    while landed() < 3 {
        polls += 1;
        assert!(polls < 30_000, "the run never landed a message");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    run.0.kill().unwrap();
    run.0.wait().unwrap();
    drop(pipe);
    assert!(
        !lake.join("_state/watermark.json").exists(),
        "killed before its state was saved"
    );
    let staged = etl_local::FileOutbox::load(&lake).unwrap();
    let st = etl(&["status", "--lake", l, "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(st["staged_messages"], staged.len(), "etl status shows them");
    assert!(
        outbox.exists() && staged.len() >= 3,
        "{} staged",
        staged.len()
    );
    let staged_records: Vec<etl_core::SourceRecord> = staged
        .iter()
        .flat_map(|m| etl_core::decode_message(&m.body).unwrap().records)
        .collect();

    // The input grows, and versions the killed run staged are edited.
    let mut grown = String::new();
    let edited: std::collections::BTreeSet<&str> = staged_records
        .iter()
        .step_by(7)
        .map(|r| r.id.as_str())
        .collect();
    for line in first.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let id = v["id"].as_str().unwrap();
        if edited.contains(id) {
            grown.push_str(&format!(
                "{{\"id\":{},\"text\":\"edited after the crash\",\"created_at\":{},\"updated_at\":\"{}\"}}\n",
                serde_json::Value::from(id),
                v["created_at"],
                chrono::Utc::now().to_rfc3339()
            ));
        } else {
            grown.push_str(line);
            grown.push('\n');
        }
    }
    grown.push_str(&live_lines("y/new", 200, 2));
    let input = dir.path().join("grown.jsonl");
    std::fs::write(&input, &grown).unwrap();
    let out = etl(&run_args(
        input.to_str().unwrap(),
        l,
        &["--message-bytes", "2000", "--json"],
    ));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["resent_messages"], staged.len(), "{s}");
    assert!(
        !outbox.exists(),
        "the outbox is removed once the state is saved"
    );

    // Expected: every staged version, and every version of the grown input.
    let input_records: Vec<etl_core::SourceRecord> = grown
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let created: chrono::DateTime<chrono::Utc> =
                v["created_at"].as_str().unwrap().parse().unwrap();
            let updated = v["updated_at"]
                .as_str()
                .map_or(created, |u| u.parse().unwrap());
            etl_core::SourceRecord {
                id: v["id"].as_str().unwrap().to_owned(),
                text: v["text"].as_str().unwrap().to_owned(),
                created_at: etl_core::record::truncate_micros(created),
                updated_at: etl_core::record::truncate_micros(updated),
                attributes: Default::default(),
            }
        })
        .collect();
    let expected =
        etl_testkit::accounting::distinct_versions(staged_records.iter().chain(&input_records));
    assert!(
        expected.len() > input_records.len(),
        "old versions of edited records too"
    );
    let rows = if format == "delta" {
        let table = lake.join("sentiment");
        etl_testkit::delta_log::assert_live_sizes_match(&table);
        etl_testkit::delta_log::read_delta(&table, None)
    } else {
        etl_testkit::lake::read_lake(&lake)
    };
    use etl_testkit::accounting::FromLake;
    let acc = etl_testkit::accounting::exactly_once(
        &expected,
        &etl_testkit::accounting::Version::of_local(&rows),
    );
    etl_testkit::accounting::assert_ok(&acc);
}

#[cfg(unix)]
#[test]
fn a_killed_hive_run_then_a_grown_input_lands_every_version_once() {
    killed_run_then_a_grown_input_lands_every_version_once("hive");
}

#[cfg(unix)]
#[test]
fn a_killed_delta_run_then_a_grown_input_lands_every_version_once() {
    killed_run_then_a_grown_input_lands_every_version_once("delta");
}
