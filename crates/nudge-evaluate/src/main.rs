//! nudge's evaluate function: accepted events and fired timers from the bus.

use nudge_aws::lambda::{self, evaluate, Deps};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let evaluate = Deps::from_env().await?.evaluate()?;
    lambda_runtime::run(lambda_runtime::service_fn(|event| {
        evaluate::handler(&evaluate, event)
    }))
    .await
}
