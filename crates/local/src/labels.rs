//! Labelled texts for `etl eval`: JSON lines or CSV (by the file's
//! extension) with a text and a label a person gave it.
//!
//! The label is read from `label`, or from `sentiment` when a row has no
//! `label` but has that (the shape labelled corpora often ship in); both
//! names can be given. Text that is not UTF-8 is read with replacement characters, as the
//! pipeline would score it. A row without a text, without a label, or with a
//! label other than negative / neutral / positive / mixed is refused with its
//! line and field, and the rest are read: one bad row never stops an
//! evaluation, and none is dropped without a count.

use std::path::Path;

use etl_core::eval::Gold;
use serde_json::Value;

/// One labelled text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledText {
    /// Line of the file it starts on (1-based).
    pub line: u64,
    /// The text.
    pub text: String,
    /// What a person labelled it.
    pub gold: Gold,
}

/// A row that was not read, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LabelReject {
    /// Line it starts on (1-based).
    pub line: u64,
    /// The field at fault (or `row`).
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

/// Field names to read.
#[derive(Debug, Clone)]
pub struct LabelFields {
    /// The text's field (`text`).
    pub text: String,
    /// The label's field: `None` reads `label`, else `sentiment`.
    pub label: Option<String>,
}

impl Default for LabelFields {
    fn default() -> Self {
        Self {
            text: "text".into(),
            label: None,
        }
    }
}

/// Every labelled text of `path`, and the rows refused.
pub fn read_labels(
    path: &Path,
    fields: &LabelFields,
) -> std::io::Result<(Vec<LabelledText>, Vec<LabelReject>)> {
    let csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if csv {
        read_csv(path, fields)
    } else {
        read_jsonl(path, fields)
    }
}

fn judge(
    line: u64,
    text: Option<String>,
    label: Option<String>,
    fields: &LabelFields,
    label_field: &str,
) -> Result<LabelledText, LabelReject> {
    let reject = |field: &str, reason: String| LabelReject {
        line,
        field: field.to_owned(),
        reason,
    };
    let text = text
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| reject(&fields.text, "missing or empty".into()))?;
    let label = label.ok_or_else(|| reject(label_field, "missing".into()))?;
    let gold = Gold::parse(&label).ok_or_else(|| {
        reject(
            label_field,
            format!("{label:?} is not negative, neutral, positive or mixed"),
        )
    })?;
    Ok(LabelledText { line, text, gold })
}

fn read_csv(
    path: &Path,
    fields: &LabelFields,
) -> std::io::Result<(Vec<LabelledText>, Vec<LabelReject>)> {
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(std::io::Error::other)?;
    let headers: Vec<String> = r
        .byte_headers()
        .map_err(std::io::Error::other)?
        .iter()
        .map(|h| String::from_utf8_lossy(h).trim().to_owned())
        .collect();
    let find = |name: &str| headers.iter().position(|h| h == name);
    let label_field = match &fields.label {
        Some(l) => l.clone(),
        None if find("label").is_none() && find("sentiment").is_some() => "sentiment".into(),
        None => "label".into(),
    };
    let (ti, li) = (find(&fields.text), find(&label_field));
    if ti.is_none() || li.is_none() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{}: the header has no {} column (it has: {})",
                path.display(),
                if ti.is_none() {
                    &fields.text
                } else {
                    &label_field
                },
                headers.join(", ")
            ),
        ));
    }
    let (mut ok, mut refused) = (Vec::new(), Vec::new());
    let mut rec = csv::ByteRecord::new();
    loop {
        let line = r.position().line();
        match r.read_byte_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {
                let get = |i: Option<usize>| {
                    i.and_then(|i| rec.get(i))
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                };
                match judge(line, get(ti), get(li), fields, &label_field) {
                    Ok(t) => ok.push(t),
                    Err(e) => refused.push(e),
                }
            }
            Err(e) => refused.push(LabelReject {
                line,
                field: "row".into(),
                reason: e.to_string(),
            }),
        }
    }
    Ok((ok, refused))
}

