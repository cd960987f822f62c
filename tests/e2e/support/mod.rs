//! Helpers for the AWS end-to-end tests (moto itself is started by
//! `etl_aws::testing`).

pub mod s3_lake;

/// Texts the end-to-end tests cycle through: positive, negative, neutral,
/// "but", and a negated emoticon.
pub const TEXTS: [&str; 5] = [
    "I love this, it is wonderful!",
    "This is terrible and I hate it.",
    "The package arrived on Tuesday.",
    "Great service but awful food.",
    "Not bad at all :)",
];
