//! Incremental local runs on live data, night after night: timestamps
//! relative to now, updates, versions that conflict on (id, updated_at),
//! late and future-dated records, duplicate lines, odd ids and every kind of
//! Unicode; dead-lettered records retried by the next run. Accounting
//! compares the multiset of (id, updated_at, sha256(text), dt) read back from
//! the Parquet files with the versions the test wrote, not id sets.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use etl_core::{SentimentAnalyzer, VaderAnalyzer};
use etl_local::{run_with, RunConfig, RunCounters, RunSummary};
use etl_testkit::lake::read_lake;
use etl_testkit::ScriptedAnalyzer;
use serde_json::json;
use sha2::{Digest, Sha256};

/// (id, updated_at µs, sha256(text), dt) → copies.
type Versions = BTreeMap<(String, i64, String, String), usize>;

/// One source version as the test writes it.
#[derive(Clone)]
struct V {
    id: String,
    text: String,
    created_at: DateTime<Utc>,
    updated_at: Option<DateTime<Utc>>,
}

impl V {
    fn new(id: impl Into<String>, text: impl Into<String>, created_at: DateTime<Utc>) -> Self {
        Self {
            id: id.into(),
            text: text.into(),
            created_at,
            updated_at: None,
        }
    }

    fn updated(mut self, at: DateTime<Utc>, text: impl Into<String>) -> Self {
        self.updated_at = Some(at);
        self.text = text.into();
        self
    }

    fn line(&self) -> String {
        let mut v =
            json!({"id": self.id, "text": self.text, "created_at": self.created_at.to_rfc3339()});
        if let Some(u) = self.updated_at {
            // Epoch milliseconds: another input form, same instant.
            v["updated_at"] = json!(u.timestamp_millis());
        }
        v.to_string()
    }

    fn key(&self) -> (String, i64, String, String) {
        let u = self.updated_at.unwrap_or(self.created_at);
        let u = if self.updated_at.is_some() {
            u.timestamp_millis() * 1000
        } else {
            u.timestamp_micros()
        };
        (
            self.id.clone(),
            u,
            hex::encode(Sha256::digest(self.text.as_bytes())),
            self.created_at.format("%Y-%m-%d").to_string(),
        )
    }
}

fn expected(versions: &[V]) -> Versions {
    let mut m = Versions::new();
    for v in versions {
        m.insert(v.key(), 1);
    }
    m
}

fn in_lake(lake: &Path) -> Versions {
    let mut m = Versions::new();
    for r in read_lake(lake) {
        let text = r.text.expect("text column");
        *m.entry((
            r.id,
            r.updated_at_us,
            hex::encode(Sha256::digest(text.as_bytes())),
            r.dt,
        ))
        .or_default() += 1;
    }
    m
}

