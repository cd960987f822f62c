//! The conformance suite: one module per core trait, a `pub async fn` per
//! behaviour every backend must show.
