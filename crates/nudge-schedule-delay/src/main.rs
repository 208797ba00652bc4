//! nudge's schedule-delay function: timer requests from the bus, the minute sweeper, and TTL
//! deletions on the table's stream.

use nudge_aws::lambda::{self, schedule, Deps};

// Lambda hands an environment one event at a time and the handlers wait on AWS calls, which
// one thread interleaves; a multi-threaded runtime would only start worker threads at every
// cold start (~0.2 ms).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let schedule = Deps::from_env().await?.schedule();
    lambda_runtime::run(lambda_runtime::service_fn(|event| {
        schedule::handler(&schedule, event)
    }))
    .await
}
