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
//!
//! This module holds what the report is made from: the rows ([`DailyRow`],
//! read from the query's JSON lines by [`parse_rows`], which fails with a
//! [`ReportError`]) and the header ([`ReportMeta`]). The rows summed per
//! calendar day live in [`days`], the drawing in [`svg`], the page around
//! the drawing in [`html`], and the label order, colours, escaping and
//! number formatting both renderers share in [`style`].

mod days;
mod html;
mod style;
mod svg;

pub use html::render_html;
pub use svg::render_svg;

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

/// A line of the query's output that [`parse_rows`] cannot turn into a
/// [`DailyRow`]. Every variant names the line (1-based); the field ones name
/// the field and what it should have held.
#[derive(Debug)]
pub enum ReportError {
    /// The line is not JSON at all.
    InvalidJson {
        /// 1-based line number.
        line: usize,
        /// What the JSON parser said.
        source: serde_json::Error,
    },
    /// The line is JSON but not an object.
    NotAnObject {
        /// 1-based line number.
        line: usize,
    },
    /// A field is absent or null.
    MissingField {
        /// 1-based line number.
        line: usize,
        /// The field's name, e.g. `records`.
        field: &'static str,
        /// What it should hold, e.g. "a non-negative integer".
        expected: &'static str,
    },
    /// A field holds a value of the wrong kind.
    BadField {
        /// 1-based line number.
        line: usize,
        /// The field's name, e.g. `records`.
        field: &'static str,
        /// What it should hold, e.g. "a non-negative integer".
        expected: &'static str,
        /// What it held.
        got: Value,
    },
}

impl std::fmt::Display for ReportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidJson { line, source } => {
                write!(f, "line {line}: not valid JSON: {source}")
            }
            Self::NotAnObject { line } => write!(f, "line {line}: expected a JSON object"),
            Self::MissingField {
                line,
                field,
                expected,
            } => write!(
                f,
                "line {line}: field `{field}`: missing (expected {expected})"
            ),
            Self::BadField {
                line,
                field,
                expected,
                got,
            } => write!(
                f,
                "line {line}: field `{field}`: expected {expected}, got {got}"
            ),
        }
    }
}

impl std::error::Error for ReportError {
    // The JSON parser's text is already in the message, and `etl_core::Chain`
    // (how `etl` prints errors) skips a cause whose text it has said.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::InvalidJson { source, .. } => Some(source),
            _ => None,
        }
    }
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
pub fn parse_rows(json_lines: &str) -> Result<Vec<DailyRow>, ReportError> {
    let mut rows = Vec::new();
    for (i, line) in json_lines.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .map_err(|source| ReportError::InvalidJson { line: n, source })?;
        let obj = v.as_object().ok_or(ReportError::NotAnObject { line: n })?;
        let field = |name: &str| obj.get(name).filter(|v| !v.is_null());
        let bad = |field: &'static str, expected: &'static str, got: Option<&Value>| match got {
            Some(g) => ReportError::BadField {
                line: n,
                field,
                expected,
                got: g.clone(),
            },
            None => ReportError::MissingField {
                line: n,
                field,
                expected,
            },
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

/// A row for the tests of this module and its submodules.
#[cfg(test)]
fn row(dt: &str, sentiment: &str, records: u64, avg: Option<f64>) -> DailyRow {
    let (dt, sentiment) = (dt.parse().unwrap(), sentiment.to_string());
    DailyRow {
        dt,
        sentiment,
        records,
        avg_compound: avg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let err = parse_rows(&format!("{ok}\n{ok}\n{bad}\n{ok}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("line 3") && err.contains(field), "{err}");
        }
        assert!(parse_rows("not json")
            .unwrap_err()
            .to_string()
            .contains("line 1"));
    }

    /// The typed error carries what its message says, and the message text is
    /// the one `parse_rows` gave when it returned a `String`.
    #[test]
    fn errors_are_typed_and_keep_their_text() {
        let err = parse_rows("\n[1]").unwrap_err();
        assert!(
            matches!(err, ReportError::NotAnObject { line: 2 }),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "line 2: expected a JSON object");

        let err = parse_rows(r#"{"dt":"2026-11-01","records":1}"#).unwrap_err();
        assert!(
            matches!(
                err,
                ReportError::MissingField {
                    line: 1,
                    field: "sentiment",
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "line 1: field `sentiment`: missing (expected a non-empty string)"
        );

        let err = parse_rows(r#"{"dt":"2026-11-01","sentiment":"X","records":-1}"#).unwrap_err();
        assert!(
            matches!(
                err,
                ReportError::BadField {
                    line: 1,
                    field: "records",
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "line 1: field `records`: expected a non-negative integer, got -1"
        );

        let err = parse_rows("not json").unwrap_err();
        assert!(
            err.to_string().starts_with("line 1: not valid JSON: "),
            "{err}"
        );
        let cause = std::error::Error::source(&err).expect("the JSON parser's error");
        assert!(err.to_string().ends_with(&cause.to_string()), "{err}");
    }
}
