//! HMAC-SHA256 signatures: the in-app inbox's user hash, one-click unsubscribe tokens, click
//! links, email open pixels and webhook signatures. Every check is constant-time
//! (`Mac::verify_slice`).
//!
//! Domain separation: each use signs a message no other use can produce with the same key.
//! - unsubscribe tokens sign `nudge-unsubscribe-v1\0` + decision id + user id, and click
//!   links `nudge-click-v2\0` (open pixels `nudge-open-v1\0`) + decision id + channel +
//!   length-prefixed user id, trigger and variant + URL: messages that start with a letter,
//!   and differ in their prefix;
//! - webhooks sign `<unix seconds>.<body>` (Stripe's format, which receivers re-implement),
//!   a message that starts with a digit or `-`, so never an unsubscribe message;
//! - the inbox hash signs the bare user id (Intercom's `user_hash`, which customers' backends
//!   already compute), so it cannot carry a prefix; it is keyed by its own secret
//!   (`inbox_secret`), never by the signing secret the other two share.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use nudge_core::engine::decision::DecisionId;
use nudge_core::rules::model::Channel;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Prefix of every signed unsubscribe message (bump the version to invalidate all links).
const UNSUBSCRIBE_DOMAIN: &[u8] = b"nudge-unsubscribe-v1\0";

/// Prefix of every signed click link (bump the version to invalidate all links; v2 signs the
/// variant).
const CLICK_DOMAIN: &[u8] = b"nudge-click-v2\0";

/// Prefix of every signed email open pixel.
const OPEN_DOMAIN: &[u8] = b"nudge-open-v1\0";

/// The HTTP header carrying a webhook's signature.
pub const SIGNATURE_HEADER: &str = "Nudge-Signature";

/// A MAC keyed with `secret`.
fn keyed(secret: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length (long ones are hashed), so this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length")
}

/// Lowercase hex HMAC-SHA256(secret, user id): Intercom's `user_hash`, which the customer's
/// backend computes and the in-app widget presents with the user id.
pub fn inbox_hash(secret: &[u8], user_id: &str) -> String {
    let mut mac = keyed(secret);
    mac.update(user_id.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `presented` (hex, either case) is the inbox hash of `user_id`; `false` on bad hex.
pub fn verify_inbox_hash(secret: &[u8], user_id: &str, presented: &str) -> bool {
    let Ok(tag) = hex::decode(presented) else {
        return false;
    };
    let mut mac = keyed(secret);
    mac.update(user_id.as_bytes());
    mac.verify_slice(&tag).is_ok()
}

/// What a valid unsubscribe token says: this user, via the mail of this decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubscribeClaim {
    pub user_id: String,
    pub decision: DecisionId,
}

/// Why an unsubscribe or click token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not the dot-separated parts of the expected encodings.
    #[error("malformed token")]
    Malformed,
    /// Well-formed, but not signed with our secret (or altered).
    #[error("token signature does not match")]
    BadSignature,
}

/// The unsubscribe MAC over decision id and user id (the decision's fixed 8 bytes come first,
/// so the message is unambiguous whatever bytes the user id holds).
fn unsubscribe_mac(secret: &[u8], user_id: &str, decision: DecisionId) -> HmacSha256 {
    let mut mac = keyed(secret);
    mac.update(UNSUBSCRIBE_DOMAIN);
    mac.update(&decision.0.to_be_bytes());
    mac.update(user_id.as_bytes());
    mac
}

/// A URL-safe one-click unsubscribe token: `base64url(user id).<decision hex>.base64url(MAC)`.
///
/// Tokens never expire: RFC 8058 one-click links sit in mailboxes for years and must keep
/// working. Rotating the signing secret is the only way to invalidate them all.
pub fn unsubscribe_token(secret: &[u8], user_id: &str, decision: DecisionId) -> String {
    let tag = unsubscribe_mac(secret, user_id, decision)
        .finalize()
        .into_bytes();
    format!(
        "{}.{decision}.{}",
        URL_SAFE_NO_PAD.encode(user_id.as_bytes()),
        URL_SAFE_NO_PAD.encode(tag)
    )
}

