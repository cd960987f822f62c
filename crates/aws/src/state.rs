//! The producer's durable state in a small DynamoDB table (`STATE_TABLE`,
//! partition key `pk` string): the incremental watermark, the checkpoint of an
//! unfinished run, and the run lock.
//!
//! Every write is conditional. Watermark and checkpoint items carry a
//! `version` number and are replaced only when the version read is still the
//! current one (optimistic concurrency), so a stale run can never move the
//! watermark backwards or clobber a newer checkpoint. The lock is acquired
//! with "absent, expired, or already mine", which is what keeps two
//! overlapping runs from both sending. Its `expires_at` (epoch seconds) can
//! double as the table's TTL attribute: expired locks then disappear by
//! themselves, and items without it (watermark, checkpoint) are never expired.
//! Items are namespaced by a scope (the source table name) so one state table
//! can serve several pipelines.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::Utc;
use etl_core::{BackendError, Watermark};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::backend_error;

/// A value with the version it was stored at.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// The value.
    pub value: T,
    /// The item's `version`; pass it back to the next conditional write.
    pub version: u64,
}

/// The result of trying to take the run lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockOutcome {
    /// The lock is ours until `expires_at` (epoch seconds).
    Acquired {
        /// Expiry, epoch seconds.
        expires_at: i64,
    },
    /// Another run holds it.
    Held {
        /// The holder.
        owner: String,
        /// Its expiry, epoch seconds.
        expires_at: i64,
    },
}

/// Watermark, checkpoint and lock of one pipeline. See the module docs.
#[derive(Debug, Clone)]
pub struct StateStore {
    client: Client,
    table: String,
    scope: String,
}

const WATERMARK: &str = "watermark";
const CHECKPOINT: &str = "checkpoint";
const LOCK: &str = "lock";

