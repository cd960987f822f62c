//! What the `etl` command's tests share.

use std::process::{Command, Output};

/// Run the `etl` under test with `args`, without the lake or stack a
/// developer's environment may name (`ETL_LAKE`, `ETL_STACK`).
pub fn etl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(args)
        .env_remove("ETL_LAKE")
        .env_remove("ETL_STACK")
        .output()
        .expect("etl runs")
}

/// Command output as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
