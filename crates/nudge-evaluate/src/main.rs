//! nudge's evaluate function: accepted events and fired timers from the bus.

use nudge_aws::lambda::{self, evaluate, Deps, RulesLoad};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    // The rule set loads on its own thread while the SDK configuration loads.
    let rules = RulesLoad::start();
    let evaluate = Deps::from_env().await?.evaluate(rules)?;
    lambda_runtime::run(lambda_runtime::service_fn(|event| {
        evaluate::handler(&evaluate, event)
    }))
    .await
}
