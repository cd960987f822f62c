//! `etl report`: the `daily_sentiment` view as a self-contained HTML page.
//!
//! The page holds one inline SVG chart (stacked bars of records per day and
//! label, and below them the record-weighted average compound per day) and a
//! small summary table. It fetches nothing: no scripts, fonts, stylesheets or
//! images, and a Content-Security-Policy that forbids them all.
//!
//! Every data element of the SVG carries `class` and `data-*` attributes and
//! exact geometry (see [`render_svg`]) so tests can check the picture against
//! the numbers by parsing it. All text is XML-escaped.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use chrono::NaiveDate;
use serde_json::Value;

/// One row of the daily_sentiment view.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DailyRow {
    /// The day the texts were created on.
    pub dt: NaiveDate,
    /// The label: `POSITIVE`, `NEGATIVE`, `NEUTRAL`, `MIXED` (others are drawn in a fallback colour).
    pub sentiment: String,
    /// How many records of that day carry that label.
    pub records: u64,
    /// Average VADER compound of those records; `None` for Comprehend rows.
    pub avg_compound: Option<f64>,
}

/// What the report is about (printed in its header).
pub struct ReportMeta<'a> {
    /// Headline, e.g. "Sentiment, lake ./lake".
    pub title: &'a str,
    /// Where the numbers come from, e.g. "local lake /abs/path".
    pub source: &'a str,
    /// When the report was made.
    pub generated_at: chrono::DateTime<chrono::Utc>,
}

// Layout of the 960x540 viewBox: bar panel on top, compound panel below.
const W: f64 = 960.0;
const H: f64 = 540.0;
const PX: f64 = 72.0;
const PW: f64 = 852.0;
const PY: f64 = 62.0;
const PH: f64 = 280.0;
const CY: f64 = 378.0;
const CH: f64 = 110.0;
const PR: f64 = PX + PW; // right edge of both panels
const PB: f64 = PY + PH; // bottom of the bar panel
const CB: f64 = CY + CH; // bottom of the compound panel
const TX: f64 = PX - 8.0; // right edge of the y tick labels
const FONT: &str =
    "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif";

/// Stacking position: NEGATIVE at the bottom, POSITIVE on top, others above.
fn rank(label: &str) -> u8 {
    match label {
        "NEGATIVE" => 0,
        "MIXED" => 1,
        "NEUTRAL" => 2,
        "POSITIVE" => 3,
        _ => 4,
    }
}

fn colour(label: &str) -> &'static str {
    match label {
        "POSITIVE" => "#2e9e5b",
        "NEUTRAL" => "#9aa3ad",
        "MIXED" => "#e0a526",
        "NEGATIVE" => "#d64545",
        _ => "#6b5bd2",
    }
}

