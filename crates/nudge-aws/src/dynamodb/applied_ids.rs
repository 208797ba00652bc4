//! The messageIds recently applied to a user, packed into the user-state item.
//!
//! DynamoDB transactions cost twice the write units, so instead of one item per applied
//! messageId (written in a transaction with the state), the state item carries a short list:
//! 16 bytes an entry (the id's xxh3-64 hash, then its expiry in ms, both little-endian),
//! newest last, expired ones pruned on every write. It keeps every id recorded within the
//! last [`AppliedIds::REDELIVERY_WINDOW_MS`] (however many one write applied: a retried batch
//! of 100 events of one user is recognised whole) and, beyond that, the newest
//! [`AppliedIds::MAX`]; never more than [`AppliedIds::HARD_MAX`]. `load` answers duplicates
//! from it in the same strongly consistent GetItem.

use nudge_core::time::Millis;
use nudge_service::ports::{StoreError, MESSAGE_ID_RETENTION_MS};
use xxhash_rust::xxh3::xxh3_64;

const ENTRY_BYTES: usize = 16;

/// The applied-messageId list of one user-state version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AppliedIds {
    /// (hash, expiry ms), oldest first.
    entries: Vec<(u64, Millis)>,
}

/// A messageId in a write was applied already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AlreadyApplied;

impl AppliedIds {
    /// Entries kept beyond the redelivery window: the newest win.
    pub(crate) const MAX: usize = 32;
    /// Entries younger than this are kept whatever their number (up to [`Self::HARD_MAX`]):
    /// SDK retries come within seconds, Lambda's asynchronous retries after one and two
    /// minutes, EventBridge's first retries within minutes. Longer, and a user sending an
    /// event every 30 s would carry more than a kilobyte of ids, doubling the write units of
    /// every state write.
    pub(crate) const REDELIVERY_WINDOW_MS: Millis = 15 * 60 * 1000;
    /// Most entries ever kept (8 KB): bounds the item for a user importing thousands of
    /// events at once. More than one write units' worth only while such a burst is recent.
    pub(crate) const HARD_MAX: usize = 512;

    /// Reads the packed list; `None` (attribute absent) is the empty list.
    pub(crate) fn decode(bytes: Option<&[u8]>) -> Result<Self, StoreError> {
        let bytes = bytes.unwrap_or_default();
        if bytes.len() % ENTRY_BYTES != 0 {
            return Err(StoreError::Corrupt(format!(
                "applied messageIds: {} bytes is not a whole number of {ENTRY_BYTES}-byte entries",
                bytes.len()
            )));
        }
        let entries = bytes
            .chunks_exact(ENTRY_BYTES)
            .map(|entry| {
                let (hash, expiry) = entry.split_at(8);
                (
                    u64::from_le_bytes(hash.try_into().unwrap_or_default()),
                    i64::from_le_bytes(expiry.try_into().unwrap_or_default()),
                )
            })
            .collect();
        Ok(AppliedIds { entries })
    }

    /// The packed list.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.entries.len() * ENTRY_BYTES);
        for (hash, expiry) in &self.entries {
            bytes.extend_from_slice(&hash.to_le_bytes());
            bytes.extend_from_slice(&expiry.to_le_bytes());
        }
        bytes
    }

    /// Whether the list is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `message_id` was applied and has not expired at `now`.
    pub(crate) fn contains(&self, message_id: &str, now: Millis) -> bool {
        let hash = hash(message_id);
        self.entries
            .iter()
            .any(|&(h, expiry)| h == hash && expiry > now) // not a secret: a message id's hash
    }

    /// Records `message_ids` as applied at `now`: prunes expired entries, refuses if any of
    /// the ids is still in the list, appends the new ones, then drops the oldest entries
    /// that are both beyond the newest [`Self::MAX`] and older than the redelivery window.
    pub(crate) fn record(
        &mut self,
        message_ids: &[&str],
        now: Millis,
    ) -> Result<(), AlreadyApplied> {
        self.entries.retain(|&(_, expiry)| expiry > now);
        if message_ids.iter().any(|id| self.contains(id, now)) {
            return Err(AlreadyApplied);
        }
        let expiry = now.saturating_add(MESSAGE_ID_RETENTION_MS);
        for id in message_ids {
            let hash = hash(id);
            // The same id twice in one write counts once.
            // not a secret: a message id's hash
            if !self.entries.iter().any(|&(h, _)| h == hash) {
                self.entries.push((hash, expiry));
            }
        }
        // Entries are in recording order; an expiry says when one was recorded.
        let recent = now
            .saturating_add(MESSAGE_ID_RETENTION_MS)
            .saturating_sub(Self::REDELIVERY_WINDOW_MS);
        let old = self
            .entries
            .iter()
            .take_while(|&&(_, expiry)| expiry <= recent)
            .count();
        let mut drop = old.min(self.entries.len().saturating_sub(Self::MAX));
        drop = drop.max(self.entries.len().saturating_sub(Self::HARD_MAX));
        self.entries.drain(..drop);
        Ok(())
    }
}

