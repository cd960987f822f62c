//! Sentiment results and the analyzer contract.
//!
//! Both engines (Amazon Comprehend and the embedded VADER) produce the same
//! [`SentimentScore`] so the rest of the pipeline, the Parquet schema and the
//! SQL views never care which one ran.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::AnalyzeError;

/// The sentiment label, spelled as Comprehend spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Label {
    /// Clearly positive.
    Positive,
    /// Clearly negative.
    Negative,
    /// Neither.
    Neutral,
    /// Strongly both.
    Mixed,
}

impl Label {
    /// The label as written to the lake.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Positive => "POSITIVE",
            Label::Negative => "NEGATIVE",
            Label::Neutral => "NEUTRAL",
            Label::Mixed => "MIXED",
        }
    }

    /// Parse Comprehend's spelling (case-insensitive).
    pub fn parse(s: &str) -> Option<Label> {
        match s.to_ascii_uppercase().as_str() {
            "POSITIVE" => Some(Label::Positive),
            "NEGATIVE" => Some(Label::Negative),
            "NEUTRAL" => Some(Label::Neutral),
            "MIXED" => Some(Label::Mixed),
            _ => None,
        }
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which engine scored a record; written to the `engine` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// Amazon Comprehend `BatchDetectSentiment`.
    Comprehend,
    /// The embedded VADER engine (parity with Python vaderSentiment 3.3.2).
    Vader,
}

impl Engine {
    /// The engine name as configured and as written to the lake.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Comprehend => "comprehend",
            Engine::Vader => "vader",
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Engine {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "comprehend" => Ok(Engine::Comprehend),
            "vader" => Ok(Engine::Vader),
            other => Err(format!(
                "unknown sentiment engine {other:?}: expected \"comprehend\" or \"vader\""
            )),
        }
    }
}

/// The scores for one document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentimentScore {
    /// The label.
    pub label: Label,
    /// Comprehend `Positive`, or VADER `pos`.
    pub positive: f64,
    /// Comprehend `Negative`, or VADER `neg`.
    pub negative: f64,
    /// Comprehend `Neutral`, or VADER `neu`.
    pub neutral: f64,
    /// Comprehend `Mixed`, or 0 for VADER.
    pub mixed: f64,
    /// VADER compound; `None` for Comprehend.
    pub compound: Option<f64>,
    /// ISO 639-1 language code the document was scored as.
    pub language: String,
    /// The engine that produced the score.
    pub engine: Engine,
}

/// One document handed to an analyzer.
#[derive(Debug, Clone, Copy)]
pub struct Document<'a> {
    /// The record id, for error messages.
    pub id: &'a str,
    /// The text to score.
    pub text: &'a str,
}

/// Scores documents. Implementations return one result per input document, in
/// order, so that one failed document fails only its own record.
#[async_trait]
pub trait SentimentAnalyzer: Send + Sync {
    /// The engine this analyzer represents.
    fn engine(&self) -> Engine;

    /// Score a batch of documents. The outer error is for a failure of the
    /// whole call (nothing was scored); per-document failures go in the vector.
    async fn analyze(
        &self,
        docs: &[Document<'_>],
    ) -> Result<Vec<Result<SentimentScore, AnalyzeError>>, AnalyzeError>;

    /// Billing units used since the last call, and reset (Comprehend bills
    /// per 100 characters, at least 3 units a document; a free engine
    /// returns 0). What one invocation reports as its cost.
    fn take_billing_units(&self) -> u64 {
        0
    }
}
