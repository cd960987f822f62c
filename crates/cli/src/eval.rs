//! `etl eval`: how right an engine's labels are on texts people labelled.
//!
//! Every text is scored by the engine exactly as the pipeline scores it (the
//! same analyzer, in batches of 25, Comprehend's batch limit), and its label
//! compared with the person's: accuracy, macro-F1, per-class precision and
//! recall, and the confusion matrix (`etl_core::eval`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use etl_core::eval::{Confusion, Evaluation};
use etl_core::sentiment::{Document, SentimentAnalyzer};
use etl_local::labels::{read_labels, LabelFields, LabelReject, LabelledText};
use serde::Serialize;

use crate::ops::emit;

/// Texts per analyzer call (Comprehend's BatchDetectSentiment takes 25).
const BATCH: usize = 25;

/// Refused rows listed by name; the rest are counted.
const SHOWN_REFUSALS: usize = 10;

/// What `etl eval --json` prints.
#[derive(Debug, Serialize)]
pub struct EvalReport {
    /// The engine evaluated.
    pub engine: String,
    /// The labels file.
    pub labels: String,
    /// Rows refused (no text, no label, an unknown label, not a row).
    pub refused: usize,
    /// The first of them, with line and field.
    pub refused_rows: Vec<LabelReject>,
    /// The figures.
    #[serde(flatten)]
    pub evaluation: Evaluation,
}

/// Score every text and count (gold, predicted).
pub async fn score_all(
    analyzer: &dyn SentimentAnalyzer,
    texts: &[LabelledText],
    progress: &indicatif::ProgressBar,
) -> Confusion {
    let mut c = Confusion::new();
    for chunk in texts.chunks(BATCH) {
        let ids: Vec<String> = chunk.iter().map(|t| format!("line {}", t.line)).collect();
        let docs: Vec<Document<'_>> = chunk
            .iter()
            .zip(&ids)
            .map(|(t, id)| Document { id, text: &t.text })
            .collect();
        match analyzer.analyze(&docs).await {
            Ok(results) => {
                // An analyzer owes one result per text: any it left out
                // are failures, not texts to forget.
                for _ in results.len()..chunk.len() {
                    c.add_failure();
                }
                for (t, r) in chunk.iter().zip(results) {
                    match r {
                        Ok(score) => c.add(t.gold, score.label),
                        Err(e) => {
                            tracing::warn!(message = "Text not scored.", line = t.line, error = %e);
                            c.add_failure();
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(message = "Batch not scored.", first_line = chunk[0].line, texts = chunk.len(), error = %e);
                for _ in chunk {
                    c.add_failure();
                }
            }
        }
        progress.inc(chunk.len() as u64);
    }
    c
}

/// `etl eval`.
pub async fn eval(
    analyzer: &dyn SentimentAnalyzer,
    engine: &str,
    labels: &Path,
    fields: &LabelFields,
    json: bool,
) -> Result<ExitCode> {
    let (texts, refused) =
        read_labels(labels, fields).with_context(|| format!("reading {}", labels.display()))?;
    if texts.is_empty() {
        bail!(
            "{}: no labelled text to evaluate ({} rows refused{})",
            labels.display(),
            refused.len(),
            refused
                .first()
                .map(|r| format!("; line {}, {}: {}", r.line, r.field, r.reason))
                .unwrap_or_default()
        );
    }
    let bar = crate::ops::counter_bar(texts.len() as u64, "scoring labelled texts");
    let confusion = score_all(analyzer, &texts, &bar).await;
    bar.finish_and_clear();
    let report = EvalReport {
        engine: engine.to_owned(),
        labels: labels.display().to_string(),
        refused: refused.len(),
        refused_rows: refused.into_iter().take(SHOWN_REFUSALS).collect(),
        evaluation: confusion.evaluation(),
    };
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    } else {
        emit(&text(&report))?;
    }
    if report.evaluation.scored + report.evaluation.mixed_gold == 0 {
        bail!(
            "the engine scored none of the {} texts ({} failed; the log says why)",
            texts.len(),
            report.evaluation.failed
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn text(r: &EvalReport) -> String {
    let e = &r.evaluation;
    let mut o = format!(
        "engine {} on {}: {} texts scored ({} failed, {} labelled mixed counted apart, {} rows refused)\n\
         accuracy {:.3}   macro-F1 {:.3}\n\n",
        r.engine, r.labels, e.scored, e.failed, e.mixed_gold, r.refused, e.accuracy, e.macro_f1
    );
    o.push_str("label      support  predicted  precision  recall     F1\n");
    for c in &e.classes {
        o.push_str(&format!(
            "{:<10} {:>7}  {:>9}  {:>9.3}  {:>6.3}  {:>5.3}\n",
            c.label, c.support, c.predicted, c.precision, c.recall, c.f1
        ));
    }
    o.push_str("\nconfusion (rows: the label people gave; columns: the engine's)\n");
    o.push_str(&format!(
        "{:<10} {:>9} {:>9} {:>9} {:>9}\n",
        "", "negative", "neutral", "positive", "mixed"
    ));
    for (gold, row) in &e.confusion {
        let n = |k: &str| row.get(k).copied().unwrap_or(0);
        o.push_str(&format!(
            "{gold:<10} {:>9} {:>9} {:>9} {:>9}\n",
            n("negative"),
            n("neutral"),
            n("positive"),
            n("mixed")
        ));
    }
    if !r.refused_rows.is_empty() {
        o.push_str(&format!("\nrefused rows ({} in all):\n", r.refused));
        for x in &r.refused_rows {
            o.push_str(&format!("  line {}, {}: {}\n", x.line, x.field, x.reason));
        }
    }
    o
}
