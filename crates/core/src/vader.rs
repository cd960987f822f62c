//! The embedded VADER engine.
//!
//! A statement-by-statement port of Python vaderSentiment 3.3.2 (in
//! `vader/engine.rs`, over the package's own lexicon files vendored in
//! `vader/data/`), returning exactly what that package returns under
//! CPython 3.11, its rounding included (three decimals for the
//! proportions, four for compound). The golden corpus under
//! `crates/core/tests/golden/` re-proves that on every `cargo test`.
//!
//! Why not the `vader-parity` crate: it reproduces vaderSentiment under
//! CPython 3.14, and the result of the same Python code depends on the
//! interpreter. CPython 3.12 made float `sum` compensated, so a text whose
//! sentiments cancel (e.g. `cramp sLutTisHnESseS woNdeRFULLY screwer
//! dEterMINatEnesS!!!!`) sums to a tiny residue under 3.11 and takes the
//! `!` emphasis (compound 0.2887), but to exactly 0 under 3.12+ (compound 0.0).
//! And `str.isupper()`/`str.lower()` follow each interpreter's Unicode
//! version (14.0 in 3.11), which moves the all-caps rule for texts with
//! letters cased only in newer Unicode. Our reference is pinned to 3.11
//! (`vader/py311_tables.rs`, `tests/golden/make_golden.py`).
//!
//! Labels follow the contract in DESIGN.md.

mod engine;
mod py311_tables;
mod pystr;

use async_trait::async_trait;

use crate::error::AnalyzeError;
use crate::sentiment::{Document, Engine, Label, SentimentAnalyzer, SentimentScore};

/// The raw VADER output for one text, equal to Python's `polarity_scores`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Polarity {
    /// Negative proportion (3 decimals).
    pub neg: f64,
    /// Neutral proportion (3 decimals).
    pub neu: f64,
    /// Positive proportion (3 decimals).
    pub pos: f64,
    /// Normalised compound in [-1, 1] (4 decimals).
    pub compound: f64,
}

/// The label rule of the output contract: compound ≥ 0.05 is POSITIVE,
/// ≤ −0.05 NEGATIVE, else NEUTRAL; MIXED wins when both pos and neg exceed 0.3.
pub fn label_for(p: &Polarity) -> Label {
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

/// VADER as a [`SentimentAnalyzer`]. Build it once (it parses ~11k lexicon
/// lines) and share it; scoring is CPU-only and needs no network.
pub struct VaderAnalyzer {
    inner: engine::Analyzer,
}

impl Default for VaderAnalyzer {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for VaderAnalyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VaderAnalyzer")
    }
}

impl VaderAnalyzer {
    /// Load the lexicons.
    pub fn new() -> Self {
        Self {
            inner: engine::Analyzer::new(),
        }
    }

    /// Python-identical `polarity_scores` for one text (the text is scored
    /// as given, with no normalisation of its own).
    pub fn polarity(&self, text: &str) -> Polarity {
        let s = self.inner.polarity_scores(text);
        Polarity {
            neg: pystr::round(s.neg, 3),
            neu: pystr::round(s.neu, 3),
            pos: pystr::round(s.pos, 3),
            compound: pystr::round(s.compound, 4),
        }
    }

    /// Score one text into the contract's [`SentimentScore`].
    pub fn score(&self, text: &str) -> SentimentScore {
        let p = self.polarity(text);
        SentimentScore {
            label: label_for(&p),
            positive: p.pos,
            negative: p.neg,
            neutral: p.neu,
            mixed: 0.0,
            compound: Some(p.compound),
            // VADER's lexicon is English; the column records what it scored as.
            language: "en".to_string(),
            engine: Engine::Vader,
        }
    }
}

#[async_trait]
impl SentimentAnalyzer for VaderAnalyzer {
    fn engine(&self) -> Engine {
        Engine::Vader
    }

    async fn analyze(
        &self,
        docs: &[Document<'_>],
    ) -> Result<Vec<Result<SentimentScore, AnalyzeError>>, AnalyzeError> {
        Ok(docs.iter().map(|d| Ok(self.score(d.text))).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(neg: f64, pos: f64, compound: f64) -> Polarity {
        Polarity {
            neg,
            neu: 1.0 - neg - pos,
            pos,
            compound,
        }
    }

    #[test]
    fn label_thresholds_are_inclusive_at_five_hundredths() {
        assert_eq!(label_for(&p(0.0, 0.2, 0.05)), Label::Positive);
        assert_eq!(label_for(&p(0.0, 0.2, 0.0499)), Label::Neutral);
        assert_eq!(label_for(&p(0.2, 0.0, -0.05)), Label::Negative);
        assert_eq!(label_for(&p(0.2, 0.0, -0.0499)), Label::Neutral);
    }

    #[test]
    fn mixed_needs_both_sides_above_point_three() {
        assert_eq!(label_for(&p(0.31, 0.31, 0.9)), Label::Mixed);
        assert_eq!(label_for(&p(0.3, 0.31, 0.9)), Label::Positive);
        assert_eq!(label_for(&p(0.31, 0.3, -0.9)), Label::Negative);
    }

    #[test]
    fn scores_known_sentence_like_the_reference() {
        // Example published in the vaderSentiment README.
        let v = VaderAnalyzer::new();
        let s = v.polarity("VADER is smart, handsome, and funny.");
        assert_eq!((s.neg, s.neu, s.pos, s.compound), (0.0, 0.254, 0.746, 0.8316));
        assert_eq!(v.score("VADER is smart, handsome, and funny.").label, Label::Positive);
    }
}
