//! ingest: the Segment-compatible tracking endpoints. Authenticates the write key, enforces
//! the size limits, validates each message (Segment spec and tracking plan), stamps the instant
//! it applies at, and hands accepted messages to the bus packed into few entries.

use nudge_core::event::{Message, MessageKind};
use nudge_core::plan::TrackingPlan;
use nudge_core::time::{parse_instant, Millis};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::bus::AcceptedEvent;
use crate::constant_time::{secret_digest, SecretDigest};

/// Largest accepted message, as serialized JSON (Segment's limit).
pub const MAX_EVENT_BYTES: usize = 32 * 1024;
/// Largest accepted request body on `/v1/batch` (Segment's limit).
pub const MAX_BATCH_BYTES: usize = 500 * 1024;

/// Which tracking endpoint a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v1/track`, `/v1/identify`, ...: one message of that type.
    Single(MessageKind),
    /// `/v1/batch`: `{"batch": [...]}` of any types.
    Batch,
}

impl Endpoint {
    /// The endpoint of a path, if it is one: Segment's HTTP API names (`/v1/track`,
    /// `/v1/batch`, `/v1/import`), the one-letter paths analytics.js and the mobile SDKs post
    /// to (`/v1/t`, `/v1/i`, `/v1/p`, `/v1/s`, `/v1/g`, `/v1/a`; `/v1/b` for a batch), and
    /// the batch path of RudderStack's `sendBeacon` transport (`/beacon/v1/batch`).
    pub fn of_path(path: &str) -> Option<Endpoint> {
        if path == "/beacon/v1/batch" {
            return Some(Endpoint::Batch);
        }
        let name = path.strip_prefix("/v1/")?;
        match name {
            "batch" | "import" | "b" => Some(Endpoint::Batch),
            // The first letters of the six types differ.
            _ if name.len() == 1 => MessageKind::ALL
                .into_iter()
                .find(|kind| kind.as_str().starts_with(name))
                .map(Endpoint::Single),
            _ => name.parse().ok().map(Endpoint::Single),
        }
    }

    /// The body size limit of the endpoint.
    pub fn max_body(self) -> usize {
        match self {
            Endpoint::Single(_) => MAX_EVENT_BYTES,
            Endpoint::Batch => MAX_BATCH_BYTES,
        }
    }
}

/// One problem with one field of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Why a whole request was refused before looking at its messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("request body is {size} bytes; the limit for this endpoint is {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("request body is not valid gzip: {0}")]
    MalformedGzip(String),
    #[error("request body must be a JSON object")]
    NotAnObject,
    #[error("`batch` must be an array of messages")]
    BatchNotArray,
    #[error("missing write key: send it as the HTTP Basic username or as `writeKey` in the body")]
    MissingWriteKey,
    #[error("unknown write key")]
    UnknownWriteKey,
    /// An `Authorization` header that is not HTTP Basic: a wrong credential, not an absent
    /// one, so the request is not let through on a key elsewhere.
    #[error("the Authorization header is not HTTP Basic with the write key as username")]
    NotBasicAuthorization,
}

impl RequestError {
    /// The HTTP status of the refusal.
    pub fn status(&self) -> u16 {
        match self {
            RequestError::TooLarge { .. } => 413,
            RequestError::MissingWriteKey
            | RequestError::UnknownWriteKey
            | RequestError::NotBasicAuthorization => 401,
            _ => 400,
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::TooLarge { .. } => "payload_too_large",
            RequestError::MalformedJson(_) => "malformed_json",
            RequestError::MalformedGzip(_) => "malformed_gzip",
            RequestError::NotAnObject => "not_an_object",
            RequestError::BatchNotArray => "invalid_batch",
            RequestError::MissingWriteKey => "missing_write_key",
            RequestError::UnknownWriteKey | RequestError::NotBasicAuthorization => {
                "unknown_write_key"
            }
        }
    }
}

/// A message of a request that was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// Position in the batch (0 for single-message endpoints).
    pub index: usize,
    #[serde(rename = "messageId", skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    pub errors: Vec<FieldError>,
}

/// The outcome of one tracking request whose envelope was fine.
#[derive(Debug, Default)]
pub struct Intake {
    pub accepted: Vec<AcceptedEvent>,
    pub rejected: Vec<Rejection>,
    /// Accepted but worth a look (events or properties the tracking plan does not list).
    pub flags: Vec<(usize, FieldError)>,
}

/// The write keys that may send events, kept as digests (`constant_time`).
#[derive(Clone, Default)]
pub struct WriteKeys(Vec<SecretDigest>);

impl WriteKeys {
    /// Keys as configured; empty ones are ignored.
    pub fn new(keys: impl IntoIterator<Item = String>) -> Self {
        WriteKeys(
            keys.into_iter()
                .filter(|k| !k.is_empty())
                .map(|k| secret_digest(k.as_bytes()))
                .collect(),
        )
    }

