//! Exact sets of 128-bit version fingerprints in bounded memory, and the
//! checked file format they are kept in between runs.
//!
//! A lake may remember far more versions than fit in memory, so a set is an
//! in-memory hash table up to a cap, then one sorted spill file it is merged
//! into whenever the table fills; a saved set is a sorted file probed in
//! place, a 4 KiB block per look-up, with only the first fingerprint of each
//! block held (1/256 of the file). Fingerprints are SHA-256 prefixes
//! ([`etl_core::incremental::fingerprint`]), uniformly spread, so the table
//! hashes them by their own leading bytes.
//!
//! File format (`ETLFP02`): an 8-byte magic, the fingerprints strictly
//! ascending (16 bytes each), the count (u64 LE) and the first 16 bytes of a
//! SHA-256 over everything before it. Truncation, padding, reordering and
//! flipped bits are all detected when the file is opened, so a damaged state
//! stops a run instead of silently forgetting (re-sending) or inventing
//! (dropping) versions.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::sink::write_atomic_with;

/// One version fingerprint.
pub type Fp = etl_core::incremental::Fingerprint;

const FP: usize = 16;
/// Magic of the current format.
pub(crate) const MAGIC: &[u8; 8] = b"ETLFP02\n";
/// Magic of the 64-bit FNV format of earlier builds (no text in the key).
pub(crate) const MAGIC_V1: &[u8; 8] = b"ETLFP01\n";
const TRAILER: usize = 8 + 16;
/// Fingerprints per block read from disk (4 KiB).
pub(crate) const BLOCK: usize = 256;

/// A stream of fingerprints in ascending order.
pub(crate) type FpStream<'a> = Box<dyn Iterator<Item = std::io::Result<Fp>> + 'a>;

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

/// Merge two ascending streams into one, without repeats.
pub(crate) fn merge_sorted<'a>(a: FpStream<'a>, b: FpStream<'a>) -> FpStream<'a> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    let mut last: Option<Fp> = None;
    Box::new(std::iter::from_fn(move || loop {
        let next = match (a.peek(), b.peek()) {
            (Some(Err(_)), _) => a.next(),
            (_, Some(Err(_))) => b.next(),
            (Some(Ok(x)), Some(Ok(y))) if x <= y => a.next(),
            (Some(_), Some(_)) | (None, Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, None) => return None,
        }?;
        match next {
            Ok(f) if last == Some(f) => continue,
            Ok(f) => {
                last = Some(f);
                return Some(Ok(f));
            }
            Err(e) => return Some(Err(e)),
        }
    }))
}

/// The members of ascending `a` that are not in ascending `b`.
pub(crate) fn difference_sorted<'a>(a: FpStream<'a>, b: FpStream<'a>) -> FpStream<'a> {
    let mut b = b.peekable();
    Box::new(a.filter_map(move |x| {
        let x = match x {
            Ok(x) => x,
            Err(e) => return Some(Err(e)),
        };
        loop {
            match b.peek() {
                Some(Ok(y)) if *y < x => {
                    b.next();
                }
                Some(Ok(y)) if *y == x => return None,
                Some(Err(_)) => {
                    return Some(Err(b.next().expect("peeked").expect_err("peeked an error")));
                }
                _ => return Some(Ok(x)),
            }
        }
    }))
}

/// An exact set of fingerprints at 16 bytes a slot: open addressing with
/// linear probing, at most 7/8 full, all-zero marking an empty slot (the
/// all-zero fingerprint is kept in a flag).
#[derive(Debug, Default)]
pub(crate) struct FpSet {
    slots: Vec<Fp>,
    len: usize,
    has_zero: bool,
}

const ZERO: Fp = [0; FP];

impl FpSet {
    fn slot(&self, f: &Fp) -> usize {
        // SHA-256 output: its leading bits are as good as any hash of it.
        let bits = self.slots.len().trailing_zeros();
        (u64::from_le_bytes(f[..8].try_into().expect("8 bytes")) >> (64 - bits)) as usize
    }

