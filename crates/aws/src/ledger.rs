//! The producer's ledger of sent versions in bounded memory, whatever its
//! size.
//!
//! A bulk import of millions of items inside one lookback window puts
//! millions of versions in the ledger; held in a hash map that needs more
//! than the function's memory on every retry, and the producer wedges. So
//! the ledger lives in sorted *runs* on local disk (Lambda's `/tmp`,
//! `LEDGER_SPILL_DIR`), each probed in place: one 4 KiB block read per
//! look-up, with only the first fingerprint of each block held in memory
//! (16 bytes per 170 versions). New versions go to a hash map of at most
//! `LEDGER_MEMORY_VERSIONS` entries, which is sorted and written as a new
//! run when it fills; past [`MAX_RUNS`] runs, they are merged into one.
//! Loading a stored generation streams its (already sorted) entries into a
//! run, and saving streams the merged runs out, so neither ever holds the
//! ledger in memory.
//!
//! Runs are unlinked temporary files: nothing is left on disk by a crashed
//! invocation, and a warm container starts each invocation from empty.
//! Every version is held once across the map and the runs (an insert looks
//! first), so the count is exact and the encoding canonical.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use etl_core::{
    write_ledger, Fingerprint, LedgerEntries, LedgerError, VersionLedger, LEDGER_ENTRY_BYTES,
};
use sha2::{Digest, Sha256};

/// Versions held in memory before they are written to a run (about 10 MB).
pub const DEFAULT_MEMORY_VERSIONS: usize = 1 << 18;
/// Runs kept before they are merged into one.
pub const MAX_RUNS: usize = 8;
/// Entries per block probed by one read (4,080 bytes).
const BLOCK: usize = 170;
const ENTRY: usize = LEDGER_ENTRY_BYTES;

type Entry = (Fingerprint, i64);

/// One sorted run of entries in an unlinked file.
struct Run {
    file: File,
    entries: u64,
    /// The first fingerprint of each block of [`BLOCK`] entries.
    index: Vec<Fingerprint>,
}

impl Run {
    /// Write ascending, distinct entries to a new run in `dir`.
    fn write<E: From<io::Error>>(
        dir: &Path,
        entries: impl Iterator<Item = Result<Entry, E>>,
    ) -> Result<Self, E> {
        let file = tempfile::tempfile_in(dir)?;
        let mut index = Vec::new();
        let mut n = 0u64;
        {
            let mut w = BufWriter::with_capacity(1 << 16, &file);
            for e in entries {
                let (fp, at) = e?;
                if n.is_multiple_of(BLOCK as u64) {
                    index.push(fp);
                }
                w.write_all(&fp)?;
                w.write_all(&at.to_le_bytes())?;
                n += 1;
            }
            w.flush()?;
        }
        Ok(Self {
            file,
            entries: n,
            index,
        })
    }

    fn contains(&self, fp: &Fingerprint) -> io::Result<bool> {
        let block = match self.index.partition_point(|f| f <= fp) {
            0 => return Ok(false),
            b => b - 1,
        };
        let start = block * BLOCK;
        let n = BLOCK.min((self.entries - start as u64) as usize);
        let mut buf = [0u8; BLOCK * ENTRY];
        let buf = &mut buf[..n * ENTRY];
        self.file.read_exact_at(buf, (start * ENTRY) as u64)?;
        let (mut lo, mut hi) = (0, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match buf[mid * ENTRY..mid * ENTRY + 16].cmp(&fp[..]) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(true),
            }
        }
        Ok(false)
    }

    /// The entries in order, read through a buffer of their own.
    fn iter(&self) -> impl Iterator<Item = io::Result<Entry>> + '_ {
        let mut r = BufReader::with_capacity(
            1 << 16,
            AtOffset {
                file: &self.file,
                pos: 0,
            },
        );
        let mut left = self.entries;
        std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            left -= 1;
            let mut e = [0u8; ENTRY];
            Some(r.read_exact(&mut e).map(|()| split(&e)))
        })
    }
}

fn split(e: &[u8; ENTRY]) -> Entry {
    (
        e[..16].try_into().expect("16 bytes"),
        i64::from_le_bytes(e[16..].try_into().expect("8 bytes")),
    )
}

