//! nudge's ingest function: the HTTP API (tracking, inbox, unsubscribe, admin) behind
//! API Gateway.

use nudge_aws::lambda::{self, ingest, Deps};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda::init_tracing();
    let api = Deps::from_env().await?.api()?;
    lambda_http::run(lambda_http::service_fn(|req| ingest::handler(&api, req))).await
}
