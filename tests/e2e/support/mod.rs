//! Helpers for the AWS end-to-end tests (moto itself is started by
//! `etl_aws::testing`).

pub mod s3_lake;