    /// Whether `key` is one of them (compared in constant time with every key, so the time
    /// tells neither which key nor how much of one matched).
    pub fn accepts(&self, key: &str) -> bool {
        let presented = secret_digest(key.as_bytes());
        self.0.iter().fold(false, |ok, k| {
            ok | bool::from(subtle::ConstantTimeEq::ct_eq(&presented[..], &k[..]))
        })
    }
}

impl std::fmt::Debug for WriteKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WriteKeys({} keys)", self.0.len())
    }
}

/// Parses and authenticates a tracking request, then validates each message. `basic_user` is
/// the HTTP Basic username, if the request had one.
pub fn intake(
    endpoint: Endpoint,
    body: &[u8],
    basic_user: Option<&str>,
    keys: &WriteKeys,
    plan: &TrackingPlan,
    received_at: Millis,
) -> Result<Intake, RequestError> {
    if body.len() > endpoint.max_body() {
        return Err(RequestError::TooLarge {
            size: body.len(),
            limit: endpoint.max_body(),
        });
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| RequestError::MalformedJson(e.to_string()))?;
    let Value::Object(envelope) = value else {
        return Err(RequestError::NotAnObject);
    };
    let key = basic_user
        .filter(|k| !k.is_empty())
        .or_else(|| envelope.get("writeKey").and_then(Value::as_str))
        .ok_or(RequestError::MissingWriteKey)?;
    if !keys.accepts(key) {
        return Err(RequestError::UnknownWriteKey);
    }
    let mut out = Intake::default();
    match endpoint {
        Endpoint::Single(kind) => {
            let sent_at = sent_at_of(&envelope);
            out.take(
                0,
                &Value::Object(envelope),
                Some(kind),
                sent_at,
                plan,
                received_at,
            );
        }
        Endpoint::Batch => {
            let batch_sent_at = sent_at_of(&envelope);
            let Some(Value::Array(items)) = envelope.get("batch") else {
                return Err(RequestError::BatchNotArray);
            };
            for (i, item) in items.iter().enumerate() {
                let size = serde_json::to_string(item).map(|s| s.len()).unwrap_or(0);
                if size > MAX_EVENT_BYTES {
                    out.rejected.push(Rejection {
                        index: i,
                        message_id: message_id_of(item),
                        errors: vec![FieldError {
                            field: "$".into(),
                            message: format!(
                                "message is {size} bytes; the limit is {MAX_EVENT_BYTES} bytes"
                            ),
                        }],
                    });
                    continue;
                }
                let sent_at = item.as_object().and_then(sent_at_of).or(batch_sent_at);
                out.take(i, item, None, sent_at, plan, received_at);
            }
        }
    }
    Ok(out)
}

impl Intake {
    fn take(
        &mut self,
        index: usize,
        value: &Value,
        kind: Option<MessageKind>,
        sent_at: Option<Millis>,
        plan: &TrackingPlan,
        received_at: Millis,
    ) {
        let reject = |errors: Vec<FieldError>| Rejection {
            index,
            message_id: message_id_of(value),
            errors,
        };
        let mut msg = match Message::from_json(value, kind) {
            Ok(m) => m,
            Err(e) => {
                self.rejected.push(reject(vec![FieldError {
                    field: e.field,
                    message: e.message,
                }]));
                return;
            }
        };
        match plan.check(&msg) {
            Ok(flags) => self.flags.extend(flags.into_iter().map(|f| {
                (
                    index,
                    FieldError {
                        field: f.field,
                        message: f.message,
                    },
                )
            })),
            Err(violations) => {
                self.rejected.push(reject(
                    violations
                        .into_iter()
                        .map(|v| FieldError {
                            field: v.field,
                            message: v.message,
                        })
                        .collect(),
                ));
                return;
            }
        }
        if value.get("messageId").is_none_or(Value::is_null) {
            // SDKs always send one; for hand-made calls (curl), two identical messages are
            // two events, as on Segment, so the id the engine derives from the content is
            // made unique per request and position.
            msg.message_id = format!("{}-{received_at:x}-{index}", msg.message_id);
        }
        let at = applied_at(msg.timestamp, sent_at, received_at);
        self.accepted.push(AcceptedEvent::new(msg, at, received_at));
    }
}

/// The instant a message applies at: its timestamp corrected for the sender's clock skew
/// (`timestamp + (receivedAt - sentAt)`, as Segment does), never in the future.
pub fn applied_at(
    timestamp: Option<Millis>,
    sent_at: Option<Millis>,
    received_at: Millis,
) -> Millis {
    let at = match (timestamp, sent_at) {
        (Some(t), Some(s)) => t.saturating_add(received_at.saturating_sub(s)),
        (Some(t), None) => t,
        (None, _) => received_at,
    };
    at.min(received_at)
}

fn sent_at_of(m: &Map<String, Value>) -> Option<Millis> {
    m.get("sentAt")
        .and_then(Value::as_str)
        .and_then(|s| parse_instant(s).ok())
}

