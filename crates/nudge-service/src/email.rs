//! Builds a decided email as RFC 5322 bytes with lettre: text (and HTML) parts, one-click
//! unsubscribe headers (RFC 2369 / RFC 8058) and a Message-ID derived from the decision.

use std::time::SystemTime;

use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::Message;
use nudge_core::engine::decision::DecisionId;

use crate::ports::OutgoingEmail;

/// Everything one email is made of.
#[derive(Debug, Clone, Copy)]
pub struct EmailParts<'a> {
    pub id: DecisionId,
    /// `From` mailbox, `addr@host` or `Name <addr@host>`.
    pub from: &'a str,
    /// `To` mailbox, `addr@host` or `Name <addr@host>`.
    pub to: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    /// With HTML the mail is multipart/alternative, else text/plain only.
    pub html: Option<&'a str>,
    /// The one-click unsubscribe link (POSTed to by mailbox providers, RFC 8058).
    pub unsubscribe_url: &'a str,
    /// An optional unsubscribe address, `mailto:` prefix optional.
    pub unsubscribe_mailto: Option<&'a str>,
    pub date: SystemTime,
}

/// Why an email could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    #[error("{field} address `{value}`: {reason}")]
    Address {
        field: &'static str,
        value: String,
        #[source]
        reason: lettre::address::AddressError,
    },
    /// The link would break the header: empty, non-ASCII, spaces, controls or `<>`.
    #[error("unsubscribe link `{value}` is not a printable ASCII URL")]
    UnsubscribeLink { value: String },
    #[error("cannot build the message: {0}")]
    Build(#[source] lettre::error::Error),
}

/// The Message-ID of a decision's mail, `<{decision hex}@nudge>`: a resend of the same
/// decision carries the same id, so receivers and our outbox see one mail, not two.
pub fn message_id(id: DecisionId) -> String {
    format!("<{id}@nudge>")
}

/// Declares a header whose value is set verbatim (values are checked ASCII before).
macro_rules! verbatim_header {
    ($(#[$doc:meta])* $ty:ident, $name:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        struct $ty(String);

        impl Header for $ty {
            fn name() -> HeaderName {
                HeaderName::new_from_ascii_str($name)
            }

            fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
                Ok(Self(s.to_owned()))
            }

            fn display(&self) -> HeaderValue {
                HeaderValue::new(Self::name(), self.0.clone())
            }
        }
    };
}

verbatim_header!(
    /// RFC 2369: `<https://…>` or `<https://…>, <mailto:…>`.
    ListUnsubscribe,
    "List-Unsubscribe"
);
verbatim_header!(
    /// RFC 8058: tells providers the link unsubscribes with one POST, no page to visit.
    ListUnsubscribePost,
    "List-Unsubscribe-Post"
);
verbatim_header!(
    /// The decision id, for support staff reading a forwarded mail's headers.
    NudgeDecision,
    "X-Nudge-Decision"
);

/// Whether `link` can sit inside `<…>` in a header as is: printable ASCII, no spaces, no
/// angle brackets (lettre would otherwise RFC 2047-encode it and break the URL).
fn header_safe(link: &str) -> bool {
    !link.is_empty()
        && link
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>')
}

fn mailbox(field: &'static str, value: &str) -> Result<Mailbox, EmailError> {
    value.parse().map_err(|reason| EmailError::Address {
        field,
        value: value.to_string(),
        reason,
    })
}

/// The `List-Unsubscribe` value: the one-click URL first (providers use the first they can).
fn list_unsubscribe(url: &str, mailto: Option<&str>) -> Result<String, EmailError> {
    let bad = |value: &str| EmailError::UnsubscribeLink {
        value: value.to_string(),
    };
    if !header_safe(url) {
        return Err(bad(url));
    }
    let Some(mailto) = mailto else {
        return Ok(format!("<{url}>"));
    };
    if !header_safe(mailto) {
        return Err(bad(mailto));
    }
    let has_scheme = mailto
        .get(..7)
        .is_some_and(|s| s.eq_ignore_ascii_case("mailto:"));
    let scheme = if has_scheme { "" } else { "mailto:" };
    Ok(format!("<{url}>, <{scheme}{mailto}>"))
}

