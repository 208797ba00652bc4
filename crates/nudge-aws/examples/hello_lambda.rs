//! The floor for cold-start figures: a bare `lambda_runtime` function that answers every
//! event with a greeting. `scripts/bench-lambda.sh` builds it with the same profile and
//! target as the four functions and measures it beside them (BENCHMARKS.md).
//!
//! It runs on the multi-threaded tokio runtime of `#[tokio::main]`, as lambda_runtime's own
//! examples do; `HELLO_TOKIO_FLAVOR=current_thread` runs it on the current-thread runtime the
//! four functions use, so that the benchmark can show both floors.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let name = event.payload.get("name").and_then(Value::as_str);
    Ok(json!({ "message": format!("hello, {}", name.unwrap_or("world")) }))
}

fn main() -> Result<(), Error> {
    let current_thread = std::env::var("HELLO_TOKIO_FLAVOR").is_ok_and(|f| f == "current_thread");
    let mut runtime = if current_thread {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    // What #[tokio::main] builds.
    runtime
        .enable_all()
        .build()?
        .block_on(lambda_runtime::run(service_fn(handler)))
}
