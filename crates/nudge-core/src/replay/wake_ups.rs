//! The virtual clock's queue of wake-ups: users by due time, then by the order they were
//! asked in. A replay only moves forward, so the queue is monotone (nothing asked for is due
//! before what was taken last), which a radix heap exploits: taking the next wake-up costs
//! about the same however many are queued, where a binary heap of the tens of thousands a
//! long history keeps took a tenth of the engine thread (BENCHMARKS.md).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use radix_heap::RadixHeapMap;

use crate::time::Millis;

/// Wake-ups as `(due, user)`, taken in order of due time, then of asking.
#[derive(Default)]
pub struct WakeUps {
    /// Keyed by `(due, order asked)`, reversed: the radix heap takes its greatest key first.
    queue: RadixHeapMap<Reverse<(Millis, u64)>, u32>,
    /// Wake-ups asked for before the last one taken, which the radix heap cannot take: the
    /// engine never asks for one, but nothing here relies on it. They come before everything
    /// in `queue`, in their own order.
    overdue: BinaryHeap<Reverse<(Millis, u64, u32)>>,
    asked: u64,
}

impl WakeUps {
    /// Queues a wake-up of `user` at `due`.
    pub fn push(&mut self, due: Millis, user: u32) {
        self.asked += 1;
        let key = Reverse((due, self.asked));
        match self.queue.top() {
            Some(top) if key > top => self.overdue.push(Reverse((due, self.asked, user))),
            _ => self.queue.push(key, user),
        }
    }

    /// Takes the next wake-up if `due_ok` accepts its due time.
    pub fn pop_if(&mut self, due_ok: impl Fn(Millis) -> bool) -> Option<(Millis, u32)> {
        if let Some(&Reverse((due, _, user))) = self.overdue.peek() {
            if !due_ok(due) {
                return None;
            }
            self.overdue.pop();
            return Some((due, user));
        }
        let (key, user) = self.queue.pop()?;
        let Reverse((due, _)) = key;
        if due_ok(due) {
            Some((due, user))
        } else {
            // Put back: its key is the last one taken, which the queue accepts again.
            self.queue.push(key, user);
            None
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.queue.len() + self.overdue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BinaryHeap;

    /// The same operations on a binary heap of `(due, order asked, user)`.
    #[derive(Default)]
    struct Reference {
        heap: BinaryHeap<Reverse<(Millis, u64, u32)>>,
        asked: u64,
    }

    impl Reference {
        fn push(&mut self, due: Millis, user: u32) {
            self.asked += 1;
            self.heap.push(Reverse((due, self.asked, user)));
        }

        fn pop_if(&mut self, due_ok: impl Fn(Millis) -> bool) -> Option<(Millis, u32)> {
            let &Reverse((due, _, user)) = self.heap.peek()?;
            if !due_ok(due) {
                return None;
            }
            self.heap.pop();
            Some((due, user))
        }
    }

    proptest! {
        /// As a replay uses it: the clock moves to each event's instant, takes what is due
        /// before it, and the event asks for wake-ups at or after its instant (now and then
        /// before, which nothing asks for but the queue takes anyway).
        #[test]
        fn takes_wake_ups_in_the_order_a_binary_heap_does(
            steps in proptest::collection::vec((0i64..50, 0u32..20, 0i64..200, any::<bool>()), 1..400)
        ) {
            let (mut ours, mut reference) = (WakeUps::default(), Reference::default());
            let mut clock: Millis = 1_000;
            for (advance, user, ahead, earlier) in steps {
                clock += advance;
                loop {
                    let (a, b) = (ours.pop_if(|d| d < clock), reference.pop_if(|d| d < clock));
                    prop_assert_eq!(a, b);
                    if a.is_none() {
                        break;
                    }
                }
                let due = if earlier { clock - ahead } else { clock + ahead };
                ours.push(due, user);
                reference.push(due, user);
                prop_assert_eq!(ours.len(), reference.heap.len());
            }
            loop {
                let (a, b) = (ours.pop_if(|_| true), reference.pop_if(|_| true));
                prop_assert_eq!(a, b);
                if a.is_none() {
                    break;
                }
            }
        }
    }
}
