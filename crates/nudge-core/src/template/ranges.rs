//! Bounded `(start..stop)` ranges: literal ones are checked when compiling; one whose ends
//! are event data is checked against that data before each render.

use liquid::model::{Object, Value};
use liquid::ValueView;
use serde::{Deserialize, Serialize};

use super::data::{array_index, seg_key, Seg};
use super::{TemplateError, MAX_RANGE_ITEMS};

/// The whole numbers a path reaches (following every item at `Each`), read as Liquid reads
/// range bounds: integers, numeric strings, and `.size`.
fn collect_integers(value: &Value, path: &[Seg], out: &mut Vec<i64>) {
    let Some((seg, rest)) = path.split_first() else {
        if let Value::Scalar(scalar) = value {
            out.extend(scalar.to_integer());
        }
        return;
    };
    let size = |len: usize| i64::try_from(len).unwrap_or(i64::MAX);
    let is_size = rest.is_empty() && *seg == Seg::Key("size".to_owned());
    match value {
        Value::Object(object) => match seg_key(seg).and_then(|k| object.get(k.as_str())) {
            Some(child) => collect_integers(child, rest, out),
            None if is_size => out.push(size(object.len())),
            None => {}
        },
        Value::Array(items) => {
            let child = match seg {
                Seg::Each => {
                    for item in items {
                        collect_integers(item, rest, out);
                    }
                    return;
                }
                _ if is_size => {
                    out.push(size(items.len()));
                    return;
                }
                Seg::Index(i) => array_index(items.len(), *i).and_then(|i| items.get(i)),
                Seg::Key(k) if k == "first" => items.first(),
                Seg::Key(k) if k == "last" => items.last(),
                Seg::Key(_) => None,
            };
            if let Some(child) = child {
                collect_integers(child, rest, out);
            }
        }
        Value::Scalar(scalar) if is_size => out.push(size(scalar.to_kstr().len())),
        _ => {}
    }
}

/// One bound of a `(start..stop)` range.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) enum Bound {
    Literal(i64),
    /// Event data, read at render time.
    Path(Vec<Seg>),
    /// Not a whole number: Liquid itself refuses it when rendering.
    Invalid,
}

/// A range whose size depends on event data, checked before each render.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct RangeCheck {
    pub(super) start: Bound,
    pub(super) stop: Bound,
    pub(super) offset: usize,
}

impl RangeCheck {
    pub(super) fn verify(&self, data: &Object, source: &str) -> Result<(), TemplateError> {
        let starts = bound_values(&self.start, data);
        let stops = bound_values(&self.stop, data);
        let (Some(low), Some(high)) = (starts.iter().min(), stops.iter().max()) else {
            return Ok(());
        };
        check_range_size(*low, *high, source, self.offset)
    }
}

fn bound_values(bound: &Bound, data: &Object) -> Vec<i64> {
    match bound {
        Bound::Literal(n) => vec![*n],
        Bound::Invalid => Vec::new(),
        Bound::Path(path) => {
            let Some((Seg::Key(root), rest)) = path.split_first() else {
                return Vec::new();
            };
            let mut values = Vec::new();
            if let Some(value) = data.get(root.as_str()) {
                collect_integers(value, rest, &mut values);
            }
            values
        }
    }
}

pub(super) fn check_range_size(
    low: i64,
    high: i64,
    source: &str,
    offset: usize,
) -> Result<(), TemplateError> {
    let items = i128::from(high) - i128::from(low) + 1;
    if items > i128::from(MAX_RANGE_ITEMS) {
        return Err(TemplateError::at(
            source,
            offset,
            format!(
                "range ({low}..{high}) has {items} items; at most {MAX_RANGE_ITEMS} are allowed"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::template::test_support::{compile_err, render, render_err};
    use serde_json::json;

    #[test]
    fn ranges_are_bounded() {
        assert_eq!(
            render("{% for i in (1..10000) %}{% endfor %}", json!({})),
            ""
        );
        let e = compile_err("ok\n{% for i in (1..1000000000000) %}{% endfor %}");
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains("range"), "{e}");
        compile_err("{% for i in (-9223372036854775808..9223372036854775807) %}{% endfor %}");
        compile_err("{% for i in (\"1\"..\"99999999\") %}{% endfor %}");

        let source = "{% for i in (1..p.n) %}{{ i }}{% endfor %}";
        assert_eq!(render(source, json!({"p": {"n": 5}})), "12345");
        assert_eq!(render(source, json!({"p": {"n": "3"}})), "123");
        let e = render_err(source, json!({"p": {"n": 1_000_000_000_000i64}}));
        assert!(e.message.contains("range"), "{e}");
        // Missing bound: nil, which Liquid refuses, rather than a huge range.
        render_err(source, json!({}));

        let sized = "{% for i in (1..d.items.size) %}{{ i }}{% endfor %}";
        assert_eq!(render(sized, json!({"d": {"items": ["a", "b"]}})), "12");
        let long: Vec<u32> = (0..10_001).collect();
        let e = render_err(sized, json!({"d": {"items": long}}));
        assert!(e.message.contains("10001 items"), "{e}");

        let per_item =
            "{% for item in d.items %}{% for s in (1..item.qty) %}*{% endfor %} {% endfor %}";
        assert_eq!(
            render(per_item, json!({"d": {"items": [{"qty": 2}, {"qty": 3}]}})),
            "** *** "
        );
        let e = render_err(
            per_item,
            json!({"d": {"items": [{"qty": 2}, {"qty": 99999999}]}}),
        );
        assert!(e.message.contains("range"), "{e}");
    }
}
