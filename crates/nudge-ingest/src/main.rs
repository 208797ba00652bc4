//! nudge's ingest function: the HTTP API (tracking, inbox, unsubscribe, admin) behind
//! API Gateway.

use nudge_aws::lambda::{self, ingest, Deps, RulesLoad};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda::init_tracing();
    // The rule set loads on its own thread while the SDK configuration loads.
    let rules = RulesLoad::start();
    let api = Deps::from_env().await?.api(rules)?;
    lambda_http::run(lambda_http::service_fn(|req| ingest::handler(&api, req))).await
}
