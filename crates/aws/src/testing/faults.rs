//! Fault injection for the AWS path, on loopback only (feature `test-support`).
//!
//! [`FaultProxy`] is an HTTP/1.1 proxy on `127.0.0.1` in front of the moto
//! server (and, for Comprehend, in front of a [`ComprehendStub`]). Clients
//! simply use the proxy as their endpoint ([`FaultProxy::clients`]). Each
//! request is classified by service — the SigV4 credential scope
//! `…/<region>/<service>/aws4_request` in `Authorization` — and by operation:
//! `X-Amz-Target` (JSON protocols), `Action=` (query protocol), or method,
//! path and query for S3. [`Rule`]s then inject, into a chosen
//! service/operation, at a seeded rate, at given call numbers, or for the
//! first N calls:
//!
//! * [`Fault::Throttle`]: the service's own throttling error
//!   (`ProvisionedThroughputExceededException` for DynamoDB, `RequestThrottled`
//!   for SQS, `SlowDown` 503 for S3, `ThrottlingException` elsewhere);
//! * [`Fault::Http500`], [`Fault::Http503`]: server errors in the service's format;
//! * [`Fault::Reset`]: the request is read and the socket closed with a TCP
//!   reset, without an answer;
//! * [`Fault::Slow`]: the request is forwarded after a delay;
//! * [`Fault::PartialBatch`]: SQS `SendMessageBatch` only: some entries are
//!   kept from moto and reported in `Failed` (`SenderFault: false`), the
//!   others are delivered — the half-succeeded batch SQS can answer;
//! * [`Fault::LoseAnswer`]: the request is forwarded and applied by moto,
//!   then the connection is reset instead of answering — the lost response
//!   after which a retry repeats a write that already happened;
//! * [`Fault::Hang`]: the connection is held open without an answer (and
//!   without forwarding) until the client gives up, at most the given
//!   duration (capped at [`MAX_HOLD`]) so no test can hang forever;
//! * [`Fault::HangAfterForward`]: like `Hang`, but after moto has applied
//!   the request: the answer is held back until the client gives up.
//!
//! Every request, forwarded or not, is counted per service, operation and
//! outcome ([`FaultProxy::counts`]); tests read those figures for their
//! accounting and reports. A held connection ends as `client_gave_up` (the
//! client closed it: its timeout fired) or `hold_expired` (the bound came
//! first), so a test can tell the client's timeout did the work. Each rule's
//! own firings are in [`FaultProxy::fired`]. The proxy serves one exchange per connection and
//! answers `Connection: close`, so the SDK opens a fresh connection per
//! attempt (cheap on loopback) and a reset never poisons a pooled connection.
//!
//! The rate decisions come from one seeded generator, so a single-threaded
//! sequence of calls sees the same faults on every run; with concurrent
//! callers the order in which they reach the proxy decides who gets which
//! draw, so tests assert accounting invariants, never which call failed.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_types::retry::RetryConfig;
use aws_types::region::Region;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::http::{self, Request};
use crate::{Clients, Timeouts};

pub use super::comprehend_stub::{ComprehendStub, StubCounts};

/// What to inject.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// The service's throttling error.
    Throttle,
    /// HTTP 500 in the service's error format.
    Http500,
    /// HTTP 503 in the service's error format.
    Http503,
    /// Close the connection (TCP reset) without answering.
    Reset,
    /// Forward after this delay.
    Slow(Duration),
    /// SQS `SendMessageBatch`: fail this fraction of the entries (seeded),
    /// at least one, forwarding the rest.
    PartialBatch(f64),
    /// Forward (moto applies the request), then reset the connection
    /// instead of answering.
    LoseAnswer,
    /// Hold the connection open without forwarding or answering until the
    /// client closes it, at most this long (capped at [`MAX_HOLD`]); then
    /// reset it.
    Hang(Duration),
    /// Forward (moto applies the request), then hold the answer back as
    /// [`Fault::Hang`] does.
    HangAfterForward(Duration),
}

/// The longest any connection is held by [`Fault::Hang`] or
/// [`Fault::HangAfterForward`], whatever the rule says.
pub const MAX_HOLD: Duration = Duration::from_secs(20);

impl Fault {
    /// The name used in counters and reports.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Throttle => "throttle",
            Fault::Http500 => "http500",
            Fault::Http503 => "http503",
            Fault::Reset => "reset",
            Fault::Slow(_) => "slow",
            Fault::PartialBatch(_) => "partial_batch",
            Fault::LoseAnswer => "lose_answer",
            Fault::Hang(_) => "hang",
            Fault::HangAfterForward(_) => "hang_after_forward",
        }
    }
}

