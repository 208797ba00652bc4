//! The evaluate function: "Events Accepted" and "Timer Fired" from the bus (EventBridge
//! invokes it asynchronously with the typed event).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{Error, LambdaEvent};
use nudge_service::bus::BusEvent;
use nudge_service::evaluate::Evaluate;
use nudge_service::ports::{Bus, Clock, UserStore};

use super::{bus_span, on_bus_event};

/// Handles one bus event. Retryable failures fail the invocation (the bus event comes again);
/// others are logged and dropped.
pub async fn handler<S: UserStore, B: Bus, C: Clock>(
    evaluate: &Evaluate<S, B, C>,
    event: LambdaEvent<EventBridgeEvent<BusEvent>>,
) -> Result<(), Error> {
    let detail = &event.payload.detail;
    on_bus_event(
        bus_span!("evaluate"),
        &event.payload,
        Box::pin(evaluate.handle(detail)),
    )
    .await
}
