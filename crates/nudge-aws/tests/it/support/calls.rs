//! Counting the DynamoDB calls a store makes: an SDK interceptor that sees every request a
//! client sends (retries included) and counts it by operation.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;

/// Requests sent, by operation (`GetItem`, `BatchGetItem`, ...).
#[derive(Debug, Clone, Default)]
pub(crate) struct CallCounter(Arc<Mutex<BTreeMap<String, u64>>>);

impl CallCounter {
    /// The counts since the last call, emptied.
    pub(crate) fn take(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // `X-Amz-Target: DynamoDB_20120810.<Operation>`.
        let operation = context
            .request()
            .headers()
            .get("x-amz-target")
            .and_then(|target| target.rsplit('.').next())
            .unwrap_or("unknown")
            .to_string();
        let mut calls = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *calls.entry(operation).or_default() += 1;
        Ok(())
    }
}

/// A DynamoDB client for the moto server whose calls the returned counter counts.
pub(crate) fn counted_client() -> (aws_sdk_dynamodb::Client, CallCounter) {
    let counter = CallCounter::default();
    let config = aws_sdk_dynamodb::config::Builder::from(&super::sdk_config())
        .interceptor(counter.clone())
        .build();
    (aws_sdk_dynamodb::Client::from_conf(config), counter)
}
