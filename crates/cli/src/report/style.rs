//! What the chart and the summary table must agree on, in one place: the
//! order labels stack in, the colour each label is drawn in, how text is
//! escaped for XML/HTML, and how counts are printed.

/// Stacking position: NEGATIVE at the bottom, POSITIVE on top, others above.
pub(super) fn rank(label: &str) -> u8 {
    match label {
        "NEGATIVE" => 0,
        "MIXED" => 1,
        "NEUTRAL" => 2,
        "POSITIVE" => 3,
        _ => 4,
    }
}

/// The fill of a label's bars, legend swatch and table swatch.
pub(super) fn colour(label: &str) -> &'static str {
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
pub(super) fn esc(s: &str) -> String {
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
pub(super) fn fmt_int(n: impl Into<u128>) -> String {
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
