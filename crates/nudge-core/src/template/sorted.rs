//! A Liquid value seen with the keys of its objects in sorted order, all the way down.
//!
//! Liquid's objects (`liquid::model::Object`) are hash maps with a random seed per map, and
//! Liquid copies a value into a new map whenever it assigns it, loops over it or passes it
//! through a filter. Rendered whole, iterated or compared, the same object would come out in a
//! different key order from one render to the next, and a send would not replay byte for byte.
//! Every place where Liquid code walks a value a template gave it (each filter's input, the
//! values tags read, the final value of every `{{ }}`) sees it through this view instead; what
//! Liquid builds from the view is a hash map again, and is sorted again where it is walked.
//!
//! The order is the keys' byte order. The event data arrives as `serde_json` maps, built in this
//! workspace without `preserve_order`: they are already in key order, and the order the keys
//! were written in is gone before a template sees them. Objects Liquid builds have no order of
//! their own. Key order is the one order every object has.

use std::cell::OnceCell;
use std::cmp::Ordering;
use std::fmt;

use liquid::model::{ArrayView, DisplayCow, KStringCow, ScalarCow, State, Value};
use liquid::{ObjectView, ValueView};

/// `value`, with its objects' entries (and those of everything inside it) in key order.
pub(super) struct SortedView<'a> {
    value: &'a dyn ValueView,
    /// Items or entries, with nested arrays and objects wrapped; built when first walked.
    children: OnceCell<Children<'a>>,
}

enum Children<'a> {
    Items(Vec<Child<'a>>),
    Entries(Vec<(KStringCow<'a>, Child<'a>)>),
    None,
}

enum Child<'a> {
    /// A scalar, nil or state: nothing inside to sort.
    Plain(&'a dyn ValueView),
    Sorted(SortedView<'a>),
}

/// Whether `value` has items or entries, so that its order can show.
pub(super) fn has_children(value: &dyn ValueView) -> bool {
    value.as_array().is_some() || value.as_object().is_some()
}

impl<'a> SortedView<'a> {
    pub(super) fn new(value: &'a dyn ValueView) -> Self {
        SortedView {
            value,
            children: OnceCell::new(),
        }
    }

    fn children(&self) -> &Children<'a> {
        self.children.get_or_init(|| {
            if let Some(array) = self.value.as_array() {
                Children::Items(array.values().map(Child::new).collect())
            } else if let Some(object) = self.value.as_object() {
                let mut entries: Vec<_> = object.iter().map(|(k, v)| (k, Child::new(v))).collect();
                entries.sort_by(|(a, _), (b, _)| by_key(a, b));
                Children::Entries(entries)
            } else {
                Children::None
            }
        })
    }

    fn items(&self) -> &[Child<'a>] {
        match self.children() {
            Children::Items(items) => items,
            _ => &[],
        }
    }

    fn entries(&self) -> &[(KStringCow<'a>, Child<'a>)] {
        match self.children() {
            Children::Entries(entries) => entries,
            _ => &[],
        }
    }
}

fn by_key(a: &KStringCow<'_>, b: &KStringCow<'_>) -> Ordering {
    a.as_str().cmp(b.as_str())
}

impl<'a> Child<'a> {
    fn new(value: &'a dyn ValueView) -> Self {
        if has_children(value) {
            Child::Sorted(SortedView::new(value))
        } else {
            Child::Plain(value)
        }
    }

    fn view(&self) -> &dyn ValueView {
        match self {
            Child::Plain(value) => *value,
            Child::Sorted(view) => view,
        }
    }
}

impl fmt::Debug for SortedView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SortedView").field(&self.value).finish()
    }
}

/// The text of the value as Liquid renders it (`{{ }}`, `to_kstr`): items one after the other,
/// an object's keys each followed by its value.
struct Rendered<'v, 'a>(&'v SortedView<'a>);

impl fmt::Display for Rendered<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.children() {
            Children::Items(items) => items
                .iter()
                .try_for_each(|item| write!(f, "{}", item.view().render())),
            Children::Entries(entries) => entries
                .iter()
                .try_for_each(|(key, value)| write!(f, "{key}{}", value.view().render())),
            Children::None => write!(f, "{}", self.0.value.render()),
        }
    }
}

/// The value as Liquid quotes it in messages, in Liquid's own layout.
struct Source<'v, 'a>(&'v SortedView<'a>);

impl fmt::Display for Source<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.children() {
            Children::Items(items) => {
                f.write_str("[")?;
                for item in items {
                    write!(f, "{}, ", item.view().render())?;
                }
                f.write_str("]")
            }
            Children::Entries(entries) => {
                f.write_str("{")?;
                for (key, value) in entries {
                    write!(f, r#""{key}": {}, "#, value.view().render())?;
                }
                f.write_str("}")
            }
            Children::None => write!(f, "{}", self.0.value.source()),
        }
    }
}

impl ValueView for SortedView<'_> {
    fn as_debug(&self) -> &dyn fmt::Debug {
        self
    }

    fn render(&self) -> DisplayCow<'_> {
        if has_children(self.value) {
            DisplayCow::Owned(Box::new(Rendered(self)))
        } else {
            self.value.render()
        }
    }

    fn source(&self) -> DisplayCow<'_> {
        if has_children(self.value) {
            DisplayCow::Owned(Box::new(Source(self)))
        } else {
            self.value.source()
        }
    }

    fn type_name(&self) -> &'static str {
        self.value.type_name()
    }

    fn query_state(&self, state: State) -> bool {
        self.value.query_state(state)
    }

    fn to_kstr(&self) -> KStringCow<'_> {
        if has_children(self.value) {
            KStringCow::from_string(Rendered(self).to_string())
        } else {
            self.value.to_kstr()
        }
    }

    /// A copy in Liquid's own types: unordered again, and sorted again where it is walked.
    fn to_value(&self) -> Value {
        self.value.to_value()
    }

    fn as_scalar(&self) -> Option<ScalarCow<'_>> {
        self.value.as_scalar()
    }

    fn as_array(&self) -> Option<&dyn ArrayView> {
        self.value.as_array().map(|_| self as &dyn ArrayView)
    }

    fn as_object(&self) -> Option<&dyn ObjectView> {
        self.value.as_object().map(|_| self as &dyn ObjectView)
    }

    fn as_state(&self) -> Option<State> {
        self.value.as_state()
    }

    fn is_nil(&self) -> bool {
        self.value.is_nil()
    }
}