fn read_jsonl(
    path: &Path,
    fields: &LabelFields,
) -> std::io::Result<(Vec<LabelledText>, Vec<LabelReject>)> {
    let bytes = std::fs::read(path)?;
    let (mut ok, mut refused) = (Vec::new(), Vec::new());
    for (n, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = n as u64 + 1;
        let text = String::from_utf8_lossy(raw);
        if text.trim().is_empty() {
            continue;
        }
        let v: Value = match serde_json::from_str(&text) {
            Ok(Value::Object(m)) => Value::Object(m),
            Ok(_) => {
                refused.push(LabelReject {
                    line,
                    field: "row".into(),
                    reason: "not a JSON object".into(),
                });
                continue;
            }
            Err(e) => {
                refused.push(LabelReject {
                    line,
                    field: "row".into(),
                    reason: format!("not JSON: {e}"),
                });
                continue;
            }
        };
        let label_field = match &fields.label {
            Some(l) => l.clone(),
            None if v.get("label").is_none() && v.get("sentiment").is_some() => "sentiment".into(),
            None => "label".into(),
        };
        let string = |name: &str| v.get(name).and_then(Value::as_str).map(str::to_owned);
        match judge(
            line,
            string(&fields.text),
            string(&label_field),
            fields,
            &label_field,
        ) {
            Ok(t) => ok.push(t),
            Err(e) => refused.push(e),
        }
    }
    Ok((ok, refused))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_quotes_newlines_bad_utf8_and_bad_rows() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("labels.csv");
        let mut body = b"sentiment,confidence,text\n\
negative,0.7,\"line one\nline two, with a comma\"\n\
Positive,1,\"caf\xe9 \xf0\x9f\x98\x80\"\n\
meh,1,no such label\n\
neutral,1,\n"
            .to_vec();
        body.extend_from_slice(b"mixed,0.5,both\n");
        std::fs::write(&p, body).unwrap();
        let (ok, bad) = read_labels(&p, &LabelFields::default()).unwrap();
        assert_eq!(ok.len(), 3);
        assert_eq!(ok[0].text, "line one\nline two, with a comma");
        assert_eq!((ok[0].line, ok[0].gold), (2, Gold::Negative));
        assert_eq!(
            ok[1].text, "caf\u{fffd} 😀",
            "not UTF-8: replaced, as scored"
        );
        assert_eq!((ok[1].line, ok[1].gold), (4, Gold::Positive));
        assert_eq!(ok[2].gold, Gold::Mixed);
        assert_eq!(
            bad,
            vec![
                LabelReject {
                    line: 5,
                    field: "sentiment".into(),
                    reason: "\"meh\" is not negative, neutral, positive or mixed".into()
                },
                LabelReject {
                    line: 6,
                    field: "text".into(),
                    reason: "missing or empty".into()
                },
            ]
        );
    }

    #[test]
    fn json_lines_name_the_line_and_field_of_each_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("labels.jsonl");
        std::fs::write(
            &p,
            "{\"text\":\"good\",\"label\":\"positive\"}\n\n[1]\n{\"text\":\"x\"}\nnot json\n{\"text\":\"bad\",\"label\":\"NEGATIVE\"}\n",
        )
        .unwrap();
        let (ok, bad) = read_labels(&p, &LabelFields::default()).unwrap();
        assert_eq!(
            ok.iter().map(|t| (t.line, t.gold)).collect::<Vec<_>>(),
            vec![(1, Gold::Positive), (6, Gold::Negative)]
        );
        let where_: Vec<(u64, &str)> = bad.iter().map(|r| (r.line, r.field.as_str())).collect();
        assert_eq!(where_, vec![(3, "row"), (4, "label"), (5, "row")]);
    }

    #[test]
    fn a_csv_without_the_text_column_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.csv");
        std::fs::write(&p, "label,body\npositive,hi\n").unwrap();
        let err = read_labels(&p, &LabelFields::default()).unwrap_err();
        assert!(err.to_string().contains("no text column"), "{err}");
        let fields = LabelFields {
            text: "body".into(),
            label: None,
        };
        let (ok, _) = read_labels(&p, &fields).unwrap();
        assert_eq!(ok.len(), 1);
    }
}
