//! `sort` and `sort_natural`, comparing the items themselves. Liquid's own filters copy each
//! item into Liquid's types first and compare the copies, whose objects walk their keys in
//! hash-map order: two objects (and, for `sort_natural`, an object's text) compare differently
//! from one render to the next, even when the filter is handed sorted views. These are
//! registered like every other filter (`stdlib.rs`), so the items they compare are sorted views.
//! Parameters, errors and order are Liquid's otherwise: nil last, ties in input order.

use std::cmp::Ordering;

use liquid::model::{Value, ValueViewCmp};
use liquid_core::{
    Display_filter, Error, Expression, Filter, FilterParameters, FilterReflection,
    FromFilterParameters, ParseFilter, Result, Runtime, ValueView,
};

#[derive(Debug, FilterParameters)]
struct PropertyArgs {
    #[parameter(
        description = "The property of each item to sort by.",
        arg_type = "str"
    )]
    property: Option<Expression>,
}

#[derive(Clone, ParseFilter, FilterReflection)]
#[filter(
    name = "sort",
    description = "Sorts the items of an array, case-sensitively.",
    parameters(PropertyArgs),
    parsed(SortFilter)
)]
pub(super) struct Sort;

#[derive(Debug, FromFilterParameters, Display_filter)]
#[name = "sort"]
struct SortFilter {
    #[parameters]
    args: PropertyArgs,
}

impl Filter for SortFilter {
    fn evaluate(&self, input: &dyn ValueView, runtime: &dyn Runtime) -> Result<Value> {
        let args = self.args.evaluate(runtime)?;
        let property = args.property.as_deref();
        let mut items = items(input, property.is_some())?;
        items.sort_by(|a, b| nil_last(by(*a, property), by(*b, property)));
        Ok(Value::array(items.into_iter().map(ValueView::to_value)))
    }
}

#[derive(Clone, ParseFilter, FilterReflection)]
#[filter(
    name = "sort_natural",
    description = "Sorts the items of an array, ignoring case.",
    parameters(PropertyArgs),
    parsed(SortNaturalFilter)
)]
pub(super) struct SortNatural;

#[derive(Debug, FromFilterParameters, Display_filter)]
#[name = "sort_natural"]
struct SortNaturalFilter {
    #[parameters]
    args: PropertyArgs,
}

impl Filter for SortNaturalFilter {
    fn evaluate(&self, input: &dyn ValueView, runtime: &dyn Runtime) -> Result<Value> {
        let args = self.args.evaluate(runtime)?;
        let property = args.property.as_deref();
        let mut keyed: Vec<(Option<String>, &dyn ValueView)> = items(input, property.is_some())?
            .into_iter()
            .map(|item| {
                let key = by(item, property);
                let key = (!key.is_nil()).then(|| key.to_kstr().to_lowercase());
                (key, item)
            })
            .collect();
        keyed.sort_by(|(a, _), (b, _)| match (a, b) {
            (Some(a), Some(b)) => a.cmp(b),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        });
        Ok(Value::array(
            keyed.into_iter().map(|(_, item)| item.to_value()),
        ))
    }
}

/// The items an array filter works on: an array's, none for nil, else the value itself.
fn items(input: &dyn ValueView, of_objects: bool) -> Result<Vec<&dyn ValueView>> {
    let items: Vec<&dyn ValueView> = match input.as_array() {
        Some(array) => array.values().collect(),
        None if input.is_nil() => Vec::new(),
        None => vec![input],
    };
    if of_objects && !items.iter().all(|item| item.is_object()) {
        return Err(Error::with_msg("Invalid input").context("cause", "Array of objects expected"));
    }
    Ok(items)
}

static NIL: Value = Value::Nil;

/// What an item is sorted by: the item, or its `property` (nil when it has none).
fn by<'v>(item: &'v dyn ValueView, property: Option<&str>) -> &'v dyn ValueView {
    match property {
        None => item,
        Some(property) => item
            .as_object()
            .and_then(|object| object.get(property))
            .unwrap_or(&NIL),
    }
}

/// Liquid's order for `sort`: nil after everything, values that do not compare as equals.
fn nil_last(a: &dyn ValueView, b: &dyn ValueView) -> Ordering {
    match (a.is_nil(), b.is_nil()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => ValueViewCmp::new(a)
            .partial_cmp(&ValueViewCmp::new(b))
            .unwrap_or(Ordering::Equal),
    }
}

#[cfg(test)]
mod tests {
    use crate::template::test_support::{plain_liquid, render, render_err};
    use serde_json::json;

    #[test]
    fn sorts_as_liquid_sorts_values_without_objects() {
        let data = json!({"d": {
            "words": ["b", "A", "c", "a", null, "B"],
            "numbers": [3, 1.5, -2, 10, 1],
            "items": [
                {"n": "x", "p": 2}, {"n": "Y"}, {"n": "y", "p": 1}, {"n": "X", "p": null}, {"p": 0}
            ]
        }});
        for source in [
            "{{ d.words | sort | join: ',' }}|{{ d.words | sort_natural | join: ',' }}",
            "{{ d.numbers | sort | join: ',' }}|{{ d.numbers | sort_natural | join: ',' }}",
            "{{ d.items | sort: 'p' | map: 'n' | join: ',' }}",
            "{{ d.items | sort_natural: 'n' | map: 'p' | join: ',' }}",
            "{{ d.items | sort: 'missing' | map: 'n' | join: ',' }}",
            "{{ 'one' | sort | join }}|{{ nil | sort | size }}",
        ] {
            assert_eq!(
                render(source, data.clone()),
                plain_liquid(source, data.clone()),
                "{source:?}"
            );
        }
        let e = render_err("{{ d.words | sort: 'n' }}", data.clone());
        assert_eq!(
            e.message,
            "Invalid input (cause=Array of objects expected; filter=sort : \"n\")"
        );
        let e = render_err("{{ d.words | sort_natural: 'n' }}", data);
        assert!(
            e.message
                .starts_with("Invalid input (cause=Array of objects expected"),
            "{e}"
        );
    }
}
