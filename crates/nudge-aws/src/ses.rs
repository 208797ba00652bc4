//! Email through SES v2: the raw RFC 5322 bytes as built by deliver (with their
//! List-Unsubscribe headers), sent with SendEmail.

use aws_sdk_sesv2::config::http::HttpResponse;
use aws_sdk_sesv2::error::SdkError;
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{Destination, EmailContent, RawMessage};
use aws_sdk_sesv2::Client;
use nudge_service::ports::{Mailer, OutgoingEmail, SendError};
use tracing::{instrument, warn};

use crate::sdk_error::is_retryable;

/// [`Mailer`] on SES v2.
#[derive(Debug, Clone)]
pub struct SesMailer {
    client: Client,
    configuration_set: Option<String>,
}

impl SesMailer {
    /// A mailer sending through `client`, with the configuration set (event publishing,
    /// dedicated IPs) if one is given.
    pub fn new(client: Client, configuration_set: Option<String>) -> Self {
        SesMailer {
            client,
            configuration_set,
        }
    }
}

/// Whether SES may accept the same mail later: throttling, 5xx, timeouts and connection
/// failures may; a rejected message, an unverified domain or a suspended or paused account
/// need a person first.
fn send_error(err: SdkError<SendEmailError, HttpResponse>) -> SendError {
    let permanent = err.as_service_error().is_some_and(|e| {
        e.is_message_rejected()
            || e.is_mail_from_domain_not_verified_exception()
            || e.is_account_suspended_exception()
            || e.is_sending_paused_exception()
    });
    let retryable = !permanent && is_retryable(&err);
    // The SDK's own message is "service error": the code and message are in its sources.
    SendError::new("SES SendEmail", err, retryable)
}

impl Mailer for SesMailer {
    #[instrument(skip(self, email), fields(decision = %email.id, bytes = email.raw.len()))]
    async fn send(&self, email: &OutgoingEmail) -> Result<String, SendError> {
        let raw = RawMessage::builder()
            .data(Blob::new(email.raw.clone()))
            .build()
            .map_err(|e| SendError::new("SES raw message", e, false))?;
        let out = self
            .client
            .send_email()
            .from_email_address(&email.from)
            .destination(Destination::builder().to_addresses(&email.to).build())
            .content(EmailContent::builder().raw(raw).build())
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await
            .map_err(send_error)?;
        // SES always answers with an id; a missing one must not make deliver send again.
        let id = out.message_id.unwrap_or_default();
        if id.is_empty() {
            warn!("SES accepted the mail without a MessageId");
        }
        Ok(id)
    }
}