/// When a rule fires.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// On each matching call with this probability (seeded generator).
    Rate(f64),
    /// On these matching calls (1-based, counted per rule).
    Calls(Vec<u64>),
    /// On the first N matching calls ("for a while").
    FirstN(u64),
    /// On every matching call.
    Always,
}

/// One injection rule. Rules are tried in order; the first that fires wins.
#[derive(Debug, Clone)]
pub struct Rule {
    service: Option<String>,
    operation: Option<String>,
    fault: Fault,
    trigger: Trigger,
    limit: Option<u64>,
    matched: u64,
    fired: u64,
}

impl Rule {
    /// A rule for `service` (SigV4 name: `dynamodb`, `sqs`, `s3`, `glue`,
    /// `comprehend`, `athena`; `*` for any) and `operation` (`*` for any).
    pub fn new(service: &str, operation: &str, fault: Fault, trigger: Trigger) -> Self {
        let any = |s: &str| (s != "*").then(|| s.to_owned());
        Self {
            service: any(service),
            operation: any(operation),
            fault,
            trigger,
            limit: None,
            matched: 0,
            fired: 0,
        }
    }

    /// Fire at most `n` times in total.
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }

    fn matches(&self, service: &str, operation: &str) -> bool {
        self.service.as_deref().is_none_or(|s| s == service)
            && self.operation.as_deref().is_none_or(|o| o == operation)
    }
}

/// Counters: (service, operation, outcome) → count. Outcomes are `calls`
/// (every request seen), `forwarded`, and one per [`Fault::name`];
/// `partial_batch_entries` counts the entries failed by partial batches;
/// `client_gave_up` / `hold_expired` say how each held connection ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultCounts(pub BTreeMap<(String, String, String), u64>);

/// Outcome names that are injected faults (not `calls` / `forwarded`).
pub const FAULT_KINDS: &[&str] = &[
    "throttle",
    "http500",
    "http503",
    "reset",
    "slow",
    "partial_batch",
    "lose_answer",
    "hang",
    "hang_after_forward",
];

impl FaultCounts {
    /// The count for one service/operation/outcome.
    pub fn get(&self, service: &str, operation: &str, outcome: &str) -> u64 {
        self.0
            .get(&(service.into(), operation.into(), outcome.into()))
            .copied()
            .unwrap_or(0)
    }

    /// Sum over everything matching (`*` matches any).
    pub fn sum(&self, service: &str, operation: &str, outcome: &str) -> u64 {
        self.0
            .iter()
            .filter(|((s, o, k), _)| {
                (service == "*" || s == service)
                    && (operation == "*" || o == operation)
                    && (outcome == "*" || k == outcome)
            })
            .map(|(_, n)| n)
            .sum()
    }

    /// Injected faults, all kinds.
    pub fn injected(&self) -> u64 {
        FAULT_KINDS.iter().map(|k| self.sum("*", "*", k)).sum()
    }

