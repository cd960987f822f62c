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
//!
//! The three parts have a file each, and this one holds what they share
//! (the fingerprint type and the merge and difference of ascending
//! streams): `table` is the in-memory hash table, `sorted` the checked file
//! format and the sorted file probed in place, and `spill` the bounded set
//! built from a table and a spill file. [`crate::state`] decides what the
//! sets mean.

mod sorted;
mod spill;
mod table;

pub(crate) use sorted::{write_file, Invalid, SortedFile};
pub(crate) use spill::{stream_parts, SpillSet};

/// One version fingerprint.
pub type Fp = etl_core::incremental::Fingerprint;

const FP: usize = 16;

/// A stream of fingerprints in ascending order.
pub(crate) type FpStream<'a> = Box<dyn Iterator<Item = std::io::Result<Fp>> + 'a>;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
