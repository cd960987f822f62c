//! The lake on Amazon S3, as a core [`ObjectSink`].
//!
//! Keys come from core ([`etl_core::output::full_key`]), so the layout is
//! `s3://bucket/prefix/sentiment/dt=YYYY-MM-DD/part-<content-id>.parquet` in
//! both backends. One PutObject is atomic and enough for the usual file of a
//! few hundred KB; bodies over the multipart threshold (16 MiB by default) go
//! up in parts, and a failed multipart upload is aborted so no invisible
//! parts keep costing storage.

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use bytes::Bytes;
use etl_core::output::full_key;
use etl_core::{BackendError, ObjectSink};
use tracing::warn;

use crate::error::backend_error;

/// Bodies larger than this use multipart upload.
pub const DEFAULT_MULTIPART_THRESHOLD: usize = 16 * 1024 * 1024;

/// Part size for multipart uploads (S3's minimum is 5 MiB).
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;

/// A bucket and prefix. See the module docs.
#[derive(Debug, Clone)]
pub struct S3Sink {
    client: Client,
    bucket: String,
    prefix: String,
    multipart_threshold: usize,
    part_size: usize,
}

impl S3Sink {
    /// Objects under `s3://bucket/prefix/sentiment/`.
    pub fn new(client: Client, bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            prefix: prefix.into(),
            multipart_threshold: DEFAULT_MULTIPART_THRESHOLD,
            part_size: DEFAULT_PART_SIZE,
        }
    }

    /// Change when and how multipart upload is used (part size at least 5 MiB
    /// on real S3).
    pub fn with_multipart(mut self, threshold: usize, part_size: usize) -> Self {
        self.multipart_threshold = threshold;
        self.part_size = part_size.max(1);
        self
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The full object key of a table-relative key.
    pub fn key(&self, relative: &str) -> String {
        full_key(&self.prefix, relative)
    }

    /// The table root, `s3://bucket/prefix/sentiment/` (Glue's table location).
    pub fn table_location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key(""))
    }

    /// Read an object back (tests and tooling).
    pub async fn get(&self, relative: &str) -> Result<Bytes, BackendError> {
        let key = self.key(relative);
        let target = format!("s3://{}/{key}", self.bucket);
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| backend_error("GetObject", &target, &e))?;
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| BackendError::retryable("GetObject", &target, e))?;
        Ok(body.into_bytes())
    }

    async fn put_multipart(
        &self,
        key: &str,
        body: Bytes,
        target: &str,
    ) -> Result<(), BackendError> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| backend_error("CreateMultipartUpload", target, &e))?;
        let upload_id = created.upload_id.ok_or_else(|| {
            BackendError::permanent("CreateMultipartUpload", target, "no upload id in response")
        })?;
        match self.upload_parts(key, &upload_id, body, target).await {
            Ok(()) => Ok(()),
            Err(e) => {
                if let Err(abort) = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .send()
                    .await
                {
                    warn!(message = "Could not abort multipart upload.", target, upload_id, error = %aws_smithy_types::error::display::DisplayErrorContext(&abort));
                }
                Err(e)
            }
        }
    }

    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        body: Bytes,
        target: &str,
    ) -> Result<(), BackendError> {
        let mut parts = Vec::new();
        let mut offset = 0;
        let mut number = 1;
        while offset < body.len() {
            let end = (offset + self.part_size).min(body.len());
            let out = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(body.slice(offset..end)))
                .send()
                .await
                .map_err(|e| backend_error("UploadPart", format!("{target} part {number}"), &e))?;
            parts.push(
                CompletedPart::builder()
                    .set_e_tag(out.e_tag)
                    .part_number(number)
                    .build(),
            );
            offset = end;
            number += 1;
        }
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| backend_error("CompleteMultipartUpload", target, &e))?;
        Ok(())
    }
}

#[async_trait]
impl ObjectSink for S3Sink {
    async fn put(&self, key: &str, body: Bytes) -> Result<(), BackendError> {
        let full = self.key(key);
        let target = format!("s3://{}/{full}", self.bucket);
        if body.len() > self.multipart_threshold {
            return self.put_multipart(&full, body, &target).await;
        }
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&full)
            .content_type("application/vnd.apache.parquet")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| backend_error("PutObject", &target, &e))?;
        Ok(())
    }

    fn location(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.key(key))
    }
}
