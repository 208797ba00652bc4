//! Values several sections write that YAML reading does not know: channels, times of day
//! and shares.

use crate::rules::model::Channel;
use crate::rules::yaml::{Diagnostics, Reader};
use marked_yaml::Node;

pub(super) fn channel_of(r: Reader, n: &Node, d: &mut Diagnostics) -> Option<Channel> {
    let s = r.string(n, "channel", d)?;
    let c = Channel::parse(&s.value);
    if c.is_none() {
        d.error(
            s.pos,
            format!(
                "unknown channel `{}` (use email, in_app or webhook)",
                s.value
            ),
        );
    }
    c
}

pub(super) fn clock_time(r: Reader, n: &Node, d: &mut Diagnostics) -> Option<u32> {
    let s = r.string(n, "time", d)?;
    let parsed = s.value.split_once(':').and_then(|(h, m)| {
        let digits = |x: &str, max_len: usize| {
            !x.is_empty() && x.len() <= max_len && x.bytes().all(|b| b.is_ascii_digit())
        };
        if !digits(h, 2) || !digits(m, 2) || m.len() != 2 {
            return None;
        }
        let h: u32 = h.parse().ok()?;
        let m: u32 = m.parse().ok()?;
        (h < 24 && m < 60).then_some(h * 60 + m)
    });
    if parsed.is_none() {
        d.error(
            s.pos,
            format!("`{}` is not a time of day (write \"21:00\")", s.value),
        );
    }
    parsed
}

/// `10%` or `0.1`.
pub(super) fn share(r: Reader, n: &Node, what: &str, d: &mut Diagnostics) -> Option<f64> {
    let s = r.string(n, what, d)?;
    let v = match s.value.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().ok().map(|x| x / 100.0),
        None => s.value.parse::<f64>().ok(),
    };
    match v {
        Some(x) if (0.0..1.0).contains(&x) => Some(x),
        _ => {
            d.error(
                s.pos,
                format!("{what} must be a share like `10%` or `0.1`, below 100%"),
            );
            None
        }
    }
}
