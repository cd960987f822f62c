//! Workspace end-to-end tests: one test binary, shared helpers in modules.

mod aws;
mod dead_letters;
mod faults;
mod lake;
mod local;
mod nights;
mod operator;
mod support;
