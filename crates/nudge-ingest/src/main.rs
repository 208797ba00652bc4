//! nudge's ingest function: the HTTP API (tracking, inbox, unsubscribe, admin) behind
//! API Gateway.

use nudge_aws::lambda::{self, ingest, Deps, RulesLoad};

// Lambda hands an environment one event at a time and the handlers wait on AWS calls, which
// one thread interleaves; a multi-threaded runtime would only start worker threads at every
// cold start (~0.2 ms).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    lambda::init_tracing();
    // The rule set loads on its own thread while the SDK configuration loads.
    let rules = RulesLoad::start();
    let api = Deps::from_env().await?.api(rules)?;
    lambda_http::run(lambda_http::service_fn(|req| ingest::handler(&api, req))).await
}
