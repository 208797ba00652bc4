//! One-click unsubscribe (RFC 8058): a `GET` shows a confirmation page (mail scanners follow
//! links), the `POST` records an `Email Unsubscribed` event for the user the signed token
//! names.

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use nudge_core::event::Message;
use serde_json::json;
use tracing::{info, warn};

use super::reply::{error_reply, html_reply, json_reply, page, Reply};
use super::{query_param, Api, Store};
use crate::bus::{AcceptedEvent, AcceptedEvents, BusEvent};
use crate::ports::{Bus, Clock};
use crate::signing::verify_unsubscribe_token;

impl<S: Store, B: Bus, C: Clock> Api<S, B, C> {
    pub(super) async fn unsubscribe(&self, req: &Request<Bytes>) -> Reply {
        let token = query_param(req, "token");
        let Some(token) = token else {
            return error_reply(
                StatusCode::BAD_REQUEST,
                "missing_token",
                "the link has no token",
            );
        };
        let claim = match verify_unsubscribe_token(&self.keys.signing_secret, &token) {
            Ok(c) => c,
            Err(e) => {
                return error_reply(
                    StatusCode::FORBIDDEN,
                    "invalid_token",
                    &format!("this unsubscribe link is not valid: {e}"),
                )
            }
        };
        if req.method() == Method::GET {
            // Mail scanners open links: a GET only asks; the POST (the button, or the mail
            // client's RFC 8058 one-click POST) unsubscribes.
            return html_reply(StatusCode::OK, confirm_page(&token));
        }
        let now = self.clock.now();
        // One unsubscribe per link, however often it is clicked.
        let message_id = format!("unsubscribe-{}", claim.decision);
        let mut properties = serde_json::Map::new();
        properties.insert("decision_id".into(), claim.decision.to_string().into());
        properties.insert("method".into(), "link".into());
        let message = Message::track(
            &claim.user_id,
            &message_id,
            nudge_core::engine::EMAIL_UNSUBSCRIBED,
            properties,
            now,
        );
        let event = AcceptedEvent::new(message, now, now);
        let published = self
            .bus
            .publish(&[BusEvent::EventsAccepted(AcceptedEvents {
                events: vec![event],
            })])
            .await;
        if let Err(e) = published {
            warn!(error = %e, "could not record an unsubscribe");
            return error_reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "could not record the unsubscribe; retry",
            );
        }
        info!(user_id = %claim.user_id, decision_id = %claim.decision, "unsubscribed from email");
        let wants_html = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
        if wants_html {
            html_reply(
                StatusCode::OK,
                page(
                    "Unsubscribed",
                    "<p>You will not get these emails any more.</p>",
                ),
            )
        } else {
            json_reply(
                StatusCode::OK,
                &json!({"success": true, "unsubscribed": true}),
            )
        }
    }
}

pub(super) fn confirm_page(token: &str) -> String {
    // The token is URL-safe base64 and hex joined by dots: nothing to escape.
    page(
        "Unsubscribe",
        &format!(
            "<p>Stop getting these emails?</p><form method=\"post\" action=\"?token={token}\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\"><button type=\"submit\">Unsubscribe</button></form>"
        ),
    )
}
