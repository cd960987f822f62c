//! The Glue Data Catalog as a core [`Catalog`]: what Athena reads the lake through.
//!
//! The table is created from core's [`COLUMNS`] (the one definition of the
//! output schema) as an external Parquet table partitioned by `dt`. Partitions
//! are registered explicitly with BatchCreatePartition rather than by crawler
//! or `MSCK REPAIR`, because the consumer knows exactly which `dt` it just
//! wrote. Both steps are idempotent (AlreadyExists counts as success), and
//! each warm container remembers what it has already ensured, so the steady
//! state costs no catalog calls at all.

use std::collections::HashSet;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_glue::types::{
    Column, DatabaseInput, PartitionInput, SerDeInfo, StorageDescriptor, TableInput,
};
use aws_sdk_glue::Client;
use chrono::NaiveDate;
use etl_core::output::{partition_path, COLUMNS, PARTITION_COLUMN};
use etl_core::{BackendError, Catalog, Retry};
use tokio::sync::OnceCell;
use tracing::info;

use crate::error::{backend_error, is_retryable_code};

/// Hive SerDe Athena uses for Parquet.
pub const PARQUET_SERDE: &str = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe";
/// Parquet input format.
pub const PARQUET_INPUT_FORMAT: &str =
    "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat";
/// Parquet output format.
pub const PARQUET_OUTPUT_FORMAT: &str =
    "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat";

/// Partitions per BatchCreatePartition call.
pub const MAX_PARTITIONS_PER_CALL: usize = 100;

/// A Glue database and table. See the module docs.
#[derive(Debug)]
pub struct GlueCatalog {
    client: Client,
    database: String,
    table: String,
    location: String,
    ensured: OnceCell<()>,
    known: Mutex<HashSet<NaiveDate>>,
}

impl GlueCatalog {
    /// The table `database.table` whose data lives at `location`
    /// (`s3://bucket/prefix/sentiment/`, see [`crate::S3Sink::table_location`]).
    pub fn new(
        client: Client,
        database: impl Into<String>,
        table: impl Into<String>,
        location: impl Into<String>,
    ) -> Self {
        let mut location = location.into();
        if !location.ends_with('/') {
            location.push('/');
        }
        Self {
            client,
            database: database.into(),
            table: table.into(),
            location,
            ensured: OnceCell::new(),
            known: Mutex::new(HashSet::new()),
        }
    }

    /// The database name.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    fn target(&self) -> String {
        format!("Glue table {}.{}", self.database, self.table)
    }

    fn storage(&self, location: String) -> Result<StorageDescriptor, BackendError> {
        let columns = COLUMNS
            .iter()
            .map(|(name, ty)| Column::builder().name(*name).r#type(*ty).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| BackendError::permanent("CreateTable", self.target(), e))?;
        Ok(StorageDescriptor::builder()
            .set_columns(Some(columns))
            .location(location)
            .input_format(PARQUET_INPUT_FORMAT)
            .output_format(PARQUET_OUTPUT_FORMAT)
            .serde_info(
                SerDeInfo::builder()
                    .serialization_library(PARQUET_SERDE)
                    .parameters("serialization.format", "1")
                    .build(),
            )
            .build())
    }

    async fn create(&self) -> Result<(), BackendError> {
        let target = self.target();
        match self
            .client
            .get_table()
            .database_name(&self.database)
            .name(&self.table)
            .send()
            .await
        {
            Ok(_) => return Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) => {}
            Err(e) => return Err(backend_error("GetTable", target, &e)),
        }
        let db = DatabaseInput::builder()
            .name(&self.database)
            .description("Sentiment ETL output")
            .build()
            .map_err(|e| BackendError::permanent("CreateDatabase", &target, e))?;
        match self
            .client
            .create_database()
            .database_input(db)
            .send()
            .await
        {
            Ok(_) => info!(message = "Created Glue database.", database = %self.database),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_already_exists_exception()) => {}
            Err(e) => {
                return Err(backend_error(
                    "CreateDatabase",
                    format!("Glue database {}", self.database),
                    &e,
                ))
            }
        }
        let partition_key = Column::builder()
            .name(PARTITION_COLUMN)
            .r#type("string")
            .build()
            .map_err(|e| BackendError::permanent("CreateTable", &target, e))?;
        let input = TableInput::builder()
            .name(&self.table)
            .description("Sentiment scores, one row per source record and run")
            .table_type("EXTERNAL_TABLE")
            .parameters("classification", "parquet")
            .parameters("EXTERNAL", "TRUE")
            .storage_descriptor(self.storage(self.location.clone())?)
            .partition_keys(partition_key)
            .build()
            .map_err(|e| BackendError::permanent("CreateTable", &target, e))?;
        match self
            .client
            .create_table()
            .database_name(&self.database)
            .table_input(input)
            .send()
            .await
        {
            Ok(_) => {
                info!(message = "Created Glue table.", database = %self.database, table = %self.table, location = %self.location);
                Ok(())
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_already_exists_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(backend_error("CreateTable", target, &e)),
        }
    }
}

#[async_trait]
impl Catalog for GlueCatalog {
    async fn ensure_table(&self) -> Result<(), BackendError> {
        // A failure leaves the cell empty, so the next call tries again.
        self.ensured
            .get_or_try_init(|| self.create())
            .await
            .map(|_| ())
    }

    async fn add_partitions(&self, dts: &[NaiveDate]) -> Result<(), BackendError> {
        let mut new: Vec<NaiveDate> = {
            let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            dts.iter().filter(|d| !known.contains(d)).copied().collect()
        };
        new.sort();
        new.dedup();
        for chunk in new.chunks(MAX_PARTITIONS_PER_CALL) {
            let inputs = chunk
                .iter()
                .map(|dt| {
                    let location = format!("{}{}/", self.location, partition_path(*dt));
                    Ok(PartitionInput::builder()
                        .values(dt.format("%Y-%m-%d").to_string())
                        .storage_descriptor(self.storage(location)?)
                        .build())
                })
                .collect::<Result<Vec<_>, BackendError>>()?;
            let out = self
                .client
                .batch_create_partition()
                .database_name(&self.database)
                .table_name(&self.table)
                .set_partition_input_list(Some(inputs))
                .send()
                .await
                .map_err(|e| backend_error("BatchCreatePartition", self.target(), &e))?;
            let mut failed = Vec::new();
            let mut retry = Retry::Permanent;
            for err in out.errors.unwrap_or_default() {
                let code = err
                    .error_detail
                    .as_ref()
                    .and_then(|d| d.error_code.clone())
                    .unwrap_or_default();
                if code == "AlreadyExistsException" {
                    continue;
                }
                if is_retryable_code(&code) {
                    retry = Retry::Retryable;
                }
                let msg = err
                    .error_detail
                    .and_then(|d| d.error_message)
                    .unwrap_or_default();
                failed.push(format!(
                    "dt={} {code}: {msg}",
                    err.partition_values.unwrap_or_default().join(",")
                ));
            }
            if !failed.is_empty() {
                return Err(BackendError::new(
                    retry,
                    "BatchCreatePartition",
                    self.target(),
                    failed.join("; "),
                ));
            }
            self.known
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(chunk.iter().copied());
        }
        Ok(())
    }
}
