//! Rendering query results as a table, CSV or JSON lines.

use arrow_array::RecordBatch;
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::ArrowError;
use datafusion::arrow::json::writer::{LineDelimited, WriterBuilder};
use thiserror::Error;

/// Query results that could not be rendered.
#[derive(Debug, Error)]
pub enum RenderError {
    /// Arrow could not format a column (an unsupported type).
    #[error("formatting the result in {format:?}")]
    Arrow {
        /// The format asked for.
        format: OutputFormat,
        /// Arrow's error.
        #[source]
        source: ArrowError,
    },
    /// The JSON writer produced bytes that are not UTF-8 (a bug).
    #[error("the JSON lines are not UTF-8")]
    Utf8(#[from] std::string::FromUtf8Error),
}

/// Output format of `etl query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Aligned text table.
    Table,
    /// CSV with a header row.
    Csv,
    /// One JSON object per row.
    Json,
}

impl std::str::FromStr for OutputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "table" => Ok(Self::Table),
            "csv" => Ok(Self::Csv),
            "json" | "jsonl" => Ok(Self::Json),
            o => Err(format!("unknown format {o:?}: expected table, csv or json")),
        }
    }
}

/// Render batches in the chosen format.
pub fn render(batches: &[RecordBatch], format: OutputFormat) -> Result<String, RenderError> {
    let arrow = |source| RenderError::Arrow { format, source };
    match format {
        OutputFormat::Table => arrow_cast::pretty::pretty_format_batches(batches)
            .map(|t| t.to_string())
            .map_err(arrow),
        OutputFormat::Csv => csv(batches).map_err(arrow),
        OutputFormat::Json => {
            let mut buf = Vec::new();
            let mut w = WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, LineDelimited>(&mut buf);
            for b in batches {
                w.write(b).map_err(arrow)?;
            }
            w.finish().map_err(arrow)?;
            drop(w);
            Ok(String::from_utf8(buf)?)
        }
    }
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn csv(batches: &[RecordBatch]) -> Result<String, ArrowError> {
    let mut out = String::new();
    let Some(first) = batches.first() else {
        return Ok(out);
    };
    let header: Vec<String> = first
        .schema()
        .fields()
        .iter()
        .map(|f| csv_cell(f.name()))
        .collect();
    out.push_str(&header.join(","));
    out.push('\n');
    let opts = FormatOptions::default().with_null("");
    for b in batches {
        let fmts = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..b.num_rows() {
            let cells: Vec<String> = fmts
                .iter()
                .map(|f| csv_cell(&f.value(row).to_string()))
                .collect();
            out.push_str(&cells.join(","));
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float64Array, StringArray};
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        RecordBatch::try_from_iter([
            (
                "label",
                Arc::new(StringArray::from(vec!["a,b", "plain"])) as _,
            ),
            (
                "x",
                Arc::new(Float64Array::from(vec![Some(0.5), None])) as _,
            ),
        ])
        .unwrap()
    }

    #[test]
    fn csv_quotes_and_blanks_nulls() {
        assert_eq!(
            render(&[batch()], OutputFormat::Csv).unwrap(),
            "label,x\n\"a,b\",0.5\nplain,\n"
        );
    }

    #[test]
    fn json_lines_keep_types_and_nulls() {
        let out = render(&[batch()], OutputFormat::Json).unwrap();
        let rows: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows[0]["x"], 0.5);
        assert!(rows[1]["x"].is_null());
    }

    #[test]
    fn table_has_header_and_rows() {
        let t = render(&[batch()], OutputFormat::Table).unwrap();
        assert!(t.contains("| label |") && t.contains("| plain |"), "{t}");
    }
}
