//! The lake as a Delta table on S3 (`TABLE_FORMAT=delta`): the same table
//! location the Hive layout uses (`s3://bucket/prefix/sentiment/`), its log
//! committed with S3's conditional PUT (`If-None-Match`), no lock table.
//!
//! In Lambda the object store takes region and credentials from the
//! environment (the role's session), as the SDK does. With an endpoint
//! override (a local emulator), it is told the endpoint, the region and the
//! SDK configuration's own credentials, so it never looks further (no
//! instance metadata lookup).

use std::collections::HashMap;

use aws_types::SdkConfig;
use etl_core::BackendError;
use etl_delta::DeltaLake;

/// Object store settings for a table reached with `config`.
pub async fn storage_options(config: &SdkConfig) -> HashMap<String, String> {
    use aws_credential_types::provider::ProvideCredentials;
    let mut options = HashMap::new();
    if let Some(region) = config.region() {
        options.insert("AWS_REGION".to_owned(), region.to_string());
    }
    if let Some(endpoint) = config.endpoint_url() {
        options.insert("AWS_ENDPOINT_URL".to_owned(), endpoint.to_owned());
        if endpoint.starts_with("http://") {
            options.insert("AWS_ALLOW_HTTP".to_owned(), "true".to_owned());
        }
        if let Some(provider) = config.credentials_provider() {
            if let Ok(c) = provider.provide_credentials().await {
                options.insert("AWS_ACCESS_KEY_ID".to_owned(), c.access_key_id().to_owned());
                options.insert(
                    "AWS_SECRET_ACCESS_KEY".to_owned(),
                    c.secret_access_key().to_owned(),
                );
                if let Some(token) = c.session_token() {
                    options.insert("AWS_SESSION_TOKEN".to_owned(), token.to_owned());
                }
            }
        }
    }
    options
}

/// The Delta table at `location` (`s3://bucket/prefix/sentiment/`).
pub async fn delta_lake(
    config: &SdkConfig,
    location: &str,
    include_text: bool,
) -> Result<DeltaLake, BackendError> {
    let url = url::Url::parse(location)
        .map_err(|e| BackendError::permanent_from("open table", location, e))?;
    Ok(DeltaLake::new(
        url,
        storage_options(config).await,
        include_text,
    ))
}

/// The Delta table already at `location`, as it is (maintenance).
pub async fn existing_delta_lake(
    config: &SdkConfig,
    location: &str,
) -> Result<DeltaLake, BackendError> {
    let url = url::Url::parse(location)
        .map_err(|e| BackendError::permanent_from("open table", location, e))?;
    Ok(DeltaLake::existing(url, storage_options(config).await))
}
