//! How bus events become EventBridge entries: packed by size, so that a batch of accepted
//! messages, a sweep's fired timers or an evaluate run's timer changes cost few entries (and
//! few handler invocations), each within the detail size EventBridge bills as one event.

use nudge_service::bus::{AcceptedEvents, BusEvent, FiredTimers, TimerChanges};
use serde::Serialize;

/// Packs one publish into entries of at most [`MAX_DETAIL_BYTES`]: accepted messages into
/// as many "Events Accepted" entries as their size needs, "Timer Fired" events into "Timers
/// Fired" entries and "Delay Requested" / "Delay Cancelled" into "Timers Changed" ones; other
/// events (and a kind with a single event) stay as they are, before the packed timers. A
/// sweep's hundreds of timers, or the timer changes of an evaluate invocation's users, then
/// cost one entry and invoke their handler once. Handlers take both forms. The order of a
/// user's timer changes across entries does not matter: each carries the state version it
/// comes from, and newer wins.
pub fn pack(events: &[BusEvent]) -> Vec<BusEvent> {
    let mut out = Vec::new();
    let mut fired = Packed::<FiredTimers>::default();
    let mut changed = Packed::<TimerChanges>::default();
    for e in events {
        match e {
            BusEvent::EventsAccepted(batch) if batch.events.len() > 1 => {
                let mut accepted = Packed::<AcceptedEvents>::default();
                for a in &batch.events {
                    accepted.room(json_len(a)).events.push(a.clone());
                }
                out.extend(accepted.entries.into_iter().map(BusEvent::EventsAccepted));
            }
            BusEvent::TimerFired(t) => fired.room(json_len(t)).timers.push(t.clone()),
            BusEvent::DelayRequested(d) => changed.room(json_len(d)).set.push(d.clone()),
            BusEvent::DelayCancelled(d) => changed.room(json_len(d)).cancel.push(d.clone()),
            other => out.push(other.clone()),
        }
    }
    // An entry of one event goes as that event: packing it saves nothing.
    let single = |e: BusEvent| {
        let mut events = e.clone().unpack();
        match events.len() {
            1 => events.pop().unwrap_or(e),
            _ => e,
        }
    };
    out.extend(
        fired
            .entries
            .into_iter()
            .map(|f| single(BusEvent::TimersFired(f))),
    );
    out.extend(
        changed
            .entries
            .into_iter()
            .map(|c| single(BusEvent::TimersChanged(c))),
    );
    out
}

/// Packed entries of one kind being filled.
struct Packed<T> {
    entries: Vec<T>,
    /// Detail bytes of the last entry.
    bytes: usize,
}

impl<T> Default for Packed<T> {
    fn default() -> Self {
        Packed {
            entries: Vec::new(),
            bytes: 0,
        }
    }
}

impl<T: Default> Packed<T> {
    /// Envelope of a packed detail besides its events (type, field names, brackets).
    const OVERHEAD: usize = 64;

    /// The entry an event of `size` bytes goes into: the last one, or a new one if it would
    /// pass [`MAX_DETAIL_BYTES`].
    fn room(&mut self, size: usize) -> &mut T {
        if self.entries.is_empty() || self.bytes + size > MAX_DETAIL_BYTES {
            self.entries.push(T::default());
            self.bytes = Self::OVERHEAD;
        }
        self.bytes += size;
        let last = self.entries.len() - 1;
        &mut self.entries[last]
    }
}

/// Bytes of a value's JSON plus a separator.
fn json_len(value: &impl Serialize) -> usize {
    serde_json::to_string(value).map_or(MAX_DETAIL_BYTES, |s| s.len() + 1)
}

