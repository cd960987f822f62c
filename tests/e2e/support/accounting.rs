//! The exact accounting every reliability scenario ends with, and the JSON
//! line it appends to `$RELIABILITY_REPORT`.
//!
//! What is compared is the multiset of record *versions* — (id, updated_at,
//! SHA-256 of the text, dt) — read back from the real Parquet in the lake,
//! against the source's: a record in the lake twice, in the wrong partition,
//! with another text or another `updated_at` is caught, which an id set
//! would miss. A version in a dead-letter place needs a reason, and must be
//! one the scenario expects to be refused: a healthy record dead-lettered
//! with its message is a failure too.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

use etl_core::SourceRecord;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// One version of a record, as the lake should hold it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub id: String,
    /// `updated_at`, µs since the epoch (the Parquet column's unit).
    pub updated_at_us: i64,
    /// Hex SHA-256 of the text (`<no text>` when the lake has none).
    pub text_sha256: String,
    /// The Hive partition: the UTC date of `created_at`.
    pub dt: String,
}

fn sha256(text: &str) -> String {
    format!("{:x}", Sha256::digest(text.as_bytes()))
}

impl Version {
    /// The version a source record should become (dt computed here, from
    /// `created_at`, not by the code under test).
    pub fn of(r: &SourceRecord) -> Self {
        Self {
            id: r.id.clone(),
            updated_at_us: r.updated_at.timestamp_micros(),
            text_sha256: sha256(&r.text),
            dt: r.created_at.format("%Y-%m-%d").to_string(),
        }
    }

    /// A row read back from the lake.
    pub fn row(id: &str, updated_at_us: i64, text: Option<&str>, dt: &str) -> Self {
        Self {
            id: id.to_owned(),
            updated_at_us,
            text_sha256: text.map_or_else(|| "<no text>".to_owned(), sha256),
            dt: dt.to_owned(),
        }
    }

    /// Every row of an S3 lake.
    pub fn of_s3(rows: &[super::s3_lake::S3Row]) -> Vec<Self> {
        rows.iter()
            .map(|r| Self::row(&r.id, r.updated_at_us, Some(&r.text), &r.dt))
            .collect()
    }

    /// Every row of a local lake.
    pub fn of_local(rows: &[crate::lake::Row]) -> Vec<Self> {
        rows.iter()
            .map(|r| Self::row(&r.id, r.updated_at_us, r.text.as_deref(), &r.dt))
            .collect()
    }
}

/// The versions of these source records.
pub fn versions(records: &[SourceRecord]) -> Vec<Version> {
    records.iter().map(Version::of).collect()
}

/// Where every source version ended up.
#[derive(Debug, Clone)]
pub struct Accounting {
    pub source: usize,
    pub lake_rows: usize,
    pub lake_distinct: usize,
    /// Lake rows beyond the source's count of their version.
    pub duplicates: usize,
    /// Distinct versions dead-lettered.
    pub dead_letter: usize,
    /// Dead-letter entries repeating a version already dead-lettered
    /// (a message sent twice and refused twice): reported, not a failure.
    pub dead_letter_repeats: usize,
    pub dead_without_reason: usize,
    /// Dead-lettered versions the scenario did not expect to be refused.
    pub healthy_dead_lettered: Vec<Version>,
    pub in_both: usize,
    /// Source versions neither in the lake nor dead-lettered.
    pub missing: Vec<Version>,
    /// Versions in the lake or a dead-letter place the source does not
    /// hold (another text, timestamp or partition, or no such record).
    pub unexpected: Vec<Version>,
}

fn multiset<'a>(vs: impl IntoIterator<Item = &'a Version>) -> BTreeMap<&'a Version, usize> {
    let mut m = BTreeMap::new();
    for v in vs {
        *m.entry(v).or_insert(0) += 1;
    }
    m
}

