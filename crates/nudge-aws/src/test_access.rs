//! What the crate's integration tests (`tests/it`) reach that the public API does not offer:
//! the table's partition keys and a store's client and shard count (to read and plant raw
//! items, and to open a second store on the same table), and the bus's PutEvents entries (to
//! send a malformed one beside good ones). Built only with the `testing` feature, which the
//! crate's dev-dependency on itself turns on for its tests; the functions never see it.

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use nudge_service::bus::BusEvent;
use nudge_service::ports::StoreError;

use crate::dynamodb::DynamoDbStore;
use crate::eventbridge::EventBridgeBus;

/// The partition key of everything stored for a user.
pub fn user_pk(user_id: &str) -> String {
    crate::dynamodb::user_pk(user_id)
}

/// The DynamoDB client of a store (built now if the store builds it on first use).
pub fn dynamodb_client(store: &DynamoDbStore) -> &aws_sdk_dynamodb::Client {
    &store.client
}

/// How many index partitions a store spreads timers over.
pub fn timer_shards(store: &DynamoDbStore) -> u32 {
    store.shards
}

/// The event bus a bus publishes to.
pub fn bus_name(bus: &EventBridgeBus) -> &str {
    &bus.bus_name
}

/// The PutEvents entry the bus makes of an event.
pub fn entry(bus: &EventBridgeBus, event: &BusEvent) -> PutEventsRequestEntry {
    bus.entry(event)
}

/// Sends entries as the bus sends those of its events: in as few calls as the limits allow,
/// resending the ones EventBridge did not take.
pub async fn send_entries(
    bus: &EventBridgeBus,
    entries: Vec<PutEventsRequestEntry>,
) -> Result<(), StoreError> {
    bus.send_entries(entries).await
}
