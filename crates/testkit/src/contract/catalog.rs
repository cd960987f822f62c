//! `Catalog` conformance: the table is created once, partitions are
//! registered once, and saying either again is never an error.
//!
//! The trait has no list, so each behaviour takes a [`CatalogProbe`] the
//! backend's tests implement: the catalog file for the local lake,
//! GetTable and GetPartitions for Glue. The behaviours assert about the
//! partitions they add on top of what was there (never that the listing is
//! exactly theirs), so they can share one catalog, as [`all`] does.
//!
//! A backend may require `ensure_table` before `add_partitions` (both do:
//! the local catalog refuses, Glue has no table to add to), so every
//! behaviour ensures the table first, as the consumer does.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::NaiveDate;
use etl_core::Catalog;

use super::date;

/// Reads what a catalog registered, for the contract.
#[async_trait]
pub trait CatalogProbe: Send + Sync {
    /// Whether the table exists.
    async fn table_exists(&self) -> bool;
    /// The registered partitions as listed, duplicates kept, in any order.
    async fn partitions(&self) -> Vec<NaiveDate>;
}

/// How often each date is listed.
async fn listed(probe: &dyn CatalogProbe) -> BTreeMap<NaiveDate, usize> {
    let mut counts = BTreeMap::new();
    for d in probe.partitions().await {
        *counts.entry(d).or_insert(0) += 1;
    }
    counts
}

/// Assert that every listed date is listed once, and that the listing is
/// exactly `before` plus `added`.
async fn assert_registered(
    probe: &dyn CatalogProbe,
    before: &BTreeMap<NaiveDate, usize>,
    added: &[NaiveDate],
) {
    let now = listed(probe).await;
    for (d, n) in &now {
        assert_eq!(*n, 1, "partition {d} is listed {n} times");
    }
    let mut want: Vec<NaiveDate> = before.keys().chain(added).copied().collect();
    want.sort();
    want.dedup();
    let got: Vec<NaiveDate> = now.into_keys().collect();
    assert_eq!(got, want, "registered partitions");
}

/// `ensure_table` creates the table, and again is not an error and keeps
/// the partitions registered meanwhile. (A fresh instance's
/// `ensure_table` on the existing table is in
/// [`fresh_instance_adds_known_partitions`].)
pub async fn ensure_table_is_idempotent(catalog: &dyn Catalog, probe: &dyn CatalogProbe) {
    catalog.ensure_table().await.expect("ensure_table");
    assert!(probe.table_exists().await, "no table after ensure_table");
    let before = listed(probe).await;
    let dt = date("2024-05-01");
    catalog.add_partitions(&[dt]).await.expect("add_partitions");
    catalog.ensure_table().await.expect("ensure_table again");
    assert!(probe.table_exists().await, "table gone after ensure_table");
    assert_registered(probe, &before, &[dt]).await;
}

/// Adding no partitions is fine and changes nothing.
pub async fn empty_partition_list_is_fine(catalog: &dyn Catalog, probe: &dyn CatalogProbe) {
    catalog.ensure_table().await.expect("ensure_table");
    let before = listed(probe).await;
    catalog
        .add_partitions(&[])
        .await
        .expect("add_partitions(&[])");
    assert_registered(probe, &before, &[]).await;
}

/// New dates (one repeated within the call), then the same dates again,
/// then a mix of known and new: no error, each date registered once.
pub async fn partitions_are_registered_once(catalog: &dyn Catalog, probe: &dyn CatalogProbe) {
    catalog.ensure_table().await.expect("ensure_table");
    let before = listed(probe).await;
    let (a, b, c) = (date("2024-02-29"), date("1999-12-31"), date("2000-01-01"));
    catalog.add_partitions(&[a, b, a]).await.expect("new dates");
    catalog
        .add_partitions(&[b, a])
        .await
        .expect("the same dates again");
    catalog
        .add_partitions(&[c, b])
        .await
        .expect("a known and a new date");
    assert_registered(probe, &before, &[a, b, c]).await;
}

/// A fresh instance (which cannot know what another registered) finds the
/// table, and adding dates that exist, with a new one, is not an error:
/// "already exists" counts as success.
///
/// `fresh` is a second instance over the same table that has not been used
/// yet, as a new Lambda container or the next local run is; `catalog` is
/// not used after it. (A local catalog caches the file it loaded, so two
/// instances used in turn would each save their own view; the lake lock
/// keeps local runs from overlapping.)
pub async fn fresh_instance_adds_known_partitions(
    catalog: &dyn Catalog,
    fresh: &dyn Catalog,
    probe: &dyn CatalogProbe,
) {
    catalog.ensure_table().await.expect("ensure_table");
    let before = listed(probe).await;
    let (a, b, c) = (date("2023-07-01"), date("2023-07-02"), date("2023-07-03"));
    catalog
        .add_partitions(&[a, b])
        .await
        .expect("first instance");
    fresh
        .ensure_table()
        .await
        .expect("ensure_table on a fresh instance");
    fresh
        .add_partitions(&[b, a, c])
        .await
        .expect("known dates from a fresh instance");
    assert_registered(probe, &before, &[a, b, c]).await;
}

/// Every behaviour, in sequence. `catalog` and `fresh` are two instances
/// over the same new table; `fresh` is used only by the last behaviour.
pub async fn all(catalog: &dyn Catalog, fresh: &dyn Catalog, probe: &dyn CatalogProbe) {
    ensure_table_is_idempotent(catalog, probe).await;
    empty_partition_list_is_fine(catalog, probe).await;
    partitions_are_registered_once(catalog, probe).await;
    fresh_instance_adds_known_partitions(catalog, fresh, probe).await;
}
