//! The evaluate function: "Events Accepted" and "Timer Fired" from the bus (EventBridge
//! invokes it asynchronously with the typed event).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{Error, LambdaEvent};
use nudge_service::bus::BusEvent;
use nudge_service::evaluate::Evaluate;
use nudge_service::ports::{Bus, Clock, UserStore};
use tracing::{field, info_span, Instrument};

use super::{record_ids, settle};

/// Handles one bus event. Retryable failures fail the invocation (the bus event comes again);
/// others are logged and dropped.
pub async fn handler<S: UserStore, B: Bus, C: Clock>(
    evaluate: &Evaluate<S, B, C>,
    event: LambdaEvent<EventBridgeEvent<BusEvent>>,
) -> Result<(), Error> {
    let span = info_span!(
        "evaluate",
        detail_type = field::Empty,
        event_id = field::Empty,
        user_id = field::Empty,
        decision_id = field::Empty,
    );
    record_ids(&span, &event.payload);
    // Boxed: the store's and SDK's futures nest deeply enough to overflow rustc's layout
    // query in the binary that runs this one.
    let result = Box::pin(
        evaluate
            .handle(&event.payload.detail)
            .instrument(span.clone()),
    )
    .await;
    span.in_scope(|| settle(result))
}
