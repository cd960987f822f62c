//! `SentimentAnalyzer` conformance: one result per document, in input
//! order, a refused document failing alone, scores that say which engine
//! made them.
//!
//! Batches of [`BATCH`] documents cross Comprehend's 25-document call
//! limit, so the order and "fails alone" behaviours also cover results
//! mapped back across chunks. What an engine refuses differs (VADER scores
//! any text; Comprehend refuses documents, the stub those holding
//! `ComprehendStub::FAIL_MARKER`), so it is a parameter, as is the text
//! that fails transiently.

use etl_core::{AnalyzeError, Document, Retry, SentimentAnalyzer, SentimentScore};

use crate::fixtures::hostile_records;

/// Documents per batch: more than one Comprehend call.
pub const BATCH: usize = 30;

/// Texts of every label, so a result at the wrong index shows.
const VARIED: [&str; 6] = [
    "I love this, it is wonderful!",
    "This is terrible, I hate it.",
    "The meeting is at noon.",
    "Great work 😀 really great",
    "awful, just awful 😡",
    "Le café est ouvert à midi.",
];

/// `n` distinct texts, labels mixed in no short period.
pub fn varied_texts(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{} #{i}", VARIED[(i * 7 + i / 4) % VARIED.len()]))
        .collect()
}

/// Score `texts` as documents `doc-0`, `doc-1`, …; panics on an outer error.
pub async fn analyze_texts(
    analyzer: &dyn SentimentAnalyzer,
    texts: &[String],
) -> Vec<Result<SentimentScore, AnalyzeError>> {
    let ids: Vec<String> = (0..texts.len()).map(|i| format!("doc-{i}")).collect();
    let docs: Vec<Document<'_>> = ids
        .iter()
        .zip(texts)
        .map(|(id, text)| Document { id, text })
        .collect();
    let out = analyzer.analyze(&docs).await.expect("the analyze call");
    assert_eq!(out.len(), docs.len(), "one result per document");
    out
}

/// Assert that a score is a score: probabilities in [0, 1], a compound in
/// [-1, 1] when present, a language, and the analyzer's engine.
fn assert_sane(analyzer: &dyn SentimentAnalyzer, i: usize, s: &SentimentScore) {
    for (name, p) in [
        ("positive", s.positive),
        ("negative", s.negative),
        ("neutral", s.neutral),
        ("mixed", s.mixed),
    ] {
        assert!((0.0..=1.0).contains(&p), "document {i}: {name} = {p}");
    }
    if let Some(c) = s.compound {
        assert!((-1.0..=1.0).contains(&c), "document {i}: compound = {c}");
    }
    assert!(!s.language.is_empty(), "document {i}: no language");
    assert_eq!(s.engine, analyzer.engine(), "document {i}: engine");
}

/// An empty batch is scored without a call: `Ok` and no results.
pub async fn empty_batch_scores_nothing(analyzer: &dyn SentimentAnalyzer) {
    let out = analyzer.analyze(&[]).await.expect("an empty batch");
    assert!(out.is_empty(), "{out:?}");
}

/// The fixtures' hostile texts (astral, combining, RTL, controls, the
/// non-characters) are each scored: one `Ok` per document, each a sane
/// score from this analyzer's engine.
pub async fn every_document_gets_a_score(analyzer: &dyn SentimentAnalyzer) {
    let texts: Vec<String> = hostile_records(BATCH).into_iter().map(|f| f.text).collect();
    for (i, r) in analyze_texts(analyzer, &texts).await.iter().enumerate() {
        match r {
            Ok(s) => assert_sane(analyzer, i, s),
            Err(e) => panic!("document {i} ({:?}) failed: {e}", texts[i]),
        }
    }
}

/// Results come back in input order: each result equals the score of its
/// document analysed alone.
pub async fn results_keep_input_order(analyzer: &dyn SentimentAnalyzer) {
    let texts = varied_texts(BATCH);
    let batch = analyze_texts(analyzer, &texts).await;
    let mut labels = std::collections::BTreeSet::new();
    for (i, text) in texts.iter().enumerate() {
        let alone = analyze_texts(analyzer, std::slice::from_ref(text)).await;
        assert_eq!(batch[i], alone[0], "document {i} ({text:?}) in the batch");
        if let Ok(s) = &alone[0] {
            labels.insert(s.label.as_str());
        }
    }
    assert!(
        labels.len() >= 2,
        "the texts must tell positions apart: {labels:?}"
    );
}

/// A document the engine refuses fails alone, permanently, with a code;
/// its neighbours (in its call and in the next) are scored. `refused` is
/// a text the engine refuses; `None` for an engine that refuses nothing
/// (VADER), where there is nothing to check.
pub async fn refused_document_fails_alone(analyzer: &dyn SentimentAnalyzer, refused: Option<&str>) {
    let Some(refused) = refused else {
        return;
    };
    let bad = [1, 26];
    let mut texts = varied_texts(BATCH);
    for &i in &bad {
        texts[i] = format!("document {i}: {refused}");
    }
    for (i, r) in analyze_texts(analyzer, &texts).await.iter().enumerate() {
        match r {
            Err(e) if bad.contains(&i) => {
                assert_eq!(e.retry, Retry::Permanent, "document {i}: {e}");
                assert!(!e.code.is_empty(), "document {i}: no code");
            }
            Ok(s) if !bad.contains(&i) => assert_sane(analyzer, i, s),
            other => panic!("document {i}: unexpected {other:?}"),
        }
    }
}

/// A document that fails transiently is retried or reported retryable,
/// never permanent (which would dead-letter a good record), and does not
/// fail its neighbours. `flaky` is such a text; `None` for an engine with
/// no transient failures (VADER).
pub async fn transient_failure_is_never_permanent(
    analyzer: &dyn SentimentAnalyzer,
    flaky: Option<&str>,
) {
    let Some(flaky) = flaky else {
        return;
    };
    let mut texts = varied_texts(5);
    texts[2] = format!("document 2: {flaky}");
    for (i, r) in analyze_texts(analyzer, &texts).await.iter().enumerate() {
        match r {
            Ok(s) => assert_sane(analyzer, i, s),
            Err(e) if i == 2 => assert_eq!(e.retry, Retry::Retryable, "{e}"),
            Err(e) => panic!("document {i} failed with its flaky neighbour: {e}"),
        }
    }
}

/// Every behaviour, in sequence, on one analyzer.
pub async fn all(analyzer: &dyn SentimentAnalyzer, refused: Option<&str>, flaky: Option<&str>) {
    empty_batch_scores_nothing(analyzer).await;
    every_document_gets_a_score(analyzer).await;
    results_keep_input_order(analyzer).await;
    refused_document_fails_alone(analyzer, refused).await;
    transient_failure_is_never_permanent(analyzer, flaky).await;
}
