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

/// The SES client deliver sends with: without the SDK's own retries, which would send a mail
/// again after an answer was lost (SendEmail has no idempotency key); deliver retries what is
/// safe to retry ([`SendError::maybe_taken`] says what is not).
pub fn client(sdk: &aws_config::SdkConfig) -> Client {
    let config = aws_sdk_sesv2::config::Builder::from(sdk)
        .retry_config(aws_sdk_sesv2::config::retry::RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}

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
/// need a person first. SendEmail has no idempotency key, so a request that went out without
/// an answer coming back (a timeout, a connection lost while waiting, a garbled answer) may
/// have been taken: deliver must not send it again. An answer from SES, even an error, or a
/// connection that could not be made, says it was not.
fn send_error(err: SdkError<SendEmailError, HttpResponse>) -> SendError {
    let permanent = err.as_service_error().is_some_and(|e| {
        e.is_message_rejected()
            || e.is_mail_from_domain_not_verified_exception()
            || e.is_account_suspended_exception()
            || e.is_sending_paused_exception()
    });
    let retryable = !permanent && is_retryable(&err);
    let maybe_taken = match &err {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        SdkError::DispatchFailure(_) => !never_connected(&err),
        _ => false,
    };
    // The SDK's own message is "service error": the code and message are in its sources.
    let failure = SendError::new("SES SendEmail", err, retryable);
    if maybe_taken {
        failure.maybe_taken()
    } else {
        failure
    }
}

/// Whether a dispatch failure happened before a connection was made (refused, unreachable):
/// then SES never saw the request.
fn never_connected(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = err.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            return matches!(
                io.kind(),
                ConnectionRefused | AddrNotAvailable | HostUnreachable | NetworkUnreachable
            );
        }
        source = e.source();
    }
    false
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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sesv2::error::ConnectorError;
    use std::io::{Error, ErrorKind};

    fn dispatch(kind: ErrorKind) -> SdkError<SendEmailError, HttpResponse> {
        SdkError::dispatch_failure(ConnectorError::io(Box::new(Error::from(kind))))
    }

    #[test]
    fn a_mail_may_be_taken_only_when_the_request_went_out_and_no_answer_came() {
        // No answer after the request went out: SES may have the mail.
        for err in [
            dispatch(ErrorKind::ConnectionReset),
            dispatch(ErrorKind::UnexpectedEof),
            SdkError::timeout_error("attempt timeout"),
        ] {
            let e = send_error(err);
            assert!(e.maybe_taken && e.retryable, "{e}");
        }
        // No connection: SES never saw it.
        let e = send_error(dispatch(ErrorKind::ConnectionRefused));
        assert!(!e.maybe_taken && e.retryable, "{e}");
    }
}
