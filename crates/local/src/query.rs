//! SQL over the local lake with DataFusion, in Athena's place.
//!
//! The table directory is registered as `sentiment`: for a Hive lake with the
//! `dt` partition column taken from the paths, for a Delta lake as the table
//! at its latest version (delta-rs's DataFusion provider: only committed
//! files, pruned by their statistics); plus the two views Athena has:
//! `sentiment_latest` and `daily_sentiment`, from the same SQL text
//! (`etl_core::views`).

use std::path::Path;
use std::sync::Arc;

use arrow_array::RecordBatch;
use async_trait::async_trait;
use datafusion::arrow::datatypes::DataType;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::SessionContext;
use etl_core::output::{output_schema, TableFormat, PARTITION_COLUMN, TABLE_NAME};
use etl_core::views::views;
use etl_core::{BackendError, QueryEngine};

use crate::catalog::LocalCatalog;

/// DataFusion over a lake directory.
pub struct DataFusionQuery {
    ctx: SessionContext,
}

impl DataFusionQuery {
    /// Open the lake at `dir` (it must have been written by `etl run`).
    pub async fn open(dir: &Path) -> Result<Self, BackendError> {
        let target = dir.display().to_string();
        let entry = LocalCatalog::load(dir)?.ok_or_else(|| {
            BackendError::permanent(
                "open lake",
                &target,
                "no catalog found (expected _catalog/sentiment.json); run `etl run --lake DIR` first",
            )
        })?;
        let table_dir = dir.join(TABLE_NAME);
        let ctx = SessionContext::new();
        if entry.format == TableFormat::Delta {
            let lake = etl_delta::DeltaLake::at_dir(&table_dir, entry.include_text)?;
            let provider = etl_delta::maintain::provider(&lake).await?;
            ctx.register_table(TABLE_NAME, provider)
                .map_err(|e| BackendError::permanent_from("register table", &target, e))?;
            return Self::with_views(ctx, entry.include_text, &target).await;
        }
        std::fs::create_dir_all(&table_dir)
            .map_err(|e| BackendError::permanent_from("open lake", &target, e))?;
        let abs = std::fs::canonicalize(&table_dir)
            .map_err(|e| BackendError::permanent_from("open lake", &target, e))?;
        let url = ListingTableUrl::parse(format!("{}/", abs.display()))
            .map_err(|e| BackendError::permanent_from("open lake", &target, e))?;
        let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension(".parquet")
            .with_table_partition_cols(vec![(PARTITION_COLUMN.to_string(), DataType::Utf8)]);
        let config = ListingTableConfig::new(url)
            .with_listing_options(options)
            .with_schema(output_schema(entry.include_text));
        let table = ListingTable::try_new(config)
            .map_err(|e| BackendError::permanent_from("open lake", &target, e))?;
        ctx.register_table(TABLE_NAME, Arc::new(table))
            .map_err(|e| BackendError::permanent_from("register table", &target, e))?;
        Self::with_views(ctx, entry.include_text, &target).await
    }

    async fn with_views(
        ctx: SessionContext,
        include_text: bool,
        target: &str,
    ) -> Result<Self, BackendError> {
        for (name, sql) in views(include_text) {
            ctx.sql(&format!("CREATE VIEW {name} AS {sql}"))
                .await
                .map_err(|e| BackendError::permanent_from("create view", target, e))?;
        }
        Ok(Self { ctx })
    }
}

#[async_trait]
impl QueryEngine for DataFusionQuery {
    async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>, BackendError> {
        let df = self
            .ctx
            .sql(sql)
            .await
            .map_err(|e| BackendError::permanent_from("plan query", sql, e))?;
        df.collect()
            .await
            .map_err(|e| BackendError::permanent_from("run query", sql, e))
    }
}