    pub(crate) fn contains(&self, f: &Fp) -> bool {
        if f == &ZERO {
            return self.has_zero;
        }
        if self.slots.is_empty() {
            return false;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.slot(f);
        loop {
            match &self.slots[i] {
                x if x == &ZERO => return false,
                x if x == f => return true,
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Insert; true when it was not there yet.
    pub(crate) fn insert(&mut self, f: Fp) -> bool {
        if f == ZERO {
            let fresh = !self.has_zero;
            self.has_zero = true;
            return fresh;
        }
        if (self.len + 1) * 8 > self.slots.len() * 7 {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = self.slot(&f);
        loop {
            match &self.slots[i] {
                x if x == &ZERO => {
                    self.slots[i] = f;
                    self.len += 1;
                    return true;
                }
                x if x == &f => return false,
                _ => i = (i + 1) & mask,
            }
        }
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(1024);
        let old = std::mem::replace(&mut self.slots, vec![ZERO; size]);
        self.len = 0;
        for f in old.into_iter().filter(|f| f != &ZERO) {
            self.insert(f);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len + usize::from(self.has_zero)
    }

    /// Bytes held by the table.
    pub(crate) fn bytes(&self) -> usize {
        self.slots.capacity() * FP
    }

    /// The members in ascending order, consuming the set (sorted in place).
    pub(crate) fn into_sorted(self) -> Vec<Fp> {
        let mut v = self.slots;
        v.retain(|f| f != &ZERO);
        v.sort_unstable();
        if self.has_zero {
            v.insert(0, ZERO);
        }
        v
    }
}

/// A set that holds up to `cap` fingerprints in memory and merges them into
/// one sorted, unlinked spill file whenever the table fills.
#[derive(Debug)]
pub(crate) struct SpillSet {
    table: FpSet,
    spilled: SortedFile,
    dir: PathBuf,
    name: &'static str,
    pub(crate) cap: usize,
    spills: u64,
}

impl SpillSet {
    pub(crate) fn new(dir: PathBuf, name: &'static str, cap: usize) -> Self {
        Self {
            table: FpSet::default(),
            spilled: SortedFile::default(),
            dir,
            name,
            cap: cap.max(1),
            spills: 0,
        }
    }

    pub(crate) fn contains(&self, f: &Fp) -> std::io::Result<bool> {
        if self.table.contains(f) {
            return Ok(true);
        }
        self.spilled.contains(f)
    }

    /// Add one. A failed spill keeps everything in memory (correct, only
    /// larger) and is reported once.
    pub(crate) fn insert(&mut self, f: Fp) -> std::io::Result<()> {
        let mut result = Ok(());
        if self.table.len() >= self.cap {
            if let Err(e) = self.spill() {
                self.cap = usize::MAX;
                result = Err(e);
            }
        }
        self.table.insert(f);
        result
    }

    /// Fingerprints held (an upper bound when one was inserted twice across a spill).
    pub(crate) fn len(&self) -> usize {
        self.table.len() + self.spilled.len
    }

    /// Fingerprints in the in-memory table.
    #[cfg(test)]
    pub(crate) fn in_memory(&self) -> usize {
        self.table.len()
    }

    /// Bytes of the in-memory table.
    pub(crate) fn table_bytes(&self) -> usize {
        self.table.bytes()
    }

    /// Fingerprints on disk.
    #[cfg(test)]
    pub(crate) fn on_disk(&self) -> usize {
        self.spilled.len
    }

    fn spill(&mut self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        self.spills += 1;
        let path = self.dir.join(format!(
            ".spill-{}-{}-{}.tmp",
            self.name,
            std::process::id(),
            self.spills
        ));
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        // Unix keeps an unlinked file while it is open: no file is left
        // behind, whatever ends the process. (Elsewhere the file stays in
        // `_state` until removed by hand.)
        #[cfg(unix)]
        std::fs::remove_file(&path)?;
        let new = std::mem::take(&mut self.table).into_sorted();
        let mut len = 0;
        let mut index = Vec::new();
        let written = (|| {
            let mut w = BufWriter::with_capacity(1 << 16, &file);
            let new_stream: FpStream<'_> = Box::new(new.iter().map(|f| Ok(*f)));
            for f in merge_sorted(self.spilled.stream()?, new_stream) {
                let f = f?;
                if len % BLOCK == 0 {
                    index.push(f);
                }
                w.write_all(&f)?;
                len += 1;
            }
            w.flush()
        })();
        if let Err(e) = written {
            // Nothing is lost: the table comes back as it was.
            for f in new {
                self.table.insert(f);
            }
            return Err(e);
        }
        self.spilled = SortedFile {
            file: Some(file),
            start: 0,
            len,
            index,
            resident: None,
        };
        Ok(())
    }

    /// The table, sorted, and the spill file: merge them with
    /// [`SpillSet::stream_parts`].
    pub(crate) fn into_parts(self) -> (Vec<Fp>, SortedFile) {
        (self.table.into_sorted(), self.spilled)
    }
}

/// All members of a set taken apart by [`SpillSet::into_parts`], ascending.
pub(crate) fn stream_parts<'a>(
    table: &'a [Fp],
    spilled: &'a SortedFile,
) -> std::io::Result<FpStream<'a>> {
    Ok(merge_sorted(
        spilled.stream()?,
        Box::new(table.iter().map(|f| Ok(*f))),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(i: u64) -> Fp {
        let d = Sha256::digest(i.to_le_bytes());
        d[..16].try_into().unwrap()
    }

    fn ok(v: Vec<Fp>) -> FpStream<'static> {
        Box::new(v.into_iter().map(Ok))
    }

    fn f(b: u8) -> Fp {
        [b; 16]
    }

    #[test]
    fn merge_is_ordered_and_drops_repeats_and_difference_subtracts() {
        let merged: Vec<Fp> =
            merge_sorted(ok(vec![f(1), f(3), f(3), f(8)]), ok(vec![f(0), f(3), f(9)]))
                .map(Result::unwrap)
                .collect();
        assert_eq!(merged, vec![f(0), f(1), f(3), f(8), f(9)]);
        let diff: Vec<Fp> = difference_sorted(
            ok(vec![f(1), f(3), f(5), f(8)]),
            ok(vec![f(0), f(3), f(8), f(9)]),
        )
        .map(Result::unwrap)
        .collect();
        assert_eq!(diff, vec![f(1), f(5)]);
    }

    #[test]
    fn zero_fingerprint_is_a_member_like_any_other() {
        let mut set = FpSet::default();
        assert!(!set.contains(&ZERO));
        assert!(set.insert(ZERO));
        assert!(!set.insert(ZERO));
        assert!(set.insert(f(7)));
        assert!(set.contains(&ZERO) && set.contains(&f(7)) && !set.contains(&f(8)));
        assert_eq!(set.into_sorted(), vec![ZERO, f(7)]);
    }

    #[test]
    fn spill_set_is_exact_through_spills_and_bounded_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let cap = 300;
        let mut s = SpillSet::new(dir.path().to_owned(), "t", cap);
        let n = 3_000u64; // ~10 spills, several 256-entry blocks
        for i in 0..n {
            assert!(!s.contains(&fp(i)).unwrap(), "{i}");
            s.insert(fp(i)).unwrap();
            assert!(s.contains(&fp(i)).unwrap(), "{i} right after");
            let back = (i * 7919) % (i + 1);
            assert!(s.contains(&fp(back)).unwrap(), "{back} at {i}");
            assert!(s.in_memory() <= cap);
        }
        assert!(s.on_disk() > 3 * BLOCK);
        assert!(!s.contains(&fp(n)).unwrap());
        let (table, spilled) = s.into_parts();
        let all: Vec<Fp> = stream_parts(&table, &spilled)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let mut want: Vec<Fp> = (0..n).map(fp).collect();
        want.sort_unstable();
        assert_eq!(all, want);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "spill files are unlinked"
        );
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
