//! Workspace end-to-end tests: one test binary, shared helpers in modules
//! (and in `etl_testkit`: moto, the fault proxy, records, lake readers and
//! the accounting).
// Test helpers unwrap too: a failed setup is the test failing
// (`allow-unwrap-in-tests` only covers the `#[test]` functions themselves).
#![allow(clippy::unwrap_used)]

mod aws;
mod dead_letters;
mod faults;
mod local;
mod nights;
mod operator;
mod support;
