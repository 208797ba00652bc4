//! Event data as a template sees it: JSON turned into Liquid values, and the paths a template
//! reads filled with nil where the data lacks them, so they render as nil instead of failing.

use liquid::model::{KString, Object, Value};
use serde::{Deserialize, Serialize};

use super::MAX_DATA_DEPTH;

/// One step of a variable path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(super) enum Seg {
    Key(String),
    Index(i64),
    /// Every item of an array (the items a loop variable takes).
    Each,
}

pub(super) fn to_liquid(value: &serde_json::Value, depth: usize) -> Value {
    if depth >= MAX_DATA_DEPTH {
        return Value::Nil;
    }
    match value {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::scalar(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::scalar(i),
            None => Value::scalar(n.as_f64().unwrap_or(0.0)),
        },
        serde_json::Value::String(s) => Value::scalar(s.clone()),
        serde_json::Value::Array(items) => {
            Value::Array(items.iter().map(|v| to_liquid(v, depth + 1)).collect())
        }
        serde_json::Value::Object(map) => {
            let mut object = Object::new();
            for (key, value) in map {
                object.insert(KString::from_ref(key), to_liquid(value, depth + 1));
            }
            Value::Object(object)
        }
    }
}

pub(super) fn seg_key(seg: &Seg) -> Option<String> {
    match seg {
        Seg::Key(k) => Some(k.clone()),
        Seg::Index(i) => Some(i.to_string()),
        Seg::Each => None,
    }
}

/// Makes `path` resolve (to nil when absent) in the globals.
pub(super) fn fill_root(data: &mut Object, path: &[Seg]) {
    let Some((Seg::Key(root), rest)) = path.split_first() else {
        return;
    };
    match data.get_mut(root.as_str()) {
        Some(child) => fill(child, rest),
        None => {
            data.insert(KString::from_ref(root), missing(rest));
        }
    }
}

fn fill(value: &mut Value, path: &[Seg]) {
    let Some((seg, rest)) = path.split_first() else {
        return;
    };
    match value {
        Value::Object(object) => {
            let Some(key) = seg_key(seg) else {
                return;
            };
            match object.get_mut(key.as_str()) {
                Some(child) => fill(child, rest),
                // Liquid answers `.size` of an object with its number of keys.
                None if key == "size" => {}
                None => {
                    object.insert(KString::from_string(key), missing(rest));
                }
            }
        }
        Value::Array(items) => {
            let child = match seg {
                Seg::Each => {
                    for item in items.iter_mut() {
                        fill(item, rest);
                    }
                    return;
                }
                Seg::Index(i) => array_index(items.len(), *i).and_then(|i| items.get_mut(i)),
                Seg::Key(k) if k == "first" => items.first_mut(),
                Seg::Key(k) if k == "last" => items.last_mut(),
                Seg::Key(_) => None,
            };
            if let Some(child) = child {
                fill(child, rest);
            }
        }
        _ => {}
    }
}

/// The value standing in for an absent path: nil, wrapped in objects for the remaining keys.
fn missing(rest: &[Seg]) -> Value {
    let Some((seg, tail)) = rest.split_first() else {
        return Value::Nil;
    };
    match seg_key(seg) {
        None => Value::Nil,
        // An empty object, whose `.size` is 0.
        Some(key) if key == "size" => Value::Object(Object::new()),
        Some(key) => {
            let mut object = Object::new();
            object.insert(KString::from_string(key), missing(tail));
            Value::Object(object)
        }
    }
}

pub(super) fn array_index(len: usize, index: i64) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let index = if index < 0 { len + index } else { index };
    usize::try_from(index).ok()
}

#[cfg(test)]
mod tests {
    use crate::template::test_support::{p, paths, render};
    use serde_json::json;

