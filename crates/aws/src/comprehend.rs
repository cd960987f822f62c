//! Amazon Comprehend as a core [`SentimentAnalyzer`].
//!
//! BatchDetectSentiment takes at most 25 documents of at most 5,000 UTF-8
//! bytes, all in one language, and answers per document: a `ResultList` and an
//! `ErrorList`, both keyed by the document's index in the request. This module
//! owns those rules: texts are cut on a character boundary, documents are
//! grouped by language (fixed, or detected with BatchDetectDominantLanguage
//! when `LANGUAGE=auto`) and chunked by 25, answers are mapped back by index,
//! and both throttled calls and per-document transient errors are retried
//! in-call with jittered backoff, a bounded number of times. A call that
//! still fails fails only the documents of its chunk (see `ChunkGate`), and
//! every call can take a token from a [`RateLimiter`] shared by the
//! container. The client should
//! be built with SDK retries off (see [`crate::Clients`]) so the two retry
//! loops do not multiply.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_comprehend::types::LanguageCode;
use aws_sdk_comprehend::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use etl_core::RetryPolicy;
use etl_core::{AnalyzeError, Document, Engine, Label, Retry, SentimentAnalyzer, SentimentScore};
use tracing::warn;

use crate::error::{classify, code, is_retryable_code};
use crate::rate::RateLimiter;

/// Documents per batch call.
pub const MAX_BATCH_DOCS: usize = 25;

/// Bytes per document.
pub const MAX_DOC_BYTES: usize = 5_000;

/// Languages BatchDetectSentiment accepts.
pub const SUPPORTED_LANGUAGES: &[&str] = &[
    "ar", "de", "en", "es", "fr", "hi", "it", "ja", "ko", "pt", "zh", "zh-TW",
];

/// How documents get their language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LanguageMode {
    /// Every document is in this language.
    Fixed(String),
    /// Detect each document's dominant language first.
    Auto,
}

impl std::str::FromStr for LanguageMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("auto") {
            return Ok(LanguageMode::Auto);
        }
        SUPPORTED_LANGUAGES
            .iter()
            .find(|l| l.eq_ignore_ascii_case(t))
            .map(|l| LanguageMode::Fixed((*l).to_owned()))
            .ok_or_else(|| {
                format!(
                    "unsupported language {t:?}: expected \"auto\" or one of {}",
                    SUPPORTED_LANGUAGES.join(", ")
                )
            })
    }
}

pub use etl_core::record::truncate_utf8;

/// Comprehend's billing units for one document: 100 characters each, at least 3.
pub fn units_for(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(100).max(3)
}

/// Comprehend sentiment. See the module docs.
#[derive(Debug)]
pub struct ComprehendAnalyzer {
    client: Client,
    language: LanguageMode,
    retry: RetryPolicy,
    units: AtomicU64,
    limiter: Option<Arc<RateLimiter>>,
}

/// What one batch call answered, by position in the request.
struct BatchAnswer<T> {
    ok: Vec<(usize, T)>,
    errors: Vec<(usize, String, String)>,
}

impl ComprehendAnalyzer {
    /// 5 attempts per call, 200 ms–5 s backoff.
    pub const DEFAULT_RETRY: RetryPolicy =
        RetryPolicy::new(5, Duration::from_millis(200), Duration::from_secs(5));

    /// An analyzer with [`Self::DEFAULT_RETRY`].
    pub fn new(client: Client, language: LanguageMode) -> Self {
        Self {
            client,
            language,
            retry: Self::DEFAULT_RETRY,
            units: AtomicU64::new(0),
            limiter: None,
        }
    }