    /// Injected faults per kind (kinds with none left out).
    pub fn by_kind(&self) -> BTreeMap<String, u64> {
        FAULT_KINDS
            .iter()
            .map(|k| (k.to_string(), self.sum("*", "*", k)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// As JSON: `{"by_kind": {...}, "by_op": {"s3/PutObject": {"calls": n, "throttle": m}}}`.
    pub fn to_json(&self) -> Value {
        let mut by_op: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for ((s, o, k), n) in &self.0 {
            by_op
                .entry(format!("{s}/{o}"))
                .or_default()
                .insert(k.clone(), *n);
        }
        json!({ "by_kind": self.by_kind(), "injected": self.injected(), "by_op": by_op })
    }
}

#[derive(Debug)]
struct State {
    rules: Vec<Rule>,
    rng: u64,
    counts: FaultCounts,
    requests: u64,
}

impl State {
    fn next_f64(&mut self) -> f64 {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    fn count(&mut self, service: &str, op: &str, outcome: &str, n: u64) {
        *self
            .counts
            .0
            .entry((service.into(), op.into(), outcome.into()))
            .or_default() += n;
    }

    /// Decide this call's fault (at most one).
    fn decide(&mut self, service: &str, op: &str) -> Option<Fault> {
        self.requests += 1;
        self.count(service, op, "calls", 1);
        for i in 0..self.rules.len() {
            if !self.rules[i].matches(service, op) {
                continue;
            }
            self.rules[i].matched += 1;
            let r = &self.rules[i];
            if r.limit.is_some_and(|l| r.fired >= l) {
                continue;
            }
            let fire = match r.trigger.clone() {
                Trigger::Rate(p) => self.next_f64() < p,
                Trigger::Calls(c) => c.contains(&r.matched),
                Trigger::FirstN(n) => r.matched <= n,
                Trigger::Always => true,
            };
            if fire {
                self.rules[i].fired += 1;
                let fault = self.rules[i].fault.clone();
                self.count(service, op, fault.name(), 1);
                return Some(fault);
            }
        }
        None
    }
}

/// The fault-injecting proxy. Dropping it stops it. See the module docs.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
    region: String,
    name: String,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Where each service's requests go.
#[derive(Debug, Clone)]
struct Routes {
    default: SocketAddr,
    by_service: HashMap<String, SocketAddr>,
}

impl FaultProxy {
    /// A proxy on `127.0.0.1:<free port>` forwarding to `upstream` (e.g. the
    /// moto server), with no rules yet and `seed` for the rate decisions.
    /// Must be called inside a Tokio runtime; the proxy lives as long as the
    /// returned value and that runtime.
    pub async fn start(upstream: SocketAddr, seed: u64) -> Self {
        Self::start_routed(upstream, HashMap::new(), seed).await
    }

    /// Like [`FaultProxy::start`], and also send a loopback Comprehend stub's
    /// requests (service `comprehend`) to `stub`.
    pub async fn start_with_comprehend(
        upstream: SocketAddr,
        stub: &ComprehendStub,
        seed: u64,
    ) -> Self {
        let routes = HashMap::from([("comprehend".to_owned(), stub.addr())]);
        Self::start_routed(upstream, routes, seed).await
    }

    async fn start_routed(
        default: SocketAddr,
        by_service: HashMap<String, SocketAddr>,
        seed: u64,
    ) -> Self {
        assert!(
            default.ip().is_loopback(),
            "the fault proxy only forwards to loopback"
        );
        assert!(by_service.values().all(|a| a.ip().is_loopback()));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fault proxy");
        let addr = listener.local_addr().expect("proxy address");
        let state = Arc::new(Mutex::new(State {
            rules: Vec::new(),
            rng: seed,
            counts: FaultCounts::default(),
            requests: 0,
        }));
        let routes = Arc::new(Routes {
            default,
            by_service,
        });
        let st = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    continue;
                };
                let (st, routes) = (Arc::clone(&st), Arc::clone(&routes));
                tokio::spawn(async move {
                    let _ = serve(conn, st, routes).await;
                });
            }
        });
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self {
            addr,
            state,
            task,
            region: "us-east-1".into(),
            name: format!("fault-proxy-{}-{n}", std::process::id()),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replace the rules (their call counters start again).
    pub fn set_rules(&self, rules: Vec<Rule>) {
        self.lock().rules = rules;
    }

    /// Append a rule.
    pub fn add_rule(&self, rule: Rule) {
        self.lock().rules.push(rule);
    }

    /// Remove every rule: from now on everything is forwarded untouched.
    pub fn clear_rules(&self) {
        self.lock().rules.clear();
    }

    /// How often each current rule has fired, in rule order (since it was
    /// set or added).
    pub fn fired(&self) -> Vec<u64> {
        self.lock().rules.iter().map(|r| r.fired).collect()
    }

    /// A snapshot of the counters.
    pub fn counts(&self) -> FaultCounts {
        self.lock().counts.clone()
    }

    /// Requests seen so far.
    pub fn requests(&self) -> u64 {
        self.lock().requests
    }

    /// The retry settings clients behind the proxy use: the SDK's standard
    /// mode with its default 3 attempts (what the Lambdas get from
    /// `BehaviorVersion::latest()`), with the backoff shortened from 1 s–20 s
    /// to 5–100 ms so tests with many injected faults stay fast.
    pub fn retry_config() -> RetryConfig {
        RetryConfig::standard()
            .with_max_attempts(3)
            .with_initial_backoff(Duration::from_millis(5))
            .with_max_backoff(Duration::from_millis(100))
    }

    /// An SDK configuration pointed at the proxy (static test credentials,
    /// [`FaultProxy::retry_config`], the Lambdas' default [`Timeouts`]).
    pub async fn sdk_config(&self) -> SdkConfig {
        self.sdk_config_with(&Timeouts::default()).await
    }

    /// Like [`FaultProxy::sdk_config`] with other timeouts (a hang scenario
    /// shortens them so the client gives up in milliseconds).
    pub async fn sdk_config_with(&self, timeouts: &Timeouts) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "testing", "testing", None, None, "moto",
            ))
            .endpoint_url(self.endpoint())
            .retry_config(Self::retry_config())
            .timeout_config(timeouts.config())
            .load()
            .await
    }

    /// Every client, pointed at the proxy, built like [`Clients::from_conf`]
    /// (S3 path-style, Comprehend without SDK retries) but with a retry
    /// partition of this proxy's own: the SDK's retry token bucket is a
    /// process-wide static per partition, and a test that injects hundreds
    /// of faults must not drain the retry budget of the tests next to it.
    pub async fn clients(&self) -> Clients {
        self.clients_with(&Timeouts::default()).await
    }

    /// Like [`FaultProxy::clients`] with other timeouts.
    pub async fn clients_with(&self, timeouts: &Timeouts) -> Clients {
        use aws_sdk_s3::config::retry::RetryPartition;
        let conf = self.sdk_config_with(timeouts).await;
        let base = Clients::from_conf(&conf);
        let part = |svc: &str| RetryPartition::new(format!("{}-{svc}", self.name));
        Clients {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(&conf)
                    .retry_partition(part("dynamodb"))
                    .build(),
            ),
            sqs: aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::config::Builder::from(&conf)
                    .retry_partition(part("sqs"))
                    .build(),
            ),
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&conf)
                    .force_path_style(true)
                    .retry_partition(part("s3"))
                    .build(),
            ),
            glue: aws_sdk_glue::Client::from_conf(
                aws_sdk_glue::config::Builder::from(&conf)
                    .retry_partition(part("glue"))
                    .build(),
            ),
            athena: aws_sdk_athena::Client::from_conf(
                aws_sdk_athena::config::Builder::from(&conf)
                    .retry_partition(part("athena"))
                    .build(),
            ),
            ..base
        }
    }
}

