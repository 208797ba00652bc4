//! DynamoDB, EventBridge and SES v2 adapters of the nudge ports, and the Lambda handler edges.

pub mod config;
pub mod dynamodb;
pub mod emf;
pub mod eventbridge;
pub mod lambda;
pub mod sdk_error;
pub mod ses;
#[cfg(feature = "testing")]
pub mod test_access;