/// Largest `detail` of one entry (EventBridge bills each 64 KB chunk of an entry as one event
/// and takes at most 256 KB per PutEvents call).
pub const MAX_DETAIL_BYTES: usize = 60 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use nudge_core::event::Message;
    use nudge_service::bus::{AcceptedEvent, DelayCancel, DelayRequest, TimerFired};

    fn fired(user: &str) -> BusEvent {
        BusEvent::TimerFired(TimerFired {
            user_id: user.into(),
            due: 1,
            version: 2,
        })
    }

    fn set(user: &str) -> BusEvent {
        BusEvent::DelayRequested(DelayRequest {
            user_id: user.into(),
            due: 3,
            version: 4,
        })
    }

    fn cancel(user: &str) -> BusEvent {
        BusEvent::DelayCancelled(DelayCancel {
            user_id: user.into(),
            version: 5,
        })
    }

    fn sorted(events: Vec<BusEvent>) -> Vec<String> {
        let mut out: Vec<String> = events.iter().map(BusEvent::to_detail).collect();
        out.sort();
        out
    }

    #[test]
    fn timers_of_one_publish_go_packed_and_the_rest_as_they_are() {
        let accepted = BusEvent::EventsAccepted(AcceptedEvents { events: Vec::new() });
        let events = vec![
            fired("a"),
            set("a"),
            accepted.clone(),
            fired("b"),
            cancel("c"),
        ];

        let packed = pack(&events);

        assert_eq!(packed.len(), 3, "{packed:?}");
        assert_eq!(packed[0], accepted);
        assert!(matches!(&packed[1], BusEvent::TimersFired(f) if f.timers.len() == 2));
        assert!(
            matches!(&packed[2], BusEvent::TimersChanged(c) if c.set.len() == 1 && c.cancel.len() == 1)
        );
        let unpacked: Vec<BusEvent> = packed.into_iter().flat_map(BusEvent::unpack).collect();
        assert_eq!(sorted(unpacked), sorted(events));
    }

    #[test]
    fn a_kind_with_one_event_is_not_packed() {
        let events = vec![fired("a"), set("b")];
        assert_eq!(pack(&events), events);
    }

    #[test]
    fn packed_entries_stay_within_the_detail_limit() {
        let long = "u".repeat(200);
        let events: Vec<BusEvent> = (0..2_000)
            .map(|i| set(&format!("{long}{i}")))
            .chain((0..1_000).map(|i| fired(&format!("{long}{i}"))))
            .collect();

        let packed = pack(&events);

        assert!(packed.len() > 4, "{}", packed.len());
        for p in &packed {
            assert!(
                p.to_detail().len() <= MAX_DETAIL_BYTES,
                "{}",
                p.to_detail().len()
            );
        }
        let unpacked: Vec<BusEvent> = packed.into_iter().flat_map(BusEvent::unpack).collect();
        assert_eq!(unpacked.len(), events.len());
        assert_eq!(sorted(unpacked), sorted(events));
    }

    #[test]
    fn packed_events_read_back_from_their_json() {
        let packed = pack(&[fired("a"), fired("b"), set("a"), set("b")]);
        for p in packed {
            let back: BusEvent = serde_json::from_str(&p.to_detail()).unwrap();
            assert_eq!(back, p);
        }
    }

    #[test]
    fn packing_respects_the_detail_limit() {
        let ev = |i: usize| {
            let mut props = serde_json::Map::new();
            props.insert("p".into(), "a".repeat(10_000).into());
            AcceptedEvent::new(
                Message::track(&format!("u{i}"), &format!("m{i}"), "x", props, 0),
                0,
                0,
            )
        };
        let packed = pack(&[BusEvent::EventsAccepted(AcceptedEvents {
            events: (0..20).map(ev).collect(),
        })]);
        assert!(packed.len() >= 4);
        let total: usize = packed
            .iter()
            .map(|b| {
                assert!(
                    b.to_detail().len() <= MAX_DETAIL_BYTES,
                    "{}",
                    b.to_detail().len()
                );
                match b {
                    BusEvent::EventsAccepted(a) => a.events.len(),
                    _ => 0,
                }
            })
            .sum();
        assert_eq!(total, 20);
    }
}