/// The SigV4 service name from `Authorization` (or `X-Amz-Credential`).
pub(crate) fn service_of(req: &Request) -> String {
    let cred = req
        .header("authorization")
        .and_then(|a| a.split("Credential=").nth(1))
        .map(|c| c.split([',', ' ']).next().unwrap_or("").to_owned())
        .or_else(|| query_param(req.query(), "X-Amz-Credential").map(|c| c.replace("%2F", "/")));
    cred.and_then(|c| c.split('/').nth(3).map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| v.to_owned())
    })
}

fn has_param(query: &str, name: &str) -> bool {
    query
        .split('&')
        .any(|kv| kv.split('=').next() == Some(name))
}

/// The operation: `X-Amz-Target`, `Action=`, or S3's method/path/query.
pub(crate) fn operation_of(req: &Request, service: &str) -> String {
    if let Some(t) = req.header("x-amz-target") {
        return t.rsplit('.').next().unwrap_or(t).to_owned();
    }
    if let Some(a) = query_param(req.query(), "Action") {
        return a;
    }
    if req
        .header("content-type")
        .is_some_and(|c| c.contains("x-www-form-urlencoded"))
    {
        if let Some(a) = query_param(&String::from_utf8_lossy(&req.body), "Action") {
            return a;
        }
    }
    if service == "s3" {
        return s3_operation(req);
    }
    format!("{} {}", req.method, req.path())
}

fn s3_operation(req: &Request) -> String {
    let q = req.query();
    if let Some(x) = query_param(q, "x-id") {
        return x;
    }
    let segments = req
        .path()
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .count();
    let object = segments >= 2;
    let op = match (req.method.as_str(), object) {
        ("GET", false) if has_param(q, "list-type") => "ListObjectsV2",
        ("GET", false) if has_param(q, "location") => "GetBucketLocation",
        ("GET", false) if segments == 0 => "ListBuckets",
        ("GET", false) => "ListObjects",
        ("GET", true) => "GetObject",
        ("HEAD", false) => "HeadBucket",
        ("HEAD", true) => "HeadObject",
        ("PUT", false) => "CreateBucket",
        ("PUT", true) if has_param(q, "partNumber") => "UploadPart",
        ("PUT", true) if req.header("x-amz-copy-source").is_some() => "CopyObject",
        ("PUT", true) => "PutObject",
        ("POST", true) if has_param(q, "uploads") => "CreateMultipartUpload",
        ("POST", true) if has_param(q, "uploadId") => "CompleteMultipartUpload",
        ("POST", false) if has_param(q, "delete") => "DeleteObjects",
        ("DELETE", true) if has_param(q, "uploadId") => "AbortMultipartUpload",
        ("DELETE", true) => "DeleteObject",
        ("DELETE", false) => "DeleteBucket",
        _ => return format!("{} {}", req.method, req.path()),
    };
    op.to_owned()
}

