//! AWS SDK failures: which are worth retrying, and an error that prints the whole story.

use std::error::Error;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// Service error codes that mean "not now" rather than "never" (throttling, capacity, and
/// the services' internal failures).
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "TransactionInProgressException",
    "InternalServerError",
    "InternalServerErrorException",
    "InternalFailure",
    "InternalException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
];

/// Whether an error code (of a service error or of a failed PutEvents entry) is transient.
pub fn is_transient_code(code: &str) -> bool {
    TRANSIENT_CODES.contains(&code)
}

/// Whether trying the same call again may succeed: throttling, 5xx answers, timeouts,
/// connection failures and garbled answers may; validation and other client errors may not.
pub fn is_retryable<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(ctx) => {
            ctx.raw().status().is_server_error() || ctx.err().code().is_some_and(is_transient_code)
        }
        // Construction failures (a bad request built by us) and anything the SDK adds later.
        _ => false,
    }
}

/// The error code of a service error (`ConditionalCheckFailedException`, ...).
pub fn error_code<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Option<&str> {
    match err {
        SdkError::ServiceError(ctx) => ctx.err().code(),
        _ => None,
    }
}

/// An AWS SDK failure whose `Display` includes the service's code and message (the SDK's own
/// says only "service error").
#[derive(Debug)]
pub struct SdkFailure(Box<dyn Error + Send + Sync>);

impl SdkFailure {
    /// Wraps an SDK error.
    pub fn new<E>(err: SdkError<E, HttpResponse>) -> Self
    where
        E: Error + Send + Sync + 'static,
    {
        SdkFailure(Box::new(err))
    }
}

impl std::fmt::Display for SdkFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", DisplayErrorContext(&*self.0))
    }
}

impl Error for SdkFailure {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.0)
    }
}
