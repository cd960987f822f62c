//! The default build has no cloud commands: these stand-ins are never
//! reached (the dispatcher checks [`AVAILABLE`] first) and keep one
//! dispatcher for both builds. Build with `--features cloud` for the real ones.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use chrono::{DateTime, Utc};
use etl_core::FieldMap;
use etl_local::format::OutputFormat;

use crate::Target;

/// Whether this build has the cloud commands.
pub const AVAILABLE: bool = false;

/// Comprehend as an analyzer (cloud build).
pub async fn comprehend_analyzer(
    _language: &str,
) -> Result<std::sync::Arc<dyn etl_core::SentimentAnalyzer>> {
    bail!("Comprehend needs the cloud build")
}

/// How `etl redrive` moves messages (cloud build).
#[derive(Debug, Clone, Copy)]
pub struct Method;

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(_: &str) -> Result<Self, String> {
        Ok(Method)
    }
}

/// Options of a cloud redrive (cloud build): filled by the dispatcher,
/// read only by the cloud build.
#[allow(dead_code)]
pub struct RedriveOptions {
    /// Messages per second.
    pub rate: u32,
    /// How long to wait for the outcome.
    pub wait: Duration,
    /// How to move.
    pub method: Method,
}

fn unavailable() -> Result<ExitCode> {
    bail!("this build of etl has no cloud commands (build with --features cloud)")
}

pub async fn query(_: &Target, _: &str, _: OutputFormat) -> Result<ExitCode> {
    unavailable()
}
pub async fn status(_: &Target, _: usize, _: bool) -> Result<ExitCode> {
    unavailable()
}
pub async fn redrive(_: &Target, _: RedriveOptions, _: bool) -> Result<ExitCode> {
    unavailable()
}
pub async fn reconcile(_: &Target, _: FieldMap, _: usize, _: bool) -> Result<ExitCode> {
    unavailable()
}
pub async fn backfill(_: &Target, _: bool, _: Option<DateTime<Utc>>, _: bool) -> Result<ExitCode> {
    unavailable()
}
pub async fn report(_: &Target, _: &Path) -> Result<ExitCode> {
    unavailable()
}
pub async fn delta_table(_: &Target) -> Result<etl_delta::DeltaLake> {
    bail!("this build of etl has no cloud commands (build with --features cloud)")
}
