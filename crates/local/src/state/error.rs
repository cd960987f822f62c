//! The one error of the lake state: a state file that cannot be used.
//!
//! Loading, reading the summary and saving all report through it, and every
//! message names the file and the way out, so it has a file of its own
//! rather than living with any one of them.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::fpset::Invalid;

/// A state file that cannot be used. Nothing has been written when a run
/// stops with one of these.
#[derive(Debug, Error)]
pub enum StateError {
    /// The file is damaged (truncated, padded, reordered, flipped bits, not JSON).
    #[error(
        "lake state file {path} is corrupt ({reason}); the run stopped and wrote nothing. \
         To recover, restore the file from a backup, or run again with --full: it re-scores \
         every record of the input and rebuilds the state (the views count each version once)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Written by an earlier build that keyed versions on (id, updated_at)
    /// alone, with a 64-bit hash.
    #[error(
        "lake state file {path} was written by an older etl (64-bit fingerprints that ignore \
         the text); the run stopped and wrote nothing. Run once with --full to rebuild the \
         state in the new format (or delete {dir} to start over)"
    )]
    OldFormat {
        /// The file.
        path: PathBuf,
        /// The state directory.
        dir: PathBuf,
    },
    /// The file could not be read or written.
    #[error("lake state file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

impl StateError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        StateError::Io {
            path: path.to_owned(),
            source,
        }
    }

    pub(super) fn from_invalid(path: &Path, e: Invalid) -> Self {
        match e {
            Invalid::OldFormat => StateError::OldFormat {
                path: path.to_owned(),
                dir: path.parent().map(Path::to_owned).unwrap_or_default(),
            },
            Invalid::Corrupt(reason) => StateError::Corrupt {
                path: path.to_owned(),
                reason,
            },
            Invalid::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                StateError::Corrupt {
                    path: path.to_owned(),
                    reason: format!("shorter than it says: {e}"),
                }
            }
            Invalid::Io(e) => StateError::io(path, e),
        }
    }
}