fn hash(message_id: &str) -> u64 {
    xxh3_64(message_id.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_bytes() {
        let mut ids = AppliedIds::default();
        ids.record(&["m1", "m2"], 1_000).unwrap();
        let bytes = ids.encode();
        assert_eq!(bytes.len(), 32);
        assert_eq!(AppliedIds::decode(Some(&bytes)).unwrap(), ids);
        assert_eq!(AppliedIds::decode(None).unwrap(), AppliedIds::default());
        assert!(matches!(
            AppliedIds::decode(Some(&bytes[..17])),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn refuses_ids_applied_within_the_retention() {
        let mut ids = AppliedIds::default();
        ids.record(&["m1"], 1_000).unwrap();
        let before = ids.clone();
        assert_eq!(ids.record(&["m2", "m1"], 2_000), Err(AlreadyApplied));
        assert_eq!(ids, before, "a refused write changes nothing");
        assert!(ids.contains("m1", 1_000 + MESSAGE_ID_RETENTION_MS - 1));
        assert!(!ids.contains("m1", 1_000 + MESSAGE_ID_RETENTION_MS));
        // After the retention the same id counts again, and the expired entry is pruned.
        ids.record(&["m1"], 1_000 + MESSAGE_ID_RETENTION_MS)
            .unwrap();
        assert_eq!(ids.entries.len(), 1);
    }

    #[test]
    fn beyond_the_redelivery_window_keeps_the_newest_entries() {
        let mut ids = AppliedIds::default();
        let names: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
        let minute = 60_000;
        for (i, name) in names.iter().enumerate() {
            ids.record(&[name.as_str()], i as Millis * minute).unwrap();
        }
        let now = 40 * minute;
        // Every id of the last 15 minutes and the newest 32 are kept: the newest 32 here.
        assert_eq!(ids.entries.len(), AppliedIds::MAX);
        assert!(!ids.contains("m7", now));
        assert!(ids.contains("m8", now));
        assert!(ids.contains("m39", now));
    }

    #[test]
    fn a_large_write_is_remembered_whole_through_the_redelivery_window() {
        let mut ids = AppliedIds::default();
        let batch: Vec<String> = (0..100).map(|i| format!("b{i}")).collect();
        let batch: Vec<&str> = batch.iter().map(String::as_str).collect();
        ids.record(&batch, 0).unwrap();
        // A few more events of the user within minutes.
        for (i, id) in ["x1", "x2", "x3"].into_iter().enumerate() {
            ids.record(&[id], (i as Millis + 1) * 60_000).unwrap();
        }

        // The retried batch is recognised, every id of it.
        let retry_at = 5 * 60_000;
        assert!(batch.iter().all(|id| ids.contains(id, retry_at)));
        assert_eq!(ids.record(&batch, retry_at), Err(AlreadyApplied));

        // After the window, the next write trims to the newest MAX.
        ids.record(&["late"], AppliedIds::REDELIVERY_WINDOW_MS + 1)
            .unwrap();
        assert_eq!(ids.entries.len(), AppliedIds::MAX);
        assert!(ids.contains("late", AppliedIds::REDELIVERY_WINDOW_MS + 1));
    }

    #[test]
    fn never_more_than_the_hard_bound() {
        let mut ids = AppliedIds::default();
        let many: Vec<String> = (0..700).map(|i| format!("i{i}")).collect();
        for chunk in many.chunks(100) {
            let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
            ids.record(&chunk, 0).unwrap();
        }
        assert_eq!(ids.entries.len(), AppliedIds::HARD_MAX);
        assert!(ids.contains("i699", 0) && !ids.contains("i0", 0));
    }

    #[test]
    fn an_id_twice_in_one_write_counts_once() {
        let mut ids = AppliedIds::default();
        ids.record(&["m1", "m1"], 0).unwrap();
        assert_eq!(ids.entries.len(), 1);
    }
}
