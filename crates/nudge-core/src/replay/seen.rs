//! The messageIds a replay has applied, over a window of event time: like the stores'
//! idempotency records (SQLite keeps applied ids for 7 days), a message seen again within the
//! window counts once. Ids are kept as 64-bit hashes, so memory is bounded by the messages of
//! one window, not by the length of the history.

use std::collections::VecDeque;

use rustc_hash::FxHashSet;

use crate::time::Millis;

/// How far back in event time a duplicate is recognised.
pub const DEDUP_WINDOW_MS: Millis = 7 * 86_400_000;

/// Applied messageIds, newest `DEDUP_WINDOW_MS` of event time.
#[derive(Debug, Default)]
pub struct Seen {
    /// Id hashes (a hash already: Fx mixes it cheaply). An id is in here at most once, with
    /// one entry in `order`: it is only applied again after it was forgotten.
    ids: FxHashSet<u64>,
    /// (when, id hash) in the order applied, for forgetting the oldest.
    order: VecDeque<(Millis, u64)>,
}

impl Seen {
    /// Records `message_id` applied at `at` (instants come in time order); `false` if it was
    /// applied within the window before.
    pub fn insert(&mut self, message_id: &str, at: Millis) -> bool {
        self.forget_before(at.saturating_sub(DEDUP_WINDOW_MS));
        let id = xxhash_rust::xxh3::xxh3_64(message_id.as_bytes());
        if !self.ids.insert(id) {
            return false;
        }
        self.order.push_back((at, id));
        true
    }

    fn forget_before(&mut self, horizon: Millis) {
        while let Some(&(when, id)) = self.order.front() {
            if when >= horizon {
                break;
            }
            self.order.pop_front();
            self.ids.remove(&id);
        }
    }

    /// Ids remembered now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duplicate_counts_once_within_the_window_and_is_forgotten_after() {
        let mut s = Seen::default();
        assert!(s.insert("m1", 0));
        assert!(!s.insert("m1", DEDUP_WINDOW_MS - 1));
        assert!(s.insert("m2", DEDUP_WINDOW_MS));
        // m1 was applied at 0, a window ago: a new message now.
        assert!(s.insert("m1", DEDUP_WINDOW_MS + 1));
        assert!(!s.insert("m1", DEDUP_WINDOW_MS + 2));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn memory_follows_the_window_not_the_history() {
        let mut s = Seen::default();
        let step = 60_000;
        for i in 0..100_000i64 {
            assert!(s.insert(&format!("m{i}"), i * step));
        }
        let per_window = (DEDUP_WINDOW_MS / step + 1) as usize;
        assert!(s.len() <= per_window, "{} > {per_window}", s.len());
    }
}