/// Checks an unsubscribe token and returns who it unsubscribes. Tokens do not expire.
pub fn verify_unsubscribe_token(
    secret: &[u8],
    token: &str,
) -> Result<UnsubscribeClaim, TokenError> {
    let mut parts = token.split('.');
    let (Some(user), Some(decision), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let user_id = URL_SAFE_NO_PAD
        .decode(user)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(TokenError::Malformed)?;
    // Only the exact form `Display` writes: `from_str_radix` alone would also take `+1f`.
    if decision.len() != 16 || !decision.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(TokenError::Malformed);
    }
    let decision: DecisionId = decision.parse().map_err(|_| TokenError::Malformed)?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| TokenError::Malformed)?;
    unsubscribe_mac(secret, &user_id, decision)
        .verify_slice(&tag)
        .map_err(|_| TokenError::BadSignature)?;
    Ok(UnsubscribeClaim { user_id, decision })
}

/// What a valid click link says: this user followed this URL of the message of this decision
/// (by this trigger, in this variant), sent on this channel. An open pixel's claim is the same
/// with an empty URL, signed under its own prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickClaim {
    pub user_id: String,
    pub decision: DecisionId,
    pub channel: Channel,
    pub trigger: String,
    pub variant: String,
    pub url: String,
}

/// The MAC of a click link or open pixel: the fixed-size fields first, the variable ones
/// length-prefixed (the URL last), so no two claims sign the same bytes.
fn claim_mac(secret: &[u8], domain: &[u8], claim: &ClickClaim) -> HmacSha256 {
    let mut mac = keyed(secret);
    mac.update(domain);
    mac.update(&claim.decision.0.to_be_bytes());
    mac.update(claim.channel.as_str().as_bytes());
    mac.update(b"\0");
    for part in [&claim.user_id, &claim.trigger, &claim.variant] {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part.as_bytes());
    }
    mac.update(claim.url.as_bytes());
    mac
}

/// `base64url(user id).<decision hex>.<channel>.base64url(trigger).base64url(variant).
/// base64url(url).base64url(MAC)`.
fn claim_token(secret: &[u8], domain: &[u8], claim: &ClickClaim) -> String {
    let tag = claim_mac(secret, domain, claim).finalize().into_bytes();
    format!(
        "{}.{}.{}.{}.{}.{}.{}",
        URL_SAFE_NO_PAD.encode(claim.user_id.as_bytes()),
        claim.decision,
        claim.channel.as_str(),
        URL_SAFE_NO_PAD.encode(claim.trigger.as_bytes()),
        URL_SAFE_NO_PAD.encode(claim.variant.as_bytes()),
        URL_SAFE_NO_PAD.encode(claim.url.as_bytes()),
        URL_SAFE_NO_PAD.encode(tag)
    )
}

fn verify_claim(secret: &[u8], domain: &[u8], token: &str) -> Result<ClickClaim, TokenError> {
    let parts: Vec<&str> = token.splitn(8, '.').collect();
    let [user, decision, channel, trigger, variant, url, tag] = parts[..] else {
        return Err(TokenError::Malformed);
    };
    let text = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or(TokenError::Malformed)
    };
    if decision.len() != 16 || !decision.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(TokenError::Malformed);
    }
    let claim = ClickClaim {
        user_id: text(user)?,
        decision: decision.parse().map_err(|_| TokenError::Malformed)?,
        channel: Channel::parse(channel).ok_or(TokenError::Malformed)?,
        trigger: text(trigger)?,
        variant: text(variant)?,
        url: text(url)?,
    };
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| TokenError::Malformed)?;
    claim_mac(secret, domain, &claim)
        .verify_slice(&tag)
        .map_err(|_| TokenError::BadSignature)?;
    Ok(claim)
}

