//! nudge's domain: Segment-spec events, the rule language, per-user behavioral state and the
//! trigger engine. Nothing here performs I/O: time comes in as arguments, storage and sending
//! belong to adapters.

pub mod event;
pub mod plan;
pub mod template;
pub mod time;
pub mod rules;
pub mod engine;
pub mod state;
pub mod render;
pub mod replay;
