//! Exactly-once accounting: where every version of a source record ended up.
//!
//! What is compared is the multiset of record *versions* — (id,
//! `updated_at`, SHA-256 of the text, `dt`) — read back from the lake,
//! against the source's: a record in the lake twice, in the wrong
//! partition, with another text or another `updated_at` is caught, which an
//! id set would miss. A version in a dead-letter place needs a reason.
//!
//! [`Accounting`] is the strict form the reliability scenarios end with
//! (the source is every version ever sent, and only the records the
//! scenario expects to be refused may be dead-lettered). [`Reconciliation`]
//! is the operator's form behind `etl reconcile`: the source is what the
//! table or input file holds *now*, so lake versions of an id whose current
//! version is another one are superseded rather than wrong, and any record
//! may sit in a dead-letter place with its reason.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::SourceRecord;

/// One version of a record, as the lake should hold it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Version {
    /// The record id.
    pub id: String,
    /// `updated_at`, µs since the epoch (the Parquet column's unit).
    pub updated_at_us: i64,
    /// Hex SHA-256 of the text ([`NO_TEXT`] when the lake has none).
    pub text_sha256: String,
    /// The Hive partition: the UTC date of `created_at`.
    pub dt: String,
}

/// `text_sha256` of a row from a lake written without its `text` column.
pub const NO_TEXT: &str = "<no text>";

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl Version {
    /// The version a source record should become (`dt` from `created_at`).
    pub fn of(r: &SourceRecord) -> Self {
        Self {
            id: r.id.clone(),
            updated_at_us: r.updated_at.timestamp_micros(),
            text_sha256: sha256(&r.text),
            dt: r.created_at.format("%Y-%m-%d").to_string(),
        }
    }

    /// A row read back from the lake (`text` is `None` for a lake without it).
    pub fn row(id: &str, updated_at_us: i64, text: Option<&str>, dt: &str) -> Self {
        Self {
            id: id.to_owned(),
            updated_at_us,
            text_sha256: text.map_or_else(|| NO_TEXT.to_owned(), sha256),
            dt: dt.to_owned(),
        }
    }

    /// The same version with its text forgotten: how it is compared with a
    /// lake that holds no `text` column.
    pub fn without_text(&self) -> Self {
        Self {
            text_sha256: NO_TEXT.to_owned(),
            ..self.clone()
        }
    }
}

/// The versions of these source records.
pub fn versions(records: &[SourceRecord]) -> Vec<Version> {
    records.iter().map(Version::of).collect()
}

fn multiset<'a>(vs: impl IntoIterator<Item = &'a Version>) -> BTreeMap<&'a Version, usize> {
    let mut m = BTreeMap::new();
    for v in vs {
        *m.entry(v).or_insert(0) += 1;
    }
    m
}

/// Where every source version ended up (the reliability scenarios' form).
#[derive(Debug, Clone)]
pub struct Accounting {
    /// Source versions.
    pub source: usize,
    /// Lake rows (repeats counted).
    pub lake_rows: usize,
    /// Distinct versions in the lake.
    pub lake_distinct: usize,
    /// Lake rows beyond the source's count of their version.
    pub duplicates: usize,
    /// Distinct versions dead-lettered.
    pub dead_letter: usize,
    /// Dead-letter entries repeating a version already dead-lettered
    /// (a message sent twice and refused twice): reported, not a failure.
    pub dead_letter_repeats: usize,
    /// Dead-lettered versions with no reason.
    pub dead_without_reason: usize,
    /// Dead-lettered versions the scenario did not expect to be refused.
    pub healthy_dead_lettered: Vec<Version>,
    /// Versions both in the lake and in a dead-letter place.
    pub in_both: usize,
    /// Source versions neither in the lake nor dead-lettered.
    pub missing: Vec<Version>,
    /// Versions in the lake or a dead-letter place the source does not
    /// hold (another text, timestamp or partition, or no such record).
    pub unexpected: Vec<Version>,
}

impl Accounting {
    /// Compare `lake` (every row, repeats kept) and `dead` (version, reason)
    /// with `source`. `refusable` names the ids expected in a dead-letter
    /// place; any other dead-lettered record fails the accounting.
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

    /// Every version exactly once in the lake or dead-lettered with a reason.
    pub fn ok(&self) -> bool {
        self.duplicates == 0
            && self.dead_without_reason == 0
            && self.healthy_dead_lettered.is_empty()
            && self.in_both == 0
            && self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.lake_rows + self.dead_letter == self.source
    }

    /// The counts as JSON (the reliability report's `records`).
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
}

/// A version in the lake more often than once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Duplicate {
    /// The version.
    #[serde(flatten)]
    pub version: Version,
    /// Rows holding it.
    pub rows: usize,
}

/// A source version in a dead-letter place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLettered {
    /// The version.
    #[serde(flatten)]
    pub version: Version,
    /// Why (every reason recorded for it, in order).
    pub reasons: Vec<String>,
}

