//! A fingerprint set in bounded memory: a table up to a cap, then one
//! sorted spill file the table is merged into whenever it fills.
//!
//! This is what lets a run send or land any number of versions with the
//! memory of [`SpillSet::new`]'s `cap`; it combines the table and the
//! sorted file, and is kept apart from both so each stays one thing.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use super::sorted::{SortedFile, BLOCK};
use super::table::FpSet;
use super::{merge_sorted, Fp, FpStream};

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
        self.spilled = SortedFile::spilled(file, len, index);
        Ok(())
    }

    /// The table, sorted, and the spill file: merge them with
    /// [`stream_parts`].
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
    use sha2::{Digest, Sha256};

    fn fp(i: u64) -> Fp {
        let d = Sha256::digest(i.to_le_bytes());
        d[..16].try_into().unwrap()
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
}