/// A reader at its own offset of a shared file.
struct AtOffset<'a> {
    file: &'a File,
    pos: u64,
}

impl Read for AtOffset<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Merge ascending streams into one, keeping the first of equal
/// fingerprints. Stops after the first error it yields.
fn merge<'a>(
    mut sources: Vec<Box<dyn Iterator<Item = io::Result<Entry>> + 'a>>,
) -> impl Iterator<Item = io::Result<Entry>> + 'a {
    let mut heads: Option<Vec<Option<Entry>>> = None;
    let mut last: Option<Fingerprint> = None;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed {
            return None;
        }
        let heads = match &mut heads {
            Some(h) => h,
            None => {
                let mut h = Vec::with_capacity(sources.len());
                for s in &mut sources {
                    match s.next().transpose() {
                        Ok(e) => h.push(e),
                        Err(e) => {
                            failed = true;
                            return Some(Err(e));
                        }
                    }
                }
                heads.insert(h)
            }
        };
        loop {
            let (_, i) = heads
                .iter()
                .enumerate()
                .filter_map(|(i, h)| h.as_ref().map(|(fp, _)| (*fp, i)))
                .min()?;
            let e = heads[i].take().expect("the minimum is a head");
            match sources[i].next().transpose() {
                Ok(next) => heads[i] = next,
                Err(err) => {
                    failed = true;
                    return Some(Err(err));
                }
            }
            if last == Some(e.0) {
                continue;
            }
            last = Some(e.0);
            return Some(Ok(e));
        }
    })
}

/// The ledger of sent versions, in bounded memory. See the module docs.
pub struct SpillLedger {
    dir: PathBuf,
    cap: usize,
    mem: HashMap<Fingerprint, i64>,
    runs: Vec<Run>,
    len: u64,
    /// Loaded generations not merged yet: `len` may count a version twice.
    unmerged: bool,
}

impl std::fmt::Debug for SpillLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpillLedger")
            .field("dir", &self.dir)
            .field("versions", &self.len)
            .field("in_memory", &self.mem.len())
            .field("runs", &self.runs.len())
            .finish()
    }
}

impl SpillLedger {
    /// An empty ledger spilling to `dir`, holding at most `memory_versions`
    /// versions in memory (at least one).
    pub fn new(dir: impl Into<PathBuf>, memory_versions: usize) -> Self {
        Self {
            dir: dir.into(),
            cap: memory_versions.max(1),
            mem: HashMap::new(),
            runs: Vec::new(),
            len: 0,
            unmerged: false,
        }
    }

    /// An empty ledger with the same directory and memory bound.
    pub fn empty_like(&self) -> Self {
        Self::new(self.dir.clone(), self.cap)
    }

    /// Versions held in memory now (never more than the bound).
    pub fn in_memory(&self) -> usize {
        self.mem.len()
    }

    /// Sorted runs on disk now.
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// A scratch file in the spill directory (unlinked), e.g. to receive a
    /// stored generation before [`SpillLedger::load`] reads it.
    pub fn scratch_file(&self) -> io::Result<File> {
        tempfile::tempfile_in(&self.dir)
    }

    /// Add the versions of an encoded ledger ([`etl_core::write_ledger`]'s
    /// form), streamed: checked as they are read (header, order, count,
    /// nothing after), never held in memory. Returns how many were read.
    /// Versions may repeat across loaded generations (a base and its
    /// checkpoints' deltas): call [`SpillLedger::finish_loading`] after the
    /// last, which merges them away once, before inserting or counting.
    pub fn load(&mut self, r: impl Read) -> Result<u64, LedgerError> {
        let entries = LedgerEntries::new(r)?;
        let run = Run::write(&self.dir, entries)?;
        let read = run.entries;
        self.runs.push(run);
        self.len += read;
        if self.runs.len() > 1 || !self.mem.is_empty() {
            self.unmerged = true;
        }
        if self.runs.len() > MAX_RUNS {
            self.compact(None)?;
        }
        Ok(read)
    }

    /// After the last [`SpillLedger::load`]: one merge of every loaded
    /// generation (not one per generation), so the count is exact again.
    pub fn finish_loading(&mut self) -> io::Result<()> {
        if self.unmerged {
            self.compact(None)?;
        }
        Ok(())
    }

