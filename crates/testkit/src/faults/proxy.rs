//! Fault injection for the AWS path, on loopback only: the proxy itself.
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

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_types::retry::RetryConfig;
use aws_types::region::Region;
use etl_aws::{Clients, Timeouts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::rules::{Fault, FaultCounts, Rule, State, MAX_HOLD};
use super::wire::{error_answer, merge_failed, operation_of, service_of, split_batch};
use crate::comprehend_stub::ComprehendStub;
use crate::http;

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
        let state = Arc::new(Mutex::new(State::seeded(seed)));
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
            let split = {
                let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
                split_batch(&req.body, *frac, &mut || st.next_f64())
            };
            if let Some((body, failed)) = split {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::Trigger;

    const AUTH: &str = "AWS4-HMAC-SHA256 Credential=testing/20240501/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=abc";

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
}
