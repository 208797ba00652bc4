//! nudge's four handlers (ingest, evaluate, schedule-delay, deliver) over ports that adapters
//! implement (SQLite and an in-process bus for `nudge serve`; DynamoDB, EventBridge and SES v2
//! on AWS), the HTTP API contract both serve, and the bus events they exchange.

pub mod api;
pub mod bus;
pub mod constant_time;
pub mod cors;
pub mod deliver;
pub mod email;
pub mod email_tracking;
pub mod error;
pub mod evaluate;
pub mod ingest;
pub mod metrics;
pub mod ports;
pub mod rules_dir;
pub mod schedule;
pub mod signing;
pub mod webhook;
