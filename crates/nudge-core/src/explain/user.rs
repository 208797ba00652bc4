//! What nudge keeps about the user, for the explanation's header.

use super::policies::zone_name;
use super::{Evidence, UserSummary};
use crate::engine::conditions::{Ctx, Props};

/// The user as the rules see them at `e.at`.
pub(super) fn summary(e: &Evidence<'_>) -> UserSummary {
    let ctx = Ctx {
        rules: e.rules,
        state: e.state,
        now: e.at,
        props: Props::None,
    };
    UserSummary {
        sessions: e.state.sessions,
        last_activity: e.state.last_activity,
        traits: e
            .state
            .traits
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect(),
        segments: e
            .rules
            .segments
            .iter()
            .filter(|s| ctx.holds(&s.cond))
            .map(|s| s.id.clone())
            .collect(),
        timezone: zone_name(e.rules, e.state),
        unsubscribed: e.state.unsubscribed,
        state_bytes: e.state.encode(e.rules).len(),
    }
}
