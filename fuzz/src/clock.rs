//! A clock that stands still, so that a target answers an input the same way every time (a
//! crash found once is found again from its input alone).

use nudge_core::time::Millis;
use nudge_service::ports::Clock;

/// 2026-03-03T09:00:00Z, a day after the sample events' timestamps.
pub const NOW: Millis = 1_772_528_400_000;

/// The clock at [`NOW`].
#[derive(Debug, Clone, Copy, Default)]
pub struct FixedClock;

impl Clock for FixedClock {
    fn now(&self) -> Millis {
        NOW
    }
}
