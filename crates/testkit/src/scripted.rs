//! One analyzer for every fault a test needs from the engine: VADER (or
//! any analyzer) underneath, and a script of what goes wrong on top, with
//! counters so that a test can assert each fault fired.
//!
//! ```ignore
//! let engine = ScriptedAnalyzer::vader()
//!     .with(Script::ThrottleFirst(3))
//!     .with(Script::Refuse { marker: "POISON".into(), code: "InvalidRequest".into() })
//!     .with(Script::PanicOn("PANIC".into()))
//!     .refusal_message("refused {id}");
//! // … run …
//! assert_eq!(engine.counts().throttled, 3);
//! ```
//!
//! Steps are checked in the order they were added. Whole-call steps
//! (throttle, outage, panic) come before per-document ones (refusals), as
//! in the real services: a refused call scores nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use etl_core::{AnalyzeError, Document, Engine, SentimentAnalyzer, SentimentScore, VaderAnalyzer};

/// One thing the engine does wrong.
#[derive(Debug, Clone)]
pub enum Script {
    /// The first `n` calls fail whole with a retryable `ThrottlingException`.
    ThrottleFirst(u64),
    /// A call holding a document whose id starts with the prefix fails whole
    /// with a retryable `ServiceUnavailable` (an outage for some records).
    OutageForIds(String),
    /// A call holding a document whose text contains the marker panics (a bug).
    PanicOn(String),
    /// Documents whose text contains `marker` are refused alone, permanently,
    /// with `code` (Comprehend's `ErrorList`) and the analyzer's
    /// [refusal message](ScriptedAnalyzer::refusal_message). Only while
    /// refusals are on ([`ScriptedAnalyzer::set_refusing`]).
    Refuse {
        /// Text that marks a document to refuse.
        marker: String,
        /// The error code of the refusal.
        code: String,
    },
}

/// What the script did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScriptCounts {
    /// Calls to `analyze`.
    pub calls: u64,
    /// Documents handed over, over all calls.
    pub documents: u64,
    /// Calls failed by [`Script::ThrottleFirst`].
    pub throttled: u64,
    /// Calls failed by [`Script::OutageForIds`].
    pub outages: u64,
    /// Calls that panicked ([`Script::PanicOn`]).
    pub panics: u64,
    /// Documents refused ([`Script::Refuse`]).
    pub refused: u64,
}

/// The message of a refusal unless [`ScriptedAnalyzer::refusal_message`]
/// sets another; `{id}` stands for the document's id.
pub const DEFAULT_REFUSAL_MESSAGE: &str = "document {id} refused (injected)";

/// An analyzer that follows a [`Script`]. Cheap to share: wrap it in an `Arc`.
pub struct ScriptedAnalyzer {
    inner: Arc<dyn SentimentAnalyzer>,
    steps: Vec<Script>,
    refusal_message: String,
    refusing: AtomicBool,
    calls: AtomicU64,
    documents: AtomicU64,
    throttled: AtomicU64,
    outages: AtomicU64,
    panics: AtomicU64,
    refused: AtomicU64,
    seen: Mutex<HashMap<String, u64>>,
}

impl ScriptedAnalyzer {
    /// VADER with an empty script.
    pub fn vader() -> Self {
        Self::over(Arc::new(VaderAnalyzer::new()))
    }

    /// `inner` with an empty script.
    pub fn over(inner: Arc<dyn SentimentAnalyzer>) -> Self {
        Self {
            inner,
            steps: Vec::new(),
            refusal_message: DEFAULT_REFUSAL_MESSAGE.to_owned(),
            refusing: AtomicBool::new(true),
            calls: AtomicU64::new(0),
            documents: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            outages: AtomicU64::new(0),
            panics: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Add a step.
    pub fn with(mut self, step: Script) -> Self {
        self.steps.push(step);
        self
    }

    /// Shorthand for [`Script::Refuse`].
    pub fn refusing(self, marker: &str, code: &str) -> Self {
        self.with(Script::Refuse {
            marker: marker.into(),
            code: code.into(),
        })
    }

    /// The message of every refusal ([`Script::Refuse`]), `{id}` standing
    /// for the refused document's id: what a test that asserts the reason a
    /// record was dead-lettered with expects, e.g. `"refused {id}"`
    /// (default [`DEFAULT_REFUSAL_MESSAGE`]).
    pub fn refusal_message(mut self, template: &str) -> Self {
        self.refusal_message = template.to_owned();
        self
    }

    /// Turn the [`Script::Refuse`] steps on or off (a fault fixed between nights).
    pub fn set_refusing(&self, on: bool) {
        self.refusing.store(on, Ordering::SeqCst);
    }

    /// The counters so far.
    pub fn counts(&self) -> ScriptCounts {
        ScriptCounts {
            calls: self.calls.load(Ordering::SeqCst),
            documents: self.documents.load(Ordering::SeqCst),
            throttled: self.throttled.load(Ordering::SeqCst),
            outages: self.outages.load(Ordering::SeqCst),
            panics: self.panics.load(Ordering::SeqCst),
            refused: self.refused.load(Ordering::SeqCst),
        }
    }

    /// How many times a document with exactly this text was handed over.
    pub fn times_seen(&self, text: &str) -> u64 {
        self.lock_seen().get(text).copied().unwrap_or(0)
    }

    /// Documents handed over more than once, over all calls.
    pub fn seen_again(&self) -> u64 {
        self.lock_seen().values().map(|n| n.saturating_sub(1)).sum()
    }

    fn lock_seen(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl SentimentAnalyzer for ScriptedAnalyzer {
    fn engine(&self) -> Engine {
        self.inner.engine()
    }

    async fn analyze(
        &self,
        docs: &[Document<'_>],
    ) -> Result<Vec<Result<SentimentScore, AnalyzeError>>, AnalyzeError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        self.documents
            .fetch_add(docs.len() as u64, Ordering::SeqCst);
        {
            let mut seen = self.lock_seen();
            for d in docs {
                *seen.entry(d.text.to_owned()).or_default() += 1;
            }
        }
        for step in &self.steps {
            match step {
                Script::ThrottleFirst(n) if call < *n => {
                    self.throttled.fetch_add(1, Ordering::SeqCst);
                    return Err(AnalyzeError::retryable(
                        "ThrottlingException",
                        "rate exceeded (injected)",
                    ));
                }
                Script::OutageForIds(prefix) if docs.iter().any(|d| d.id.starts_with(prefix)) => {
                    self.outages.fetch_add(1, Ordering::SeqCst);
                    return Err(AnalyzeError::retryable(
                        "ServiceUnavailable",
                        "the engine is down (injected)",
                    ));
                }
                Script::PanicOn(marker) if docs.iter().any(|d| d.text.contains(marker)) => {
                    self.panics.fetch_add(1, Ordering::SeqCst);
                    panic!("analyzer bug triggered (injected: a text contains {marker:?})");
                }
                _ => {}
            }
        }
        let mut out = self.inner.analyze(docs).await?;
        if self.refusing.load(Ordering::SeqCst) {
            for (d, r) in docs.iter().zip(out.iter_mut()) {
                let refusal = self.steps.iter().find_map(|s| match s {
                    Script::Refuse { marker, code } if d.text.contains(marker.as_str()) => {
                        Some(code)
                    }
                    _ => None,
                });
                if let Some(code) = refusal {
                    self.refused.fetch_add(1, Ordering::SeqCst);
                    *r = Err(AnalyzeError::permanent(
                        code.clone(),
                        self.refusal_message.replace("{id}", d.id),
                    ));
                }
            }
        }
        Ok(out)
    }
}
