//! A moto_server harness for tests.
//!
//! The first call to [`moto`] in a test binary starts one
//! `moto_server -H 127.0.0.1 -p <free port>` (from `$MOTO_SERVER`, else the
//! workspace's `.venv/bin/moto_server`) and waits, boundedly, until it
//! accepts connections. The server runs under a tiny `sh` watchdog that
//! blocks reading a pipe from this process: when the test binary exits, for
//! whatever reason, the pipe closes and the watchdog kills moto. Clients are
//! configured in code (region, static test credentials, endpoint URL), never
//! through the process environment, and each test should use its own
//! resource names ([`unique`]) so parallel tests never see each other's data.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, PutRequest,
    ScalarAttributeType, WriteRequest,
};
use aws_types::region::Region;
use etl_core::Delivery;
use serde_json::{json, Value};

use etl_aws::{Clients, Timeouts};

/// A running moto_server.
#[derive(Debug)]
pub struct Moto {
    port: u16,
    // Held open for the life of the process; see the module docs.
    _watchdog: Mutex<(Child, ChildStdin)>,
}

static MOTO: OnceLock<Moto> = OnceLock::new();

/// The test binary's moto server, started on first use. Panics with a hint
/// to run `make venv` when moto_server is not installed.
pub fn moto() -> &'static Moto {
    MOTO.get_or_init(Moto::start)
}

fn moto_path() -> PathBuf {
    if let Some(p) = std::env::var_os("MOTO_SERVER") {
        return PathBuf::from(p);
    }
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    workspace.join(".venv/bin/moto_server")
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

impl Moto {
    fn start() -> Moto {
        let path = moto_path();
        assert!(
            path.exists(),
            "moto_server not found at {}: run `make venv` (or set MOTO_SERVER to its path)",
            path.display()
        );
        let port = free_port();
        let log = std::env::temp_dir().join(format!("moto-{port}.log"));
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#""$0" -H 127.0.0.1 -p "$1" >"$2" 2>&1 & m=$!; read _; kill $m"#)
            .arg(&path)
            .arg(port.to_string())
            .arg(&log)
            .stdin(Stdio::piped())
            .spawn()
            .expect("spawn moto_server watchdog");
        let stdin = child.stdin.take().expect("watchdog stdin");
        for _ in 0..300 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Moto {
                    port,
                    _watchdog: Mutex::new((child, stdin)),
                };
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        drop(stdin); // the watchdog kills moto
        let _ = child.wait();
        let tail = std::fs::read_to_string(&log).unwrap_or_default();
        panic!(
            "moto_server did not listen on 127.0.0.1:{port} within 30 s; log {}:\n{tail}",
            log.display()
        );
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT`, for a [`FaultProxy`] in front of it.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// An SDK configuration for moto in `us-east-1`. Build one per test:
    /// clients hold connection pools tied to the test's Tokio runtime.
    pub async fn sdk_config(&self) -> SdkConfig {
        self.sdk_config_in("us-east-1").await
    }

    /// An SDK configuration for moto in `region` (moto keeps separate state
    /// per region, which isolates tests that use moto's global knobs), with
    /// the Lambdas' default [`Timeouts`].
    pub async fn sdk_config_in(&self, region: &str) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "testing", "testing", None, None, "moto",
            ))
            .endpoint_url(self.endpoint())
            .timeout_config(Timeouts::default().config())
            .load()
            .await
    }

    /// All clients, pointed at moto.
    pub async fn clients(&self) -> Clients {
        Clients::from_conf(&self.sdk_config().await)
    }

    /// POST a JSON body to a moto API path (e.g. `/moto-api/static/athena/query-results`);
    /// returns the HTTP status.
    pub fn post(&self, path: &str, body: &Value) -> u16 {
        let body = body.to_string();
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )
        .expect("write to moto");
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        resp.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }
}

/// A resource name unique within this test binary run, valid for tables,
/// queues and buckets (lowercase, digits, dashes, ≤ 63 chars).
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{}-{}-{n}", prefix.to_ascii_lowercase(), std::process::id())
}

/// Create a DynamoDB table with a string partition key `pk_name` (on-demand).
pub async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str, pk_name: &str) {
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(pk_name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute definition"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(pk_name)
                .key_type(KeyType::Hash)
                .build()
                .expect("key schema"),
        )
        .send()
        .await
        .expect("CreateTable");
}

/// Write items with BatchWriteItem (25 per call, unprocessed items resent, bounded).
pub async fn put_items(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    items: Vec<HashMap<String, AttributeValue>>,
) {
    for chunk in items.chunks(25) {
        let mut requests: Vec<WriteRequest> = chunk
            .iter()
            .map(|item| {
                WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .set_item(Some(item.clone()))
                            .build()
                            .expect("put request"),
                    )
                    .build()
            })
            .collect();
        for _ in 0..10 {
            let out = client
                .batch_write_item()
                .request_items(table, requests)
                .send()
                .await
                .expect("BatchWriteItem");
            requests = out
                .unprocessed_items
                .and_then(|mut u| u.remove(table))
                .unwrap_or_default();
            if requests.is_empty() {
                break;
            }
        }
        assert!(requests.is_empty(), "BatchWriteItem left items unprocessed");
    }
}

/// Create an SQS queue; returns its URL.
pub async fn create_queue(client: &aws_sdk_sqs::Client, name: &str) -> String {
    client
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("CreateQueue")
        .queue_url
        .expect("queue url")
}

/// Create an S3 bucket.
pub async fn create_bucket(client: &aws_sdk_s3::Client, name: &str) {
    client
        .create_bucket()
        .bucket(name)
        .send()
        .await
        .expect("CreateBucket");
}

/// An SQS Lambda event (as JSON, deserializable into
/// `aws_lambda_events::sqs::SqsEvent`) carrying these deliveries.
pub fn sqs_event_json(deliveries: &[Delivery], queue_arn: &str) -> Value {
    let records: Vec<Value> = deliveries
        .iter()
        .map(|d| {
            json!({
                "messageId": d.message_id,
                "receiptHandle": d.receipt,
                "body": &*d.body,
                "attributes": {"ApproximateReceiveCount": d.receive_count.to_string()},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    json!({ "Records": records })
}

/// Create a work queue whose messages move to a new dead-letter queue after
/// `max_receive_count` receives (SQS redrive policy). Returns (queue URL,
/// dead-letter queue URL).
pub async fn create_queue_with_dlq(
    client: &aws_sdk_sqs::Client,
    name: &str,
    max_receive_count: u32,
) -> (String, String) {
    use aws_sdk_sqs::types::QueueAttributeName;
    let dlq = create_queue(client, &format!("{name}-dlq")).await;
    let arn = client
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("GetQueueAttributes")
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .expect("queue ARN");
    let policy =
        json!({"deadLetterTargetArn": arn, "maxReceiveCount": max_receive_count.to_string()});
    let url = client
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::RedrivePolicy, policy.to_string())
        .send()
        .await
        .expect("CreateQueue with a redrive policy")
        .queue_url
        .expect("queue url");
    (url, dlq)
}
