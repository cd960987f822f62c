//! The chart: [`render_svg`] and the geometry behind it (the 960x540
//! layout, the y ticks, one slot per calendar day of [`super::days`], the
//! compound scale).
//!
//! It is its own module because the picture is what tests check against the
//! numbers: every coordinate it prints is computed here, from the rows alone,
//! so a change to the layout is a change to this file only.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::days::days;
use super::style::{colour, esc, fmt_int, rank};
use super::DailyRow;

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

/// Pixel y of a compound value in the compound panel.
fn compound_y(v: f64) -> f64 {
    CY + (1.0 - v) / 2.0 * CH
}

/// Just the `<svg>` element (used by [`render_html`](super::render_html), and by tests).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::row;

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
