//! nudge's deliver function: decided sends from the bus, out through SES, the in-app inbox
//! or signed webhooks.

use nudge_aws::lambda::{self, deliver, Deps, RulesLoad};

// Lambda hands an environment one event at a time and the handlers wait on AWS calls, which
// one thread interleaves; a multi-threaded runtime would only start worker threads at every
// cold start (~0.2 ms).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    // The rule set loads on its own thread while the SDK configuration loads.
    let rules = RulesLoad::start();
    let deliver = Deps::from_env().await?.deliver(rules)?;
    lambda_runtime::run(lambda_runtime::service_fn(|event| {
        deliver::handler(&deliver, event)
    }))
    .await
}
