//! The bounded line reader under the JSON-lines source.
//!
//! It exists apart from the JSON parsing because its one job is memory: a
//! line longer than the limit is streamed past in small chunks and reported
//! by length and line number, never held, so a hostile or corrupt input
//! cannot grow the reader's buffer beyond about twice the limit.

use std::io::{BufRead, BufReader, Read};

/// Bytes read at a time while skipping a line that is too long.
const SKIP_CHUNK: u64 = 64 * 1024;

/// One line from a [`LineReader`].
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// The line's bytes, without its line ending.
    Text(&'a [u8]),
    /// A line longer than the limit, streamed past: only its length is known.
    TooLong {
        /// Its length in bytes, without the newline.
        bytes: u64,
    },
}

/// Splits a byte stream into lines holding at most `limit` bytes of one
/// line in memory: a longer line is read past in small chunks and reported
/// as [`Line::TooLong`], so memory does not grow with line length.
pub struct LineReader<R> {
    inner: BufReader<R>,
    buf: Vec<u8>,
    limit: usize,
    line_no: u64,
    peak_capacity: usize,
}

impl<R: Read> LineReader<R> {
    /// Lines of at most `limit` bytes from `r`.
    pub fn new(r: R, limit: usize) -> Self {
        Self {
            inner: BufReader::with_capacity(1 << 20, r),
            buf: Vec::with_capacity(4096.min(limit + 1)),
            limit,
            line_no: 0,
            peak_capacity: 0,
        }
    }

    /// The largest capacity the line buffer reached: at most about twice
    /// the limit, whatever the input (the read buffer adds a fixed 1 MiB).
    pub fn peak_capacity(&self) -> usize {
        self.peak_capacity
    }

    /// The next line and its 1-based number, or `None` at the end.
    pub fn next_line(&mut self) -> std::io::Result<Option<(u64, Line<'_>)>> {
        self.buf.clear();
        let n = (&mut self.inner)
            .take(self.limit as u64 + 1)
            .read_until(b'\n', &mut self.buf)?;
        self.peak_capacity = self.peak_capacity.max(self.buf.capacity());
        if n == 0 {
            return Ok(None);
        }
        self.line_no += 1;
        let ended = self.buf.last() == Some(&b'\n');
        if !ended && self.buf.len() > self.limit {
            let mut bytes = self.buf.len() as u64;
            loop {
                self.buf.clear();
                let n = (&mut self.inner)
                    .take(SKIP_CHUNK.min(self.limit as u64 + 1))
                    .read_until(b'\n', &mut self.buf)?;
                self.peak_capacity = self.peak_capacity.max(self.buf.capacity());
                if n == 0 {
                    break;
                }
                if self.buf.last() == Some(&b'\n') {
                    bytes += n as u64 - 1;
                    break;
                }
                bytes += n as u64;
            }
            self.buf.clear();
            return Ok(Some((self.line_no, Line::TooLong { bytes })));
        }
        let mut end = self.buf.len();
        while end > 0 && (self.buf[end - 1] == b'\n' || self.buf[end - 1] == b'\r') {
            end -= 1;
        }
        Ok(Some((self.line_no, Line::Text(&self.buf[..end]))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_reader_streams_past_long_lines_with_bounded_memory() {
        // Generated, not stored: 20 MB of one line between two short ones,
        // then a long last line without a newline.
        let limit = 1024;
        let big = 20 * 1024 * 1024;
        let input = std::io::Cursor::new(b"first\r\n".to_vec())
            .chain(std::io::repeat(b'x').take(big))
            .chain(std::io::Cursor::new(
                format!("\n{}\n\nlast", "y".repeat(limit)).into_bytes(),
            ))
            .chain(std::io::repeat(b'z').take(limit as u64 + 1));
        let mut r = LineReader::new(input, limit);
        let mut got = Vec::new();
        while let Some((n, line)) = r.next_line().unwrap() {
            got.push(match line {
                Line::Text(t) => (
                    n,
                    format!(
                        "{} bytes: {}",
                        t.len(),
                        String::from_utf8_lossy(&t[..t.len().min(5)])
                    ),
                ),
                Line::TooLong { bytes } => (n, format!("too long: {bytes}")),
            });
        }
        assert_eq!(
            got,
            vec![
                (1, "5 bytes: first".to_owned()),
                (2, format!("too long: {big}")),
                (3, format!("{limit} bytes: yyyyy")),
                (4, "0 bytes: ".to_owned()),
                (5, format!("too long: {}", 4 + limit + 1)),
            ]
        );
        assert!(
            r.peak_capacity() <= 2 * (limit + 1),
            "{}",
            r.peak_capacity()
        );
    }
}
