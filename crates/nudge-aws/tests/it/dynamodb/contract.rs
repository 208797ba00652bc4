//! The storage contract (`nudge-store-contract`) on DynamoDB: every check on a fresh table
//! on moto. Another handle is a store with a client of its own that reaches moto through
//! the one-at-a-time proxy, so that racing conditional writes are applied whole, as
//! DynamoDB applies them (see `support::one_at_a_time`).

use nudge_aws::dynamodb::DynamoDbStore;
use nudge_aws::test_access::timer_shards;
use nudge_store_contract::Backend;

use crate::support;

/// Fresh tables on the test process's moto server.
struct Moto;

impl Backend for Moto {
    type Store = DynamoDbStore;

    async fn fresh(&self) -> DynamoDbStore {
        let (client, table) = support::table().await;
        DynamoDbStore::new(client, table, 4)
    }

    fn another(&self, store: &DynamoDbStore) -> DynamoDbStore {
        let client = aws_sdk_dynamodb::Client::new(&support::one_at_a_time_sdk_config());
        DynamoDbStore::new(client, store.table(), timer_shards(store))
    }
}

nudge_store_contract::storage_contract!(Moto);
