//! What a trigger remembers of its own sends: `once` (per user, per session, per property
//! value) and `cooldown`, checked at start and at fire time, spent by every decision (a
//! suppressed send spends them too).

use super::conditions::scalar_key;
use crate::rules::compiled::{COnce, CTrigger};
use crate::state::{Scalar, TriggerMemo, MAX_ONCE_KEYS};
use crate::time::Millis;

pub(super) fn once_key(t: &CTrigger, props: &[(String, Scalar)]) -> Option<u32> {
    let COnce::PerProperty(_) = &t.once else {
        return None;
    };
    let name = t.once_name.as_deref().unwrap_or_default();
    let key = props
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| scalar_key(v))
        .unwrap_or_else(|| scalar_key(&Scalar::Null));
    Some(key)
}

/// Whether once/once-per-session/once-per-value forbids firing now (`once_key`: the
/// `once: {per}` property's key for this occurrence).
pub(super) fn spent(t: &CTrigger, memo: &TriggerMemo, session: u32, once_key: Option<u32>) -> bool {
    match &t.once {
        COnce::Never => false,
        COnce::User => memo.last.is_some(),
        COnce::Session => memo.session == Some(session),
        COnce::PerProperty(_) => once_key.is_some_and(|k| memo.keys.contains(&k)),
    }
}

/// Marks the trigger's once/cooldown as spent by a decision at `at`.
pub(super) fn consume(
    t: &CTrigger,
    memo: &mut TriggerMemo,
    session: u32,
    props: &[(String, Scalar)],
    at: Millis,
) {
    if matches!(t.once, COnce::User) || t.cooldown.is_some() {
        memo.last = Some(at);
    }
    if matches!(t.once, COnce::Session) {
        memo.session = Some(session);
    }
    if let Some(k) = once_key(t, props) {
        if !memo.keys.contains(&k) {
            memo.keys.push(k);
            if memo.keys.len() > MAX_ONCE_KEYS {
                memo.keys.remove(0);
            }
        }
    }
}
