//! Email open pixels (`GET /v1/o/<token>.gif`, when the rule set sets `track_email_opens`):
//! the signed token names the user and the mail (decision); loading the image records `Email
//! Opened` once per mail and answers a transparent 1x1 GIF. Opens are a weak signal (image
//! proxies load every image, blockers none), so they are off by default.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use nudge_core::engine::engagement::{About, EMAIL_OPENED};
use nudge_core::event::Message;
use tracing::{info, warn};

use super::reply::{html_reply, page, Reply};
use super::{Api, Store};
use crate::ports::{Bus, Clock};
use crate::signing::verify_open_token;

/// The smallest transparent GIF: 1x1, one transparent colour.
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

impl<S: Store, B: Bus, C: Clock> Api<S, B, C> {
    pub(super) async fn open(&self, file: &str) -> Reply {
        let claim = file
            .strip_suffix(".gif")
            .ok_or_else(|| "not an image name".to_string())
            .and_then(|token| {
                verify_open_token(&self.keys.signing_secret, token).map_err(|e| e.to_string())
            });
        let claim = match claim {
            Ok(c) => c,
            Err(e) => {
                return html_reply(
                    StatusCode::FORBIDDEN,
                    page(
                        "Image not valid",
                        &format!("<p>This image is not valid ({e}).</p>"),
                    ),
                )
            }
        };
        let decision = claim.decision.to_string();
        let properties = About {
            decision: &decision,
            trigger: &claim.trigger,
            variant: &claim.variant,
            channel: claim.channel.as_str(),
            url: None,
        }
        .properties();
        let now = self.clock.now();
        // Once per mail: mail clients load the image at every look.
        let message_id = format!("open-{decision}");
        let message = Message::track(&claim.user_id, &message_id, EMAIL_OPENED, properties, now);
        match self.record_engagement(message).await {
            Ok(()) => info!(user_id = %claim.user_id, decision_id = %decision, "open recorded"),
            Err(e) => warn!(error = %e, decision_id = %decision, "could not record an open"),
        }
        let mut r = Response::new(Bytes::from_static(PIXEL));
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/gif"));
        // Each load must reach us; a cached pixel says nothing.
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store, max-age=0"),
        );
        r
    }
}