impl Accounting {
    /// Compare `lake` (every row, repeats kept) and `dead` (version, reason)
    /// with `source`. `refusable` names the ids the scenario expects a
    /// dead-letter place to hold; any other dead-lettered record is healthy
    /// and fails the accounting.
    pub fn new(
        source: &[Version],
        lake: &[Version],
        dead: &[(Version, String)],
        refusable: &BTreeSet<String>,
    ) -> Self {
        let src = multiset(source);
        let lk = multiset(lake);
        let mut dead_reasons: BTreeMap<&Version, Vec<&str>> = BTreeMap::new();
        for (v, reason) in dead {
            dead_reasons.entry(v).or_default().push(reason);
        }
        let placed = |v: &Version| {
            lk.get(v).copied().unwrap_or(0) + usize::from(dead_reasons.contains_key(v))
        };
        let mut missing = Vec::new();
        for (v, n) in &src {
            missing.extend(std::iter::repeat_n(
                (*v).clone(),
                n.saturating_sub(placed(v)),
            ));
        }
        let unexpected: Vec<Version> = lk
            .keys()
            .chain(dead_reasons.keys())
            .filter(|v| !src.contains_key(*v))
            .map(|v| (*v).clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        Self {
            source: source.len(),
            lake_rows: lake.len(),
            lake_distinct: lk.len(),
            duplicates: lk
                .iter()
                .map(|(v, n)| n.saturating_sub(src.get(v).copied().unwrap_or(1).max(1)))
                .sum(),
            dead_letter: dead_reasons.len(),
            dead_letter_repeats: dead.len() - dead_reasons.len(),
            dead_without_reason: dead_reasons
                .values()
                .filter(|rs| rs.iter().all(|r| r.trim().is_empty()))
                .count(),
            healthy_dead_lettered: dead_reasons
                .keys()
                .filter(|v| !refusable.contains(&v.id))
                .map(|v| (*v).clone())
                .collect(),
            in_both: dead_reasons.keys().filter(|v| lk.contains_key(*v)).count(),
            missing,
            unexpected,
        }
    }

    pub fn ok(&self) -> bool {
        self.duplicates == 0
            && self.dead_without_reason == 0
            && self.healthy_dead_lettered.is_empty()
            && self.in_both == 0
            && self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.lake_rows + self.dead_letter == self.source
    }

    pub fn json(&self) -> Value {
        json!({
            "source": self.source,
            "lake": self.lake_distinct,
            "lake_rows": self.lake_rows,
            "dead_letter": self.dead_letter,
            "dead_letter_repeats": self.dead_letter_repeats,
            "duplicates": self.duplicates,
            "missing": self.missing.len(),
            "unexpected": self.unexpected.len(),
            "in_lake_and_dead_letter": self.in_both,
            "dead_letter_without_reason": self.dead_without_reason,
            "healthy_dead_lettered": self.healthy_dead_lettered.len(),
        })
    }

    pub fn assert(&self) {
        let first = |v: &[Version]| v.iter().take(10).cloned().collect::<Vec<_>>();
        assert!(
            self.ok(),
            "accounting failed: {:?}",
            Accounting {
                missing: first(&self.missing),
                unexpected: first(&self.unexpected),
                healthy_dead_lettered: first(&self.healthy_dead_lettered),
                ..self.clone()
            }
        );
    }
}

/// Append the scenario's figures to `$RELIABILITY_REPORT` (one JSON line),
/// then assert the accounting.
pub fn report(
    scenario: &str,
    backend: &str,
    acc: &Accounting,
    faults: Value,
    extra: Value,
    started: Instant,
) {
    static LOCK: Mutex<()> = Mutex::new(());
    if let Some(path) = std::env::var_os("RELIABILITY_REPORT") {
        let line = json!({
            "scenario": scenario,
            "backend": backend,
            "ok": acc.ok(),
            "records": acc.json(),
            "faults": faults,
            "extra": extra,
            "elapsed_ms": started.elapsed().as_millis() as u64,
        });
        let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("open RELIABILITY_REPORT");
        writeln!(f, "{line}").expect("write RELIABILITY_REPORT");
    }
    acc.assert();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(id: &str, t: i64, text: &str, dt: &str) -> Version {
        Version::row(id, t, Some(text), dt)
    }

    #[test]
    fn the_accounting_sees_what_an_id_set_misses() {
        let source = vec![v("a", 1, "x", "2026-01-01"), v("b", 1, "y", "2026-01-01")];
        let none = BTreeSet::new();
        assert!(Accounting::new(&source, &source, &[], &none).ok());
        // Same ids, one row twice and one with another text.
        let lake = vec![
            v("a", 1, "x", "2026-01-01"),
            v("a", 1, "x", "2026-01-01"),
            v("b", 1, "changed", "2026-01-01"),
        ];
        let acc = Accounting::new(&source, &lake, &[], &none);
        assert_eq!(
            (acc.duplicates, acc.missing.len(), acc.unexpected.len()),
            (1, 1, 1)
        );
        assert!(!acc.ok());
        // Wrong partition.
        let lake = vec![v("a", 1, "x", "2026-01-01"), v("b", 1, "y", "2026-01-02")];
        assert!(!Accounting::new(&source, &lake, &[], &none).ok());
        // Two versions of one id are two records.
        let two = vec![v("a", 1, "x", "2026-01-01"), v("a", 2, "x2", "2026-01-01")];
        assert!(Accounting::new(&two, &two, &[], &none).ok());
        assert!(!Accounting::new(&two, &two[..1], &[], &none).ok());
    }

    #[test]
    fn dead_letters_need_a_reason_and_a_refusable_record() {
        let source = vec![v("a", 1, "x", "2026-01-01"), v("b", 1, "y", "2026-01-01")];
        let lake = vec![source[0].clone()];
        let refusable = BTreeSet::from(["b".to_owned()]);
        let dead = vec![(source[1].clone(), "TEXT_SIZE_LIMIT_EXCEEDED".to_owned())];
        assert!(Accounting::new(&source, &lake, &dead, &refusable).ok());
        let unexplained = vec![(source[1].clone(), " ".to_owned())];
        assert!(!Accounting::new(&source, &lake, &unexplained, &refusable).ok());
        let healthy = Accounting::new(&source, &lake, &dead, &BTreeSet::new());
        assert_eq!(healthy.healthy_dead_lettered, [source[1].clone()]);
        assert!(!healthy.ok());
        let both = vec![(source[0].clone(), "refused".to_owned())];
        let acc = Accounting::new(&source, &source, &both, &BTreeSet::from(["a".to_owned()]));
        assert_eq!(acc.in_both, 1);
        assert!(!acc.ok());
    }
}
