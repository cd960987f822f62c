//! Just enough HTTP/1.1 for the loopback fault proxy and the Comprehend stub:
//! read one request (head and body, `Content-Length` or chunked), read one
//! response to EOF, and write simple responses. Every connection carries one
//! exchange and is closed after it (`Connection: close`), which keeps the
//! framing trivial and is invisible to the SDK's connection pool.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest request or response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest body accepted (the pipeline's objects are far smaller).
const MAX_BODY: usize = 64 * 1024 * 1024;
/// No single read on a loopback socket may stall longer than this.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// One HTTP request as received.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub method: String,
    /// Path and query, as on the request line.
    pub target: String,
    pub version: String,
    /// Header names as sent, in order.
    pub headers: Vec<(String, String)>,
    /// The body as it travelled (chunked framing included when chunked).
    pub raw_body: Vec<u8>,
    /// The body without transfer framing.
    pub body: Vec<u8>,
}

impl Request {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The query string (after `?`), possibly empty.
    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }
}

pub(crate) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

async fn read_some<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut chunk = [0u8; 16 * 1024];
    let n = tokio::time::timeout(IO_TIMEOUT, r.read(&mut chunk))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "read timed out"))??;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn bad(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}

/// Read a head (up to and including the blank line). Returns `None` on a
/// clean EOF before any byte; leftover bytes stay in `buf`.
async fn read_head<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<(String, Vec<(String, String)>)>> {
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            let mut lines = head.split("\r\n");
            let first = lines.next().unwrap_or_default().to_owned();
            let headers = lines
                .filter_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    Some((k.trim().to_owned(), v.trim().to_owned()))
                })
                .collect();
            return Ok(Some((first, headers)));
        }
        if buf.len() > MAX_HEAD {
            return Err(bad("head too large"));
        }
        if read_some(r, buf).await? == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(bad("EOF inside a head"))
            };
        }
    }
}

async fn read_exact_into<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    n: usize,
) -> std::io::Result<Vec<u8>> {
    if n > MAX_BODY {
        return Err(bad("body too large"));
    }
    while buf.len() < n {
        if read_some(r, buf).await? == 0 {
            return Err(bad("EOF inside a body"));
        }
    }
    Ok(buf.drain(..n).collect())
}

async fn read_line<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> std::io::Result<Vec<u8>> {
    loop {
        if let Some(end) = find(buf, b"\r\n") {
            return Ok(buf.drain(..end + 2).collect());
        }
        if buf.len() > MAX_HEAD || read_some(r, buf).await? == 0 {
            return Err(bad("bad chunked framing"));
        }
    }
}

/// Read a chunked body: (raw bytes, decoded bytes).
async fn read_chunked<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let (mut raw, mut body) = (Vec::new(), Vec::new());
    for _ in 0..1_000_000 {
        let line = read_line(r, buf).await?;
        raw.extend_from_slice(&line);
        let text = String::from_utf8_lossy(&line);
        let size_hex = text.trim().split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| bad("bad chunk size"))?;
        if size == 0 {
            // Trailers, then the blank line.
            for _ in 0..1_000 {
                let t = read_line(r, buf).await?;
                raw.extend_from_slice(&t);
                if t == b"\r\n" {
                    return Ok((raw, body));
                }
            }
            return Err(bad("too many trailers"));
        }
        let data = read_exact_into(r, buf, size + 2).await?;
        raw.extend_from_slice(&data);
        body.extend_from_slice(&data[..size]);
        if body.len() > MAX_BODY {
            return Err(bad("body too large"));
        }
    }
    Err(bad("too many chunks"))
}