    /// Write the ledger in its canonical encoding, streamed.
    pub fn encode_to(&self, w: impl Write) -> io::Result<()> {
        write_ledger(w, self.len, self.merged())
    }

    /// Encode into an unlinked file in the spill directory, with its length
    /// and SHA-256 (as the state table's ledger references hold them).
    pub fn encode_to_file(&self) -> io::Result<EncodedLedger> {
        let mut file = self.scratch_file()?;
        let (bytes, sha256) = {
            let mut w = Hashing {
                inner: BufWriter::with_capacity(1 << 16, &file),
                hash: Sha256::new(),
                bytes: 0,
            };
            self.encode_to(&mut w)?;
            (w.bytes, hex::encode(w.hash.clone().finalize()))
        };
        file.rewind()?;
        Ok(EncodedLedger {
            file,
            bytes,
            sha256,
        })
    }

    fn sorted_mem(&self) -> Vec<Entry> {
        let mut v: Vec<Entry> = self.mem.iter().map(|(f, a)| (*f, *a)).collect();
        v.sort_unstable_by_key(|a| a.0);
        v
    }

    /// Every version in ascending order.
    fn merged(&self) -> impl Iterator<Item = io::Result<Entry>> + '_ {
        let mut sources: Vec<Box<dyn Iterator<Item = io::Result<Entry>> + '_>> =
            self.runs.iter().map(|r| Box::new(r.iter()) as _).collect();
        sources.push(Box::new(self.sorted_mem().into_iter().map(Ok)));
        merge(sources)
    }

    /// Merge everything into one run, dropping versions updated before
    /// `floor`; returns how many were dropped (counted as they are, so
    /// repeats merged away across loaded generations are not among them).
    fn compact(&mut self, floor: Option<i64>) -> io::Result<u64> {
        let mut pruned = 0u64;
        let run = Run::write(
            &self.dir,
            self.merged().filter(|e| {
                let old = matches!(e, Ok((_, at)) if floor.is_some_and(|f| *at < f));
                pruned += u64::from(old);
                !old
            }),
        )?;
        self.len = run.entries;
        self.runs = vec![run];
        self.mem.clear();
        self.unmerged = false;
        Ok(pruned)
    }

    fn spill(&mut self) -> io::Result<()> {
        let run = Run::write(
            &self.dir,
            self.sorted_mem().into_iter().map(Ok::<_, io::Error>),
        )?;
        self.runs.push(run);
        self.mem.clear();
        if self.runs.len() > MAX_RUNS {
            self.compact(None)?;
        }
        Ok(())
    }
}

