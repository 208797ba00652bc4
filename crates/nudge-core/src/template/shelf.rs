//! Append-only storage whose items never move, so that `put` can take `&self` and hand back a
//! reference that lives as long as the shelf. A Liquid lookup (`Runtime::get`) must return a
//! value borrowed from the runtime; the sorted view of a looked-up value is made during the
//! lookup, so it is kept on a shelf the runtime borrows.

use std::cell::{Cell, OnceCell};

/// Slots in the first chunk; each further chunk has twice as many as the one before.
const FIRST_CHUNK: usize = 8;

/// Items put on it stay where they are until the shelf is dropped.
pub(super) struct Shelf<T> {
    /// Allocated at the first `put`: most shelves (one per filter call) stay empty.
    first: OnceCell<Box<Chunk<T>>>,
}

struct Chunk<T> {
    slots: Box<[OnceCell<T>]>,
    used: Cell<usize>,
    next: OnceCell<Box<Chunk<T>>>,
}

impl<T> Default for Shelf<T> {
    fn default() -> Self {
        Shelf {
            first: OnceCell::new(),
        }
    }
}

impl<T> Shelf<T> {
    /// Keeps `item` and lends it for as long as the shelf lives.
    pub(super) fn put(&self, item: T) -> &T {
        self.first
            .get_or_init(|| Chunk::boxed(FIRST_CHUNK))
            .put(item)
    }
}

impl<T> Chunk<T> {
    fn boxed(slots: usize) -> Box<Self> {
        Box::new(Chunk {
            slots: (0..slots).map(|_| OnceCell::new()).collect(),
            used: Cell::new(0),
            next: OnceCell::new(),
        })
    }

    fn put(&self, item: T) -> &T {
        let used = self.used.get();
        match self.slots.get(used) {
            Some(slot) => {
                self.used.set(used + 1);
                // The slot is empty (`used` counts the filled ones), so `item` goes in.
                slot.get_or_init(|| item)
            }
            None => self
                .next
                .get_or_init(|| Chunk::boxed(self.slots.len().saturating_mul(2)))
                .put(item),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_stay_where_they_were_put() {
        let shelf = Shelf::default();
        let kept: Vec<&String> = (0..1000).map(|i| shelf.put(i.to_string())).collect();
        for (i, item) in kept.iter().enumerate() {
            assert_eq!(**item, i.to_string());
        }
    }
}
