//! The Lambda edges: every sample event through its handler, the demo journey through all
//! four functions, and schedule-delay's stream backstop.

mod end_to_end;
mod evaluate_calls;
mod sample_events;
mod schedule;
