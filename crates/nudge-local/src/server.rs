//! The HTTP server of `nudge serve`: axum in front of the framework-free API, plus
//! `/metrics` in the Prometheus text format.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use nudge_service::api::error_reply;
use nudge_service::cors;
use nudge_service::ingest::MAX_BATCH_BYTES;
use nudge_service::metrics::Metrics;
use tokio::net::TcpListener;
use tracing::info;

use crate::handlers::Handlers;
use crate::inbox_stream::inbox_stream;

/// Serves until ctrl-c or SIGTERM; with `demo`, also the demo page.
pub async fn run(
    listener: TcpListener,
    handlers: Arc<Handlers>,
    demo: bool,
) -> std::io::Result<()> {
    let mut app = Router::new()
        .route("/metrics", get(metrics))
        // Other methods (the CORS preflight among them) go to the API like any path.
        .route(
            "/v1/users/{user}/inbox/stream",
            get(inbox_stream).fallback(api),
        )
        .fallback(api);
    if demo {
        app = app.merge(crate::demo::routes());
    }
    let app = app.with_state(handlers);
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
    let mut refusal = match read_body(body, MAX_BATCH_BYTES).await {
        Ok(bytes) => {
            let reply = h.api.handle(Request::from_parts(parts, bytes)).await;
            return reply.map(Body::from);
        }
        Err(e) => refused_body(e),
    };
    // A page that sent too much must be able to read why (the API adds this to its answers).
    cors::allow_origin(&parts.headers, refusal.headers_mut());
    refusal
}

/// The answer to a body that could not be read whole.
fn refused_body(e: BodyRead) -> Response {
    match e {
        BodyRead::TooLarge { drained } => {
            let mut r = error_reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                &format!("request body is over the {MAX_BATCH_BYTES}-byte limit"),
            )
            .map(Body::from);
            if !drained {
                // The rest of the body is still coming: this connection cannot carry another
                // request.
                r.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            r
        }
        BodyRead::Broken(e) => error_reply(
            StatusCode::BAD_REQUEST,
            "unreadable_body",
            &format!("the request body could not be read: {e}"),
        )
        .map(Body::from),
    }
}

/// How much of an over-limit body is read and thrown away before the 413 goes out, and for
/// how long. Clients (SDKs, curl, reqwest) send the whole body before reading the answer; a
/// server that answers and closes while the body is still arriving makes the kernel reset the
/// connection, and the client sees a broken connection instead of the 413 (and may retry).
const DRAIN_BYTES: usize = 16 * 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Why a body was not read.
enum BodyRead {
    /// Over `limit`; `drained` if the rest was read to its end (the connection can be reused).
    TooLarge { drained: bool },
    /// The client stopped sending half-way, or sent a broken chunked encoding.
    Broken(axum::Error),
}

/// Reads a body of at most `limit` bytes. A longer one is read on, bounded by [`DRAIN_BYTES`]
/// and [`DRAIN_TIME`], and thrown away, so that its sender gets to read the refusal.
async fn read_body(mut body: Body, limit: usize) -> Result<Bytes, BodyRead> {
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyRead::Broken)?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if buf.len() + data.len() > limit {
            let mut seen = buf.len() + data.len();
            drop(buf);
            let drain = async {
                while let Some(Ok(frame)) = body.frame().await {
                    seen += frame.data_ref().map_or(0, |d| d.len());
                    if seen > DRAIN_BYTES {
                        return false;
                    }
                }
                true
            };
            let drained = tokio::time::timeout(DRAIN_TIME, drain)
                .await
                .unwrap_or(false);
            return Err(BodyRead::TooLarge { drained });
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf.freeze())
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