/// The error answer for a fault, in the service's format: (status, reason,
/// headers, body).
fn error_answer(
    service: &str,
    fault: &Fault,
    n: u64,
) -> (u16, &'static str, Vec<(&'static str, String)>, Vec<u8>) {
    let request_id = format!("fault-injected-{n}");
    let (status, reason) = match fault {
        Fault::Http500 => (500, "Internal Server Error"),
        Fault::Http503 => (503, "Service Unavailable"),
        _ if service == "s3" => (503, "Slow Down"),
        _ => (400, "Bad Request"),
    };
    if service == "s3" {
        let (code, msg) = match fault {
            Fault::Http500 => (
                "InternalError",
                "We encountered an internal error. Please try again.",
            ),
            Fault::Http503 => ("ServiceUnavailable", "Please reduce your request rate."),
            _ => ("SlowDown", "Please reduce your request rate."),
        };
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{msg}</Message><RequestId>{request_id}</RequestId><HostId>fault-proxy</HostId></Error>"
        );
        return (
            status,
            reason,
            vec![
                ("Content-Type", "application/xml".into()),
                ("x-amz-request-id", request_id),
            ],
            body.into_bytes(),
        );
    }
    let (json_version, namespace) = match service {
        "dynamodb" => ("1.0", "com.amazonaws.dynamodb.v20120810#"),
        "sqs" => ("1.0", "com.amazonaws.sqs#"),
        _ => ("1.1", ""),
    };
    let code = match (service, fault) {
        ("dynamodb", Fault::Http500) => "InternalServerError",
        ("dynamodb", Fault::Http503) => "ServiceUnavailable",
        ("dynamodb", _) => "ProvisionedThroughputExceededException",
        ("sqs", Fault::Http500) => "InternalError",
        ("sqs", Fault::Http503) => "ServiceUnavailable",
        ("sqs", _) => "RequestThrottled",
        ("athena", Fault::Throttle) => "TooManyRequestsException",
        ("comprehend", Fault::Http500) => "InternalServerException",
        ("glue", Fault::Http500) => "InternalServiceException",
        (_, Fault::Http500) => "InternalFailure",
        (_, Fault::Http503) => "ServiceUnavailable",
        _ => "ThrottlingException",
    };
    let body = json!({"__type": format!("{namespace}{code}"), "message": format!("injected by the fault proxy ({})", fault.name())});
    let mut headers = vec![
        (
            "Content-Type",
            format!("application/x-amz-json-{json_version}"),
        ),
        ("x-amzn-RequestId", request_id),
    ];
    if service == "sqs" {
        let side = if status == 400 { "Sender" } else { "Receiver" };
        headers.push(("x-amzn-query-error", format!("{code};{side}")));
    }
    (status, reason, headers, body.to_string().into_bytes())
}