/// A click link's token (the path after `/v1/c/`). The URL is signed, so the link redirects
/// only where the message pointed: no open redirect. Like unsubscribe links, they do not
/// expire.
pub fn click_token(secret: &[u8], claim: &ClickClaim) -> String {
    claim_token(secret, CLICK_DOMAIN, claim)
}

/// Checks a click token and returns its claim.
pub fn verify_click_token(secret: &[u8], token: &str) -> Result<ClickClaim, TokenError> {
    verify_claim(secret, CLICK_DOMAIN, token)
}

/// An email open pixel's token (the path after `/v1/o/`, before `.gif`); the claim's URL is
/// not used. A click token is not an open token, nor the reverse.
pub fn open_token(secret: &[u8], claim: &ClickClaim) -> String {
    claim_token(secret, OPEN_DOMAIN, claim)
}

/// Checks an open pixel's token and returns its claim.
pub fn verify_open_token(secret: &[u8], token: &str) -> Result<ClickClaim, TokenError> {
    verify_claim(secret, OPEN_DOMAIN, token)
}

/// Why a webhook signature header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature header has no `t=` timestamp")]
    MissingTimestamp,
    #[error("signature header has no `v1=` signature")]
    MissingSignature,
    /// Not a list of `key=value` pairs, a timestamp that is not an integer, or two of them.
    #[error("malformed signature header")]
    Malformed,
    /// Too old (a replay) or too far in the future.
    #[error("signature timestamp {timestamp} is more than {tolerance_secs}s from now ({now})")]
    OutsideTolerance {
        timestamp: i64,
        now: i64,
        tolerance_secs: i64,
    },
    #[error("no signature matches the body")]
    Mismatch,
}

