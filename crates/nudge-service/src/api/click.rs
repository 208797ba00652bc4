//! Click links (`GET /v1/c/<token>`): the signed token names the user, the message (decision)
//! and the URL; following it records the click as an engagement event of the user (`In-App
//! Message Clicked`, `Email Link Clicked`) and redirects to the URL. A forged, altered or
//! foreign token gets a page saying so, and no redirect: the link goes only where the message
//! pointed.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use nudge_core::engine::engagement::{About, EMAIL_LINK_CLICKED, IN_APP_MESSAGE_CLICKED};
use nudge_core::event::Message;
use nudge_core::rules::model::Channel;
use tracing::{info, warn};

use super::reply::{html_reply, page, Reply};
use super::{Api, Store};
use crate::bus::{AcceptedEvent, AcceptedEvents, BusEvent};
use crate::ports::{Bus, Clock, StoreError};
use crate::signing::verify_click_token;

impl<S: Store, B: Bus, C: Clock> Api<S, B, C> {
    pub(super) async fn click(&self, token: &str) -> Reply {
        let claim = match verify_click_token(&self.keys.signing_secret, token) {
            Ok(c) => c,
            Err(e) => {
                return html_reply(
                    StatusCode::FORBIDDEN,
                    page(
                        "Link not valid",
                        &format!("<p>This link is not valid ({e}).</p>"),
                    ),
                )
            }
        };
        // Only web links: a `javascript:` URL a template produced must not run on our origin.
        let web = claim.url.starts_with("https://") || claim.url.starts_with("http://");
        let location = match HeaderValue::from_str(&claim.url) {
            Ok(v) if web => v,
            _ => {
                return html_reply(
                    StatusCode::BAD_REQUEST,
                    page(
                        "Link not valid",
                        "<p>This link does not lead to a web page.</p>",
                    ),
                )
            }
        };
        let event = match claim.channel {
            Channel::Email => EMAIL_LINK_CLICKED,
            _ => IN_APP_MESSAGE_CLICKED,
        };
        let now = self.clock.now();
        // Once per message and URL: a second click is the same engagement.
        let message_id = format!(
            "click-{}-{:016x}",
            claim.decision,
            xxhash_rust::xxh3::xxh3_64(claim.url.as_bytes())
        );
        let properties = About {
            decision: &claim.decision.to_string(),
            trigger: &claim.trigger,
            variant: &claim.variant,
            channel: claim.channel.as_str(),
            url: Some(&claim.url),
        }
        .properties();
        let message = Message::track(&claim.user_id, &message_id, event, properties, now);
        match self.record_engagement(message).await {
            Ok(()) => {
                info!(user_id = %claim.user_id, decision_id = %claim.decision, "click recorded")
            }
            // The reader still gets where the link goes; only the count misses one.
            Err(e) => warn!(error = %e, decision_id = %claim.decision, "could not record a click"),
        }
        let mut r = Response::new(Bytes::new());
        *r.status_mut() = StatusCode::FOUND;
        let h = r.headers_mut();
        h.insert(header::LOCATION, location);
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        r
    }

    /// Puts one of nudge's engagement events on the bus, accepted now, for evaluate to count.
    pub(super) async fn record_engagement(&self, message: Message) -> Result<(), StoreError> {
        let now = self.clock.now();
        self.bus
            .publish(&[BusEvent::EventsAccepted(AcceptedEvents {
                events: vec![AcceptedEvent::new(message, now, now)],
            })])
            .await
    }
}
