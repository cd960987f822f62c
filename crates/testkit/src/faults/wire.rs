//! What the fault proxy knows of AWS's wire formats: the service of a
//! request (its SigV4 credential scope), its operation (`X-Amz-Target`,
//! `Action=`, or S3's method, path and query), each service's own error
//! answer for a fault, and the SQS `SendMessageBatch` surgery of
//! [`super::Fault::PartialBatch`].

use serde_json::{json, Value};

use super::rules::Fault;
use crate::http::Request;

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
pub(crate) fn error_answer(
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

/// Drop a fraction (at least one, `draw` giving the seeded numbers) of a SendMessageBatch request's
/// entries. Returns the new body (empty when no entry is left) and the
/// dropped entry ids.
pub(crate) fn split_batch(
    body: &[u8],
    frac: f64,
    draw: &mut dyn FnMut() -> f64,
) -> Option<(Vec<u8>, Vec<String>)> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let entries = v.get_mut("Entries")?.as_array_mut()?;
    if entries.is_empty() {
        return None;
    }
    let mut drop_flags: Vec<bool> = entries.iter().map(|_| draw() < frac).collect();
    if !drop_flags.iter().any(|d| *d) {
        let i = (draw() * entries.len() as f64) as usize % entries.len();
        drop_flags[i] = true;
    }
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
pub(crate) fn merge_failed(body: &[u8], failed: &[String]) -> Vec<u8> {
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
    fn partial_batches_fail_some_entries() {
        let mut rng = crate::faults::rules::State::seeded(3);
        let body = json!({"QueueUrl": "q", "Entries": [{"Id": "a", "MessageBody": "1"}, {"Id": "b", "MessageBody": "2"}, {"Id": "c", "MessageBody": "3"}]});
        let (new, failed) =
            split_batch(body.to_string().as_bytes(), 0.0, &mut || rng.next_f64()).unwrap();
        assert_eq!(failed.len(), 1, "at least one");
        let v: Value = serde_json::from_slice(&new).unwrap();
        assert_eq!(v["Entries"].as_array().unwrap().len(), 2);
        let merged = merge_failed(br#"{"Successful":[{"Id":"a"}]}"#, &failed);
        let m: Value = serde_json::from_slice(&merged).unwrap();
        assert_eq!(m["Failed"][0]["Id"], failed[0].as_str());
        assert_eq!(m["Failed"][0]["SenderFault"], false);
    }
}
