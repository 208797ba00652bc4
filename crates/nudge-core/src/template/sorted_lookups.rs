//! A Liquid runtime whose lookups come back as [`SortedView`]s: what a filter's arguments and
//! the expressions of `for`, `if`, `unless` and `cycle` read, so that they walk objects in key
//! order (see `sorted.rs`).
//!
//! A block tag renders its body with the same runtime. Once the body has started, the tag has
//! read all it reads (Liquid's tags evaluate their expressions before their bodies), and what
//! the body reads is sorted by the filters, tags and outputs inside it: from then on lookups
//! pass through untouched, so that a long loop does not keep a view per lookup. The body's
//! start is the first probe placed at the head of every body: the loop tick, or the body mark.

use std::cell::Cell;
use std::collections::BTreeSet;

use liquid::model::{KString, KStringCow, KStringRef, ScalarCow, Value, ValueCow};
use liquid::ValueView;
use liquid_core::runtime::{PartialStore, Registers};
use liquid_core::{Result, Runtime};

use super::shelf::Shelf;
use super::sorted::{has_children, SortedView};
use super::{BODY, TICK};

pub(super) struct SortedLookups<'a> {
    runtime: &'a dyn Runtime,
    /// Values a lookup returned owned (Liquid copies an assigned value out on every lookup).
    owned: &'a Shelf<Value>,
    views: &'a Shelf<SortedView<'a>>,
    in_body: Cell<bool>,
}

impl<'a> SortedLookups<'a> {
    pub(super) fn new(
        runtime: &'a dyn Runtime,
        owned: &'a Shelf<Value>,
        views: &'a Shelf<SortedView<'a>>,
    ) -> Self {
        SortedLookups {
            runtime,
            owned,
            views,
            in_body: Cell::new(false),
        }
    }

    fn note_body_start(&self, path: &[ScalarCow<'_>]) {
        if path
            .first()
            .is_some_and(|root| matches!(root.to_kstr().as_str(), TICK | BODY))
        {
            self.in_body.set(true);
        }
    }

    fn sorted(&self, found: ValueCow<'a>) -> ValueCow<'a> {
        if self.in_body.get() {
            return found;
        }
        let value: &'a dyn ValueView = match found {
            ValueCow::Borrowed(value) if has_children(value) => value,
            ValueCow::Owned(value) if has_children(&value) => self.owned.put(value),
            other => return other,
        };
        ValueCow::Borrowed(self.views.put(SortedView::new(value)))
    }
}

impl Runtime for SortedLookups<'_> {
    fn partials(&self) -> &dyn PartialStore {
        self.runtime.partials()
    }

    fn name(&self) -> Option<KStringRef<'_>> {
        self.runtime.name()
    }

    fn roots(&self) -> BTreeSet<KStringCow<'_>> {
        self.runtime.roots()
    }

    fn try_get(&self, path: &[ScalarCow<'_>]) -> Option<ValueCow<'_>> {
        self.note_body_start(path);
        let found = self.runtime.try_get(path)?;
        Some(self.sorted(found))
    }

    fn get(&self, path: &[ScalarCow<'_>]) -> Result<ValueCow<'_>> {
        self.note_body_start(path);
        let found = self.runtime.get(path)?;
        Ok(self.sorted(found))
    }

    fn set_global(&self, name: KString, value: Value) -> Option<Value> {
        self.runtime.set_global(name, value)
    }

    fn set_index(&self, name: KString, value: Value) -> Option<Value> {
        self.runtime.set_index(name, value)
    }

    fn get_index<'s>(&'s self, name: &str) -> Option<ValueCow<'s>> {
        self.runtime.get_index(name)
    }

    fn registers(&self) -> &Registers {
        self.runtime.registers()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use liquid::model::Object;
    use liquid_core::runtime::RuntimeBuilder;

    #[test]
    fn lookups_come_back_sorted_until_the_body_starts() {
        let mut inner = Object::new();
        for key in ["c", "a", "b"] {
            inner.insert(KString::from_ref(key), Value::scalar(key));
        }
        let mut globals = Object::new();
        globals.insert(KString::from_ref("t"), Value::Object(inner));
        globals.insert(KString::from_ref("n"), Value::scalar(1));
        let runtime = RuntimeBuilder::new().set_globals(&globals).build();
        let (owned, views) = (Shelf::default(), Shelf::default());
        let lookups = SortedLookups::new(&runtime, &owned, &views);
        let (t, n) = ([ScalarCow::new("t")], [ScalarCow::new("n")]);
        // Liquid hands out a copy of what it finds; the view of it is lent from the shelf.
        assert!(matches!(runtime.get(&t), Ok(ValueCow::Owned(_))));

        let sorted = lookups.get(&t).unwrap();
        assert!(matches!(sorted, ValueCow::Borrowed(_)));
        assert_eq!(sorted.render().to_string(), "aabbcc");
        assert_eq!(lookups.try_get(&t).unwrap().to_kstr(), "aabbcc");
        // Nothing to sort in a scalar: handed on as it is.
        assert!(matches!(
            lookups.get(&n),
            Ok(ValueCow::Owned(Value::Scalar(_)))
        ));

        // The body mark, looked up at the head of a body: from then on, no more views.
        assert!(lookups.get(&[ScalarCow::new(BODY)]).is_err());
        assert!(matches!(
            lookups.get(&t),
            Ok(ValueCow::Owned(Value::Object(_)))
        ));
    }
}