/// The source as it is now against the lake: `etl reconcile`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Reconciliation {
    /// Distinct source versions (exact duplicates in the source count once:
    /// the pipeline sends them once).
    pub source_versions: usize,
    /// Lake rows read.
    pub lake_rows: usize,
    /// Source versions in the lake exactly once.
    pub in_lake: usize,
    /// Source versions not in the lake but in a dead-letter place, with a reason.
    pub dead_lettered: Vec<DeadLettered>,
    /// Source versions neither in the lake nor dead-lettered.
    pub missing: Vec<Version>,
    /// Versions in the lake more than once.
    pub duplicated: Vec<Duplicate>,
    /// Lake versions of ids whose current source version is another one
    /// (older versions, kept on purpose: `sentiment_latest` picks the newest).
    pub superseded: usize,
    /// Lake versions of ids the source no longer holds.
    pub not_in_source: usize,
}

impl Reconciliation {
    /// Compare the source's current versions with every lake row and the
    /// dead-letter places' (version, reason) entries. When `lake_has_text`
    /// is false the texts are not compared (the lake was written with
    /// `--no-text`).
    pub fn new(
        source: &[Version],
        lake: &[Version],
        dead: &[(Version, String)],
        lake_has_text: bool,
    ) -> Self {
        let norm = |v: &Version| {
            if lake_has_text {
                v.clone()
            } else {
                v.without_text()
            }
        };
        let src: BTreeSet<Version> = source.iter().map(norm).collect();
        let ids: BTreeSet<&str> = src.iter().map(|v| v.id.as_str()).collect();
        let lake_n: Vec<Version> = lake.iter().map(norm).collect();
        let lk = multiset(&lake_n);
        let mut reasons: BTreeMap<Version, Vec<String>> = BTreeMap::new();
        for (v, why) in dead {
            reasons.entry(norm(v)).or_default().push(why.clone());
        }
        let mut out = Reconciliation {
            source_versions: src.len(),
            lake_rows: lake.len(),
            ..Default::default()
        };
        for v in &src {
            match lk.get(v).copied().unwrap_or(0) {
                0 => match reasons.get(v) {
                    Some(rs) if rs.iter().any(|r| !r.trim().is_empty()) => {
                        out.dead_lettered.push(DeadLettered {
                            version: v.clone(),
                            reasons: rs.clone(),
                        })
                    }
                    _ => out.missing.push(v.clone()),
                },
                1 => out.in_lake += 1,
                _ => {}
            }
        }
        for (v, n) in &lk {
            if *n > 1 {
                out.duplicated.push(Duplicate {
                    version: (*v).clone(),
                    rows: *n,
                });
            }
            if !src.contains(*v) {
                if ids.contains(v.id.as_str()) {
                    out.superseded += 1;
                } else {
                    out.not_in_source += 1;
                }
            }
        }
        out
    }

    /// No version missing and none duplicated.
    pub fn ok(&self) -> bool {
        self.missing.is_empty() && self.duplicated.is_empty()
    }
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

    #[test]
    fn reconciliation_separates_missing_duplicated_superseded_and_dead_lettered() {
        let source = vec![
            v("a", 2, "new a", "2026-01-01"),
            v("b", 1, "b", "2026-01-01"),
            v("c", 1, "c", "2026-01-02"),
            v("d", 1, "d", "2026-01-02"),
            // An exact duplicate line: sent once, expected once.
            v("d", 1, "d", "2026-01-02"),
        ];
        let lake = vec![
            v("a", 1, "old a", "2026-01-01"),
            v("a", 2, "new a", "2026-01-01"),
            v("b", 1, "b", "2026-01-01"),
            v("b", 1, "b", "2026-01-01"),
            v("gone", 1, "deleted since", "2026-01-01"),
            v("d", 1, "d", "2026-01-02"),
        ];
        let dead = vec![(
            v("c", 1, "c", "2026-01-02"),
            "refused: TEXT_SIZE".to_owned(),
        )];
        let r = Reconciliation::new(&source, &lake, &dead, true);
        assert_eq!(r.source_versions, 4);
        assert_eq!(r.in_lake, 2, "a's new version and d");
        assert_eq!(r.duplicated.len(), 1);
        assert_eq!(
            (r.duplicated[0].version.id.as_str(), r.duplicated[0].rows),
            ("b", 2)
        );
        assert_eq!(r.dead_lettered.len(), 1);
        assert_eq!(r.dead_lettered[0].reasons, ["refused: TEXT_SIZE"]);
        assert!(r.missing.is_empty());
        assert_eq!((r.superseded, r.not_in_source), (1, 1));
        assert!(!r.ok(), "a duplicate fails the reconciliation");

        // Without the dead letter, c is missing; a dead letter without a reason does not count.
        let blank = vec![(v("c", 1, "c", "2026-01-02"), "  ".to_owned())];
        let r = Reconciliation::new(&source, &lake[..3], &blank, true);
        let missing: Vec<&str> = r.missing.iter().map(|v| v.id.as_str()).collect();
        assert_eq!(missing, ["c", "d"]);

        // Another text under the same id and timestamp is not the source's version.
        let r = Reconciliation::new(
            &source[1..2],
            &[v("b", 1, "other", "2026-01-01")],
            &[],
            true,
        );
        assert_eq!((r.missing.len(), r.superseded), (1, 1));
        // ... unless the lake has no text to compare.
        let r = Reconciliation::new(
            &source[1..2],
            &[Version::row("b", 1, None, "2026-01-01")],
            &[],
            false,
        );
        assert!(r.ok() && r.in_lake == 1, "{r:?}");
    }
}
