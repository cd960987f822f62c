//! The checked fingerprint file: its format, opening it with every kind of
//! damage detected, probing it in place, and writing one.
//!
//! A saved set (`sent.fp`, `retry.fp`) is one of these, and so is the spill
//! file of a [`SpillSet`](super::SpillSet) (the same sorted entries without
//! the header and trailer). Kept apart from the in-memory table because it
//! is all about bytes on disk: layout, checksums, block reads.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{Fp, FpStream, FP};
use crate::sink::write_atomic_with;

/// Magic of the current format.
pub(crate) const MAGIC: &[u8; 8] = b"ETLFP02\n";
/// Magic of the 64-bit FNV format of earlier builds (no text in the key).
pub(crate) const MAGIC_V1: &[u8; 8] = b"ETLFP01\n";
const TRAILER: usize = 8 + 16;
/// Fingerprints per block read from disk (4 KiB).
pub(crate) const BLOCK: usize = 256;

/// Why a fingerprint file cannot be used.
#[derive(Debug)]
pub(crate) enum Invalid {
    /// Written by a build that keyed versions by a 64-bit hash of
    /// (id, updated_at) alone.
    OldFormat,
    /// Damaged: the reason.
    Corrupt(String),
    /// Unreadable.
    Io(std::io::Error),
}

impl From<std::io::Error> for Invalid {
    fn from(e: std::io::Error) -> Self {
        Invalid::Io(e)
    }
}

#[cfg(unix)]
fn read_at(f: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(f, buf, offset)
}

#[cfg(windows)]
fn read_at(f: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(f, buf, offset)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

/// The trailer's checksum: SHA-256 over the magic, the entries and the count.
fn digest(entries: &mut Sha256, count: u64) -> [u8; 16] {
    let mut h = std::mem::take(entries);
    h.update(count.to_le_bytes());
    let d = h.finalize();
    d[..16].try_into().expect("16 bytes")
}

/// Sorted fingerprints in a file, probed in place.
#[derive(Debug, Default)]
pub(crate) struct SortedFile {
    file: Option<File>,
    /// Byte offset of the first fingerprint.
    start: u64,
    /// Fingerprints stored.
    pub(crate) len: usize,
    /// First fingerprint of each block.
    index: Vec<Fp>,
    /// All of them, when there are few enough: no disk read per look-up.
    pub(crate) resident: Option<Vec<Fp>>,
}

impl SortedFile {
    /// Open and check a saved set; hold it in memory when it has at most
    /// `resident_max` fingerprints.
    pub(crate) fn open_checked(file: File, resident_max: usize) -> Result<Self, Invalid> {
        let size = file.metadata()?.len();
        if size < MAGIC.len() as u64 {
            return Err(Invalid::Corrupt(format!(
                "{size} bytes, shorter than its header"
            )));
        }
        let mut magic = [0u8; 8];
        read_at(&file, &mut magic, 0)?;
        if &magic == MAGIC_V1 {
            return Err(Invalid::OldFormat);
        }
        if &magic != MAGIC {
            return Err(Invalid::Corrupt(
                "not a fingerprint file (bad header)".into(),
            ));
        }
        let body = size - MAGIC.len() as u64;
        if body < TRAILER as u64 || !(body - TRAILER as u64).is_multiple_of(FP as u64) {
            return Err(Invalid::Corrupt(format!(
                "truncated: {size} bytes is not a whole number of entries plus its trailer"
            )));
        }
        let len = ((body - TRAILER as u64) / FP as u64) as usize;
        let mut trailer = [0u8; TRAILER];
        read_at(&file, &mut trailer, size - TRAILER as u64)?;
        let count = u64::from_le_bytes(trailer[..8].try_into().expect("8 bytes"));
        if count != len as u64 {
            return Err(Invalid::Corrupt(format!(
                "truncated or padded: its trailer counts {count} entries, the file holds {len}"
            )));
        }
        let mut index = Vec::with_capacity(len.div_ceil(BLOCK));
        let mut resident = (len <= resident_max).then(|| Vec::with_capacity(len));
        let mut hash = Sha256::new();
        hash.update(MAGIC);
        {
            let mut r = BufReader::with_capacity(1 << 16, &file);
            r.seek(SeekFrom::Start(MAGIC.len() as u64))?;
            let mut last: Option<Fp> = None;
            let mut fp = [0u8; FP];
            for i in 0..len {
                r.read_exact(&mut fp)?;
                hash.update(fp);
                if last.is_some_and(|l| l >= fp) {
                    return Err(Invalid::Corrupt(format!(
                        "entries out of order at entry {i}"
                    )));
                }
                if i % BLOCK == 0 {
                    index.push(fp);
                }
                if let Some(r) = resident.as_mut() {
                    r.push(fp);
                }
                last = Some(fp);
            }
        }
        if digest(&mut hash, count) != trailer[8..] {
            return Err(Invalid::Corrupt("checksum mismatch".into()));
        }
        Ok(Self {
            file: Some(file),
            start: MAGIC.len() as u64,
            len,
            index,
            resident,
        })
    }

    pub(crate) fn contains(&self, f: &Fp) -> std::io::Result<bool> {
        if let Some(r) = &self.resident {
            return Ok(r.binary_search(f).is_ok());
        }
        let Some(file) = &self.file else {
            return Ok(false);
        };
        let block = match self.index.partition_point(|x| x <= f) {
            0 => return Ok(false),
            b => b - 1,
        };
        if &self.index[block] == f {
            return Ok(true);
        }
        let first = block * BLOCK;
        let n = BLOCK.min(self.len - first);
        let mut buf = [0u8; BLOCK * FP];
        let buf = &mut buf[..n * FP];
        read_at(file, buf, self.start + (first * FP) as u64)?;
        let (mut lo, mut hi) = (0, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match buf[mid * FP..(mid + 1) * FP].cmp(&f[..]) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(true),
            }
        }
        Ok(false)
    }

    /// All fingerprints, in order, streamed from disk.
    pub(crate) fn stream(&self) -> std::io::Result<FpStream<'_>> {
        if let Some(r) = &self.resident {
            return Ok(Box::new(r.iter().map(|f| Ok(*f))));
        }
        let Some(file) = &self.file else {
            return Ok(Box::new(std::iter::empty()));
        };
        let mut r = BufReader::with_capacity(1 << 16, file);
        r.seek(SeekFrom::Start(self.start))?;
        let mut left = self.len;
        Ok(Box::new(std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            left -= 1;
            let mut buf = [0u8; FP];
            Some(r.read_exact(&mut buf).map(|()| buf))
        })))
    }

    /// A spill file: `len` ascending fingerprints from the start of `file`,
    /// with no header or trailer; `index` holds the first of each block.
    pub(super) fn spilled(file: File, len: usize, index: Vec<Fp>) -> Self {
        Self {
            file: Some(file),
            start: 0,
            len,
            index,
            resident: None,
        }
    }
}