/// Builds the mail for `p`; `raw` is the formatted message, `from`/`to` the bare envelope
/// addresses.
pub fn build_email(p: &EmailParts<'_>) -> Result<OutgoingEmail, EmailError> {
    let from = mailbox("from", p.from)?;
    let to = mailbox("to", p.to)?;
    let envelope_from = from.email.to_string();
    let envelope_to = to.email.to_string();
    let builder = Message::builder()
        .from(from)
        .to(to)
        .subject(p.subject)
        .date(p.date)
        .message_id(Some(message_id(p.id)))
        .header(ListUnsubscribe(list_unsubscribe(
            p.unsubscribe_url,
            p.unsubscribe_mailto,
        )?))
        .header(ListUnsubscribePost("List-Unsubscribe=One-Click".into()))
        .header(NudgeDecision(p.id.to_string()));
    let message = match p.html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(
            p.text.to_owned(),
            html.to_owned(),
        )),
        None => builder.singlepart(SinglePart::plain(p.text.to_owned())),
    }
    .map_err(EmailError::Build)?;
    Ok(OutgoingEmail {
        id: p.id,
        from: envelope_from,
        to: envelope_to,
        raw: message.formatted(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use std::time::Duration;

    const ID: DecisionId = DecisionId(0x0123_4567_89ab_cdef);

    fn parts() -> EmailParts<'static> {
        EmailParts {
            id: ID,
            from: "Nudge <hello@example.com>",
            to: "ana@example.org",
            subject: "Finish your profile",
            text: "Hi Ana, two fields left.",
            html: Some("<p>Hi Ana, <b>two</b> fields left.</p>"),
            unsubscribe_url:
                "https://nudge.example.com/v1/unsubscribe?token=abc.0123456789abcdef.xyz",
            unsubscribe_mailto: None,
            // 2023-11-14T22:13:20Z
            date: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        }
    }

    /// The message's top-level headers, unfolded, as (name, value) in order.
    fn headers(raw: &[u8]) -> Vec<(String, String)> {
        let text = std::str::from_utf8(raw).unwrap();
        let head = text.split("\r\n\r\n").next().unwrap();
        let mut out: Vec<(String, String)> = Vec::new();
        for line in head.split("\r\n") {
            if line.starts_with(' ') || line.starts_with('\t') {
                out.last_mut().unwrap().1.push_str(line);
            } else {
                let (name, value) = line.split_once(": ").unwrap();
                out.push((name.to_string(), value.to_string()));
            }
        }
        out
    }

    /// The one value of header `name`, failing unless it appears exactly once.
    fn one(headers: &[(String, String)], name: &str) -> String {
        let found: Vec<&String> = headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .collect();
        assert_eq!(found.len(), 1, "{name} in {headers:?}");
        found[0].clone()
    }

    #[test]
    fn builds_an_alternative_mail_with_one_click_unsubscribe_headers() {
        // Given a mail with text and HTML
        let p = parts();
        // When it is built
        let mail = build_email(&p).unwrap();
        // Then the envelope holds bare addresses and each header appears exactly once
        assert_eq!(mail.id, ID);
        assert_eq!(mail.from, "hello@example.com");
        assert_eq!(mail.to, "ana@example.org");
        let h = headers(&mail.raw);
        assert_eq!(one(&h, "Message-ID"), "<0123456789abcdef@nudge>");
        assert_eq!(one(&h, "X-Nudge-Decision"), "0123456789abcdef");
        assert_eq!(
            one(&h, "List-Unsubscribe"),
            format!("<{}>", p.unsubscribe_url)
        );
        assert_eq!(
            one(&h, "List-Unsubscribe-Post"),
            "List-Unsubscribe=One-Click"
        );
        assert_eq!(one(&h, "Date"), "Tue, 14 Nov 2023 22:13:20 +0000");
        assert_eq!(one(&h, "Subject"), "Finish your profile");
        assert_eq!(one(&h, "To"), "ana@example.org");
        assert!(one(&h, "From").contains("<hello@example.com>"));
        assert_eq!(one(&h, "MIME-Version"), "1.0");
        // And the body holds both parts under one multipart/alternative boundary
        let content_type = one(&h, "Content-Type");
        assert!(
            content_type.starts_with("multipart/alternative;"),
            "{content_type}"
        );
        let boundary = content_type
            .split("boundary=\"")
            .nth(1)
            .and_then(|b| b.split('"').next())
            .unwrap();
        let text = String::from_utf8(mail.raw.clone()).unwrap();
        let body = text.split_once("\r\n\r\n").unwrap().1;
        assert_eq!(body.matches(&format!("--{boundary}\r\n")).count(), 2);
        assert!(body.contains(&format!("--{boundary}--")));
        assert!(body.contains("Content-Type: text/plain; charset=utf-8"));
        assert!(body.contains("Content-Type: text/html; charset=utf-8"));
        assert!(body.contains("Hi Ana, two fields left."));
        assert!(body.contains("<p>Hi Ana, <b>two</b> fields left.</p>"));
    }

    #[test]
    fn builds_a_plain_text_mail_without_html() {
        // Given a mail without HTML
        let p = EmailParts {
            html: None,
            ..parts()
        };
        // When it is built
        let mail = build_email(&p).unwrap();
        // Then it is a single text/plain part
        let h = headers(&mail.raw);
        assert_eq!(one(&h, "Content-Type"), "text/plain; charset=utf-8");
        let text = String::from_utf8(mail.raw).unwrap();
        assert!(!text.contains("multipart"));
        assert!(!text.contains("text/html"));
        assert!(text.contains("\r\n\r\nHi Ana, two fields left."));
    }

    #[test]
    fn encodes_a_unicode_subject() {
        // Given a subject with non-ASCII characters
        let subject = "Grüße, Ana — 2 Felder fehlen";
        let p = EmailParts { subject, ..parts() };
        // When the mail is built
        let mail = build_email(&p).unwrap();
        // Then the header is pure ASCII, RFC 2047 encoded, and decodes to the subject
        assert!(mail.raw.is_ascii());
        let encoded = one(&headers(&mail.raw), "Subject");
        assert!(encoded.contains("=?utf-8?b?"), "{encoded}");
        // (RFC 2047: the space between two encoded words is dropped, any other is kept.)
        let mut bytes = Vec::new();
        let mut after_encoded = false;
        for (i, token) in encoded.split(' ').enumerate() {
            let inner = token
                .strip_prefix("=?utf-8?b?")
                .and_then(|w| w.strip_suffix("?="));
            if i > 0 && !(after_encoded && inner.is_some()) {
                bytes.push(b' ');
            }
            match inner {
                Some(b64) => bytes.extend(STANDARD.decode(b64).unwrap()),
                None => bytes.extend_from_slice(token.as_bytes()),
            }
            after_encoded = inner.is_some();
        }
        let decoded = String::from_utf8(bytes).unwrap();
        assert_eq!(decoded, subject);
    }

    #[test]
    fn lists_the_mailto_after_the_url() {
        // Given an unsubscribe address with and without its scheme
        for mailto in ["unsub@example.com", "mailto:unsub@example.com"] {
            let p = EmailParts {
                unsubscribe_mailto: Some(mailto),
                ..parts()
            };
            // When the mail is built
            let mail = build_email(&p).unwrap();
            // Then the one-click URL comes first, the mailto second
            assert_eq!(
                one(&headers(&mail.raw), "List-Unsubscribe"),
                format!("<{}>, <mailto:unsub@example.com>", p.unsubscribe_url)
            );
        }
    }

    #[test]
    fn resending_a_decision_gives_the_same_message_id() {
        // Given the same decision built twice, a minute apart
        let first = build_email(&parts()).unwrap();
        let later = EmailParts {
            date: parts().date + Duration::from_secs(60),
            ..parts()
        };
        let second = build_email(&later).unwrap();
        // Then both carry the same Message-ID
        assert_eq!(
            one(&headers(&first.raw), "Message-ID"),
            one(&headers(&second.raw), "Message-ID")
        );
    }

    #[test]
    fn rejects_bad_addresses_naming_the_field() {
        // Given a recipient that is not an address
        let p = EmailParts {
            to: "not an address",
            ..parts()
        };
        // When the mail is built
        let err = build_email(&p).unwrap_err();
        // Then the error names the field and the value
        match &err {
            EmailError::Address { field, value, .. } => {
                assert_eq!(*field, "to");
                assert_eq!(value, "not an address");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains("to address `not an address`"));
        // And a bad sender is reported as `from`
        let p = EmailParts {
            from: "@nowhere",
            ..parts()
        };
        assert!(matches!(
            build_email(&p),
            Err(EmailError::Address { field: "from", .. })
        ));
    }

    #[test]
    fn rejects_unsubscribe_links_that_would_break_the_header() {
        // Given links with a line break, a space, a bracket or nothing
        for url in ["https://x/\r\nBcc: a@b", "https://x/a b", "https://x/>", ""] {
            let p = EmailParts {
                unsubscribe_url: url,
                ..parts()
            };
            // When the mail is built
            // Then it is refused instead of injecting or garbling a header
            assert!(
                matches!(build_email(&p), Err(EmailError::UnsubscribeLink { .. })),
                "{url:?}"
            );
        }
    }
}