/// Read one request. `on_continue` is written before the body when the
/// client asked for `Expect: 100-continue`.
pub(crate) async fn read_request(stream: &mut TcpStream) -> std::io::Result<Option<Request>> {
    let mut buf = Vec::new();
    let Some((line, headers)) = read_head(stream, &mut buf).await? else {
        return Ok(None);
    };
    let mut parts = line.split_whitespace();
    let (method, target, version) = (
        parts.next().unwrap_or_default().to_owned(),
        parts.next().unwrap_or_default().to_owned(),
        parts.next().unwrap_or("HTTP/1.1").to_owned(),
    );
    if header(&headers, "expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
    }
    let chunked = header(&headers, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let (raw_body, body) = if chunked {
        read_chunked(stream, &mut buf).await?
    } else {
        let n = header(&headers, "content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        let b = read_exact_into(stream, &mut buf, n).await?;
        (b.clone(), b)
    };
    Ok(Some(Request {
        method,
        target,
        version,
        headers,
        raw_body,
        body,
    }))
}

/// The request as sent upstream: same line and headers except hop-by-hop
/// ones, `Connection: close`, and `body` (framed by `Content-Length`) when
/// given instead of the original.
pub(crate) fn serialize_request(req: &Request, body: Option<&[u8]>) -> Vec<u8> {
    let mut out = format!("{} {} {}\r\n", req.method, req.target, req.version).into_bytes();
    let replace = body.is_some();
    for (k, v) in &req.headers {
        let lk = k.to_ascii_lowercase();
        if matches!(
            lk.as_str(),
            "connection" | "keep-alive" | "proxy-connection" | "expect"
        ) || (replace && (lk == "content-length" || lk == "transfer-encoding"))
        {
            continue;
        }
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    if let Some(b) = body {
        out.extend_from_slice(format!("Content-Length: {}\r\n", b.len()).as_bytes());
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out.extend_from_slice(body.unwrap_or(&req.raw_body));
    out
}

/// One upstream response, read to EOF.
#[derive(Debug)]
pub(crate) struct Response {
    pub status_line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Read a whole response from a connection the server closes after it.
pub(crate) async fn read_response(stream: &mut TcpStream) -> std::io::Result<Response> {
    let mut buf = Vec::new();
    let Some((status_line, headers)) = read_head(stream, &mut buf).await? else {
        return Err(bad("upstream closed without answering"));
    };
    let chunked = header(&headers, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        read_chunked(stream, &mut buf).await?.1
    } else {
        // Connection: close: the body ends at EOF (Content-Length, if any, is
        // kept as the upstream sent it: a HEAD answer has none of the bytes).
        for _ in 0..10_000_000 {
            if buf.len() > MAX_BODY || read_some(stream, &mut buf).await? == 0 {
                break;
            }
        }
        buf
    };
    Ok(Response {
        status_line,
        headers,
        body,
    })
}

/// Serialize a response for the client: the upstream's headers minus
/// hop-by-hop framing; `Content-Length` from the body unless `keep_length`
/// (HEAD answers), and `Connection: close`.
pub(crate) fn serialize_response(resp: &Response, keep_length: bool) -> Vec<u8> {
    let mut out = format!("{}\r\n", resp.status_line).into_bytes();
    for (k, v) in &resp.headers {
        let lk = k.to_ascii_lowercase();
        if matches!(
            lk.as_str(),
            "connection" | "keep-alive" | "transfer-encoding"
        ) || (!keep_length && lk == "content-length")
        {
            continue;
        }
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    if !keep_length {
        out.extend_from_slice(format!("Content-Length: {}\r\n", resp.body.len()).as_bytes());
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out.extend_from_slice(&resp.body);
    out
}

/// A complete response with the given status, headers and body.
pub(crate) fn simple_response(
    status: u16,
    reason: &str,
    headers: &[(&str, String)],
    body: &[u8],
    head_only: bool,
) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {reason}\r\n").into_bytes();
    for (k, v) in headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    let len = if head_only { 0 } else { body.len() };
    out.extend_from_slice(format!("Content-Length: {len}\r\nConnection: close\r\n\r\n").as_bytes());
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}
