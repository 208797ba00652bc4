//! The inputs of nudge's four Lambda functions and how each is read: API Gateway requests
//! (ingest), bus events from EventBridge (evaluate, deliver, schedule-delay), and
//! schedule-delay's sweeps, delay-queue batches and table-stream batches.
//!
//! Apart from the AWS adapters so that reading an input needs no AWS SDK: the handlers in
//! `nudge-aws` use these, and so do the fuzz targets (`fuzz/`), which would otherwise build
//! the SDK for code that never calls it.

pub mod api_gateway;
pub mod schedule_input;
pub mod stream;
pub mod wakeup;

/// The typed envelopes, as the handlers and the fuzz targets name them.
pub use aws_lambda_events;
pub use lambda_http;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use nudge_service::bus::BusEvent;

/// A bus event as EventBridge hands it to evaluate, deliver and schedule-delay.
pub type BusEnvelope = EventBridgeEvent<BusEvent>;
