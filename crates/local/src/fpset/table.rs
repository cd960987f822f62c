//! The in-memory part of a fingerprint set: an open-addressing hash table.
//!
//! Fingerprints are SHA-256 prefixes, uniformly spread, so the table needs
//! no hash function of its own; it is the part of a set that is probed on
//! every record, kept apart from the file formats around it.

use super::{Fp, FP};

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

#[cfg(test)]
mod tests {
    use super::*;

    fn f(b: u8) -> Fp {
        [b; 16]
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
}
