//! The HTTP server of `nudge serve`: axum in front of the framework-free API, plus its own
//! routes (`/metrics` in the Prometheus text format, the live inbox stream, the demo), listed
//! in tables the OpenAPI description is checked against.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter};
use axum::Router;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use nudge_service::api::{error_reply, method_not_allowed};
use nudge_service::cors;
use nudge_service::ingest::MAX_BATCH_BYTES;
use nudge_service::metrics::Metrics;
use tokio::net::TcpListener;
use tracing::info;

use crate::handlers::Handlers;
use crate::inbox_stream::inbox_stream;

/// A route `nudge serve` has beside the API's (`nudge_service::api::routes`): its method, its
/// path as the OpenAPI description names it (axum reads the same `{name}` templates), and how
/// its handler joins the path's method router.
pub struct ServeRoute {
    pub method: Method,
    pub path: &'static str,
    add: AddHandler,
}

type AddHandler = fn(MethodRouter<Arc<Handlers>>, MethodFilter) -> MethodRouter<Arc<Handlers>>;

impl ServeRoute {
    pub const fn new(method: Method, path: &'static str, add: AddHandler) -> Self {
        ServeRoute { method, path, add }
    }
}

/// `nudge serve`'s own routes: its metrics, and the inbox stream (in place of the API's 501).
pub const SERVE_ROUTES: &[ServeRoute] = &[
    ServeRoute::new(Method::GET, "/metrics", |r, m| r.on(m, metrics)),
    ServeRoute::new(Method::GET, "/v1/users/{userId}/inbox/stream", |r, m| {
        r.on(m, inbox_stream)
    }),
];

/// Serves until ctrl-c or SIGTERM; with `demo`, also the demo page.
pub async fn run(
    listener: TcpListener,
    handlers: Arc<Handlers>,
    demo: bool,
) -> std::io::Result<()> {
    let app = router(demo).with_state(handlers);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await
}

/// The routes of this server (the demo's with `demo`), each path answering other methods with
/// a JSON 405; every other path goes to the API.
fn router(demo: bool) -> Router<Arc<Handlers>> {
    let demo_routes: &[ServeRoute] = if demo { crate::demo::DEMO_ROUTES } else { &[] };
    let routes: Vec<&ServeRoute> = SERVE_ROUTES.iter().chain(demo_routes).collect();
    let mut app = Router::new();
    let mut paths: Vec<&str> = Vec::new();
    for r in &routes {
        if !paths.contains(&r.path) {
            paths.push(r.path);
        }
    }
    for path in paths {
        let here: Vec<&&ServeRoute> = routes.iter().filter(|r| r.path == path).collect();
        let mut methods = MethodRouter::new();
        let mut allowed = Vec::new();
        for r in here {
            // GET, POST and DELETE, the only methods these tables use, are filters.
            if let Ok(filter) = MethodFilter::try_from(r.method.clone()) {
                methods = (r.add)(methods, filter);
                allowed.push(r.method.clone());
            }
        }
        let methods = methods.fallback(move |state, req| other_method(state, req, allowed.clone()));
        app = app.route(path, methods);
    }
    app.fallback(api)
}

/// A method a `nudge serve` route does not take: the CORS preflight goes to the API (as
/// everywhere), anything else is refused like the API refuses it.
async fn other_method(
    State(h): State<Arc<Handlers>>,
    req: Request<Body>,
    allowed: Vec<Method>,
) -> Response {
    if req.method() == Method::OPTIONS {
        return api(State(h), req).await;
    }
    let mut r = method_not_allowed(req.method(), req.uri().path(), &allowed).map(Body::from);
    cors::allow_origin(req.headers(), r.headers_mut());
    r
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

#[cfg(test)]
mod tests {
    use super::*;
    use nudge_service::api::openapi::described_operations;
    use nudge_service::api::routes::ROUTES;
    use std::collections::BTreeSet;

    fn set<'a>(routes: impl Iterator<Item = (&'a Method, &'a str)>) -> BTreeSet<(String, String)> {
        routes
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect()
    }

    /// A route added to `nudge serve` without its description fails here, as one added to the
    /// API fails `nudge_service::api::openapi`'s test.
    #[test]
    fn every_route_of_nudge_serve_is_described_and_only_its_own_are_marked_serve_only() {
        let api = set(ROUTES.iter().map(|r| (&r.method, r.path)));
        let own = set(SERVE_ROUTES
            .iter()
            .chain(crate::demo::DEMO_ROUTES)
            .map(|r| (&r.method, r.path)));
        let described = described_operations().unwrap();
        let all: BTreeSet<_> = described
            .iter()
            .map(|o| (o.method.clone(), o.path.clone()))
            .collect();
        let serve_only: BTreeSet<_> = described
            .iter()
            .filter(|o| o.serve_only)
            .map(|o| (o.method.clone(), o.path.clone()))
            .collect();
        let served: BTreeSet<_> = api.union(&own).cloned().collect();
        assert_eq!(
            served, all,
            "routes of nudge serve and operations of schema/openapi.json"
        );
        let own_only: BTreeSet<_> = own.difference(&api).cloned().collect();
        assert_eq!(
            own_only, serve_only,
            "x-nudge-serve-only marks what only nudge serve routes"
        );
    }

    #[test]
    fn every_route_of_nudge_serve_has_a_method_filter() {
        for r in SERVE_ROUTES.iter().chain(crate::demo::DEMO_ROUTES) {
            assert!(
                MethodFilter::try_from(r.method.clone()).is_ok(),
                "{}",
                r.path
            );
        }
        // Building the router checks the paths (axum panics on a bad one).
        let _ = router(true);
    }
}
