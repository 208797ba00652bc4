//! The table's key schema, due index and TTL setting, for emulators and tests (on AWS the
//! SAM template creates the same table).

use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;
use nudge_service::ports::StoreError;

use super::{backend, DUE_INDEX};

/// How long `create_table` waits for the new table to become active.
const TABLE_CREATION_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Creates `table` (on-demand, keys `pk`/`sk`, the sparse `due` index on `gsi1pk`/`gsi1sk`)
/// and turns on TTL on `ttl`.
pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
    let build = |e| StoreError::backend("dynamodb table definition", false, e);
    let attribute = |name: &str, kind| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
            .map_err(build)
    };
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(build)
    };
    let due_index = GlobalSecondaryIndex::builder()
        .index_name(DUE_INDEX)
        .key_schema(key("gsi1pk", KeyType::Hash)?)
        .key_schema(key("gsi1sk", KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(build)?;
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("pk", ScalarAttributeType::S)?)
        .attribute_definitions(attribute("sk", ScalarAttributeType::S)?)
        .attribute_definitions(attribute("gsi1pk", ScalarAttributeType::S)?)
        .attribute_definitions(attribute("gsi1sk", ScalarAttributeType::N)?)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .global_secondary_indexes(due_index)
        .send()
        .await
        .map_err(backend("dynamodb create table"))?;
    client
        .wait_until_table_exists()
        .table_name(table)
        .wait(TABLE_CREATION_WAIT)
        .await
        .map_err(|e| StoreError::backend("dynamodb wait for table", true, e))?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("ttl")
                .build()
                .map_err(build)?,
        )
        .send()
        .await
        .map_err(backend("dynamodb enable ttl"))?;
    Ok(())
}
