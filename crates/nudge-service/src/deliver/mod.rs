//! deliver: the owner of the delivery log and the in-app inbox. Renders a decided send and
//! hands it to its channel (mail, inbox, signed webhook), records the outcome under the
//! decision id (so a redelivered request never sends twice) and publishes
//! "Message Sent | Suppressed | Failed" for anyone listening on the bus, with the outcome as
//! an engagement event of the user (`Email Delivered`, `Webhook Failed`, ...). Emails' links
//! go through click links, and an open pixel is added, as the rule set's settings say.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nudge_core::engine::engagement::{
    About, EMAIL_DELIVERED, EMAIL_FAILED, IN_APP_MESSAGE_DELIVERED, IN_APP_MESSAGE_FAILED,
    WEBHOOK_DELIVERED, WEBHOOK_FAILED,
};
use nudge_core::engine::Send;
use nudge_core::event::Message;
use nudge_core::render::{render, Rendered};
use nudge_core::rules::model::Channel;
use nudge_core::rules::CompiledRules;
use nudge_core::state::Scalar;
use nudge_core::time::Millis;
use tracing::{info, warn};

use crate::bus::{AcceptedEvent, AcceptedEvents, BusEvent, DeliveryReport};
use crate::email::{build_email, EmailParts};
use crate::email_tracking::{track_html, track_text};
use crate::error::HandlerError;
use crate::metrics::Metrics;
use crate::ports::{
    Bus, Clock, Delivery, DeliveryStatus, DeliveryStore, InboxItem, InboxStore, Mailer, StoreError,
    WebhookTransport, INBOX_RETENTION_MS,
};
use crate::signing::{click_token, open_token, unsubscribe_token, ClickClaim};
use crate::webhook::{post_signed, RetryPolicy};

/// What deliver needs besides its ports.
#[derive(Clone)]
pub struct DeliverConfig {
    /// The `From` address of emails.
    pub sender: String,
    /// Base URL of the HTTP API, for unsubscribe links (`<url>/v1/unsubscribe?token=...`),
    /// click links and open pixels.
    pub public_url: String,
    /// Signs unsubscribe links and webhooks.
    pub signing_secret: Vec<u8>,
    pub webhook: RetryPolicy,
    /// Attempts at handing a mail to the provider before it counts as failed.
    pub mail_attempts: u32,
    /// Pause before the first mail retry; doubles each time.
    pub mail_backoff: Duration,
    /// How long a send in progress belongs to the invocation that began or last marked it.
    /// Another delivery of the same decision within it (two copies of one request at once)
    /// fails as contended and is retried, instead of sending beside it; after it, the send
    /// is taken over (its invocation died). On Lambda: the function's timeout and a margin.
    pub lease: Duration,
    /// Sends last changed before this instant are abandoned whatever the lease: `nudge
    /// serve`'s start (its earlier run died), so it takes them over at once. 0 on Lambda.
    pub abandoned_before: Millis,
}

/// The deliver handler.
pub struct Deliver<S, M, W, B, C> {
    pub rules: Arc<CompiledRules>,
    pub store: S,
    pub mailer: M,
    pub webhooks: W,
    pub bus: B,
    pub clock: C,
    pub metrics: Arc<dyn Metrics>,
    pub config: DeliverConfig,
}

/// Tries of recording a send's outcome, the first included: once a message is out, failing
/// here would make a redelivery take the send over and send again.
const FINISH_TRIES: u32 = 5;
/// The wait before the second try of recording an outcome, doubled after each.
const FINISH_BACKOFF: Duration = Duration::from_millis(100);

/// Why a mail is not sent again: an earlier try may have handed it over.
const MAIL_MAY_BE_OUT: &str = "the mail may have been sent (the provider's answer was lost), \
                               so it is not sent again";

/// The outcome of a send attempt on its channel.
enum Attempt {
    Sent { attempts: u32 },
    Failed { attempts: u32, error: String },
}

