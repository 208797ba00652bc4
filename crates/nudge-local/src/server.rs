//! The HTTP server of `nudge serve`: axum in front of the framework-free API, plus
//! `/metrics` in the Prometheus text format.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use nudge_service::api::error_reply;
use nudge_service::ingest::MAX_BATCH_BYTES;
use nudge_service::metrics::Metrics;
use tokio::net::TcpListener;
use tracing::info;

use crate::node::Handlers;

/// Serves until ctrl-c or SIGTERM.
pub async fn run(listener: TcpListener, handlers: Arc<Handlers>) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .fallback(api)
        .with_state(handlers);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await
}

async fn metrics(State(h): State<Arc<Handlers>>) -> Response {
    h.metrics.queue_depth(h.bus.depth());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        h.metrics.encode(),
    )
        .into_response()
}

async fn api(State(h): State<Arc<Handlers>>, req: Request<Body>) -> Response {
    let (parts, body) = req.into_parts();
    // One byte over the largest limit is enough to know a body is too large.
    let bytes = match axum::body::to_bytes(body, MAX_BATCH_BYTES + 1).await {
        Ok(b) => b,
        Err(_) => {
            let r = error_reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                &format!("request body is over the {MAX_BATCH_BYTES}-byte limit"),
            );
            return r.map(Body::from);
        }
    };
    let reply = h.api.handle(Request::from_parts(parts, bytes)).await;
    reply.map(Body::from)
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    info!("shutting down; queued events are kept for the next start");
}
