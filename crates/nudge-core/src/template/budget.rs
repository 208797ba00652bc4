//! What one render may spend: the globals it reads, which count loop iterations through the
//! loop-tick probe and note the too-large probe, and the writer that caps its output.

use std::cell::Cell;
use std::fmt;
use std::io;

use liquid::model::{DisplayCow, KStringCow, Object, State, Value};
use liquid::{ObjectView, ValueView};

use super::{BODY, MAX_LOOP_ITERATIONS, MAX_OUTPUT_BYTES, TICK, TOO_LARGE};

/// The render globals: the event data plus the two budget probes and the body mark.
#[derive(Debug)]
pub(super) struct Globals {
    data: Object,
    nil: Value,
    ticks: Cell<usize>,
    pub(super) loop_budget_spent: Cell<bool>,
    pub(super) too_large: Cell<bool>,
}

impl Globals {
    pub(super) fn new(data: Object) -> Self {
        Globals {
            data,
            nil: Value::Nil,
            ticks: Cell::new(0),
            loop_budget_spent: Cell::new(false),
            too_large: Cell::new(false),
        }
    }
}

impl ValueView for Globals {
    fn as_debug(&self) -> &dyn fmt::Debug {
        self
    }
    fn render(&self) -> DisplayCow<'_> {
        self.data.render()
    }
    fn source(&self) -> DisplayCow<'_> {
        self.data.source()
    }
    fn type_name(&self) -> &'static str {
        self.data.type_name()
    }
    fn query_state(&self, state: State) -> bool {
        self.data.query_state(state)
    }
    fn to_kstr(&self) -> KStringCow<'_> {
        self.data.to_kstr()
    }
    fn to_value(&self) -> Value {
        self.data.to_value()
    }
    fn as_object(&self) -> Option<&dyn ObjectView> {
        Some(self)
    }
}

impl ObjectView for Globals {
    fn as_value(&self) -> &dyn ValueView {
        self
    }
    fn size(&self) -> i64 {
        ObjectView::size(&self.data)
    }
    fn keys<'k>(&'k self) -> Box<dyn Iterator<Item = KStringCow<'k>> + 'k> {
        ObjectView::keys(&self.data)
    }
    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        ObjectView::values(&self.data)
    }
    fn iter<'k>(&'k self) -> Box<dyn Iterator<Item = (KStringCow<'k>, &'k dyn ValueView)> + 'k> {
        ObjectView::iter(&self.data)
    }
    fn contains_key(&self, index: &str) -> bool {
        matches!(index, TICK | TOO_LARGE | BODY) || ObjectView::contains_key(&self.data, index)
    }
    fn get<'s>(&'s self, index: &str) -> Option<&'s dyn ValueView> {
        if index == TICK {
            let ticks = self.ticks.get().saturating_add(1);
            self.ticks.set(ticks);
            if ticks > MAX_LOOP_ITERATIONS {
                // Failing the lookup stops the render at once.
                self.loop_budget_spent.set(true);
                return None;
            }
            return Some(&self.nil);
        }
        if index == TOO_LARGE {
            self.too_large.set(true);
            return None;
        }
        if index == BODY {
            return Some(&self.nil);
        }
        ObjectView::get(&self.data, index)
    }
}

/// Collects output, refusing to grow past `MAX_OUTPUT_BYTES`.
#[derive(Default)]
pub(super) struct CappedWriter {
    pub(super) buf: Vec<u8>,
    pub(super) overflowed: bool,
}

impl io::Write for CappedWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len().saturating_add(data.len()) > MAX_OUTPUT_BYTES {
            self.overflowed = true;
            return Err(io::Error::other("output too large"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::test_support::{render, render_err};
    use serde_json::json;

    #[test]
    fn output_is_capped() {
        let exact = "x".repeat(MAX_OUTPUT_BYTES);
        assert_eq!(
            render("{{ p.s }}", json!({"p": {"s": exact}})).len(),
            MAX_OUTPUT_BYTES
        );
        let e = render_err("{{ p.s }}!", json!({"p": {"s": exact}}));
        assert!(e.message.contains("output"), "{e}");
        let e = render_err(
            "{% for i in (1..10000) %}{{ p.s }}{% endfor %}",
            json!({"p": {"s": "y".repeat(100)}}),
        );
        assert!(e.message.contains("256 KiB"), "{e}");
    }

    #[test]
    fn loops_share_an_iteration_budget() {
        assert_eq!(
            render(
                "{% for a in (1..50) %}{% for b in (1..50) %}{% endfor %}{% endfor %}",
                json!({})
            ),
            ""
        );
        let e = render_err(
            "{% for a in (1..10000) %}{% for b in (1..10000) %}{% for c in (1..10000) %}{% endfor %}{% endfor %}{% endfor %}",
            json!({}),
        );
        assert!(e.message.contains("iterations"), "{e}");
        let items: Vec<u32> = (0..200).collect();
        let e = render_err(
            "{% for a in d.items %}{% for b in d.items %}{{ break }}{% endfor %}{% endfor %}",
            json!({"d": {"items": items}}),
        );
        assert!(e.message.contains("iterations"), "{e}");
    }

    #[test]
    fn assigned_and_captured_values_are_capped() {
        let e = render_err(
            "{% capture s %}x{% endcapture %}{% for i in (1..40) %}{% capture s %}{{ s }}{{ s }}{% endcapture %}{% endfor %}{{ s | size }}",
            json!({}),
        );
        assert!(e.message.contains("assigned or captured"), "{e}");
        let e = render_err(
            "{% assign s = 'xxxxxxxx' %}{% for i in (1..40) %}{% assign s = s | append: s %}{% endfor %}",
            json!({}),
        );
        assert!(e.message.contains("assigned or captured"), "{e}");
        let e = render_err(
            "{% assign a = 'x' | split: ',' %}{% for i in (1..40) %}{% assign a = a | concat: a %}{% endfor %}",
            json!({}),
        );
        assert!(e.message.contains("assigned or captured"), "{e}");
    }
}
