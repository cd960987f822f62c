//! Turning SDK errors into core's [`BackendError`] with the right [`Retry`] class.
//!
//! Every adapter funnels its `SdkError`s through [`backend_error`], so "is this
//! worth retrying?" has one answer across services: throttling, 5xx, timeouts
//! and dropped connections are retryable; everything else (validation, access
//! denied, missing resources) is permanent.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use etl_core::{BackendError, Retry};

/// Error codes that mean "slow down" or "try again" on any AWS service.
const RETRYABLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "RequestThrottled",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeoutException",
    "PriorRequestNotComplete",
    "TransactionInProgressException",
    "ConcurrentModificationException",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "InternalServerException",
    "InternalServiceException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "INTERNAL_SERVER_ERROR",
];

/// Whether a service error code is of the throttling/transient kind.
pub(crate) fn is_retryable_code(code: &str) -> bool {
    RETRYABLE_CODES.contains(&code)
}

/// The retry class of an SDK error.
pub(crate) fn classify<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Retry {
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => Retry::Retryable,
        SdkError::ResponseError(e) => status_class(e.raw().status().as_u16()),
        SdkError::ServiceError(e) => {
            if e.err().code().is_some_and(is_retryable_code) {
                Retry::Retryable
            } else {
                status_class(e.raw().status().as_u16())
            }
        }
        // Construction failures are bugs or bad configuration.
        _ => Retry::Permanent,
    }
}

fn status_class(status: u16) -> Retry {
    if status == 429 || status >= 500 {
        Retry::Retryable
    } else {
        Retry::Permanent
    }
}

/// The service error code, when the error came from the service.
pub(crate) fn code<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Option<&str> {
    match err {
        SdkError::ServiceError(e) => e.err().code(),
        _ => None,
    }
}

/// Convert an SDK error into a [`BackendError`] naming the operation and target.
pub(crate) fn backend_error<E>(
    operation: &str,
    target: impl Into<String>,
    err: &SdkError<E, HttpResponse>,
) -> BackendError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    // The SDK error is borrowed (callers still read its code); its whole
    // chain is in the message, which is what operators search logs for.
    BackendError::new(classify(err), operation, target, DisplayErrorContext(err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_server_codes_are_retryable() {
        for c in [
            "ThrottlingException",
            "TooManyRequestsException",
            "ProvisionedThroughputExceededException",
        ] {
            assert!(is_retryable_code(c), "{c}");
        }
        assert!(!is_retryable_code("ValidationException"));
        assert!(!is_retryable_code("AccessDeniedException"));
        assert_eq!(status_class(503), Retry::Retryable);
        assert_eq!(status_class(429), Retry::Retryable);
        assert_eq!(status_class(400), Retry::Permanent);
    }
}