    #[test]
    fn present_values_render_and_missing_ones_are_nil() {
        let source = "Hi {{ traits.first_name | default: \"there\" }}!";
        assert_eq!(
            render(source, json!({"traits": {"first_name": "Ann"}})),
            "Hi Ann!"
        );
        assert_eq!(render(source, json!({"traits": {}})), "Hi there!");
        assert_eq!(render(source, json!({})), "Hi there!");
        assert_eq!(render("[{{ traits.first_name }}]", json!({})), "[]");
        assert_eq!(
            render("[{{ properties.a.b.c }}]", json!({"properties": {"a": {}}})),
            "[]"
        );
        assert_eq!(
            render("{{ 'x' | append: traits.suffix }}", json!({"traits": {}})),
            "x"
        );
        assert_eq!(
            render(
                "{% if traits.vip %}vip{% else %}regular{% endif %}",
                json!({})
            ),
            "regular"
        );
        assert_eq!(
            render(
                "{% if traits.vip %}vip{% endif %}",
                json!({"traits": {"vip": true}})
            ),
            "vip"
        );
        assert_eq!(
            render("{% unless traits.x.y %}no{% endunless %}", json!({})),
            "no"
        );
    }

    #[test]
    fn json_values_render_naturally() {
        let data = json!({"p": {
            "price": 12.5, "count": 3, "neg": -7, "big": 18446744073709551615u64,
            "yes": true, "no": false, "none": null, "text": "a<b"
        }});
        assert_eq!(
            render(
                "{{ p.price }}|{{ p.count }}|{{ p.neg }}|{{ p.yes }}|{{ p.no }}|{{ p.none }}|{{ p.text }}",
                data.clone()
            ),
            "12.5|3|-7|true|false||a<b"
        );
        assert_eq!(render("{{ p.count | plus: 1 }}", data.clone()), "4");
        assert_eq!(render("{{ p.price | times: 2 }}", data.clone()), "25");
        assert!(render("{{ p.big }}", data).starts_with("18446744073709552"));
        assert_eq!(render("{{ 3.0 }}", json!({})), "3");
    }

    #[test]
    fn loop_items_missing_fields_render_as_nil() {
        let source = "{% for item in data.items %}[{{ item.name }}:{{ item.discount | default: 0 }}]{% endfor %}";
        let data = json!({"data": {"items": [{"name": "a", "discount": 5}, {"name": "b"}, {}]}});
        assert_eq!(render(source, data), "[a:5][b:0][:0]");
        // Nested loops follow the item paths through both levels.
        let nested = "{% for order in data.orders %}{{ order.id }}:{% for line in order.lines %}{{ line.sku }}{{ line.note }};{% endfor %}|{% endfor %}";
        let data = json!({"data": {"orders": [
            {"id": 1, "lines": [{"sku": "A"}, {"sku": "B", "note": "!"}]},
            {"id": 2}
        ]}});
        assert_eq!(render(nested, data), "1:A;B!;|2:|");
        assert_eq!(paths(nested), vec![p(&["data", "orders"])]);
    }

    #[test]
    fn missing_collections_loop_zero_times() {
        let source = "{% for item in data.items %}x{% else %}none{% endfor %}";
        assert_eq!(render(source, json!({})), "none");
        assert_eq!(render(source, json!({"data": {"items": []}})), "none");
        assert_eq!(render("{{ data.items.size }}", json!({})), "0");
        assert_eq!(
            render("{{ data.items.size }}", json!({"data": {"items": [1, 2]}})),
            "2"
        );
    }

    #[test]
    fn special_accessors_keep_their_liquid_meaning() {
        let data = json!({"traits": {"a": 1, "b": 2}, "data": {"items": ["x", "y", "z"]}});
        assert_eq!(render("{{ traits.size }}", data.clone()), "2");
        assert_eq!(
            render(
                "{{ data.items.first }}{{ data.items.last }}{{ data.items[1] }}{{ data.items[-1] }}",
                data.clone()
            ),
            "xzyz"
        );
        assert_eq!(render("{{ traits.a.size }}", data), "1");
    }

    #[test]
    fn deep_event_data_does_not_overflow() {
        let mut value = json!("leaf");
        for _ in 0..120 {
            value = json!({ "a": value });
        }
        let data = json!({ "d": value });
        assert_eq!(
            render("{% if d.a.a %}deep{% endif %}|{{ d | size }}", data.clone()),
            "deep|1"
        );
        // An object renders as its keys and values; levels past the cut-off are nil.
        let whole = render("{{ d }}", data);
        assert!(
            whole.len() < 120 && whole.chars().all(|c| c == 'a'),
            "{whole}"
        );
    }
}
