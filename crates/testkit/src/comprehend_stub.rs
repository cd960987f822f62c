//! A loopback Comprehend that speaks enough of its JSON protocol (awsJson1_1,
//! `X-Amz-Target: Comprehend_20171127.<Operation>`) for the pipeline:
//! `BatchDetectSentiment` and `BatchDetectDominantLanguage` (moto answers
//! batch calls with 500). Use it directly as an endpoint or behind a
//! [`crate::FaultProxy`] (`start_with_comprehend`).
//!
//! Behaviour, all deterministic:
//! * a document containing [`ComprehendStub::FAIL_MARKER`] is answered in
//!   `ErrorList` with a permanent code (`TEXT_SIZE_LIMIT_EXCEEDED`) every time;
//! * a document containing [`ComprehendStub::FLAKY_MARKER`] is answered in
//!   `ErrorList` with `INTERNAL_SERVER_ERROR` the first
//!   `flaky_failures` times that exact text is seen, then scored;
//! * the first `throttle_calls` batch calls are answered with
//!   `ThrottlingException` (HTTP 400), "throttling for a while";
//! * every other document is scored from a few keywords: POSITIVE, NEGATIVE
//!   or NEUTRAL with fixed scores.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::http;

/// What the stub answered so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StubCounts {
    /// Batch calls received (throttled ones included).
    pub calls: u64,
    /// Calls answered with ThrottlingException.
    pub throttled: u64,
    /// Documents scored (in ResultList).
    pub scored: u64,
    /// ErrorList entries with a permanent code.
    pub permanent_errors: u64,
    /// ErrorList entries with INTERNAL_SERVER_ERROR.
    pub transient_errors: u64,
}

#[derive(Debug, Default)]
struct StubState {
    throttle_calls: u64,
    flaky_failures: u64,
    seen_flaky: HashMap<String, u64>,
    counts: StubCounts,
}

/// The stub server. Dropping it stops it. See the module docs.
#[derive(Debug)]
pub struct ComprehendStub {
    addr: SocketAddr,
    state: Arc<Mutex<StubState>>,
    task: JoinHandle<()>,
}

impl Drop for ComprehendStub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ComprehendStub {
    /// Documents containing this are refused permanently.
    pub const FAIL_MARKER: &'static str = "[[comprehend-refuses]]";
    /// Documents containing this fail transiently `flaky_failures` times.
    pub const FLAKY_MARKER: &'static str = "[[comprehend-flaky]]";

    /// Start on `127.0.0.1:<free port>` (inside a Tokio runtime).
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Comprehend stub");
        let addr = listener.local_addr().expect("stub address");
        let state = Arc::new(Mutex::new(StubState {
            flaky_failures: 1,
            ..StubState::default()
        }));
        let st = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    continue;
                };
                let st = Arc::clone(&st);
                tokio::spawn(async move {
                    let _ = serve(conn, st).await;
                });
            }
        });
        Self { addr, state, task }
    }

    /// The address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StubState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Throttle the next `n` batch calls.
    pub fn throttle_next(&self, n: u64) {
        let mut st = self.lock();
        st.throttle_calls = st.counts.calls + n;
    }

    /// How many times each flaky document fails before it is scored.
    pub fn set_flaky_failures(&self, n: u64) {
        self.lock().flaky_failures = n;
    }

    /// A snapshot of the counters.
    pub fn counts(&self) -> StubCounts {
        self.lock().counts.clone()
    }
}

/// The label and scores the stub gives a text.
pub fn stub_label(text: &str) -> (&'static str, [f32; 4]) {
    let t = text.to_lowercase();
    if ["love", "great", "wonderful", "lovely"]
        .iter()
        .any(|w| t.contains(w))
    {
        ("POSITIVE", [0.9, 0.02, 0.07, 0.01])
    } else if ["hate", "terrible", "awful"].iter().any(|w| t.contains(w)) {
        ("NEGATIVE", [0.03, 0.9, 0.06, 0.01])
    } else {
        ("NEUTRAL", [0.05, 0.05, 0.88, 0.02])
    }
}

fn answer(op: &str, body: &Value, st: &Mutex<StubState>) -> Result<Value, (u16, Value)> {
    let mut st = st.lock().unwrap_or_else(|p| p.into_inner());
    st.counts.calls += 1;
    if st.counts.calls <= st.throttle_calls {
        st.counts.throttled += 1;
        return Err((
            400,
            json!({"__type": "ThrottlingException", "Message": "Rate exceeded (stub)"}),
        ));
    }
    let texts: Vec<String> = body
        .get("TextList")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|t| t.as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default();
    if texts.is_empty() || texts.len() > 25 {
        return Err((
            400,
            json!({"__type": "BatchSizeLimitExceededException", "Message": format!("{} documents", texts.len())}),
        ));
    }
    let (mut results, mut errors) = (Vec::new(), Vec::new());
    for (i, text) in texts.iter().enumerate() {
        if text.contains(ComprehendStub::FAIL_MARKER) {
            st.counts.permanent_errors += 1;
            errors.push(json!({"Index": i, "ErrorCode": "TEXT_SIZE_LIMIT_EXCEEDED", "ErrorMessage": "refused by the stub"}));
            continue;
        }
        if text.contains(ComprehendStub::FLAKY_MARKER) {
            let limit = st.flaky_failures;
            let seen = st.seen_flaky.entry(text.clone()).or_default();
            if *seen < limit {
                *seen += 1;
                st.counts.transient_errors += 1;
                errors.push(json!({"Index": i, "ErrorCode": "INTERNAL_SERVER_ERROR", "ErrorMessage": "transient (stub)"}));
                continue;
            }
        }
        st.counts.scored += 1;
        if op == "BatchDetectDominantLanguage" {
            results.push(json!({"Index": i, "Languages": [{"LanguageCode": "en", "Score": 0.99}]}));
        } else {
            let (label, s) = stub_label(text);
            results.push(json!({"Index": i, "Sentiment": label, "SentimentScore": {"Positive": s[0], "Negative": s[1], "Neutral": s[2], "Mixed": s[3]}}));
        }
    }
    Ok(json!({"ResultList": results, "ErrorList": errors}))
}

async fn serve(mut conn: TcpStream, st: Arc<Mutex<StubState>>) -> std::io::Result<()> {
    let Some(req) = http::read_request(&mut conn).await? else {
        return Ok(());
    };
    let op = req
        .header("x-amz-target")
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or("")
        .to_owned();
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let (status, reason, payload) = match op.as_str() {
        "BatchDetectSentiment" | "BatchDetectDominantLanguage" => match answer(&op, &body, &st) {
            Ok(v) => (200, "OK", v),
            Err((s, v)) => (s, "Bad Request", v),
        },
        _ => (
            400,
            "Bad Request",
            json!({"__type": "UnknownOperationException", "Message": format!("the stub does not implement {op:?}")}),
        ),
    };
    let headers = [
        ("Content-Type", "application/x-amz-json-1.1".to_owned()),
        ("x-amzn-RequestId", "comprehend-stub".to_owned()),
    ];
    conn.write_all(&http::simple_response(
        status,
        reason,
        &headers,
        payload.to_string().as_bytes(),
        false,
    ))
    .await?;
    conn.shutdown().await
}
