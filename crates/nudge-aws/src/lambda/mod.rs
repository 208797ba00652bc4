//! The Lambda edges: one module per function, each with a `handler` that takes the typed
//! AWS event and hands it to the service layer; [`Deps`] builds what they need once per cold
//! start. The binaries (`crates/nudge-{ingest,evaluate,schedule-delay,deliver}`) only wire
//! these to the runtime.

pub mod deliver;
pub mod deps;
pub mod evaluate;
pub mod ingest;
pub mod schedule;

pub use deps::{AwsApi, AwsDeliver, AwsEvaluate, AwsSchedule, Deps, InitError, RulesLoad};

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use nudge_service::bus::BusEvent;
use nudge_service::error::HandlerError;
use tracing::{error, field, Instrument, Span};
use tracing_subscriber::filter::EnvFilter;

/// Log filter when neither `RUST_LOG` nor `AWS_LAMBDA_LOG_LEVEL` is set.
const DEFAULT_FILTER: &str = "warn,nudge=info";

/// The log filter: `RUST_LOG` (per-crate directives, what the template sets), else Lambda's
/// `AWS_LAMBDA_LOG_LEVEL` (one level for everything), else [`DEFAULT_FILTER`].
pub fn log_filter(lookup: impl Fn(&str) -> Option<String>) -> String {
    let set = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
    set("RUST_LOG")
        .or_else(|| set("AWS_LAMBDA_LOG_LEVEL").map(|l| l.to_ascii_lowercase()))
        .unwrap_or_else(|| DEFAULT_FILTER.to_string())
}

/// JSON logs on stdout, one object a line: no ANSI colours and no timestamp (CloudWatch
/// stamps every line), each line with the fields of the spans it is in (the runtime's
/// request id, the user and decision ids of the handlers' spans).
pub fn init_tracing() {
    let filter = EnvFilter::try_new(log_filter(|n| std::env::var(n).ok()))
        .unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_ansi(false)
        .without_time()
        .with_target(true)
        .with_current_span(false)
        .with_span_list(true)
        .flatten_event(true)
        .with_writer(std::io::stdout)
        .init();
}

/// The span of one bus event's handling, named after the function, with the fields
/// [`on_bus_event`] records.
macro_rules! bus_span {
    ($name:literal) => {
        tracing::info_span!(
            $name,
            detail_type = tracing::field::Empty,
            event_id = tracing::field::Empty,
            user_id = tracing::field::Empty,
            decision_id = tracing::field::Empty,
        )
    };
}
pub(crate) use bus_span;

/// Runs a function's handler on one bus event inside `span` (made by [`bus_span!`]): the
/// event's ids recorded on the span, the outcome settled ([`settle`]).
/// The handler's future comes boxed (`Box::pin`): the store's and SDK's futures nest deeply
/// enough to overflow rustc's layout query in the binaries that run the handlers.
async fn on_bus_event(
    span: Span,
    event: &EventBridgeEvent<BusEvent>,
    handle: BoxedHandling<'_>,
) -> Result<(), lambda_runtime::Error> {
    record_ids(&span, event);
    let result = handle.instrument(span.clone()).await;
    span.in_scope(|| settle(result))
}

/// A handler's work on one bus event, type-erased.
type BoxedHandling<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), HandlerError>> + Send + 'a>>;

/// Records the ids of a bus event on its span: the user, and the decision for sends and
/// their outcomes.
fn record_ids(span: &Span, event: &EventBridgeEvent<BusEvent>) {
    span.record("detail_type", event.detail_type.as_str());
    if let Some(id) = event.id.as_deref() {
        span.record("event_id", id);
    }
    if let Some(user) = event.detail.user_id() {
        span.record("user_id", user);
    }
    let decision = match &event.detail {
        BusEvent::MessageRequested(m) => Some(m.send.id),
        BusEvent::MessageSent(r) | BusEvent::MessageSuppressed(r) | BusEvent::MessageFailed(r) => {
            Some(r.id)
        }
        _ => None,
    };
    if let Some(id) = decision {
        span.record("decision_id", field::display(id));
    }
}

/// Maps a bus handler's outcome to the function's: a retryable failure fails the invocation,
/// so Lambda's async retries (then the function's DLQ) deliver the event again; any other
/// failure is logged and the event dropped, because delivering it again would fail the same
/// way and only delay the events behind it.
fn settle(result: Result<(), HandlerError>) -> Result<(), lambda_runtime::Error> {
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.is_retryable() => Err(Box::new(e)),
        Err(e) => {
            error!(error = %e, retryable = false, "event dropped: retrying cannot help");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_wins_then_lambda_level_then_default() {
        let vars = |rust: Option<&str>, lambda: Option<&str>| {
            let (rust, lambda) = (rust.map(String::from), lambda.map(String::from));
            move |name: &str| match name {
                "RUST_LOG" => rust.clone(),
                "AWS_LAMBDA_LOG_LEVEL" => lambda.clone(),
                _ => None,
            }
        };
        assert_eq!(
            log_filter(vars(Some("warn,nudge=debug"), Some("ERROR"))),
            "warn,nudge=debug"
        );
        assert_eq!(log_filter(vars(None, Some("DEBUG"))), "debug");
        assert_eq!(log_filter(vars(Some(" "), None)), DEFAULT_FILTER);
        for f in [DEFAULT_FILTER, "debug", "warn,nudge=info"] {
            EnvFilter::try_new(f).unwrap();
        }
    }
}
