//! The deliver function: "Message Requested" from the bus.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{Error, LambdaEvent};
use nudge_service::bus::BusEvent;
use nudge_service::deliver::Deliver;
use nudge_service::ports::{Bus, Clock, DeliveryStore, InboxStore, Mailer, WebhookTransport};

use super::{bus_span, on_bus_event};

/// Handles one bus event. Retryable failures fail the invocation (the bus event comes again,
/// and the delivery log makes the retry take the send over rather than send twice); others
/// are logged and dropped.
pub async fn handler<S, M, W, B, C>(
    deliver: &Deliver<S, M, W, B, C>,
    event: LambdaEvent<EventBridgeEvent<BusEvent>>,
) -> Result<(), Error>
where
    S: DeliveryStore + InboxStore,
    M: Mailer,
    W: WebhookTransport,
    B: Bus,
    C: Clock,
{
    let detail = &event.payload.detail;
    on_bus_event(
        bus_span!("deliver"),
        &event.payload,
        Box::pin(deliver.handle(detail)),
    )
    .await
}
