//! The `settings` section: default time zone, time zone trait, session gap, email tracking.

use crate::rules::model::RuleSet;
use crate::rules::yaml::{Diagnostics, Reader};
use crate::time::time_zone;
use marked_yaml::Node;

pub(super) fn parse_settings(r: Reader, n: &Node, set: &mut RuleSet, d: &mut Diagnostics) {
    let Some(m) = r.map(n, "settings", d) else {
        return;
    };
    r.check_keys(
        m,
        &[
            "default_timezone",
            "timezone_trait",
            "session_gap",
            "track_email_links",
            "track_email_opens",
        ],
        "settings",
        d,
    );
    if let Some(v) = m.get_node("default_timezone") {
        if let Some(tz) = r.string(v, "default_timezone", d) {
            if time_zone(&tz.value).is_none() {
                d.error(
                    tz.pos,
                    format!(
                        "unknown time zone `{}` (use an IANA name like Europe/Berlin)",
                        tz.value
                    ),
                );
            }
            set.settings.default_timezone = tz;
        }
    }
    if let Some(v) = m.get_node("timezone_trait") {
        if let Some(s) = r.string(v, "timezone_trait", d) {
            set.settings.timezone_trait = s.value;
        }
    }
    if let Some(v) = m.get_node("session_gap") {
        if let Some(g) = r.duration(v, "session_gap", d) {
            set.settings.session_gap = g.value;
        }
    }
    if let Some(v) = m.get_node("track_email_links") {
        if let Some(b) = r.boolean(v, "track_email_links", d) {
            set.settings.track_email_links = b;
        }
    }
    if let Some(v) = m.get_node("track_email_opens") {
        if let Some(b) = r.boolean(v, "track_email_opens", d) {
            set.settings.track_email_opens = b;
        }
    }
}
