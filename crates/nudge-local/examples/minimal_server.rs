//! The reference server of the load benchmark (`scripts/bench-serve.sh`): the least an HTTP
//! server on the same stack as `nudge serve` can do per tracking call. It runs the same
//! runtime (tokio multi-thread, default worker count), the same axum version and the same
//! body limit, reads the whole request body and answers `{"success":true}` — no parsing, no
//! storage, no evaluation.
//!
//! `cargo run --release -p nudge-local --example minimal_server -- 127.0.0.1:8788`

use std::net::SocketAddr;
use std::process::ExitCode;

use axum::body::{Body, Bytes};
use axum::http::{header, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use nudge_service::ingest::MAX_BATCH_BYTES;

fn main() -> ExitCode {
    let addr: SocketAddr = match std::env::args().nth(1).map(|a| a.parse()) {
        Some(Ok(addr)) => addr,
        _ => {
            eprintln!("usage: minimal_server LISTEN_ADDR (for example 127.0.0.1:8788)");
            return ExitCode::from(2);
        }
    };
    // As `nudge serve` builds its runtime (crates/nudge-cli/src/serve_cmd.rs).
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(addr)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("minimal_server: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(addr: SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("minimal_server listening on {}", listener.local_addr()?);
    // Like nudge serve: every path goes to one handler that reads the body first.
    let app = Router::new().fallback(track);
    axum::serve(listener, app).await
}

async fn track(req: Request<Body>) -> Response {
    let bytes: Bytes = match axum::body::to_bytes(req.into_body(), MAX_BATCH_BYTES + 1).await {
        Ok(b) => b,
        Err(_) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
    };
    std::hint::black_box(&bytes);
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"success":true}"#,
    )
        .into_response()
}