/// The MAC over `<t>.<body>`.
fn webhook_mac(secret: &[u8], timestamp_secs: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = keyed(secret);
    mac.update(timestamp_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `Nudge-Signature` value: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn webhook_signature(secret: &[u8], timestamp_secs: i64, body: &[u8]) -> String {
    let tag = webhook_mac(secret, timestamp_secs, body)
        .finalize()
        .into_bytes();
    format!("t={timestamp_secs},v1={}", hex::encode(tag))
}

/// Checks a `Nudge-Signature` header as a receiver would: one `t=`, at least one `v1=` (several
/// while a secret is rotated; one matching is enough), unknown keys ignored, and the timestamp
/// within `tolerance_secs` of `now_secs` either way so captured requests cannot be replayed.
pub fn verify_webhook_signature(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in header.split(',') {
        let (key, value) = item
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match key.trim() {
            "t" => {
                let t: i64 = value
                    .trim()
                    .parse()
                    .map_err(|_| SignatureError::Malformed)?;
                if timestamp.replace(t).is_some() {
                    return Err(SignatureError::Malformed);
                }
            }
            "v1" => signatures.push(value.trim()),
            // Other schemes (a future v2) are for other verifiers.
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::MissingTimestamp)?;
    if signatures.is_empty() {
        return Err(SignatureError::MissingSignature);
    }
    // Checked before the MAC so a flood of stale replays costs no hashing.
    if timestamp.abs_diff(now_secs) > tolerance_secs.max(0).unsigned_abs() {
        return Err(SignatureError::OutsideTolerance {
            timestamp,
            now: now_secs,
            tolerance_secs,
        });
    }
    let mac = webhook_mac(secret, timestamp, body);
    let matched = signatures.iter().any(|s| {
        hex::decode(s)
            .map(|tag| mac.clone().verify_slice(&tag).is_ok())
            .unwrap_or(false)
    });
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"secret";

    #[test]
    fn inbox_hash_matches_an_independent_hmac() {
        // Given the value python3's hmac module computes for ("secret", "user-1")
        let expected = "1d16fd7e96e8a9681f283b8a251822ffdc71e2a5bda0c5267a044874fa21b82b";
        // When nudge computes it
        let hash = inbox_hash(SECRET, "user-1");
        // Then it is byte for byte Intercom's lowercase hex user_hash
        assert_eq!(hash, expected);
        assert!(verify_inbox_hash(SECRET, "user-1", expected));
    }

    #[test]
    fn inbox_hash_accepts_uppercase_hex() {
        // Given a hash written in uppercase by another client library
        let upper = inbox_hash(SECRET, "user-1").to_uppercase();
        // When it is verified
        // Then it counts as the same hash
        assert!(verify_inbox_hash(SECRET, "user-1", &upper));
    }

    #[test]
    fn inbox_hash_of_one_user_is_not_valid_for_another() {
        // Given user A's hash
        let a = inbox_hash(SECRET, "user-a");
        // When it is presented for user B
        // Then it is refused
        assert!(!verify_inbox_hash(SECRET, "user-b", &a));
    }

    #[test]
    fn inbox_hash_rejects_tampering_bad_hex_and_other_secrets() {
        // Given a valid hash
        let good = inbox_hash(SECRET, "user-1");
        // When one digit changes, it is cut short, it is not hex, or the secret differs
        let mut flipped = good.clone().into_bytes();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        // Then every variant is refused
        assert!(!verify_inbox_hash(SECRET, "user-1", &flipped));
        assert!(!verify_inbox_hash(SECRET, "user-1", &good[..32]));
        assert!(!verify_inbox_hash(SECRET, "user-1", "not hex at all"));
        assert!(!verify_inbox_hash(SECRET, "user-1", ""));
        assert!(!verify_inbox_hash(b"other", "user-1", &good));
    }

    #[test]
    fn unsubscribe_token_round_trips() {
        // Given a token for a user id with characters that are not URL-safe
        let decision = DecisionId(0x00ab_cdef_0123_4567);
        let user = "ana+test@example.com/ü";
        let token = unsubscribe_token(SECRET, user, decision);
        // When it is verified
        let claim = verify_unsubscribe_token(SECRET, &token).unwrap();
        // Then it names that user and decision, and fits in a URL unescaped
        assert_eq!(
            claim,
            UnsubscribeClaim {
                user_id: user.to_string(),
                decision
            }
        );
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
        assert!(token.contains(".00abcdef01234567."));
    }

    #[test]
    fn unsubscribe_token_rejects_tampering() {
        // Given a token for user-a
        let decision = DecisionId(42);
        let token = unsubscribe_token(SECRET, "user-a", decision);
        let parts: Vec<&str> = token.split('.').collect();
        // When the user id is swapped for user-b's, keeping the signature
        let other_user = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode("user-b"),
            parts[1],
            parts[2]
        );
        // Or the decision id is changed
        let other_decision = format!("{}.{}.{}", parts[0], DecisionId(43), parts[2]);
        // Then both are refused as bad signatures, as is the token under another secret
        assert_eq!(
            verify_unsubscribe_token(SECRET, &other_user),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify_unsubscribe_token(SECRET, &other_decision),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify_unsubscribe_token(b"other", &token),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn unsubscribe_token_rejects_malformed_input() {
        // Given a valid token's parts
        let token = unsubscribe_token(SECRET, "user-a", DecisionId(42));
        let parts: Vec<&str> = token.split('.').collect();
        // When parts are missing, extra, or badly encoded
        let cases = [
            String::new(),
            "abc".to_string(),
            format!("{}.{}", parts[0], parts[1]),
            format!("{token}.extra"),
            format!("!!!.{}.{}", parts[1], parts[2]),
            format!("{}.+00000000000002a.{}", parts[0], parts[2]),
            format!("{}.2a.{}", parts[0], parts[2]),
            format!("{}.{}.***", parts[0], parts[1]),
        ];
        // Then each is malformed
        for case in cases {
            assert_eq!(
                verify_unsubscribe_token(SECRET, &case),
                Err(TokenError::Malformed),
                "{case}"
            );
        }
    }

    #[test]
    fn webhook_signature_matches_an_independent_hmac() {
        // Given the value python3's hmac module computes for "1700000000.{\"a\":1}"
        let expected = "8ad37ba156048ae0e0a5533c75cdf26fee88b07f93cb57ee4c80adb053012032";
        // When nudge signs the same body at the same second
        let header = webhook_signature(b"whsec", 1_700_000_000, br#"{"a":1}"#);
        // Then the header carries exactly that
        assert_eq!(header, format!("t=1700000000,v1={expected}"));
    }

    #[test]
    fn webhook_signature_round_trips() {
        // Given a signed body
        let body = br#"{"event":"nudge"}"#;
        let header = webhook_signature(SECRET, 1000, body);
        // When a receiver checks it within tolerance
        // Then it verifies
        assert_eq!(
            verify_webhook_signature(SECRET, &header, body, 1010, 300),
            Ok(())
        );
    }

    #[test]
    fn webhook_signature_rejects_a_changed_body_or_secret() {
        // Given a signed body
        let header = webhook_signature(SECRET, 1000, b"{\"a\":1}");
        // When the body or the secret differ
        // Then the signature does not match
        assert_eq!(
            verify_webhook_signature(SECRET, &header, b"{\"a\":2}", 1000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_webhook_signature(b"other", &header, b"{\"a\":1}", 1000, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn webhook_signature_rejects_a_moved_timestamp() {
        // Given a signature made at t=1000
        let body = b"{}";
        let header = webhook_signature(SECRET, 1000, body);
        let sig = header.split_once(",v1=").unwrap().1;
        // When an attacker rewrites t to a fresh time, keeping the signature
        let moved = format!("t=2000,v1={sig}");
        // Then it no longer matches
        assert_eq!(
            verify_webhook_signature(SECRET, &moved, body, 2000, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn webhook_signature_rejects_stale_and_future_timestamps() {
        // Given a signature made at t=1000
        let body = b"{}";
        let header = webhook_signature(SECRET, 1000, body);
        // When it arrives 301 s later, or the receiver's clock is 301 s behind
        // Then it is outside a 300 s tolerance; exactly 300 s is still fine
        assert!(matches!(
            verify_webhook_signature(SECRET, &header, body, 1301, 300),
            Err(SignatureError::OutsideTolerance {
                timestamp: 1000,
                ..
            })
        ));
        assert!(matches!(
            verify_webhook_signature(SECRET, &header, body, 699, 300),
            Err(SignatureError::OutsideTolerance { .. })
        ));
        assert_eq!(
            verify_webhook_signature(SECRET, &header, body, 1300, 300),
            Ok(())
        );
    }

    #[test]
    fn webhook_signature_accepts_any_of_several_v1_entries() {
        // Given a header signed with the old and the new secret during a rotation
        let body = b"{}";
        let old = webhook_signature(b"old", 1000, body);
        let new = webhook_signature(b"new", 1000, body);
        let header = format!(
            "t=1000, v1={}, v0=ignored, v1={}",
            old.split_once(",v1=").unwrap().1,
            new.split_once(",v1=").unwrap().1
        );
        // When a receiver that knows either secret checks it
        // Then both accept, and a receiver with a third secret does not
        assert_eq!(
            verify_webhook_signature(b"old", &header, body, 1000, 300),
            Ok(())
        );
        assert_eq!(
            verify_webhook_signature(b"new", &header, body, 1000, 300),
            Ok(())
        );
        assert_eq!(
            verify_webhook_signature(b"third", &header, body, 1000, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn webhook_signature_rejects_headers_with_missing_or_bad_parts() {
        // Given a valid signature value
        let body = b"{}";
        let sig = webhook_signature(SECRET, 1000, body);
        let v1 = sig.split_once(',').unwrap().1;
        // When parts are missing, repeated or unparsable
        // Then each is refused with its reason
        let check = |h: &str| verify_webhook_signature(SECRET, h, body, 1000, 300);
        assert_eq!(check(v1), Err(SignatureError::MissingTimestamp));
        assert_eq!(check("t=1000"), Err(SignatureError::MissingSignature));
        assert_eq!(check(""), Err(SignatureError::Malformed));
        assert_eq!(
            check(&format!("t=soon,{v1}")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            check(&format!("t=1000,t=1000,{v1}")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(check("t=1000,v1=zz-not-hex"), Err(SignatureError::Mismatch));
    }

    #[test]
    fn one_use_cannot_be_replayed_as_another() {
        // Given the same key used for an unsubscribe token and a webhook signature
        let key = b"shared";
        let token = unsubscribe_token(key, "1000", DecisionId(1));
        let token_tag = URL_SAFE_NO_PAD
            .decode(token.rsplit('.').next().unwrap())
            .unwrap();
        let webhook = webhook_signature(key, 1000, b"body");
        let webhook_hex = webhook.split_once(",v1=").unwrap().1;
        let webhook_tag = URL_SAFE_NO_PAD.encode(hex::decode(webhook_hex).unwrap());
        // When one's MAC is presented as the other's, or as an inbox hash
        // Then none verifies
        assert_eq!(
            verify_webhook_signature(
                key,
                &format!("t=1000,v1={}", hex::encode(&token_tag)),
                b"body",
                1000,
                300
            ),
            Err(SignatureError::Mismatch)
        );
        assert!(!verify_inbox_hash(key, "1000", &hex::encode(&token_tag)));
        let forged = format!(
            "{}.{}.{webhook_tag}",
            URL_SAFE_NO_PAD.encode("1000"),
            DecisionId(1)
        );
        assert_eq!(
            verify_unsubscribe_token(key, &forged),
            Err(TokenError::BadSignature)
        );
        assert!(!verify_inbox_hash(
            key,
            "1000.body",
            &hex::encode(&token_tag)
        ));
    }

    fn claim() -> ClickClaim {
        ClickClaim {
            user_id: "ada.lovelace".into(),
            decision: DecisionId(0x0123_4567_89ab_cdef),
            channel: Channel::InApp,
            trigger: "billing-tip".into(),
            variant: "short".into(),
            url: "https://app.example.com/billing?from=nudge".into(),
        }
    }

    #[test]
    fn a_click_token_reads_back_its_claim() {
        let token = click_token(b"secret", &claim());
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
        assert_eq!(verify_click_token(b"secret", &token), Ok(claim()));
    }

    #[test]
    fn a_click_token_cannot_be_forged_altered_or_moved_to_another_user_or_url() {
        let token = click_token(b"secret", &claim());
        assert_eq!(
            verify_click_token(b"other secret", &token),
            Err(TokenError::BadSignature)
        );
        let parts: Vec<&str> = token.split('.').collect();
        let with = |i: usize, part: String| {
            let mut p: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
            p[i] = part;
            p.join(".")
        };
        let evil = URL_SAFE_NO_PAD.encode("https://evil.example.com/");
        let mallory = URL_SAFE_NO_PAD.encode("mallory");
        for forged in [
            with(0, mallory),
            with(1, "0123456789abcdee".into()),
            with(2, "email".into()),
            with(3, URL_SAFE_NO_PAD.encode("other-trigger")),
            with(4, URL_SAFE_NO_PAD.encode("control")),
            with(5, evil),
        ] {
            assert_eq!(
                verify_click_token(b"secret", &forged),
                Err(TokenError::BadSignature),
                "{forged}"
            );
        }
        for malformed in ["", "a.b", &with(2, "sms".into()), &format!("{token}.x")] {
            assert_eq!(
                verify_click_token(b"secret", malformed),
                Err(TokenError::Malformed),
                "{malformed}"
            );
        }
        // An unsubscribe token is no click token, and the reverse.
        let unsubscribe = unsubscribe_token(b"secret", "ada.lovelace", claim().decision);
        assert!(verify_click_token(b"secret", &unsubscribe).is_err());
        assert!(verify_unsubscribe_token(b"secret", &token).is_err());
        // Nor is an open pixel's token a click link (it would redirect to its empty URL).
        let open = open_token(b"secret", &claim());
        assert_eq!(verify_open_token(b"secret", &open), Ok(claim()));
        assert_eq!(
            verify_click_token(b"secret", &open),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify_open_token(b"secret", &token),
            Err(TokenError::BadSignature)
        );
    }
}
