//! DynamoDB, EventBridge, SES v2 and SQS adapters of the nudge ports, the timer tiers of
//! schedule-delay, and the Lambda handler edges.

pub mod config;
pub mod dynamodb;
pub mod emf;
pub mod eventbridge;
pub mod lambda;
pub mod sdk_error;
pub mod ses;
pub mod sqs;
#[cfg(feature = "testing")]
pub mod test_access;
pub mod timers;
