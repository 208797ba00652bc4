#![no_main]
//! Signed tokens: unsubscribe links, click links, open pixels, the inbox's user hash and
//! webhook signatures. The input is tried as every kind of token (none may panic; a forged one
//! must not verify: the seeds hold real ones), and it also names a claim (its parts separated by NUL bytes), which is
//! signed and verified back: every token must read back as what was signed, be of the URL-safe
//! characters links carry, and not pass as a token of another kind.

use libfuzzer_sys::fuzz_target;
use nudge_core::engine::decision::DecisionId;
use nudge_core::rules::model::Channel;
use nudge_service::signing::{
    click_token, inbox_hash, open_token, unsubscribe_token, verify_click_token, verify_inbox_hash,
    verify_open_token, verify_unsubscribe_token, verify_webhook_signature, webhook_signature,
    ClickClaim,
};

/// The signing secret of the sample events (`events/README.md`).
const SECRET: &[u8] = b"signing-secret-example";
/// Webhook receivers' tolerance, and the time they check at.
const TOLERANCE_SECS: i64 = 300;
const NOW_SECS: i64 = 1_772_528_400;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Every kind of token, presented as it is.
    let _ = verify_unsubscribe_token(SECRET, &text);
    let _ = verify_click_token(SECRET, &text);
    let _ = verify_open_token(SECRET, &text);
    let (user, presented) = text.split_once('\n').unwrap_or(("alice", &text));
    let _ = verify_inbox_hash(SECRET, user, presented);
    let (header, body) = text.split_once('\n').unwrap_or((&text, ""));
    let _ = verify_webhook_signature(SECRET, header, body.as_bytes(), NOW_SECS, TOLERANCE_SECS);

    // The input as a claim, signed and read back.
    let mut parts = text.split('\0');
    let mut part = || parts.next().unwrap_or_default().to_string();
    let (user_id, trigger, variant, url) = (part(), part(), part(), part());
    let decision = DecisionId(xxhash(data));
    let channel = Channel::ALL[data.first().map_or(0, |b| usize::from(*b) % 3)];
    let claim = ClickClaim {
        user_id,
        decision,
        channel,
        trigger,
        variant,
        url,
    };
    let unsubscribe = unsubscribe_token(SECRET, &claim.user_id, decision);
    let click = click_token(SECRET, &claim);
    let open = open_token(SECRET, &claim);
    for token in [&unsubscribe, &click, &open] {
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "not URL-safe: {token}"
        );
    }
    let read = verify_unsubscribe_token(SECRET, &unsubscribe).expect("unsubscribe verifies");
    assert_eq!(
        (read.user_id.as_str(), read.decision),
        (claim.user_id.as_str(), decision)
    );
    assert_eq!(verify_click_token(SECRET, &click).as_ref(), Ok(&claim));
    assert_eq!(verify_open_token(SECRET, &open).as_ref(), Ok(&claim));
    assert!(
        verify_open_token(SECRET, &click).is_err(),
        "a click token opens"
    );
    assert!(
        verify_click_token(SECRET, &open).is_err(),
        "an open token clicks"
    );
    assert!(verify_unsubscribe_token(SECRET, &click).is_err());
    assert!(verify_click_token(b"another secret", &click).is_err());

    let hash = inbox_hash(SECRET, &claim.user_id);
    assert!(verify_inbox_hash(SECRET, &claim.user_id, &hash));
    assert!(verify_inbox_hash(
        SECRET,
        &claim.user_id,
        &hash.to_uppercase()
    ));
    let signature = webhook_signature(SECRET, NOW_SECS, data);
    assert_eq!(
        verify_webhook_signature(SECRET, &signature, data, NOW_SECS, TOLERANCE_SECS),
        Ok(())
    );
});

fn xxhash(data: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(data)
}
