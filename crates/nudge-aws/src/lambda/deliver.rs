//! The deliver function: "Message Requested" from the bus.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{Error, LambdaEvent};
use nudge_service::bus::BusEvent;
use nudge_service::deliver::Deliver;
use nudge_service::ports::{Bus, Clock, DeliveryStore, InboxStore, Mailer, WebhookTransport};
use tracing::{field, info_span, Instrument};

use super::{record_ids, settle};

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
    let span = info_span!(
        "deliver",
        detail_type = field::Empty,
        event_id = field::Empty,
        user_id = field::Empty,
        decision_id = field::Empty,
    );
    record_ids(&span, &event.payload);
    // Boxed: the store's and SDK's futures nest deeply enough to overflow rustc's layout
    // query in the binary that runs this one.
    let result = Box::pin(
        deliver
            .handle(&event.payload.detail)
            .instrument(span.clone()),
    )
    .await;
    span.in_scope(|| settle(result))
}