async fn serve(
    mut conn: TcpStream,
    state: Arc<Mutex<State>>,
    routes: Arc<Routes>,
) -> std::io::Result<()> {
    let Some(req) = http::read_request(&mut conn).await? else {
        return Ok(());
    };
    let service = service_of(&req);
    let op = operation_of(&req, &service);
    let (fault, n) = {
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        let f = st.decide(&service, &op);
        (f, st.requests)
    };
    let head_only = req.method == "HEAD";
    let mut new_body = None;
    let mut failed_entries: Vec<String> = Vec::new();
    match &fault {
        Some(f @ (Fault::Throttle | Fault::Http500 | Fault::Http503)) => {
            let (status, reason, headers, body) = error_answer(&service, f, n);
            conn.write_all(&http::simple_response(
                status, reason, &headers, &body, head_only,
            ))
            .await?;
            conn.shutdown().await?;
            return Ok(());
        }
        Some(Fault::Reset) => return reset(conn),
        Some(Fault::Slow(d)) => tokio::time::sleep(*d).await,
        Some(Fault::Hang(max)) => {
            let outcome = hold(&mut conn, *max).await;
            count_outcome(&state, &service, &op, outcome);
            return reset(conn);
        }
        Some(Fault::PartialBatch(frac)) => {
            if let Some((body, failed)) = split_batch(&req.body, *frac, &state) {
                if body.is_empty() {
                    state.lock().unwrap_or_else(|p| p.into_inner()).count(
                        &service,
                        &op,
                        "partial_batch_entries",
                        failed.len() as u64,
                    );
                    let answer = merge_failed(b"{}", &failed);
                    let headers = [
                        ("Content-Type", "application/x-amz-json-1.0".to_owned()),
                        ("x-amzn-RequestId", format!("fault-injected-{n}")),
                    ];
                    conn.write_all(&http::simple_response(200, "OK", &headers, &answer, false))
                        .await?;
                    conn.shutdown().await?;
                    return Ok(());
                }
                new_body = Some(body);
                failed_entries = failed;
            }
        }
        Some(Fault::LoseAnswer | Fault::HangAfterForward(_)) | None => {}
    }
    let upstream = routes
        .by_service
        .get(&service)
        .copied()
        .unwrap_or(routes.default);
    let mut up = TcpStream::connect(upstream).await?;
    up.write_all(&http::serialize_request(&req, new_body.as_deref()))
        .await?;
    let mut resp = http::read_response(&mut up).await?;
    {
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        st.count(&service, &op, "forwarded", 1);
        if !failed_entries.is_empty() {
            st.count(
                &service,
                &op,
                "partial_batch_entries",
                failed_entries.len() as u64,
            );
        }
    }
    match &fault {
        Some(Fault::LoseAnswer) => return reset(conn),
        Some(Fault::HangAfterForward(max)) => {
            let outcome = hold(&mut conn, *max).await;
            count_outcome(&state, &service, &op, outcome);
            return reset(conn);
        }
        _ => {}
    }
    if !failed_entries.is_empty() && resp.status_line.contains(" 200") {
        resp.body = merge_failed(&resp.body, &failed_entries);
    }
    conn.write_all(&http::serialize_response(&resp, head_only))
        .await?;
    conn.shutdown().await?;
    Ok(())
}

/// Close the connection with a TCP reset, without an answer.
fn reset(conn: TcpStream) -> std::io::Result<()> {
    // A zero linger makes close send a TCP reset; it never blocks (the
    // deprecation is about non-zero lingers).
    #[allow(deprecated)]
    conn.set_linger(Some(Duration::ZERO))?;
    drop(conn);
    Ok(())
}

/// Hold a connection without answering until the client closes it (returns
/// `client_gave_up`) or `max` (at most [`MAX_HOLD`]) has passed
/// (`hold_expired`). Bytes the client sends meanwhile are read and ignored.
async fn hold(conn: &mut TcpStream, max: Duration) -> &'static str {
    let deadline = tokio::time::Instant::now() + max.min(MAX_HOLD);
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
            Err(_) => return "hold_expired",
            Ok(Ok(0) | Err(_)) => return "client_gave_up",
            Ok(Ok(_)) => {}
        }
    }
}

fn count_outcome(state: &Mutex<State>, service: &str, op: &str, outcome: &str) {
    state
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .count(service, op, outcome, 1);
}

/// Drop a seeded fraction (at least one) of a SendMessageBatch request's
/// entries. Returns the new body (empty when no entry is left) and the
/// dropped entry ids.
fn split_batch(body: &[u8], frac: f64, state: &Mutex<State>) -> Option<(Vec<u8>, Vec<String>)> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let entries = v.get_mut("Entries")?.as_array_mut()?;
    if entries.is_empty() {
        return None;
    }
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    let mut drop_flags: Vec<bool> = entries.iter().map(|_| st.next_f64() < frac).collect();
    if !drop_flags.iter().any(|d| *d) {
        let i = (st.next_f64() * entries.len() as f64) as usize % entries.len();
        drop_flags[i] = true;
    }
    drop(st);
    let mut failed = Vec::new();
    let mut kept = Vec::new();
    for (e, d) in entries.drain(..).zip(drop_flags) {
        if d {
            failed.push(e.get("Id").and_then(Value::as_str).unwrap_or("").to_owned());
        } else {
            kept.push(e);
        }
    }
    let none_kept = kept.is_empty();
    *entries = kept;
    // SQS refuses an empty batch: when every entry fails, nothing goes upstream.
    let body = if none_kept {
        Vec::new()
    } else {
        serde_json::to_vec(&v).ok()?
    };
    Some((body, failed))
}