impl VersionLedger for SpillLedger {
    fn contains(&self, fp: &Fingerprint) -> io::Result<bool> {
        if self.mem.contains_key(fp) {
            return Ok(true);
        }
        for r in &self.runs {
            if r.contains(fp)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn insert(&mut self, fp: Fingerprint, updated_at: DateTime<Utc>) -> io::Result<()> {
        if self.contains(&fp)? {
            return Ok(());
        }
        self.mem.insert(fp, updated_at.timestamp_micros());
        self.len += 1;
        if self.mem.len() >= self.cap {
            self.spill()?;
        }
        Ok(())
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn prune(&mut self, floor: DateTime<Utc>) -> io::Result<u64> {
        self.compact(Some(floor.timestamp_micros()))
    }
}

/// An encoded ledger in an unlinked file, ready to store
/// ([`crate::state::StateStore::save_ledger`]).
#[derive(Debug)]
pub struct EncodedLedger {
    file: File,
    /// Its length.
    pub bytes: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
}

impl crate::state::LedgerBytes for EncodedLedger {
    fn len(&self) -> u64 {
        self.bytes
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
}

struct Hashing<W: Write> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etl_core::Ledger;

    fn fp(i: u64) -> Fingerprint {
        // Spread like SHA-256 prefixes, deterministic.
        let d = Sha256::digest(i.to_le_bytes());
        d[..16].try_into().unwrap()
    }

    fn at(i: u64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + i as i64, 0).unwrap()
    }

    #[test]
    fn holds_far_more_than_its_memory_bound_and_encodes_as_the_in_memory_ledger_does() {
        let dir = tempfile::tempdir().unwrap();
        let mut spill = SpillLedger::new(dir.path(), 100);
        let mut plain = Ledger::new();
        for i in 0..5_000u64 {
            spill.insert(fp(i), at(i)).unwrap();
            plain.insert(fp(i), at(i));
            assert!(spill.in_memory() < 100, "memory bound");
            assert!(spill.runs() <= MAX_RUNS, "runs merged past the limit");
        }
        // Inserting again changes nothing.
        for i in (0..5_000u64).step_by(7) {
            spill.insert(fp(i), at(i)).unwrap();
        }
        assert_eq!(spill.len(), 5_000);
        assert!(spill.runs() >= 1, "it spilled");
        for i in 0..5_000u64 {
            assert!(spill.contains(&fp(i)).unwrap(), "version {i}");
        }
        for i in 5_000..6_000u64 {
            assert!(!spill.contains(&fp(i)).unwrap(), "never inserted {i}");
        }
        let enc = spill.encode_to_file().unwrap();
        let mut bytes = Vec::new();
        (&enc.file).read_to_end(&mut bytes).unwrap();
        assert_eq!(bytes, plain.encode(), "the same canonical bytes");
        assert_eq!(enc.bytes, bytes.len() as u64);
        assert_eq!(enc.sha256, hex::encode(Sha256::digest(&bytes)));
    }

    #[test]
    fn loads_overlapping_generations_once_and_prunes_by_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut base = Ledger::new();
        let mut delta = Ledger::new();
        for i in 0..1_000u64 {
            base.insert(fp(i), at(i));
        }
        for i in 900..1_300u64 {
            delta.insert(fp(i), at(i));
        }
        let mut spill = SpillLedger::new(dir.path(), 64);
        assert_eq!(spill.load(&base.encode()[..]).unwrap(), 1_000);
        assert_eq!(spill.load(&delta.encode()[..]).unwrap(), 400);
        assert!(spill.contains(&fp(950)).unwrap() && spill.contains(&fp(1_250)).unwrap());
        spill.finish_loading().unwrap();
        assert_eq!(spill.runs(), 1, "merged once");
        assert_eq!(spill.len(), 1_300, "100 versions were in both");
        spill.insert(fp(5_000), at(5_000)).unwrap();
        assert_eq!(spill.prune(at(1_000)).unwrap(), 1_000);
        assert_eq!(spill.len(), 301);
        assert!(!spill.contains(&fp(999)).unwrap());
        assert!(spill.contains(&fp(1_000)).unwrap() && spill.contains(&fp(5_000)).unwrap());
        let mut bytes = Vec::new();
        spill.encode_to(&mut bytes).unwrap();
        let back = Ledger::decode(&bytes).unwrap();
        assert_eq!(back.len(), 301);
        // Pruned straight after loading, before the merge: repeats across
        // the generations are not counted as pruned.
        let mut fresh = SpillLedger::new(dir.path(), 64);
        fresh.load(&base.encode()[..]).unwrap();
        fresh.load(&delta.encode()[..]).unwrap();
        assert_eq!(fresh.prune(at(1_000)).unwrap(), 1_000);
        assert_eq!(fresh.len(), 300);
    }

    #[test]
    fn damaged_bytes_are_refused_while_streaming() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::new();
        for i in 0..500u64 {
            l.insert(fp(i), at(i));
        }
        let bytes = l.encode();
        let mut spill = SpillLedger::new(dir.path(), 64);
        assert_eq!(
            spill.load(&bytes[..bytes.len() - 3]).unwrap_err(),
            LedgerError::Length {
                len: bytes.len() as u64 - 3,
                count: 500
            }
        );
        let mut swapped = bytes.clone();
        let (a, b) = swapped[16 + 24 * 10..16 + 24 * 12].split_at_mut(24);
        a.swap_with_slice(b);
        assert_eq!(
            SpillLedger::new(dir.path(), 64)
                .load(&swapped[..])
                .unwrap_err(),
            LedgerError::Unsorted(11)
        );
    }

    #[test]
    fn a_spill_directory_that_cannot_be_written_fails_the_insert_that_spills() {
        let mut spill = SpillLedger::new("/nonexistent/etl-ledger-spill", 3);
        spill.insert(fp(1), at(1)).unwrap();
        spill.insert(fp(2), at(2)).unwrap();
        let err = spill.insert(fp(3), at(3)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
    }
}