    /// Take a token from `limiter` before every call (retries included).
    /// Give every analyzer of a container the same limiter; one analyzer
    /// shared by all concurrently processed messages shares it already.
    pub fn with_rate_limiter(mut self, limiter: Arc<RateLimiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// Change the retry policy (attempts per call, backoff base and cap).
    pub fn with_retry(self, max_attempts: u32, base_delay: Duration, max_delay: Duration) -> Self {
        self.with_retry_policy(RetryPolicy::new(max_attempts, base_delay, max_delay))
    }

    /// Change the retry policy.
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Billing units of the documents processed since the last call (for metrics).
    pub fn take_units(&self) -> u64 {
        self.units.swap(0, Ordering::Relaxed)
    }

    /// Run a batch operation over `members` (document indices), retrying the
    /// whole call when it is throttled or fails transiently and resending only
    /// the documents whose ErrorList entry is transient. Bounded by the retry policy's attempts.
    async fn run_batch<T, F, Fut>(
        &self,
        members: &[usize],
        mut call: F,
    ) -> Result<Vec<(usize, Result<T, AnalyzeError>)>, AnalyzeError>
    where
        F: FnMut(Vec<usize>) -> Fut,
        Fut: Future<Output = Result<BatchAnswer<T>, AnalyzeError>>,
    {
        let mut pending = members.to_vec();
        let mut done = Vec::with_capacity(members.len());
        for attempt in 0..self.retry.max_attempts {
            let last = self.retry.is_last(attempt);
            if let Some(limiter) = &self.limiter {
                limiter.acquire().await;
            }
            let answer = match call(pending.clone()).await {
                Ok(a) => a,
                Err(e) if e.retry == Retry::Retryable && !last => {
                    warn!(message = "Comprehend call failed, retrying.", code = %e.code, attempt, documents = pending.len());
                    tokio::time::sleep(self.retry.delay(attempt, seed())).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut answered = vec![false; pending.len()];
            let mut retry = Vec::new();
            for (pos, value) in answer.ok {
                if let Some(seen) = answered.get_mut(pos).filter(|s| !**s) {
                    *seen = true;
                    done.push((pending[pos], Ok(value)));
                }
            }
            for (pos, code, message) in answer.errors {
                let Some(seen) = answered.get_mut(pos).filter(|s| !**s) else {
                    continue;
                };
                *seen = true;
                if item_retryable(&code) && !last {
                    retry.push(pending[pos]);
                } else if item_retryable(&code) {
                    done.push((pending[pos], Err(AnalyzeError::retryable(code, message))));
                } else {
                    done.push((pending[pos], Err(AnalyzeError::permanent(code, message))));
                }
            }
            for (pos, seen) in answered.iter().enumerate() {
                if !seen {
                    done.push((
                        pending[pos],
                        Err(AnalyzeError::permanent(
                            "MissingResult",
                            "Comprehend returned neither a result nor an error",
                        )),
                    ));
                }
            }
            if retry.is_empty() {
                return Ok(done);
            }
            warn!(
                message = "Comprehend documents failed transiently, retrying them.",
                documents = retry.len(),
                attempt
            );
            pending = retry;
            tokio::time::sleep(self.retry.delay(attempt, seed())).await;
        }
        Ok(done)
    }

    /// Dominant language per document (or a per-document error). A chunk
    /// whose call fails gives its documents that error (see [`ChunkGate`]).
    async fn detect_languages(&self, texts: &[&str]) -> Vec<Result<String, AnalyzeError>> {
        let mut langs: Vec<Option<Result<String, AnalyzeError>>> = vec![None; texts.len()];
        let all: Vec<usize> = (0..texts.len()).collect();
        let mut gate = ChunkGate::default();
        for chunk in all.chunks(MAX_BATCH_DOCS) {
            if let Some(e) = gate.closed() {
                for &i in chunk {
                    langs[i] = Some(Err(e.clone()));
                }
                continue;
            }
            let answers = self
                .run_batch(chunk, |idx| {
                    let list: Vec<String> = idx.iter().map(|&i| texts[i].to_owned()).collect();
                    let units: u64 = idx.iter().map(|&i| units_for(texts[i])).sum();
                    async move {
                        let out = self
                            .client
                            .batch_detect_dominant_language()
                            .set_text_list(Some(list))
                            .send()
                            .await
                            .map_err(|e| analyze_error("BatchDetectDominantLanguage", &e))?;
                        self.units.fetch_add(units, Ordering::Relaxed);
                        Ok(BatchAnswer {
                            ok: out
                                .result_list
                                .iter()
                                .filter_map(|r| {
                                    let top = r.languages().iter().max_by(|a, b| {
                                        a.score.unwrap_or(0.0).total_cmp(&b.score.unwrap_or(0.0))
                                    })?;
                                    Some((
                                        usize::try_from(r.index?).ok()?,
                                        top.language_code()?.to_owned(),
                                    ))
                                })
                                .collect(),
                            errors: item_errors(&out.error_list),
                        })
                    }
                })
                .await;
            for (i, r) in gate.spread(chunk, answers) {
                langs[i] = Some(r);
            }
        }
        langs
            .into_iter()
            .map(|l| {
                l.unwrap_or_else(|| {
                    Err(AnalyzeError::permanent(
                        "MissingResult",
                        "no language detected",
                    ))
                })
            })
            .collect()
    }

    /// Sentiment for `members` (indices into `texts`), all in `lang`.
    async fn sentiment(
        &self,
        lang: &str,
        members: &[usize],
        texts: &[&str],
    ) -> Result<Vec<(usize, Result<SentimentScore, AnalyzeError>)>, AnalyzeError> {
        self.run_batch(members, |idx| {
            let list: Vec<String> = idx.iter().map(|&i| texts[i].to_owned()).collect();
            let units: u64 = idx.iter().map(|&i| units_for(texts[i])).sum();
            async move {
                let out = self
                    .client
                    .batch_detect_sentiment()
                    .set_text_list(Some(list))
                    .language_code(LanguageCode::from(lang))
                    .send()
                    .await
                    .map_err(|e| analyze_error("BatchDetectSentiment", &e))?;
                self.units.fetch_add(units, Ordering::Relaxed);
                let mut ok = Vec::new();
                let mut errors = item_errors(&out.error_list);
                for r in &out.result_list {
                    let Some(pos) = r.index.and_then(|i| usize::try_from(i).ok()) else {
                        continue;
                    };
                    match score(r, lang) {
                        Some(s) => ok.push((pos, s)),
                        None => errors.push((
                            pos,
                            "InvalidResponse".into(),
                            "result without sentiment or scores".into(),
                        )),
                    }
                }
                Ok(BatchAnswer { ok, errors })
            }
        })
        .await
    }
}

/// Per-document results by document index.
type Indexed<T> = Vec<(usize, Result<T, AnalyzeError>)>;

/// Keeps a message's results when one of its chunks fails.
///
/// A chunk whose call fails (after the in-call retries) gives each of its
/// documents the call's error, so the chunks scored before it are kept and
/// returned instead of being thrown away with an outer error. After a
/// *transient* failure (throttling or unavailability that outlasted the
/// retries) the remaining chunks are not attempted: they would most likely
/// fail the same way, and waiting out their backoff brings the function's
/// deadline closer; their documents get a retryable `NotAttempted` error and
/// are tried again later (the consumer re-enqueues them). A *permanent*
/// failure of one chunk (for example a request Comprehend rejects as
/// invalid) does not stop the others.
#[derive(Debug, Default)]
struct ChunkGate {
    stopped: Option<AnalyzeError>,
}

impl ChunkGate {
    /// The error for a chunk that is not attempted, once the gate is closed.
    fn closed(&self) -> Option<AnalyzeError> {
        self.stopped.as_ref().map(|e| {
            AnalyzeError::retryable(
                "NotAttempted",
                format!(
                    "not sent after an earlier call failed transiently ({})",
                    e.code
                ),
            )
        })
    }

    /// Per-document results of one chunk's call.
    fn spread<T>(
        &mut self,
        chunk: &[usize],
        answer: Result<Indexed<T>, AnalyzeError>,
    ) -> Indexed<T> {
        match answer {
            Ok(v) => v,
            Err(e) => {
                warn!(message = "Comprehend call failed after retries; its documents fail alone.", code = %e.code, retry = ?e.retry, documents = chunk.len());
                if e.retry == Retry::Retryable {
                    self.stopped = Some(e.clone());
                }
                chunk.iter().map(|&i| (i, Err(e.clone()))).collect()
            }
        }
    }
}

fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Per-document error codes worth resending: Comprehend's INTERNAL_SERVER_ERROR
/// and anything throttling-like.
fn item_retryable(code: &str) -> bool {
    let up = code.to_ascii_uppercase();
    is_retryable_code(code)
        || up.contains("THROTTL")
        || up.contains("TOO_MANY")
        || up.contains("INTERNAL")
}

fn item_errors(list: &[aws_sdk_comprehend::types::BatchItemError]) -> Vec<(usize, String, String)> {
    list.iter()
        .filter_map(|e| {
            Some((
                usize::try_from(e.index?).ok()?,
                e.error_code().unwrap_or("UNKNOWN").to_owned(),
                e.error_message().unwrap_or("").to_owned(),
            ))
        })
        .collect()
}

/// f32 → f64 through its shortest decimal form, so 0.9987 stays 0.9987
/// instead of becoming 0.99870002269744873.
fn widen(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

fn score(
    r: &aws_sdk_comprehend::types::BatchDetectSentimentItemResult,
    lang: &str,
) -> Option<SentimentScore> {
    let label = Label::parse(r.sentiment()?.as_str())?;
    let s = r.sentiment_score()?;
    Some(SentimentScore {
        label,
        positive: widen(s.positive.unwrap_or(0.0)),
        negative: widen(s.negative.unwrap_or(0.0)),
        neutral: widen(s.neutral.unwrap_or(0.0)),
        mixed: widen(s.mixed.unwrap_or(0.0)),
        compound: None,
        language: lang.to_owned(),
        engine: Engine::Comprehend,
    })
}

fn analyze_error<E>(op: &str, err: &SdkError<E, HttpResponse>) -> AnalyzeError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let kind = match err {
        SdkError::TimeoutError(_) => "Timeout",
        SdkError::DispatchFailure(_) => "DispatchFailure",
        SdkError::ResponseError(_) => "ResponseError",
        _ => "SdkError",
    };
    AnalyzeError {
        retry: classify(err),
        code: code(err).unwrap_or(kind).to_owned(),
        message: format!("{op}: {}", DisplayErrorContext(err)),
    }
}

#[async_trait]
impl SentimentAnalyzer for ComprehendAnalyzer {
    fn engine(&self) -> Engine {
        Engine::Comprehend
    }

    fn take_billing_units(&self) -> u64 {
        self.take_units()
    }

    async fn analyze(
        &self,
        docs: &[Document<'_>],
    ) -> Result<Vec<Result<SentimentScore, AnalyzeError>>, AnalyzeError> {
        let texts: Vec<&str> = docs
            .iter()
            .map(|d| truncate_utf8(d.text, MAX_DOC_BYTES))
            .collect();
        let langs = match &self.language {
            LanguageMode::Fixed(l) => vec![Ok(l.clone()); docs.len()],
            LanguageMode::Auto => self.detect_languages(&texts).await,
        };
        let mut out: Vec<Option<Result<SentimentScore, AnalyzeError>>> = vec![None; docs.len()];
        let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, lang) in langs.into_iter().enumerate() {
            match lang {
                Ok(l) if SUPPORTED_LANGUAGES.contains(&l.as_str()) => groups.entry(l).or_default().push(i),
                Ok(l) => {
                    out[i] = Some(Err(AnalyzeError::permanent(
                        "UnsupportedLanguage",
                        format!("document {}: detected language {l:?} is not supported by BatchDetectSentiment", docs[i].id),
                    )))
                }
                Err(e) => out[i] = Some(Err(e)),
            }
        }
        let mut gate = ChunkGate::default();
        for (lang, members) in &groups {
            for chunk in members.chunks(MAX_BATCH_DOCS) {
                if let Some(e) = gate.closed() {
                    for &i in chunk {
                        out[i] = Some(Err(e.clone()));
                    }
                    continue;
                }
                let answers = self.sentiment(lang, chunk, &texts).await;
                for (i, r) in gate.spread(chunk, answers) {
                    out[i] = Some(r);
                }
            }
        }
        Ok(out
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(AnalyzeError::permanent(
                        "MissingResult",
                        "document was not scored",
                    ))
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_char_boundaries() {
        let s = "é".repeat(3000); // 6000 bytes
        let t = truncate_utf8(&s, MAX_DOC_BYTES);
        assert_eq!(t.len(), 5000);
        let s = format!("a{}", "€".repeat(2000)); // 1 + 6000 bytes; € is 3 bytes
        let t = truncate_utf8(&s, MAX_DOC_BYTES);
        assert_eq!(t.len(), 4999);
        assert!(t.ends_with('€'));
        assert_eq!(truncate_utf8("short", 5000), "short");
    }

    #[test]
    fn units_are_per_hundred_chars_with_a_minimum_of_three() {
        assert_eq!(units_for("hi"), 3);
        assert_eq!(units_for(&"x".repeat(301)), 4);
        assert_eq!(units_for(&"é".repeat(1000)), 10);
    }

    #[test]
    fn language_setting_is_validated() {
        assert_eq!("auto".parse::<LanguageMode>().unwrap(), LanguageMode::Auto);
        assert_eq!(
            "EN".parse::<LanguageMode>().unwrap(),
            LanguageMode::Fixed("en".into())
        );
        assert_eq!(
            "zh-tw".parse::<LanguageMode>().unwrap(),
            LanguageMode::Fixed("zh-TW".into())
        );
        assert!("xx".parse::<LanguageMode>().unwrap_err().contains("xx"));
        assert_eq!(widen(0.9987_f32), 0.9987);
    }
}