fn message_id_of(v: &Value) -> Option<String> {
    v.get("messageId")
        .and_then(Value::as_str)
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nudge_core::time::parse_instant;

    fn keys() -> WriteKeys {
        WriteKeys::new(["wk_a".to_string(), "wk_b".to_string()])
    }

    fn t(s: &str) -> Millis {
        parse_instant(s).unwrap()
    }

    fn run(endpoint: Endpoint, body: &str, user: Option<&str>) -> Result<Intake, RequestError> {
        intake(
            endpoint,
            body.as_bytes(),
            user,
            &keys(),
            &TrackingPlan::default(),
            t("2026-03-03T10:00:00Z"),
        )
    }

    #[test]
    fn endpoints_by_full_name_first_letter_and_beacon_path() {
        use MessageKind::*;
        for (path, endpoint) in [
            ("/v1/track", Endpoint::Single(Track)),
            ("/v1/t", Endpoint::Single(Track)),
            ("/v1/i", Endpoint::Single(Identify)),
            ("/v1/p", Endpoint::Single(Page)),
            ("/v1/s", Endpoint::Single(Screen)),
            ("/v1/g", Endpoint::Single(Group)),
            ("/v1/a", Endpoint::Single(Alias)),
            ("/v1/alias", Endpoint::Single(Alias)),
            ("/v1/b", Endpoint::Batch),
            ("/v1/batch", Endpoint::Batch),
            ("/v1/import", Endpoint::Batch),
            ("/beacon/v1/batch", Endpoint::Batch),
        ] {
            assert_eq!(Endpoint::of_path(path), Some(endpoint), "{path}");
        }
        for path in ["/v1/x", "/v1/", "/v1/tr", "/v1/m", "/beacon/v1/track", "/t"] {
            assert_eq!(Endpoint::of_path(path), None, "{path}");
        }
    }

    #[test]
    fn write_key_from_basic_auth_or_body() {
        let body = r#"{"userId":"u1","event":"Signed Up"}"#;
        let track = Endpoint::Single(MessageKind::Track);
        assert_eq!(run(track, body, Some("wk_a")).unwrap().accepted.len(), 1);
        let with_key = r#"{"userId":"u1","event":"Signed Up","writeKey":"wk_b"}"#;
        assert_eq!(run(track, with_key, None).unwrap().accepted.len(), 1);
        assert_eq!(
            run(track, body, None).unwrap_err(),
            RequestError::MissingWriteKey
        );
        assert_eq!(
            run(track, body, Some("nope")).unwrap_err(),
            RequestError::UnknownWriteKey
        );
    }

    #[test]
    fn envelope_errors_are_named() {
        let track = Endpoint::Single(MessageKind::Track);
        assert!(matches!(
            run(track, "{", Some("wk_a")),
            Err(RequestError::MalformedJson(_))
        ));
        assert_eq!(
            run(track, "[1]", Some("wk_a")).unwrap_err(),
            RequestError::NotAnObject
        );
        let big = format!(
            r#"{{"userId":"u1","event":"x","properties":{{"p":"{}"}}}}"#,
            "a".repeat(33_000)
        );
        assert_eq!(run(track, &big, Some("wk_a")).unwrap_err().status(), 413);
        assert_eq!(
            run(Endpoint::Batch, r#"{"batch":{}}"#, Some("wk_a")).unwrap_err(),
            RequestError::BatchNotArray
        );
    }

    #[test]
    fn batch_keeps_good_messages_and_reports_bad_ones() {
        let body = r#"{"batch":[
            {"type":"track","userId":"u1","event":"A","messageId":"m1"},
            {"type":"track","event":"B","messageId":"m2"},
            {"type":"identify","userId":"u2","traits":{"email":"x@example.com"}}
        ]}"#;
        let out = run(Endpoint::Batch, body, Some("wk_a")).unwrap();
        assert_eq!(out.accepted.len(), 2);
        assert_eq!(out.rejected.len(), 1);
        assert_eq!(out.rejected[0].index, 1);
        assert_eq!(out.rejected[0].message_id.as_deref(), Some("m2"));
        assert_eq!(out.rejected[0].errors[0].field, "userId");
    }

    #[test]
    fn clock_skew_is_corrected_and_future_is_clamped() {
        let recv = t("2026-03-03T10:00:00Z");
        // The device clock is 1 h behind: sentAt 09:00 when the server got it at 10:00.
        assert_eq!(
            applied_at(
                Some(t("2026-03-03T08:59:00Z")),
                Some(t("2026-03-03T09:00:00Z")),
                recv
            ),
            t("2026-03-03T09:59:00Z")
        );
        assert_eq!(
            applied_at(Some(t("2026-03-04T00:00:00Z")), None, recv),
            recv
        );
        assert_eq!(applied_at(None, None, recv), recv);
    }
}