impl StateStore {
    /// State of the pipeline `scope` (usually the source table name) in `table`.
    pub fn new(client: Client, table: impl Into<String>, scope: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            scope: scope.into(),
        }
    }

    fn pk(&self, kind: &str) -> String {
        format!("{}#{kind}", self.scope)
    }

    fn target(&self, kind: &str) -> String {
        format!("table {} item {}", self.table, self.pk(kind))
    }

    /// The watermark of the last completed run, if any.
    pub async fn load_watermark(&self) -> Result<Option<Versioned<Watermark>>, BackendError> {
        self.load_json(WATERMARK).await
    }

    /// Store a watermark if the stored version is still `expected` (`None`:
    /// only if none exists). Returns the new version.
    pub async fn save_watermark(
        &self,
        wm: &Watermark,
        expected: Option<u64>,
    ) -> Result<u64, BackendError> {
        self.save_json(WATERMARK, wm, expected).await
    }

    /// The checkpoint of an unfinished run, if any.
    pub async fn load_checkpoint<T: DeserializeOwned>(
        &self,
    ) -> Result<Option<Versioned<T>>, BackendError> {
        self.load_json(CHECKPOINT).await
    }

    /// Store a checkpoint if the stored version is still `expected`.
    pub async fn save_checkpoint<T: Serialize>(
        &self,
        cp: &T,
        expected: Option<u64>,
    ) -> Result<u64, BackendError> {
        self.save_json(CHECKPOINT, cp, expected).await
    }

    /// Delete the checkpoint if it is still at version `expected`.
    pub async fn clear_checkpoint(&self, expected: u64) -> Result<(), BackendError> {
        let target = self.target(CHECKPOINT);
        match self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(self.pk(CHECKPOINT)))
            .condition_expression("#ver = :v")
            .expression_attribute_names("#ver", "version")
            .expression_attribute_values(":v", AttributeValue::N(expected.to_string()))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(BackendError::permanent(
                    "DeleteItem",
                    target,
                    format!("checkpoint changed concurrently (expected version {expected})"),
                ))
            }
            Err(e) => Err(backend_error("DeleteItem", target, &e)),
        }
    }

    async fn load_json<T: DeserializeOwned>(
        &self,
        kind: &str,
    ) -> Result<Option<Versioned<T>>, BackendError> {
        let target = self.target(kind);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(self.pk(kind)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend_error("GetItem", &target, &e))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let json = match item.get("value") {
            Some(AttributeValue::S(s)) => s,
            _ => {
                return Err(BackendError::permanent(
                    "GetItem",
                    target,
                    "attribute `value` missing or not a string",
                ))
            }
        };
        let value = serde_json::from_str(json).map_err(|e| {
            BackendError::permanent(
                "GetItem",
                &target,
                format!("attribute `value` is not valid JSON state: {e}"),
            )
        })?;
        Ok(Some(Versioned {
            value,
            version: version_of(&item),
        }))
    }

    async fn save_json<T: Serialize>(
        &self,
        kind: &str,
        value: &T,
        expected: Option<u64>,
    ) -> Result<u64, BackendError> {
        let target = self.target(kind);
        let json = serde_json::to_string(value).map_err(|e| {
            BackendError::permanent("PutItem", &target, format!("cannot serialize state: {e}"))
        })?;
        let next = expected.map_or(1, |v| v + 1);
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(self.pk(kind)))
            .item("value", AttributeValue::S(json))
            .item("version", AttributeValue::N(next.to_string()))
            .item("updated_at", AttributeValue::S(Utc::now().to_rfc3339()));
        put = match expected {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(v) => put
                .condition_expression("#ver = :v")
                .expression_attribute_names("#ver", "version")
                .expression_attribute_values(":v", AttributeValue::N(v.to_string())),
        };
        match put.send().await {
            Ok(_) => Ok(next),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(BackendError::permanent(
                    "PutItem",
                    target,
                    format!(
                        "{kind} was changed by another run (expected {})",
                        expected.map_or("no item".to_owned(), |v| format!("version {v}"))
                    ),
                ))
            }
            Err(e) => Err(backend_error("PutItem", target, &e)),
        }
    }

    /// Take the run lock for `owner` for `ttl`: succeeds when no lock exists,
    /// the existing one has expired, or `owner` already holds it (re-entry by
    /// a resumed run extends it).
    pub async fn acquire_lock(
        &self,
        owner: &str,
        ttl: Duration,
    ) -> Result<LockOutcome, BackendError> {
        let target = self.target(LOCK);
        let now = Utc::now().timestamp();
        let expires_at = now + ttl.as_secs() as i64;
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(self.pk(LOCK)))
            .item("owner", AttributeValue::S(owner.to_owned()))
            .item("expires_at", AttributeValue::N(expires_at.to_string()))
            .item("acquired_at", AttributeValue::S(Utc::now().to_rfc3339()))
            .condition_expression("attribute_not_exists(pk) OR #exp < :now OR #owner = :me")
            .expression_attribute_names("#exp", "expires_at")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .expression_attribute_values(":me", AttributeValue::S(owner.to_owned()))
            .send()
            .await;
        match res {
            Ok(_) => Ok(LockOutcome::Acquired { expires_at }),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                let out = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .key("pk", AttributeValue::S(self.pk(LOCK)))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| backend_error("GetItem", &target, &e))?;
                let item = out.item.unwrap_or_default();
                let owner = match item.get("owner") {
                    Some(AttributeValue::S(s)) => s.clone(),
                    _ => "<unknown>".to_owned(),
                };
                let expires_at = match item.get("expires_at") {
                    Some(AttributeValue::N(n)) => n.parse().unwrap_or(0),
                    _ => 0,
                };
                Ok(LockOutcome::Held { owner, expires_at })
            }
            Err(e) => Err(backend_error("PutItem", target, &e)),
        }
    }

    /// Release the lock if `owner` holds it. Returns whether it was released
    /// (false: it had expired and someone else took it, or it was gone).
    pub async fn release_lock(&self, owner: &str) -> Result<bool, BackendError> {
        let res = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(self.pk(LOCK)))
            .condition_expression("#owner = :me")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":me", AttributeValue::S(owner.to_owned()))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(backend_error("DeleteItem", self.target(LOCK), &e)),
        }
    }
}

fn version_of(item: &HashMap<String, AttributeValue>) -> u64 {
    match item.get("version") {
        Some(AttributeValue::N(n)) => n.parse().unwrap_or(0),
        _ => 0,
    }
}
