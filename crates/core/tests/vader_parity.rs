//! The embedded VADER engine against the reference: Python vaderSentiment
//! 3.3.2 under CPython 3.11, frozen in `tests/golden/vader_golden.jsonl` by
//! `tests/golden/make_golden.py`. Every number must be equal, not close.

use etl_core::sentiment::Label;
use etl_core::vader::{label_for, Polarity, VaderAnalyzer};

/// Fewer rows than this means the golden file was truncated.
const MIN_ROWS: usize = 1_000;
/// How many divergent rows a failure prints.
const SHOW: usize = 20;

struct Row {
    line: usize,
    text: String,
    expected: Polarity,
}

fn golden() -> Vec<Row> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/vader_golden.jsonl"
    );
    let raw = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    raw.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{path}:{}: {e}", i + 1));
            // Every golden number has at most 4 decimals and 5 significant
            // digits, which serde_json parses exactly (significand / 10^k).
            let num = |k: &str| {
                v[k].as_f64()
                    .unwrap_or_else(|| panic!("{path}:{}: missing number {k:?}", i + 1))
            };
            Row {
                line: i + 1,
                text: v["text"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{path}:{}: missing text", i + 1))
                    .to_string(),
                expected: Polarity {
                    neg: num("neg"),
                    neu: num("neu"),
                    pos: num("pos"),
                    compound: num("compound"),
                },
            }
        })
        .collect()
}

fn short(text: &str) -> String {
    let mut s: String = text.chars().take(160).collect();
    if s.len() < text.len() {
        s.push('…');
    }
    format!("{s:?}")
}

#[test]
fn golden_corpus_is_complete() {
    let rows = golden();
    assert!(
        rows.len() >= MIN_ROWS,
        "golden corpus has {} rows, expected at least {MIN_ROWS}: truncated?",
        rows.len()
    );
}

#[test]
fn scores_equal_python_vader_exactly() {
    let rows = golden();
    assert!(
        rows.len() >= MIN_ROWS,
        "golden corpus truncated: {} rows",
        rows.len()
    );
    let vader = VaderAnalyzer::new();
    let mut diverged = Vec::new();
    for row in &rows {
        let got = vader.polarity(&row.text);
        let e = row.expected;
        // Exact equality, no tolerance (0.0 == -0.0, as in Python).
        if !(got.neg == e.neg && got.neu == e.neu && got.pos == e.pos && got.compound == e.compound)
        {
            diverged.push((row, got));
        }
    }
    if !diverged.is_empty() {
        let mut msg = format!(
            "{} of {} golden texts diverge from Python vaderSentiment 3.3.2; first {}:\n",
            diverged.len(),
            rows.len(),
            diverged.len().min(SHOW)
        );
        for (row, got) in diverged.iter().take(SHOW) {
            let e = row.expected;
            msg += &format!(
                "  line {}: {}\n    python neg={} neu={} pos={} compound={}\n    rust   neg={} neu={} pos={} compound={}\n",
                row.line,
                short(&row.text),
                e.neg,
                e.neu,
                e.pos,
                e.compound,
                got.neg,
                got.neu,
                got.pos,
                got.compound
            );
        }
        panic!("{msg}");
    }
}

/// The contract's label rule, written out independently of `label_for`.
fn contract_label(p: &Polarity) -> Label {
    if p.pos > 0.3 && p.neg > 0.3 {
        Label::Mixed
    } else if p.compound >= 0.05 {
        Label::Positive
    } else if p.compound <= -0.05 {
        Label::Negative
    } else {
        Label::Neutral
    }
}

#[test]
fn labels_follow_the_contract_on_every_golden_row() {
    let rows = golden();
    assert!(
        rows.len() >= MIN_ROWS,
        "golden corpus truncated: {} rows",
        rows.len()
    );
    let vader = VaderAnalyzer::new();
    let mut seen = std::collections::HashMap::new();
    let mut wrong = Vec::new();
    for row in &rows {
        let want = contract_label(&row.expected);
        *seen.entry(format!("{want:?}")).or_insert(0usize) += 1;
        let from_golden = label_for(&row.expected);
        let from_engine = vader.score(&row.text).label;
        if from_golden != want || from_engine != want {
            wrong.push(format!(
                "  line {}: {} want {want:?}, label_for(golden) {from_golden:?}, score() {from_engine:?}",
                row.line,
                short(&row.text)
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} label mismatches; first {}:\n{}",
        wrong.len(),
        wrong.len().min(SHOW),
        wrong
            .iter()
            .take(SHOW)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The corpus exercises every label.
    for l in [
        Label::Positive,
        Label::Negative,
        Label::Neutral,
        Label::Mixed,
    ] {
        assert!(
            seen.contains_key(&format!("{l:?}")),
            "no golden row labelled {l:?}"
        );
    }
}