/// Add `Failed` entries (transient, not the sender's fault) to a
/// SendMessageBatch answer.
fn merge_failed(body: &[u8], failed: &[String]) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(body).unwrap_or_else(|_| json!({}));
    let list: Vec<Value> = failed
        .iter()
        .map(|id| json!({"Id": id, "SenderFault": false, "Code": "InternalError", "Message": "injected by the fault proxy"}))
        .collect();
    match v.get_mut("Failed").and_then(Value::as_array_mut) {
        Some(a) => a.extend(list),
        None => {
            v["Failed"] = Value::Array(list);
        }
    }
    if v.get("Successful").is_none() {
        v["Successful"] = json!([]);
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, target: &str, headers: &[(&str, &str)], body: &str) -> Request {
        Request {
            method: method.into(),
            target: target.into(),
            version: "HTTP/1.1".into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            raw_body: body.as_bytes().to_vec(),
            body: body.as_bytes().to_vec(),
        }
    }

    const AUTH: &str = "AWS4-HMAC-SHA256 Credential=testing/20240501/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=abc";

    #[test]
    fn classifies_service_and_operation() {
        let r = req(
            "POST",
            "/",
            &[
                ("Authorization", AUTH),
                ("X-Amz-Target", "DynamoDB_20120810.Scan"),
            ],
            "{}",
        );
        assert_eq!(service_of(&r), "dynamodb");
        assert_eq!(operation_of(&r, "dynamodb"), "Scan");
        let s3 = AUTH.replace("/dynamodb/", "/s3/");
        let r = req(
            "PUT",
            "/bucket/lake/dt=2024-05-01/part-x.parquet?x-id=PutObject",
            &[("authorization", &s3)],
            "",
        );
        assert_eq!(service_of(&r), "s3");
        assert_eq!(operation_of(&r, "s3"), "PutObject");
        let r = req("GET", "/bucket?list-type=2", &[("authorization", &s3)], "");
        assert_eq!(operation_of(&r, "s3"), "ListObjectsV2");
        let r = req("PUT", "/bucket", &[("authorization", &s3)], "");
        assert_eq!(operation_of(&r, "s3"), "CreateBucket");
        let q = AUTH.replace("/dynamodb/", "/sts/");
        let r = req(
            "POST",
            "/",
            &[
                ("authorization", &q),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            "Action=GetCallerIdentity&Version=2011-06-15",
        );
        assert_eq!(operation_of(&r, &service_of(&r)), "GetCallerIdentity");
    }

    #[test]
    fn rules_fire_by_call_number_first_n_and_limit() {
        let mut st = State {
            rules: vec![
                Rule::new(
                    "s3",
                    "PutObject",
                    Fault::Throttle,
                    Trigger::Calls(vec![2, 4]),
                ),
                Rule::new("glue", "*", Fault::Http500, Trigger::FirstN(2)),
                Rule::new("*", "*", Fault::Reset, Trigger::Always).limit(1),
            ],
            rng: 1,
            counts: FaultCounts::default(),
            requests: 0,
        };
        let s3: Vec<_> = (0..4).map(|_| st.decide("s3", "PutObject")).collect();
        // call 1: the catch-all reset fires once; 2 and 4: throttled.
        assert_eq!(
            s3,
            [
                Some(Fault::Reset),
                Some(Fault::Throttle),
                None,
                Some(Fault::Throttle)
            ]
        );
        let glue: Vec<_> = (0..3).map(|_| st.decide("glue", "GetTable")).collect();
        assert_eq!(glue, [Some(Fault::Http500), Some(Fault::Http500), None]);
        assert_eq!(st.counts.get("s3", "PutObject", "calls"), 4);
        assert_eq!(st.counts.by_kind()["throttle"], 2);
        assert_eq!(st.counts.injected(), 5);
    }

    #[test]
    fn rates_are_seeded() {
        let run = |seed| {
            let mut st = State {
                rules: vec![Rule::new("*", "*", Fault::Http503, Trigger::Rate(0.3))],
                rng: seed,
                counts: FaultCounts::default(),
                requests: 0,
            };
            (0..1000)
                .map(|_| st.decide("sqs", "X").is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        let n = run(7).iter().filter(|f| **f).count();
        assert!((230..370).contains(&n), "{n}");
    }

    /// An upstream that answers every request `200 {}` and counts them.
    async fn counting_upstream() -> (SocketAddr, Arc<std::sync::atomic::AtomicU64>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let n = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let seen = Arc::clone(&n);
        tokio::spawn(async move {
            while let Ok((mut c, _)) = l.accept().await {
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    if let Ok(Some(_)) = http::read_request(&mut c).await {
                        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let _ = c
                            .write_all(&http::simple_response(200, "OK", &[], b"{}", false))
                            .await;
                        let _ = c.shutdown().await;
                    }
                });
            }
        });
        (addr, n)
    }

    /// Send one DynamoDB GetItem to the proxy; returns what came back before
    /// EOF, a reset, or `wait` passing (`None`), and closes the connection.
    async fn exchange(proxy: &FaultProxy, wait: Duration) -> Option<Vec<u8>> {
        let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
        let body = "{}";
        let head = format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nAuthorization: {AUTH}\r\nX-Amz-Target: DynamoDB_20120810.GetItem\r\nContent-Length: {}\r\n\r\n{body}",
            proxy.addr(),
            body.len()
        );
        c.write_all(head.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        match tokio::time::timeout(wait, c.read_to_end(&mut got)).await {
            Err(_) => None,
            Ok(_) => Some(got),
        }
    }

    /// Wait (bounded) until the proxy has counted `outcome` once.
    async fn counted(proxy: &FaultProxy, outcome: &str) -> u64 {
        for _ in 0..500 {
            let n = proxy.counts().get("dynamodb", "GetItem", outcome);
            if n > 0 {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        0
    }

    #[tokio::test]
    async fn a_lost_answer_is_applied_upstream_but_never_returned() {
        let (up, seen) = counting_upstream().await;
        let proxy = FaultProxy::start(up, 1).await;
        proxy.set_rules(vec![Rule::new(
            "dynamodb",
            "GetItem",
            Fault::LoseAnswer,
            Trigger::Calls(vec![1]),
        )]);
        let lost = exchange(&proxy, Duration::from_secs(10)).await;
        assert_eq!(lost, Some(Vec::new()), "no byte of the answer arrives");
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1);
        let answered = exchange(&proxy, Duration::from_secs(10)).await.unwrap();
        assert!(answered.starts_with(b"HTTP/1.1 200"));
        let c = proxy.counts();
        assert_eq!(c.get("dynamodb", "GetItem", "lose_answer"), 1);
        assert_eq!(c.get("dynamodb", "GetItem", "forwarded"), 2);
        assert_eq!(proxy.fired(), [1]);
    }

    #[tokio::test]
    async fn a_hang_lasts_until_the_client_gives_up_and_forwards_nothing() {
        let (up, seen) = counting_upstream().await;
        let proxy = FaultProxy::start(up, 1).await;
        proxy.set_rules(vec![Rule::new(
            "dynamodb",
            "*",
            Fault::Hang(Duration::from_secs(15)),
            Trigger::FirstN(1),
        )]);
        // The client's own timeout (200 ms) ends the exchange, not the proxy.
        assert_eq!(exchange(&proxy, Duration::from_millis(200)).await, None);
        assert_eq!(counted(&proxy, "client_gave_up").await, 1);
        let c = proxy.counts();
        assert_eq!(c.get("dynamodb", "GetItem", "hang"), 1);
        assert_eq!(c.get("dynamodb", "GetItem", "forwarded"), 0);
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 0);
        assert_eq!(proxy.fired(), [1]);
    }

    #[tokio::test]
    async fn a_hang_after_forwarding_is_bounded_by_the_proxy() {
        let (up, seen) = counting_upstream().await;
        let proxy = FaultProxy::start(up, 1).await;
        proxy.set_rules(vec![Rule::new(
            "*",
            "*",
            Fault::HangAfterForward(Duration::from_millis(100)),
            Trigger::Always,
        )]);
        // A patient client: the proxy's bound ends the hold, without an answer.
        let got = exchange(&proxy, Duration::from_secs(10)).await;
        assert_eq!(got, Some(Vec::new()));
        assert_eq!(counted(&proxy, "hold_expired").await, 1);
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(proxy.counts().get("dynamodb", "GetItem", "forwarded"), 1);
    }

    #[test]
    fn partial_batches_fail_some_entries() {
        let st = Mutex::new(State {
            rules: vec![],
            rng: 3,
            counts: FaultCounts::default(),
            requests: 0,
        });
        let body = json!({"QueueUrl": "q", "Entries": [{"Id": "a", "MessageBody": "1"}, {"Id": "b", "MessageBody": "2"}, {"Id": "c", "MessageBody": "3"}]});
        let (new, failed) = split_batch(body.to_string().as_bytes(), 0.0, &st).unwrap();
        assert_eq!(failed.len(), 1, "at least one");
        let v: Value = serde_json::from_slice(&new).unwrap();
        assert_eq!(v["Entries"].as_array().unwrap().len(), 2);
        let merged = merge_failed(br#"{"Successful":[{"Id":"a"}]}"#, &failed);
        let m: Value = serde_json::from_slice(&merged).unwrap();
        assert_eq!(m["Failed"][0]["Id"], failed[0].as_str());
        assert_eq!(m["Failed"][0]["SenderFault"], false);
    }
}