/// XML/HTML escaping for text and attribute values; control characters that
/// XML 1.0 forbids become U+FFFD.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// An integer with ',' thousands separators: 12000 → "12,000".
fn fmt_int(n: impl Into<u128>) -> String {
    let digits = n.into().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Y ticks for a maximum of `max`: 0, step, 2·step, … with step 1/2/5 × 10^k,
/// the smallest step giving at most 6 ticks; at least 4 ticks, top ≥ max.
fn nice_ticks(max: u128) -> Vec<u128> {
    let mut pow: u128 = 1;
    loop {
        for m in [1u128, 2, 5] {
            let step = m * pow;
            let n = max.div_ceil(step);
            if n <= 5 {
                return (0..=n.max(3)).map(|i| i * step).collect();
            }
        }
        pow *= 10;
    }
}

/// One calendar-day slot of the chart.
struct Day {
    dt: NaiveDate,
    /// (label, records) in stacking order, bottom first.
    segs: Vec<(String, u64)>,
    total: u64,
    /// Record-weighted average compound over the rows that have one.
    compound: Option<f64>,
}

#[derive(Default)]
struct Acc {
    records: u64,
    wsum: f64,
    wrec: u64,
}

/// Every calendar day from the first to the last `dt`, rows of the same day
/// and label summed.
fn days(rows: &[DailyRow]) -> Vec<Day> {
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

/// Pixel y of a compound value in the compound panel.
fn compound_y(v: f64) -> f64 {
    CY + (1.0 - v) / 2.0 * CH
}

/// Just the `<svg>` element (used by [`render_html`], and by tests).
///
/// Structure (coordinates printed with 2 decimals):
/// - `rect.plot-area` (bar panel) and `rect.compound-area` (compound panel);
/// - `g.ytick[data-value]` with a grid `line` (y1 = y2) and a `text` at `y`;
/// - `g.day[data-dt][data-slot][data-total]` per calendar day, holding
///   `rect.bar[data-dt][data-sentiment][data-records]` segments (each with a
///   `<title>` tooltip), or a `rect.empty-slot` on a day without rows.
///   Bar height = records × plot height / top tick, stacked from the bottom;
/// - `g.ctick[data-value]` for -1, -0.5, 0, 0.5, 1 (the 0 line is
///   `line.zero-line`, dashed); `polyline.compound-line` per run of
///   consecutive days with a value; `circle.compound[data-dt][data-value]` at
///   cy = area.y + (1 - value) / 2 × area.height;
/// - `g.xtick[data-dt]` date labels, `g.legend` with `g.legend-item`s.
///
/// Without rows it is a valid SVG holding only a centred `text.no-data`.
pub fn render_svg(rows: &[DailyRow]) -> String {
    let days = days(rows);
    let mut s = String::with_capacity(4096 + days.len() * 700);
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W:.0} {H:.0}" width="100%" preserveAspectRatio="xMidYMid meet" role="img" font-family="{FONT}" font-size="11" style="display:block;height:auto"><title>Daily sentiment: records per day by label, and the average compound</title><rect class="background" x="0" y="0" width="{W:.0}" height="{H:.0}" fill="#ffffff"/><text class="chart-title" x="{PX:.2}" y="30" font-size="17" font-weight="600" fill="#111827">Daily sentiment</text>"##
    );
    if days.is_empty() {
        let (x, y) = (W / 2.0, H / 2.0);
        let _ = write!(
            s,
            r##"<text class="no-data" x="{x:.2}" y="{y:.2}" text-anchor="middle" dominant-baseline="middle" font-size="22" fill="#9ca3af">No data</text></svg>"##
        );
        return s;
    }

    // Legend, right-aligned on the title row, top-to-bottom like the stack.
    let others: BTreeSet<&str> = rows.iter().map(|r| r.sentiment.as_str()).collect();
    let others = others.into_iter().filter(|l| rank(l) == 4);
    let labels: Vec<&str> = ["POSITIVE", "NEUTRAL", "MIXED", "NEGATIVE"]
        .into_iter()
        .chain(others)
        .collect();
    let item_w = |l: &str| 33.0 + l.chars().count() as f64 * 7.0;
    let legend_w = labels.iter().map(|&l| item_w(l)).sum::<f64>() + 27.0 + 12.0 * 6.2;
    let mut x = (PR - legend_w).max(230.0);
    s.push_str(r#"<g class="legend">"#);
    for &l in &labels {
        let (e, c, tx) = (esc(l), colour(l), x + 17.0);
        let _ = write!(
            s,
            r##"<g class="legend-item" data-sentiment="{e}"><rect x="{x:.2}" y="18" width="12" height="12" rx="2" fill="{c}"/><text x="{tx:.2}" y="28" fill="#374151">{e}</text></g>"##
        );
        x += item_w(l);
    }
    let (x2, xc, tx) = (x + 22.0, x + 11.0, x + 27.0);
    let _ = write!(
        s,
        r##"<g class="legend-item" data-series="compound"><line x1="{x:.2}" x2="{x2:.2}" y1="24" y2="24" stroke="#374151" stroke-width="1.6"/><circle cx="{xc:.2}" cy="24" r="2.5" fill="#374151"/><text x="{tx:.2}" y="28" fill="#374151">avg compound</text></g></g>"##
    );

    // Bar panel: area, caption, grid with y ticks.
    let ticks = nice_ticks(u128::from(days.iter().map(|d| d.total).max().unwrap_or(0)));
    let scale = PH / ticks.last().copied().unwrap_or(1) as f64;
    let cap_y = PY - 12.0;
    let _ = write!(
        s,
        r##"<rect class="plot-area" x="{PX:.2}" y="{PY:.2}" width="{PW:.2}" height="{PH:.2}" fill="none"/><text class="caption" x="{PX:.2}" y="{cap_y:.2}" fill="#6b7280">Records per day</text>"##
    );
    for &t in &ticks {
        let (y, label) = (PB - t as f64 * scale, fmt_int(t));
        let stroke = if t == 0 { "#9ca3af" } else { "#e5e7eb" };
        let _ = write!(
            s,
            r##"<g class="ytick" data-value="{t}"><line x1="{PX:.2}" x2="{PR:.2}" y1="{y:.2}" y2="{y:.2}" stroke="{stroke}" stroke-width="1"/><text x="{TX:.2}" y="{y:.2}" dy="0.35em" text-anchor="end" fill="#6b7280">{label}</text></g>"##
        );
    }

    // One group per calendar day; segments stacked from the bottom.
    let n = days.len();
    let slot = PW / n as f64;
    let bw = (slot * 0.72).min(56.0);
    for (i, d) in days.iter().enumerate() {
        let (dt, total) = (d.dt, d.total);
        let x = PX + i as f64 * slot + (slot - bw) / 2.0;
        let _ = write!(
            s,
            r#"<g class="day" data-dt="{dt}" data-slot="{i}" data-total="{total}">"#
        );
        if d.segs.is_empty() {
            let _ = write!(
                s,
                r##"<rect class="empty-slot" x="{x:.2}" y="{PY:.2}" width="{bw:.2}" height="{PH:.2}" fill="#eef0f3" fill-opacity="0.5"><title>{dt}: no records</title></rect>"##
            );
        }
        let mut cum = 0u64;
        for (label, rec) in &d.segs {
            let h = *rec as f64 * scale;
            let y = PB - cum as f64 * scale - h;
            cum = cum.saturating_add(*rec);
            let (l, c, count) = (esc(label), colour(label), fmt_int(*rec));
            let unit = if *rec == 1 { "record" } else { "records" };
            let _ = write!(
                s,
                r#"<rect class="bar" data-dt="{dt}" data-sentiment="{l}" data-records="{rec}" x="{x:.2}" y="{y:.2}" width="{bw:.2}" height="{h:.2}" fill="{c}"><title>{dt} {l}: {count} {unit}</title></rect>"#
            );
        }
        s.push_str("</g>");
    }

    // Compound panel: area, caption, fixed -1..1 grid with a dashed zero line.
    let cap_y = CY - 10.0;
    let _ = write!(
        s,
        r##"<rect class="compound-area" x="{PX:.2}" y="{CY:.2}" width="{PW:.2}" height="{CH:.2}" fill="#fafbfc"/><text class="caption" x="{PX:.2}" y="{cap_y:.2}" fill="#6b7280">Average compound, weighted by records</text>"##
    );
    for (v, text) in [
        (1.0, "+1"),
        (0.5, "+0.5"),
        (0.0, "0"),
        (-0.5, "-0.5"),
        (-1.0, "-1"),
    ] {
        let y = compound_y(v);
        let line = match text {
            "0" => r##"class="zero-line" stroke="#6b7280" stroke-dasharray="4 3""##,
            _ => r##"stroke="#e5e7eb""##,
        };
        let _ = write!(
            s,
            r##"<g class="ctick" data-value="{v}"><line {line} x1="{PX:.2}" x2="{PR:.2}" y1="{y:.2}" y2="{y:.2}" stroke-width="1"/><text x="{TX:.2}" y="{y:.2}" dy="0.35em" text-anchor="end" fill="#6b7280">{text}</text></g>"##
        );
    }
    let mid = |i: usize| PX + (i as f64 + 0.5) * slot;
    let pts: Vec<Option<(f64, f64, f64)>> = days
        .iter()
        .enumerate()
        .map(|(i, d)| {
            d.compound
                .map(|v| (mid(i), compound_y(v.clamp(-1.0, 1.0)), v))
        })
        .collect();
    for run in pts.split(|p| p.is_none()).filter(|run| run.len() >= 2) {
        s.push_str(r##"<polyline class="compound-line" fill="none" stroke="#374151" stroke-width="1.6" stroke-linejoin="round" points=""##);
        for (j, (px, py, _)) in run.iter().flatten().enumerate() {
            let sep = if j == 0 { "" } else { " " };
            let _ = write!(s, "{sep}{px:.2},{py:.2}");
        }
        s.push_str(r#""/>"#);
    }
    if pts.iter().all(Option::is_none) {
        let (x, y) = (PX + PW / 2.0, CY + CH / 2.0);
        let _ = write!(
            s,
            r##"<text class="no-compound" x="{x:.2}" y="{y:.2}" text-anchor="middle" dominant-baseline="middle" fill="#9ca3af">No compound scores (Comprehend rows carry none)</text>"##
        );
    }
    let r = (slot * 0.3).clamp(1.5, 3.5);
    for (d, &(cx, cy, v)) in days
        .iter()
        .zip(&pts)
        .filter_map(|(d, p)| Some((d, p.as_ref()?)))
    {
        let dt = d.dt;
        let tone = if v >= 0.05 {
            "POSITIVE"
        } else if v <= -0.05 {
            "NEGATIVE"
        } else {
            "NEUTRAL"
        };
        let fill = colour(tone);
        let _ = write!(
            s,
            r##"<circle class="compound" data-dt="{dt}" data-value="{v:.4}" cx="{cx:.2}" cy="{cy:.2}" r="{r:.2}" fill="{fill}" stroke="#ffffff" stroke-width="1"><title>{dt} average compound {v:+.3}</title></circle>"##
        );
    }

    // X labels under the compound panel, thinned to ≤ 12 that don't overlap.
    let step = n.div_ceil(12).max((68.0 / slot).ceil() as usize).max(1);
    let (y1, y2, ty) = (CB, CB + 4.0, CB + 17.0);
    for (i, d) in days.iter().enumerate().step_by(step) {
        let (dt, cx) = (d.dt, mid(i));
        let _ = write!(
            s,
            r##"<g class="xtick" data-dt="{dt}"><line x1="{cx:.2}" x2="{cx:.2}" y1="{y1:.2}" y2="{y2:.2}" stroke="#9ca3af"/><text x="{cx:.2}" y="{ty:.2}" text-anchor="middle" fill="#6b7280">{dt}</text></g>"##
        );
    }
    s.push_str("</svg>");
    s
}

const CSS: &str = concat!(
    r#"*{box-sizing:border-box}"#,
    r#"body{margin:0;padding:24px;background:#f3f4f6;color:#111827;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}"#,
    r#".card{max-width:1040px;margin:0 auto;background:#fff;border-radius:12px;box-shadow:0 1px 3px rgba(0,0,0,.08),0 8px 24px rgba(0,0,0,.05);padding:20px 24px 22px}"#,
    r#"header h1{margin:0;font-size:20px;font-weight:650}"#,
    r#"header p{margin:2px 0 0;color:#6b7280;font-size:13px}figure{margin:10px 0 0}"#,
    r#"figure svg{display:block;width:100%;height:auto}"#,
    r#".summary{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1.15fr);gap:24px;margin-top:14px;align-items:start}"#,
    r#".stats{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));gap:8px}"#,
    r#".stat{background:#f9fafb;border-radius:8px;padding:7px 12px}"#,
    r#".stat .k{display:block;color:#6b7280;font-size:12px}"#,
    r#".stat .v{display:block;font-size:16px;font-weight:600;font-variant-numeric:tabular-nums;white-space:nowrap}"#,
    r#"table{width:100%;border-collapse:collapse;font-variant-numeric:tabular-nums}"#,
    r#"th,td{padding:4px 8px;border-bottom:1px solid #eef0f3;text-align:left}"#,
    r#"th{color:#6b7280;font-weight:500;font-size:12px}.num{text-align:right}"#,
    r#"tfoot td{font-weight:600;border-bottom:0}"#,
    r#".sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:8px}"#,
    r#".share{display:inline-flex;align-items:center;gap:8px}"#,
    r#".meter{display:inline-block;width:80px;height:6px;border-radius:3px;background:#eef0f3;overflow:hidden}"#,
    r#".meter i{display:block;height:100%}@media (max-width:760px){.summary{grid-template-columns:1fr}}"#,
);

fn stat(h: &mut String, key: &str, value: &str) {
    let _ = write!(
        h,
        r#"<div class="stat"><span class="k">{key}</span><span class="v">{value}</span></div>"#
    );
}

/// The whole HTML document: header (title, source, generation time), the
/// chart of [`render_svg`], and a summary (records and share per label,
/// total, days covered, first and last day, weighted average compound).
pub fn render_html(meta: &ReportMeta<'_>, rows: &[DailyRow]) -> String {
    let svg = render_svg(rows);
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    let mut dates = BTreeSet::new();
    let (mut wsum, mut wrec, mut total) = (0.0f64, 0u64, 0u64);
    for r in rows {
        let t = totals.entry(r.sentiment.as_str()).or_default();
        *t = t.saturating_add(r.records);
        total = total.saturating_add(r.records);
        dates.insert(r.dt);
        if let Some(v) = r.avg_compound.filter(|v| v.is_finite()) {
            wsum += v * r.records as f64;
            wrec = wrec.saturating_add(r.records);
        }
    }
    let mut labels: Vec<(&str, u64)> = totals.into_iter().collect();
    labels.sort_by_key(|(l, _)| match rank(l) {
        4 => 4,
        r => 3 - r,
    });

    let mut h = String::with_capacity(svg.len() + 8192);
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(
        h,
        "<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main class=\"card\">",
        esc(meta.title)
    );
    let _ = writeln!(
        h,
        "<header><h1>{}</h1><p>{} · generated {}</p></header>\n<figure>{svg}</figure>",
        esc(meta.title),
        esc(meta.source),
        meta.generated_at.format("%Y-%m-%d %H:%M:%S UTC")
    );

    h.push_str("<section class=\"summary\">\n<div class=\"stats\">");
    stat(&mut h, "Records", &fmt_int(total));
    match (dates.first(), dates.last()) {
        (Some(first), Some(last)) => {
            let span = (*last - *first).num_days() + 1;
            stat(
                &mut h,
                "Days covered",
                &format!("{} of {span}", dates.len()),
            );
            stat(&mut h, "Labels", &labels.len().to_string());
            stat(&mut h, "First day", &first.to_string());
            stat(&mut h, "Last day", &last.to_string());
        }
        _ => stat(&mut h, "Days covered", "0"),
    }
    let avg = if wrec > 0 {
        format!("{:+.3}", wsum / wrec as f64)
    } else {
        "n/a".to_string()
    };
    stat(&mut h, "Avg compound", &avg);
    h.push_str("</div>\n<table>\n<thead><tr><th>Sentiment</th><th class=\"num\">Records</th><th class=\"num\">Share</th></tr></thead>\n<tbody>\n");
    if labels.is_empty() {
        h.push_str("<tr><td colspan=\"3\">No data</td></tr>\n");
    }
    for (label, n) in &labels {
        let pct = if total > 0 {
            *n as f64 * 100.0 / total as f64
        } else {
            0.0
        };
        let c = colour(label);
        let _ = writeln!(
            h,
            r#"<tr><td><span class="sw" style="background:{c}"></span>{}</td><td class="num">{}</td><td class="num"><span class="share"><span class="meter"><i style="width:{pct:.1}%;background:{c}"></i></span>{pct:.1}%</span></td></tr>"#,
            esc(label),
            fmt_int(*n)
        );
    }
    let _ = writeln!(
        h,
        "</tbody>\n<tfoot><tr><td>Total</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr></tfoot>\n</table>\n</section>\n</main>\n</body>\n</html>",
        fmt_int(total),
        if total > 0 { "100%" } else { "" }
    );
    h
}

/// A date as `YYYY-MM-DD`, also accepting a trailing time (`2026-11-01 00:00:00`).
fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().or_else(|| {
        let head = s
            .get(..10)
            .filter(|_| matches!(s.as_bytes().get(10), Some(b' ' | b'T')))?;
        NaiveDate::parse_from_str(head, "%Y-%m-%d").ok()
    })
}

/// A non-negative integer given as a JSON number or as text ("12").
fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            let f = n.as_f64()?;
            (f.fract() == 0.0 && (0.0..1.8e19).contains(&f)).then_some(f as u64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A finite number given as a JSON number or as text ("0.31").
fn as_f64(v: &Value) -> Option<f64> {
    let f = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    f.filter(|f| f.is_finite())
}

/// Parse rows from JSON objects, one per line, as the project's JSON renderer
/// writes them: `{"dt":"2026-11-01","sentiment":"POSITIVE","records":12,"avg_compound":0.31}`.
///
/// Numbers may also arrive as strings (Athena returns every value as text);
/// `avg_compound` may be null, missing, or an empty string. Blank lines are
/// skipped. Errors name the line number (1-based) and the field.
pub fn parse_rows(json_lines: &str) -> Result<Vec<DailyRow>, String> {
    let mut rows = Vec::new();
    for (i, line) in json_lines.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let v: Value =
            serde_json::from_str(line).map_err(|e| format!("line {n}: not valid JSON: {e}"))?;
        let obj = v
            .as_object()
            .ok_or_else(|| format!("line {n}: expected a JSON object"))?;
        let field = |name: &str| obj.get(name).filter(|v| !v.is_null());
        let bad = |name: &str, what: &str, got: Option<&Value>| match got {
            Some(g) => format!("line {n}: field `{name}`: expected {what}, got {g}"),
            None => format!("line {n}: field `{name}`: missing (expected {what})"),
        };
        let dt_v = field("dt");
        let dt = dt_v
            .and_then(Value::as_str)
            .and_then(parse_date)
            .ok_or_else(|| bad("dt", "a date YYYY-MM-DD", dt_v))?;
        let s_v = field("sentiment");
        let sentiment = s_v
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad("sentiment", "a non-empty string", s_v))?
            .to_string();
        let r_v = field("records");
        let records = r_v
            .and_then(as_u64)
            .ok_or_else(|| bad("records", "a non-negative integer", r_v))?;
        let avg_compound = match field("avg_compound") {
            None => None,
            Some(Value::String(s))
                if s.trim().is_empty() || s.trim().eq_ignore_ascii_case("null") =>
            {
                None
            }
            Some(v) => {
                Some(as_f64(v).ok_or_else(|| bad("avg_compound", "a number or null", Some(v)))?)
            }
        };
        rows.push(DailyRow {
            dt,
            sentiment,
            records,
            avg_compound,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(dt: &str, sentiment: &str, records: u64, avg: Option<f64>) -> DailyRow {
        let (dt, sentiment) = (dt.parse().unwrap(), sentiment.to_string());
        DailyRow {
            dt,
            sentiment,
            records,
            avg_compound: avg,
        }
    }

    /// The opening tags (up to '>') starting with `open`.
    fn tags<'a>(svg: &'a str, open: &str) -> Vec<&'a str> {
        let tag = |(i, _): (usize, &str)| &svg[i..i + svg[i..].find('>').unwrap()];
        svg.match_indices(open).map(tag).collect()
    }

    fn attr<'a>(tag: &'a str, name: &str) -> &'a str {
        let key = format!(" {name}=\"");
        let start = tag
            .find(&key)
            .unwrap_or_else(|| panic!("no {name} in {tag}"))
            + key.len();
        &tag[start..start + tag[start..].find('"').unwrap()]
    }

    fn num(tag: &str, name: &str) -> f64 {
        attr(tag, name).parse().unwrap()
    }

    fn meta(title: &str) -> ReportMeta<'_> {
        ReportMeta {
            title,
            source: "a & b",
            generated_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn parses_numbers_as_strings_and_nulls() {
        let input = r#"{"dt":"2026-11-01","sentiment":"POSITIVE","records":"12","avg_compound":"0.31"}

{"dt":"2026-11-02","sentiment":"NEGATIVE","records":3,"avg_compound":null}
{"dt":"2026-11-02","sentiment":"MIXED","records":4}
{"dt":"2026-11-03","sentiment":"NEUTRAL","records":"5","avg_compound":-0.2}"#;
        let expected = [
            row("2026-11-01", "POSITIVE", 12, Some(0.31)),
            row("2026-11-02", "NEGATIVE", 3, None),
            row("2026-11-02", "MIXED", 4, None),
            row("2026-11-03", "NEUTRAL", 5, Some(-0.2)),
        ];
        assert_eq!(parse_rows(input).unwrap(), expected);
    }

    #[test]
    fn bad_lines_name_line_and_field() {
        let ok = r#"{"dt":"2026-11-01","sentiment":"POSITIVE","records":1}"#;
        let cases = [
            (
                r#"{"dt":"2026-11-01","sentiment":"X","records":"abc"}"#,
                "`records`",
            ),
            (r#"{"dt":"11/01/2026","sentiment":"X","records":1}"#, "`dt`"),
            (r#"{"dt":"2026-11-01","records":1}"#, "`sentiment`"),
            (
                r#"{"dt":"2026-11-01","sentiment":"X","records":-1}"#,
                "`records`",
            ),
            (
                r#"{"dt":"2026-11-01","sentiment":"X","records":1,"avg_compound":"x"}"#,
                "`avg_compound`",
            ),
        ];
        for (bad, field) in cases {
            let err = parse_rows(&format!("{ok}\n{ok}\n{bad}\n{ok}")).unwrap_err();
            assert!(err.contains("line 3") && err.contains(field), "{err}");
        }
        assert!(parse_rows("not json").unwrap_err().contains("line 1"));
    }

    #[test]
    fn nice_ticks_are_nice() {
        let zero = nice_ticks(0);
        assert!(
            zero.len() >= 4 && zero[0] == 0 && zero[zero.len() - 1] > 0,
            "{zero:?}"
        );
        let top7 = *nice_ticks(7).last().unwrap();
        assert!(top7 == 8 || top7 == 10, "{top7}");
        assert_eq!(nice_ticks(12_345), [0, 5_000, 10_000, 15_000]);
        for max in (0..3000u128).chain([99_999, 1_000_000, u128::from(u64::MAX)]) {
            let t = nice_ticks(max);
            let pow = 10u128.pow(t[1].ilog10());
            assert!(
                (4..=6).contains(&t.len()) && t[0] == 0 && t[t.len() - 1] >= max,
                "{max}: {t:?}"
            );
            assert!(
                t[1].is_multiple_of(pow) && matches!(t[1] / pow, 1 | 2 | 5),
                "{max}: {t:?}"
            );
        }
        assert_eq!(fmt_int(12_000u64), "12,000");
        assert_eq!(fmt_int(999u64), "999");
        assert_eq!(fmt_int(1_234_567u64), "1,234,567");
    }

    #[test]
    fn empty_rows_say_no_data() {
        let svg = render_svg(&[]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("No data") && !svg.contains(r#"class="bar""#));
        let html = render_html(&meta("t"), &[]);
        assert!(html.starts_with("<!DOCTYPE html>") && html.contains("No data"));
    }

    #[test]
    fn text_is_escaped_and_nothing_is_fetched() {
        let label = "<&\">";
        let rows = [row("2026-11-01", label, 3, None)];
        let svg = render_svg(&rows);
        assert!(svg.contains(r#"data-sentiment="&lt;&amp;&quot;&gt;""#));
        assert!(svg.contains("#6b5bd2") && !svg.contains(label));
        let html = render_html(&meta(label), &rows);
        assert!(html.contains("<title>&lt;&amp;&quot;&gt;</title>") && html.contains("a &amp; b"));
        assert!(!html.contains(label));
        for banned in ["<script", "<link", "url(", "@import", "<img", "src="] {
            assert!(!html.contains(banned), "{banned}");
        }
    }

    #[test]
    fn gap_days_are_slots() {
        let rows = [
            row("2026-11-01", "POSITIVE", 10, Some(0.5)),
            row("2026-11-01", "NEGATIVE", 5, Some(-0.4)),
            row("2026-11-04", "NEUTRAL", 7, None),
        ];
        let svg = render_svg(&rows);
        let days = tags(&svg, r#"<g class="day""#);
        let dts: Vec<&str> = days.iter().map(|d| attr(d, "data-dt")).collect();
        assert_eq!(
            dts,
            ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"]
        );
        assert_eq!(attr(days[3], "data-slot"), "3");
        let bars = tags(&svg, r#"<rect class="bar""#);
        assert_eq!(bars.len(), 3);
        let empty = tags(&svg, r#"<rect class="empty-slot""#);
        let (x1, x2, x4) = (num(bars[0], "x"), num(empty[0], "x"), num(bars[2], "x"));
        assert!((x4 - x1 - 3.0 * (x2 - x1)).abs() < 0.05, "{x1} {x2} {x4}");
        assert_eq!(attr(bars[0], "data-sentiment"), "NEGATIVE"); // bottom of the stack
        assert!(num(bars[0], "y") > num(bars[1], "y"));
    }

    #[test]
    fn geometry_reconstructs_the_numbers() {
        let rows = [
            row("2026-11-01", "POSITIVE", 1234, Some(0.4)),
            row("2026-11-01", "NEGATIVE", 321, Some(-0.5)),
            row("2026-11-02", "NEUTRAL", 77, None),
        ];
        let svg = render_svg(&rows);
        let area = tags(&svg, r#"<rect class="plot-area""#)[0];
        let (py, ph) = (num(area, "y"), num(area, "height"));
        let ticks = tags(&svg, r#"<g class="ytick""#);
        let top = ticks
            .iter()
            .map(|t| num(t, "data-value"))
            .fold(0.0, f64::max);
        assert_eq!(top, 2000.0);
        assert!(svg.contains(">2,000</text>"));
        let bars = tags(&svg, r#"<rect class="bar""#);
        for bar in &bars {
            let rec = num(bar, "height") * top / ph;
            assert!((rec - num(bar, "data-records")).abs() < 0.5, "{bar}");
        }
        assert!((num(bars[0], "y") + num(bars[0], "height") - (py + ph)).abs() < 0.02);
        assert!(svg.contains("<title>2026-11-01 POSITIVE: 1,234 records</title>"));
        let circles = tags(&svg, r#"<circle class="compound""#);
        assert_eq!(circles.len(), 1);
        let ca = tags(&svg, r#"<rect class="compound-area""#)[0];
        let v = (0.4 * 1234.0 - 0.5 * 321.0) / 1555.0;
        let cy = num(ca, "y") + (1.0 - v) / 2.0 * num(ca, "height");
        assert!((num(circles[0], "cy") - cy).abs() < 0.01);
        assert!(svg.contains(r#"class="zero-line""#));
    }
}