/// Write ascending, repeat-free fingerprints as a checked file (atomically).
/// Returns how many were written.
pub(crate) fn write_file(path: &Path, entries: FpStream<'_>) -> std::io::Result<u64> {
    let mut count = 0u64;
    write_atomic_with(path, 0, |f| {
        let mut w = BufWriter::with_capacity(1 << 16, f);
        let mut hash = Sha256::new();
        hash.update(MAGIC);
        w.write_all(MAGIC)?;
        for fp in entries {
            let fp = fp?;
            hash.update(fp);
            w.write_all(&fp)?;
            count += 1;
        }
        w.write_all(&count.to_le_bytes())?;
        w.write_all(&digest(&mut hash, count))?;
        w.flush()
    })?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The all-zero fingerprint (the table's empty-slot marker).
    const ZERO: Fp = [0; FP];

    fn fp(i: u64) -> Fp {
        let d = Sha256::digest(i.to_le_bytes());
        d[..16].try_into().unwrap()
    }

    fn ok(v: Vec<Fp>) -> FpStream<'static> {
        Box::new(v.into_iter().map(Ok))
    }

    #[test]
    fn files_round_trip_and_every_kind_of_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.fp");
        let mut v: Vec<Fp> = (0..1000).map(fp).collect();
        v.sort_unstable();
        assert_eq!(write_file(&p, ok(v.clone())).unwrap(), 1000);
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(bytes.len(), 8 + 1000 * 16 + 24);
        for resident in [usize::MAX, 0] {
            let s = SortedFile::open_checked(File::open(&p).unwrap(), resident).unwrap();
            assert_eq!(s.resident.is_some(), resident > 0);
            for x in &v {
                assert!(s.contains(x).unwrap());
            }
            assert!(!s.contains(&fp(1000)).unwrap());
            assert!(!s.contains(&ZERO).unwrap());
            assert!(!s.contains(&[0xff; 16]).unwrap());
            let back: Vec<Fp> = s.stream().unwrap().map(Result::unwrap).collect();
            assert_eq!(back, v);
        }
        let check = |b: &[u8]| {
            std::fs::write(&p, b).unwrap();
            match SortedFile::open_checked(File::open(&p).unwrap(), usize::MAX) {
                Err(Invalid::Corrupt(r)) => r,
                Err(Invalid::OldFormat) => "old format".into(),
                Err(Invalid::Io(e)) => panic!("{e}"),
                Ok(_) => "accepted".into(),
            }
        };
        assert!(check(&bytes[..bytes.len() - 16]).contains("truncated or padded"));
        assert!(check(&bytes[..bytes.len() - 5]).contains("truncated"));
        assert!(check(&bytes[..5]).contains("shorter than its header"));
        assert!(check(b"garbage!garbage!garbage!garbage!").contains("bad header"));
        assert_eq!(
            check(b"ETLFP01\n\x01\x00\x00\x00\x00\x00\x00\x00"),
            "old format"
        );
        let mut flipped = bytes.clone();
        flipped[8 + 500 * 16 + 15] ^= 1;
        let r = check(&flipped);
        assert!(r.contains("checksum") || r.contains("out of order"), "{r}");
        let mut swapped = bytes.clone();
        let (a, b) = swapped[8..8 + 32].split_at_mut(16);
        a.swap_with_slice(b);
        assert!(check(&swapped).contains("out of order at entry 1"));
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[0; 16]);
        assert!(check(&padded).contains("truncated or padded"));
        let empty_ok = write_file(&p, ok(vec![])).unwrap();
        assert_eq!(empty_ok, 0);
        assert!(SortedFile::open_checked(File::open(&p).unwrap(), 10).is_ok());
    }
}
