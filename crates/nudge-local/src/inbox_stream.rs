//! A user's inbox, live: `GET /v1/users/{id}/inbox/stream` (authenticated like the inbox)
//! answers with server-sent events: an `inbox` event with the whole inbox (the same JSON as
//! `GET /v1/users/{id}/inbox`, its ETag as the event id) at once and after every change of
//! that user's inbox (a message delivered, read or dismissed), and a comment every 15 s to
//! keep proxies from closing the connection. So a nudge appears in the open page as soon as
//! deliver has stored it. Only `nudge serve` streams: behind API Gateway the widget polls.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use nudge_service::api::error_reply;
use nudge_service::api::routes::path_segments;
use nudge_service::cors;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;
use tracing::warn;

use crate::handlers::Handlers;

/// How often an idle stream says it is alive.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The stream route's handler.
pub async fn inbox_stream(
    State(h): State<Arc<Handlers>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    // The user id decoded as the API decodes it (axum's `Path` refuses bytes that are not
    // UTF-8 with a text answer; the API answers every refusal in JSON).
    let Some(user) = path_segments(uri.path()).into_iter().nth(2) else {
        return error_reply(StatusCode::NOT_FOUND, "not_found", "no user in the path")
            .map(Body::from);
    };
    let mut response = match h.api.authorize_inbox(&headers, &user) {
        Err(refusal) => refusal.reply().map(Body::from),
        Ok(()) => {
            // Subscribed before the first read: no change between the two is missed.
            let changes = h.store.inbox_changes();
            Sse::new(events(h, user, changes))
                .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
                .into_response()
        }
    };
    cors::allow_origin(&headers, response.headers_mut());
    // A buffering proxy (nginx) would hold the events back.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// What one stream has sent and waits for.
struct Watch {
    handlers: Arc<Handlers>,
    user: String,
    changes: Receiver<Arc<str>>,
    /// The ETag of the inbox last sent: an unchanged inbox is not sent again.
    sent: Option<String>,
    first: bool,
}

/// The inbox now, then again after each change of this user's inbox.
fn events(
    handlers: Arc<Handlers>,
    user: String,
    changes: Receiver<Arc<str>>,
) -> impl Stream<Item = Result<Event, std::convert::Infallible>> {
    let watch = Watch {
        handlers,
        user,
        changes,
        sent: None,
        first: true,
    };
    stream::unfold(watch, |mut w| async move {
        loop {
            if !w.first && !w.next_change().await {
                return None;
            }
            w.first = false;
            match w.handlers.api.inbox_view(&w.user).await {
                Ok(view) if w.sent.as_deref() != Some(view.etag.as_str()) => {
                    let event = Event::default()
                        .event("inbox")
                        .id(view.etag.clone())
                        .data(view.json);
                    w.sent = Some(view.etag);
                    return Some((Ok(event), w));
                }
                Ok(_) => {}
                Err(e) => {
                    // The store is busy or failing: end the stream; the widget reconnects.
                    warn!(error = %e, user_id = %w.user, "inbox stream: cannot read the inbox");
                    return None;
                }
            }
        }
    })
}

impl Watch {
    /// Waits for a change of this user's inbox; `false` when the store is gone.
    async fn next_change(&mut self) -> bool {
        loop {
            match self.changes.recv().await {
                Ok(user) if *user == *self.user => return true,
                Ok(_) => {}
                // Missed some changes: read the inbox again to be sure.
                Err(RecvError::Lagged(_)) => return true,
                Err(RecvError::Closed) => return false,
            }
        }
    }
}