impl ArrayView for SortedView<'_> {
    fn as_value(&self) -> &dyn ValueView {
        self
    }

    fn size(&self) -> i64 {
        self.value.as_array().map_or(0, |array| array.size())
    }

    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        Box::new(self.items().iter().map(Child::view))
    }

    fn contains_key(&self, index: i64) -> bool {
        self.value
            .as_array()
            .is_some_and(|array| array.contains_key(index))
    }

    /// Counts from the end for a negative `index`, as Liquid's arrays do.
    fn get(&self, index: i64) -> Option<&dyn ValueView> {
        let items = self.items();
        let index = if index < 0 {
            index.checked_add(i64::try_from(items.len()).ok()?)?
        } else {
            index
        };
        let item = items.get(usize::try_from(index).ok()?)?;
        Some(item.view())
    }
}

impl ObjectView for SortedView<'_> {
    fn as_value(&self) -> &dyn ValueView {
        self
    }

    fn size(&self) -> i64 {
        self.value.as_object().map_or(0, |object| object.size())
    }

    fn keys<'k>(&'k self) -> Box<dyn Iterator<Item = KStringCow<'k>> + 'k> {
        Box::new(
            self.entries()
                .iter()
                .map(|(key, _)| KStringCow::from_ref(key.as_str())),
        )
    }

    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        Box::new(self.entries().iter().map(|(_, value)| value.view()))
    }

    fn iter<'k>(&'k self) -> Box<dyn Iterator<Item = (KStringCow<'k>, &'k dyn ValueView)> + 'k> {
        Box::new(
            self.entries()
                .iter()
                .map(|(key, value)| (KStringCow::from_ref(key.as_str()), value.view())),
        )
    }

    fn contains_key(&self, index: &str) -> bool {
        self.value
            .as_object()
            .is_some_and(|object| object.contains_key(index))
    }

    fn get<'s>(&'s self, index: &str) -> Option<&'s dyn ValueView> {
        let entries = self.entries();
        match entries.binary_search_by(|(key, _)| key.as_str().cmp(index)) {
            Ok(at) => Some(entries[at].1.view()),
            // A key the object answers but does not list (none of Liquid's do): as it is.
            Err(_) => self.value.as_object()?.get(index),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use liquid::model::{KString, Object};

    /// The same entries, put in as many different maps (each with its own hash seed).
    fn objects(entries: &[(&str, Value)], copies: usize) -> Vec<Value> {
        (0..copies)
            .map(|n| {
                let mut object = Object::new();
                for i in 0..entries.len() {
                    // A different insertion order for each copy, too.
                    let (key, value) = &entries[(i + n) % entries.len()];
                    object.insert(KString::from_ref(key), value.clone());
                }
                Value::Object(object)
            })
            .collect()
    }

    fn nested() -> Vec<(&'static str, Value)> {
        let inner = objects(
            &[
                ("y", Value::scalar(2)),
                ("x", Value::scalar(1)),
                ("z", Value::Nil),
            ],
            1,
        )
        .remove(0);
        vec![
            ("b", Value::scalar("B")),
            ("a", inner.clone()),
            ("d", Value::Array(vec![inner, Value::scalar(true)])),
            ("c", Value::scalar(3.5)),
        ]
    }

    #[test]
    fn every_copy_renders_and_iterates_in_key_order() {
        for value in objects(&nested(), 20) {
            let view = SortedView::new(&value);
            assert_eq!(view.render().to_string(), "ax1y2zbBc3.5dx1y2ztrue");
            assert_eq!(view.to_kstr(), "ax1y2zbBc3.5dx1y2ztrue");
            assert_eq!(
                view.source().to_string(),
                r#"{"a": x1y2z, "b": B, "c": 3.5, "d": x1y2ztrue, }"#
            );
            let object = view.as_object().unwrap();
            let keys: Vec<String> = object.keys().map(|k| k.as_str().to_owned()).collect();
            assert_eq!(keys, ["a", "b", "c", "d"]);
            let nested = object.get("d").unwrap().as_array().unwrap();
            assert_eq!(nested.first().unwrap().render().to_string(), "x1y2z");
            assert_eq!(nested.get(-1).unwrap().render().to_string(), "true");
            assert!(nested.get(2).is_none() && nested.get(-3).is_none());
            assert_eq!(object.get("c").unwrap().render().to_string(), "3.5");
            assert!(object.get("e").is_none());
        }
    }

    #[test]
    fn values_without_entries_look_as_they_are() {
        for value in [
            Value::Nil,
            Value::scalar("text"),
            Value::scalar(-4),
            Value::Array(vec![Value::scalar(1), Value::scalar("a")]),
        ] {
            let view = SortedView::new(&value);
            assert_eq!(view.render().to_string(), value.render().to_string());
            assert_eq!(view.source().to_string(), value.source().to_string());
            assert_eq!(view.to_kstr(), value.to_kstr());
            assert_eq!(view.type_name(), value.type_name());
            assert_eq!(view.is_nil(), value.is_nil());
            assert_eq!(view.to_value(), value);
        }
    }
}
