//! The rejects file of a local run: every input item that could not become a
//! record, appended as a JSON line with the run id, where it was, the id and
//! field when known, and why. Writing stops at the first I/O error, which
//! the run reports when it finishes; the callback still sees every item.

use std::path::PathBuf;

use etl_core::Rejection;

/// Appends rejections to the rejects file and reports each one.
pub(crate) struct RejectLog {
    pub(crate) path: PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
    run_id: String,
    count: u64,
    error: Option<std::io::Error>,
    on_reject: Box<dyn FnMut(&Rejection) + Send>,
}

impl RejectLog {
    pub(crate) fn new(
        path: PathBuf,
        run_id: String,
        on_reject: Box<dyn FnMut(&Rejection) + Send>,
    ) -> Self {
        Self {
            path,
            file: None,
            run_id,
            count: 0,
            error: None,
            on_reject,
        }
    }

    pub(crate) fn record(&mut self, r: &Rejection) {
        use std::io::Write;
        self.count += 1;
        (self.on_reject)(r);
        if self.error.is_some() {
            return;
        }
        if self.file.is_none() {
            let open = self
                .path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| {
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&self.path)
                });
            match open {
                Ok(f) => self.file = Some(std::io::BufWriter::new(f)),
                Err(e) => {
                    self.error = Some(e);
                    return;
                }
            }
        }
        let line = serde_json::json!({
            "run_id": self.run_id, "location": r.location, "id": r.id, "field": r.field, "reason": r.reason,
        });
        if let Some(f) = self.file.as_mut() {
            if let Err(e) = writeln!(f, "{line}") {
                self.error = Some(e);
            }
        }
    }

    pub(crate) fn finish(&mut self) -> std::io::Result<()> {
        use std::io::Write;
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if let Some(f) = self.file.as_mut() {
            f.flush()?;
        }
        Ok(())
    }
}
