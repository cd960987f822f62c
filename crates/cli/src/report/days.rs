//! The rows as the chart sees them: one [`Day`] per calendar day from the
//! first row's to the last row's, with the labels of that day summed and
//! stacked and the record-weighted average compound.
//!
//! It is apart from [`super::svg`] because it is arithmetic, not drawing:
//! gap days, stacking order and weighting are decided here, once, and the
//! chart only turns the result into coordinates.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use super::style::rank;
use super::DailyRow;

/// One calendar-day slot of the chart.
pub(super) struct Day {
    /// The day.
    pub(super) dt: NaiveDate,
    /// (label, records) in stacking order, bottom first.
    pub(super) segs: Vec<(String, u64)>,
    /// All records of the day.
    pub(super) total: u64,
    /// Record-weighted average compound over the rows that have one.
    pub(super) compound: Option<f64>,
}

/// One label's running sums on one day.
#[derive(Default)]
struct Acc {
    records: u64,
    wsum: f64,
    wrec: u64,
}

/// Every calendar day from the first to the last `dt`, rows of the same day
/// and label summed.
pub(super) fn days(rows: &[DailyRow]) -> Vec<Day> {
    let mut by_day: BTreeMap<NaiveDate, BTreeMap<String, Acc>> = BTreeMap::new();
    for r in rows {
        let a = by_day
            .entry(r.dt)
            .or_default()
            .entry(r.sentiment.clone())
            .or_default();
        a.records = a.records.saturating_add(r.records);
        if let Some(v) = r.avg_compound.filter(|v| v.is_finite()) {
            a.wsum += v * r.records as f64;
            a.wrec = a.wrec.saturating_add(r.records);
        }
    }
    let (Some(&first), Some(&last)) = (by_day.keys().next(), by_day.keys().next_back()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut d = first;
    loop {
        let (mut segs, mut wsum, mut wrec) = (Vec::new(), 0.0, 0u64);
        for (label, a) in by_day.get(&d).into_iter().flatten() {
            segs.push((label.clone(), a.records));
            wsum += a.wsum;
            wrec = wrec.saturating_add(a.wrec);
        }
        segs.sort_by_key(|s| rank(&s.0)); // stable: others stay alphabetical
        let total = segs.iter().fold(0u64, |t, s| t.saturating_add(s.1));
        let compound = if wrec > 0 {
            Some(wsum / wrec as f64)
        } else {
            None
        };
        out.push(Day {
            dt: d,
            segs,
            total,
            compound,
        });
        match d.succ_opt() {
            Some(next) if d < last => d = next,
            _ => break,
        }
    }
    out
}
