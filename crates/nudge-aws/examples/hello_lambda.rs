//! The floor for cold-start figures: a bare `lambda_runtime` function that answers every
//! event with a greeting. `scripts/bench-lambda.sh` builds it with the same profile and
//! target as the four functions and measures it beside them (BENCHMARKS.md).

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let name = event.payload.get("name").and_then(Value::as_str);
    Ok(json!({ "message": format!("hello, {}", name.unwrap_or("world")) }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
