//! The SES v2 mailer against a real moto server; sent mail is read back from moto's model
//! dump (`/moto-api/data.json`).

use nudge_core::engine::decision::DecisionId;
use nudge_service::ports::{Mailer, OutgoingEmail};

use nudge_aws::ses::SesMailer;

use crate::support;

fn raw_mail(from: &str, to: &str) -> Vec<u8> {
    format!(
        "From: Nudge <{from}>\r\n\
         To: {to}\r\n\
         Subject: Finish your profile\r\n\
         List-Unsubscribe: <https://nudge.example/u/abc123>, <mailto:unsubscribe@example.com?subject=abc123>\r\n\
         List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         Hello, one step left.\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn sends_the_raw_mail_with_its_unsubscribe_headers() {
    let client = aws_sdk_sesv2::Client::new(&support::sdk_config());
    let sender = format!("{}@example.com", support::unique("sender"));
    client
        .create_email_identity()
        .email_identity(&sender)
        .send()
        .await
        .unwrap();
    let configuration_set = support::unique("nudge-set");
    client
        .create_configuration_set()
        .configuration_set_name(&configuration_set)
        .send()
        .await
        .unwrap();
    let mailer = SesMailer::new(client, Some(configuration_set));

    let email = OutgoingEmail {
        id: DecisionId(0x1234),
        from: sender.clone(),
        to: "alice@example.com".into(),
        raw: raw_mail(&sender, "alice@example.com"),
    };
    let message_id = mailer.send(&email).await.unwrap();
    assert!(!message_id.is_empty());

    let sent = support::moto_models("ses", "RawMessage").await;
    let mail = sent
        .iter()
        .find(|m| m["id"] == message_id.as_str())
        .unwrap_or_else(|| panic!("message {message_id} not among {sent:?}"));
    assert_eq!(mail["source"], sender.as_str());
    assert!(mail["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d == "alice@example.com"));
    let raw = mail["raw_data"].as_str().unwrap();
    assert_eq!(raw.as_bytes(), email.raw.as_slice(), "sent byte for byte");
    assert!(raw.contains(
        "\r\nList-Unsubscribe: <https://nudge.example/u/abc123>, <mailto:unsubscribe@example.com?subject=abc123>\r\n"
    ));
    assert!(raw.contains("\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"));
}

#[tokio::test]
async fn a_rejected_message_is_not_retryable() {
    let client = aws_sdk_sesv2::Client::new(&support::sdk_config());
    let mailer = SesMailer::new(client, None);
    let unverified = format!("{}@example.com", support::unique("stranger"));
    let err = mailer
        .send(&OutgoingEmail {
            id: DecisionId(1),
            from: unverified.clone(),
            to: "bob@example.com".into(),
            raw: raw_mail(&unverified, "bob@example.com"),
        })
        .await
        .unwrap_err();
    assert!(!err.retryable, "{err}");
    assert!(err.to_string().contains("MessageRejected"), "{err}");
}
