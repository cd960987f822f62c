//! The page: [`render_html`] wraps the chart of [`render_svg`] in a
//! self-contained HTML document (inline CSS, a Content-Security-Policy that
//! allows nothing to be fetched) with a header and a summary table.
//!
//! It is separate from the chart so the document (its head, its styling and
//! the per-label totals of the table) can change without touching the
//! geometry that the SVG tests pin down.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::style::{colour, esc, fmt_int, rank};
use super::{render_svg, DailyRow, ReportMeta};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::row;

    fn meta(title: &str) -> ReportMeta<'_> {
        ReportMeta {
            title,
            source: "a & b",
            generated_at: chrono::Utc::now(),
        }
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
}