impl<S, M, W, B, C> Deliver<S, M, W, B, C>
where
    S: DeliveryStore + InboxStore,
    M: Mailer,
    W: WebhookTransport,
    B: Bus,
    C: Clock,
{
    /// Handles a "Message Requested" (other events are ignored).
    pub async fn handle(&self, event: &BusEvent) -> Result<(), HandlerError> {
        let BusEvent::MessageRequested(req) = event else {
            return Ok(());
        };
        let started = Instant::now();
        let result = self.deliver(&req.send).await;
        self.metrics
            .handler_latency("deliver", started.elapsed().as_secs_f64());
        result
    }

    async fn deliver(&self, send: &Send) -> Result<(), HandlerError> {
        let now = self.clock.now();
        let mut entry = Delivery {
            id: send.id,
            user_id: send.user_id.clone(),
            trigger: send.trigger.to_string(),
            channel: send.channel,
            message: send.message.to_string(),
            variant: send.variant.to_string(),
            experiment: send.experiment.as_ref().map(|e| e.to_string()),
            status: if send.reason.is_some() {
                DeliveryStatus::Suppressed
            } else {
                DeliveryStatus::Sending
            },
            reason: send.reason.map(|r| r.as_str().to_string()),
            error: None,
            at: send.at,
            updated_at: now,
            attempts: 0,
            subject: None,
        };
        if let Some(existing) = self.store.begin(&entry).await? {
            if existing.status != DeliveryStatus::Sending {
                // Done before: report again (a crash may have come between log and publish).
                return self.report(&existing).await;
            }
            // Another invocation's mark may be later than this one's clock read: a change
            // in the future is within the lease too.
            let lease = i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX);
            let contended = || {
                HandlerError::Contended(format!(
                    "decision {} is being delivered by another invocation",
                    send.id
                ))
            };
            if existing.updated_at >= self.config.abandoned_before
                && now.saturating_sub(existing.updated_at) < lease
            {
                return Err(contended());
            }
            // A crash left it mid-send: take it over. The inbox is keyed by decision id and
            // webhooks carry it for receivers to dedupe on; a mail provider keeps no such key,
            // so a mail whose earlier try may have reached it is not sent again.
            entry.attempts = existing.attempts;
            if !self.store.take_over(&entry, &existing).await? {
                return Err(contended());
            }
            if send.channel == Channel::Email
                && existing.attempts > 0
                && !self.mailer.keyed_by_decision()
            {
                warn!(decision_id = %send.id, "an earlier try of this mail may have sent it");
                let attempt = Attempt::Failed {
                    attempts: 0,
                    error: MAIL_MAY_BE_OUT.into(),
                };
                return self.finish(entry, attempt).await;
            }
        }
        if entry.status == DeliveryStatus::Suppressed {
            return self.report(&entry).await;
        }
        let rendered = match render(&self.rules, send) {
            Ok(r) => r,
            Err(e) => {
                return self
                    .finish(
                        entry,
                        Attempt::Failed {
                            attempts: 0,
                            error: e.to_string(),
                        },
                    )
                    .await
            }
        };
        entry.subject = rendered.subject.clone();
        let attempt = match send.channel {
            Channel::Email => {
                // Mark the entry before the mail leaves, so that a redelivery after a crash
                // knows a try may have reached the provider (one keyed by decision id takes
                // a resend as the same mail: no mark needed).
                if !self.mailer.keyed_by_decision() {
                    let mut trying = entry.clone();
                    trying.attempts += 1;
                    trying.updated_at = self.clock.now();
                    self.record(&trying).await?;
                }
                self.email(send, &rendered).await?
            }
            Channel::InApp => self.in_app(send, &rendered).await?,
            Channel::Webhook => self.webhook(send, &rendered).await,
        };
        self.finish(entry, attempt).await
    }

    async fn finish(&self, mut entry: Delivery, attempt: Attempt) -> Result<(), HandlerError> {
        match attempt {
            Attempt::Sent { attempts } => {
                entry.status = DeliveryStatus::Sent;
                entry.attempts += attempts;
            }
            Attempt::Failed { attempts, error } => {
                entry.status = DeliveryStatus::Failed;
                entry.attempts += attempts;
                entry.error = Some(error);
            }
        }
        entry.updated_at = self.clock.now();
        self.record(&entry).await?;
        self.report(&entry).await
    }

    /// Writes the entry, trying again a few times while the store's failure is transient.
    async fn record(&self, entry: &Delivery) -> Result<(), StoreError> {
        let mut wait = FINISH_BACKOFF;
        let mut tries = 1;
        loop {
            match self.store.finish(entry).await {
                Err(e) if e.is_retryable() && tries < FINISH_TRIES => {
                    warn!(decision_id = %entry.id, error = %e, "recording the delivery failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    tries += 1;
                }
                result => return result,
            }
        }
    }

    async fn report(&self, d: &Delivery) -> Result<(), HandlerError> {
        let report = DeliveryReport::from(d);
        let (event, outcome) = match d.status {
            DeliveryStatus::Sent => (BusEvent::MessageSent(report), "sent"),
            DeliveryStatus::Suppressed => (BusEvent::MessageSuppressed(report), "suppressed"),
            DeliveryStatus::Failed => (BusEvent::MessageFailed(report), "failed"),
            DeliveryStatus::Sending => return Ok(()),
        };
        let channel = d.channel.as_str();
        let reason = d.reason.as_deref().unwrap_or("");
        self.metrics.delivery(channel, outcome, reason);
        match d.status {
            DeliveryStatus::Failed => {
                warn!(decision_id = %d.id, user_id = %d.user_id, channel, error = d.error.as_deref().unwrap_or(""), "delivery failed")
            }
            _ => {
                info!(decision_id = %d.id, user_id = %d.user_id, channel, outcome, reason, "delivery finished")
            }
        }
        match self.outcome_event(d) {
            Some(engagement) => self.bus.publish(&[event, engagement]).await?,
            None => self.bus.publish(&[event]).await?,
        }
        Ok(())
    }

    /// What happened to the message as an engagement event of its user (`Email Delivered`,
    /// `Webhook Failed`, ...), so rules can react and reports count it. Its message id is
    /// derived from the decision, so reporting again records nothing new.
    fn outcome_event(&self, d: &Delivery) -> Option<BusEvent> {
        let (name, kind) = match (d.channel, d.status) {
            (Channel::Email, DeliveryStatus::Sent) => (EMAIL_DELIVERED, "delivered"),
            (Channel::Email, DeliveryStatus::Failed) => (EMAIL_FAILED, "failed"),
            (Channel::InApp, DeliveryStatus::Sent) => (IN_APP_MESSAGE_DELIVERED, "delivered"),
            (Channel::InApp, DeliveryStatus::Failed) => (IN_APP_MESSAGE_FAILED, "failed"),
            (Channel::Webhook, DeliveryStatus::Sent) => (WEBHOOK_DELIVERED, "delivered"),
            (Channel::Webhook, DeliveryStatus::Failed) => (WEBHOOK_FAILED, "failed"),
            _ => return None,
        };
        let decision = d.id.to_string();
        let mut properties = About {
            decision: &decision,
            trigger: &d.trigger,
            variant: &d.variant,
            channel: d.channel.as_str(),
            url: None,
        }
        .properties();
        if let Some(error) = &d.error {
            properties.insert("error".into(), error.as_str().into());
        }
        let message_id = format!("{kind}-{decision}");
        let message = Message::track(&d.user_id, &message_id, name, properties, d.updated_at);
        Some(BusEvent::EventsAccepted(AcceptedEvents {
            events: vec![AcceptedEvent::new(message, d.updated_at, d.updated_at)],
        }))
    }

    async fn email(&self, send: &Send, r: &Rendered) -> Result<Attempt, HandlerError> {
        let to = send
            .context
            .traits
            .iter()
            .find(|(k, _)| k == "email")
            .and_then(|(_, v)| match v {
                Scalar::Str(s) if !s.is_empty() => Some(s.as_str()),
                _ => None,
            });
        let Some(to) = to else {
            return Ok(Attempt::Failed {
                attempts: 0,
                error: "the user has no `email` trait".into(),
            });
        };
        let token = unsubscribe_token(&self.config.signing_secret, &send.user_id, send.id);
        let url = format!(
            "{}/v1/unsubscribe?token={token}",
            self.config.public_url.trim_end_matches('/')
        );
        let (text, html) = self.tracked(send, r);
        let parts = EmailParts {
            id: send.id,
            from: &self.config.sender,
            to,
            subject: r.subject.as_deref().unwrap_or(""),
            text: &text,
            html: html.as_deref(),
            unsubscribe_url: &url,
            unsubscribe_mailto: None,
            date: std::time::SystemTime::UNIX_EPOCH
                + Duration::from_millis(self.clock.now().max(0) as u64),
        };
        let mail = match build_email(&parts) {
            Ok(m) => m,
            Err(e) => {
                return Ok(Attempt::Failed {
                    attempts: 0,
                    error: e.to_string(),
                })
            }
        };
        let mut backoff = self.config.mail_backoff;
        let attempts = self.config.mail_attempts.max(1);
        for n in 1..=attempts {
            match self.mailer.send(&mail).await {
                Ok(provider_id) => {
                    info!(decision_id = %send.id, provider_id, "mail handed over");
                    return Ok(Attempt::Sent { attempts: n });
                }
                Err(e) if e.hold => {
                    return Err(HandlerError::Held {
                        id: send.id.to_string(),
                        source: e,
                    })
                }
                Err(e) if e.maybe_taken && !self.mailer.keyed_by_decision() => {
                    warn!(decision_id = %send.id, attempt = n, error = %e, "no answer to a mail send; not sending it again");
                    return Ok(Attempt::Failed {
                        attempts: n,
                        error: format!("{e}: {MAIL_MAY_BE_OUT}"),
                    });
                }
                Err(e) if e.retryable && n < attempts => {
                    warn!(decision_id = %send.id, attempt = n, error = %e, "mail send failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                Err(e) => {
                    return Ok(Attempt::Failed {
                        attempts: n,
                        error: e.to_string(),
                    })
                }
            }
        }
        Ok(Attempt::Failed {
            attempts,
            error: "no attempt made".into(),
        })
    }

    /// The mail's text and HTML with links through click links and the open pixel, as the
    /// rule set's settings ask.
    fn tracked(&self, send: &Send, r: &Rendered) -> (String, Option<String>) {
        let tracking = self.rules.email_tracking;
        let base = self.config.public_url.trim_end_matches('/');
        let claim = |url: &str| ClickClaim {
            user_id: send.user_id.clone(),
            decision: send.id,
            channel: Channel::Email,
            trigger: send.trigger.to_string(),
            variant: send.variant.to_string(),
            url: url.to_string(),
        };
        let secret = &self.config.signing_secret;
        let link_for = |url: &str| format!("{base}/v1/c/{}", click_token(secret, &claim(url)));
        let text = if tracking.links {
            track_text(&r.body, &link_for)
        } else {
            r.body.clone()
        };
        let pixel = tracking.opens.then(|| {
            format!(
                r#"<img src="{base}/v1/o/{}.gif" width="1" height="1" alt="" style="display:block;width:1px;height:1px;border:0">"#,
                open_token(secret, &claim(""))
            )
        });
        let html = r
            .html
            .as_deref()
            .map(|h| track_html(h, tracking.links, &link_for, pixel.as_deref()));
        (text, html)
    }

    async fn in_app(&self, send: &Send, r: &Rendered) -> Result<Attempt, HandlerError> {
        let now = self.clock.now();
        let item = InboxItem {
            id: send.id,
            user_id: send.user_id.clone(),
            trigger: send.trigger.to_string(),
            variant: send.variant.to_string(),
            message: send.message.to_string(),
            title: r.subject.clone(),
            body: r.body.clone(),
            url: r.url.clone(),
            created_at: send.at,
            read_at: None,
            expires_at: now + INBOX_RETENTION_MS,
        };
        self.store.put(&item).await?;
        Ok(Attempt::Sent { attempts: 1 })
    }

    async fn webhook(&self, send: &Send, r: &Rendered) -> Attempt {
        let Some(url) = r.url.as_deref() else {
            return Attempt::Failed {
                attempts: 0,
                error: "the webhook message has no url".into(),
            };
        };
        let body = r
            .webhook_body
            .clone()
            .unwrap_or_else(|| serde_json::Value::String(r.body.clone()));
        let outcome = post_signed(
            &self.webhooks,
            &self.config.webhook,
            &self.config.signing_secret,
            url,
            send.id,
            &body,
            || self.clock.now().div_euclid(1000),
        )
        .await;
        match outcome.result {
            Ok(_) => Attempt::Sent {
                attempts: outcome.attempts,
            },
            Err(e) => Attempt::Failed {
                attempts: outcome.attempts,
                error: e.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests;