fn write_input(path: &Path, lines: &[String]) {
    std::fs::write(
        path,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
}

async fn night(input: &Path, lake: &Path, analyzer: Arc<dyn SentimentAnalyzer>) -> RunSummary {
    let mut cfg = RunConfig::new(input, lake);
    cfg.workers = 3;
    cfg.message_budget = 8 * 1024;
    cfg.max_receive_count = 2;
    run_with(
        cfg,
        analyzer,
        Arc::new(RunCounters::default()),
        Box::new(|_| {}),
    )
    .await
    .expect("run succeeds")
}

fn now() -> DateTime<Utc> {
    etl_core::record::truncate_micros(Utc::now())
}

/// Texts with every kind of character a user's data holds: non-characters
/// SQS refuses, astral planes, controls (NUL included), bidi, combining
/// marks, a BOM, line and paragraph separators, JSON's escapes.
const ODD_TEXTS: [&str; 8] = [
    "non-characters \u{FFFE} and \u{FFFF} and \u{1FFFE}, still lovely",
    "astral 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 😀 🏳\u{FE0F}\u{200D}🌈 𓀀 terrible",
    "controls \u{0}\u{1}\u{7}\u{1B}[0m\u{1F}\u{7F}\u{85} tab\tcr\rlf\n end",
    "bidi مرحبا بالعالم \u{202E}txet\u{202C} שלום good",
    "combining e\u{301} a\u{308} \u{FEFF}bom inside, zero\u{200B}width",
    "separators \u{2028} and \u{2029}, quotes \" and backslash \\ bad",
    "surrogate-range neighbours \u{D7FF} \u{E000} \u{10FFFF} ok",
    "plain ascii, the best day ever!",
];

fn odd_ids() -> Vec<String> {
    vec![
        "a/b/c".into(),
        "../../etc/passwd".into(),
        "..".into(),
        " id with  spaces ".into(),
        "x".repeat(200),
        "ünïcödé/🔥/../dt=2024-01-01".into(),
        "part-0000.parquet".into(),
        "tab\tand\"quote".into(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_nights_land_every_version_once_with_conflicts_late_future_and_odd_records() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("posts.jsonl");
    let lake = dir.path().join("lake");
    let vader: Arc<dyn SentimentAnalyzer> = Arc::new(VaderAnalyzer::new());
    let t0 = now();

    // Night 1: the last day's posts, spread over the last 30 hours (two dt's
    // at least), plus odd ids and texts.
    let mut night1: Vec<V> = (0..400)
        .map(|i| {
            V::new(
                format!("post-{i}"),
                format!(
                    "{} #{i}",
                    [
                        "great stuff!",
                        "awful, never again",
                        "it is a chair",
                        "not bad :)"
                    ][i % 4]
                ),
                t0 - Duration::minutes(30 * 60) + Duration::seconds(i as i64 * 271),
            )
        })
        .collect();
    for (i, id) in odd_ids().into_iter().enumerate() {
        night1.push(V::new(
            id,
            ODD_TEXTS[i % ODD_TEXTS.len()],
            t0 - Duration::minutes(i as i64),
        ));
    }
    let mut lines: Vec<String> = night1.iter().map(V::line).collect();
    write_input(&input, &lines);
    let s1 = night(&input, &lake, vader.clone()).await;
    assert_eq!(
        (s1.produce.sent_records, s1.scored, s1.produce.rejected),
        (408, 408, 0)
    );
    assert_eq!(in_lake(&lake), expected(&night1));

    // Night 2: the file grows. Updates (newer updated_at, new text); a
    // version conflicting with one already sent (same id and updated_at,
    // other text); a late record dated three days back (behind any
    // watermark); one dated tomorrow (a writer whose clock is ahead); exact
    // duplicate lines; odd records updated with other odd texts.
    let t1 = now();
    let mut night2: Vec<V> = Vec::new();
    for i in (0..400).step_by(7) {
        night2.push(night1[i].clone().updated(
            t1 - Duration::seconds(i as i64),
            format!("changed my mind: horrible #{i}"),
        ));
    }
    let conflicting = V {
        text: "same id, same updated_at, other text: wonderful".into(),
        ..night1[3].clone()
    };
    night2.push(conflicting);
    night2.push(V::new(
        "late/one",
        "arrived late but lovely",
        t1 - Duration::days(3),
    ));
    night2.push(V::new(
        "future/one",
        "from tomorrow, sent once",
        t1 + Duration::days(1),
    ));
    for i in 400..408 {
        night2.push(
            night1[i]
                .clone()
                .updated(t1, ODD_TEXTS[(i + 3) % ODD_TEXTS.len()]),
        );
    }
    lines.extend(night2.iter().map(V::line));
    lines.push(lines[5].clone());
    lines.push(lines[lines.len() - 2].clone());
    write_input(&input, &lines);
    let s2 = night(&input, &lake, vader.clone()).await;
    assert_eq!(
        (s2.produce.sent_records, s2.produce.unchanged, s2.scored),
        (night2.len() as u64, 408 + 2, night2.len() as u64),
        "only the new versions; the duplicate lines and night 1 are unchanged"
    );
    let mut all = night1.clone();
    all.extend(night2.iter().cloned());
    assert_eq!(
        in_lake(&lake),
        expected(&all),
        "every version exactly once after night 2"
    );

    // Night 3: nothing new but one appended record; the future-dated one
    // is not sent again.
    let extra = V::new("night3/only", "the only new one", now());
    lines.push(extra.line());
    write_input(&input, &lines);
    let s3 = night(&input, &lake, vader.clone()).await;
    assert_eq!((s3.produce.sent_records, s3.scored), (1, 1));
    all.push(extra);
    let got = in_lake(&lake);
    assert_eq!(got, expected(&all));
    assert!(got.values().all(|&n| n == 1));
    assert_eq!(s3.versions_in_lake as usize, all.len());

    // The texts round-trip byte for byte (not only by hash).
    let rows = read_lake(&lake);
    for (i, id) in odd_ids().into_iter().enumerate() {
        let texts: Vec<_> = rows
            .iter()
            .filter(|r| r.id == id)
            .map(|r| r.text.clone().unwrap())
            .collect();
        assert!(
            texts.contains(&ODD_TEXTS[i % ODD_TEXTS.len()].to_owned()),
            "{id:?}: {texts:?}"
        );
        assert_eq!(texts.len(), 2, "{id:?}: original and update");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_lettered_records_are_not_marked_sent_and_the_next_run_retries_them() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("posts.jsonl");
    let lake = dir.path().join("lake");
    let t0 = now();
    let versions: Vec<V> = (0..500)
        .map(|i| {
            let text = if i % 97 == 13 {
                format!("POISON pill #{i}")
            } else {
                format!("a fine sentence #{i}")
            };
            V::new(format!("r/{i}"), text, t0 - Duration::minutes(i as i64 * 7))
        })
        .collect();
    write_input(&input, &versions.iter().map(V::line).collect::<Vec<_>>());
    // VADER, except that any text containing "POISON" is refused while
    // refusals are on (a fault that is fixed before the next night).
    let analyzer = Arc::new(ScriptedAnalyzer::vader().refusing("POISON", "InvalidRequest"));

    let s1 = night(&input, &lake, analyzer.clone()).await;
    assert!(s1.dead_lettered_messages >= 1, "{s1:?}");
    assert!(analyzer.counts().refused > 0, "the refusals fired");
    let dead: Vec<String> = std::fs::read_to_string(lake.join("_dead_letter/messages.jsonl"))
        .unwrap()
        .lines()
        .flat_map(|l| {
            serde_json::from_str::<etl_local::DeadLetter>(l)
                .unwrap()
                .record_ids
        })
        .collect();
    assert_eq!(dead.len() as u64, s1.dead_lettered_records);
    assert_eq!(
        s1.pending_retry, s1.dead_lettered_records,
        "every dead-lettered record is left to retry"
    );
    assert_eq!(s1.versions_in_lake + s1.pending_retry, 500);
    let landed: Vec<V> = versions
        .iter()
        .filter(|v| !dead.contains(&v.id))
        .cloned()
        .collect();
    assert_eq!(
        in_lake(&lake),
        expected(&landed),
        "the healthy messages landed once"
    );

    // The same night again, still failing: they are retried (and counted),
    // dead-lettered again, and still left to retry; nothing else is sent.
    let s2 = night(&input, &lake, analyzer.clone()).await;
    assert_eq!(
        (s2.produce.sent_records, s2.retried_records),
        (s1.pending_retry, s1.pending_retry)
    );
    assert_eq!(s2.pending_retry, s1.pending_retry);

    // Fixed: the next night retries exactly those and they land.
    analyzer.set_refusing(false);
    let s3 = night(&input, &lake, analyzer.clone()).await;
    assert_eq!(
        (
            s3.produce.sent_records,
            s3.retried_records,
            s3.scored,
            s3.pending_retry,
            s3.dead_lettered_records
        ),
        (s1.pending_retry, s1.pending_retry, s1.pending_retry, 0, 0)
    );
    assert_eq!(
        in_lake(&lake),
        expected(&versions),
        "every version exactly once"
    );
    let s4 = night(&input, &lake, analyzer).await;
    assert_eq!((s4.produce.sent_records, s4.retried_records), (0, 0));
}
