//! nudge's domain: Segment-spec events, the rule language, per-user behavioral state and the
//! trigger engine. Nothing here performs I/O: time comes in as arguments, storage and sending
//! belong to adapters.

pub mod engine;
pub mod event;
pub mod explain;
pub mod insights;
pub mod journey;
pub mod plan;
pub mod render;
pub mod replay;
pub mod rules;
pub mod state;
pub mod template;
pub mod time;

#[cfg(test)]
mod test_support;
