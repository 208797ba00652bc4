//! Message templates: Liquid (the `liquid` crate) hardened for text written in users' rule
//! files and data sent in users' events.
//!
//! What this adds on top of plain Liquid:
//! - data a template reads but the globals lack renders as nil instead of failing (Liquid
//!   errors on unknown variables): the paths a template reads are found when it is compiled
//!   and filled with nil before each render, including the fields of loop items;
//! - guards against runaway templates and data: engine panics (integer overflow in math
//!   filters, ...) become errors, `for` loops share an iteration budget, ranges are bounded,
//!   assigned and captured values and the output are capped, nesting that would exhaust the
//!   stack is refused, and tags that cannot work here (`include`, `render`, `tablerow`) are
//!   refused when compiling. One gap stays: liquid offers no hook between filters, so a single
//!   filter chain (say `replace` with a long replacement, chained) can still build a large
//!   string in memory before the caps see it;
//! - the same template and data render the same bytes every time: Liquid's objects are hash
//!   maps whose key order changes from one copy to the next, so every filter and every tag
//!   that reads values sees objects in key order, every `{{ }}` ends with a filter that renders
//!   them so, and render errors leave out what Liquid quotes of them.
//!
//! The liquid crate does not expose its syntax tree, so the template text is scanned with a
//! small lexer that mirrors Liquid's tokenisation. The same scan places the probes: a
//! `{{ __nudge_loop_tick }}` at the start of every loop body, a `{{ __nudge_body }}` at the
//! start of every other body of `if` and `unless`, a size check after every `assign` and
//! `capture`, and `| __nudge_sorted` at the end of every `{{ }}`. They render nothing of their
//! own; the compiled template is the instrumented text while `source()` and error positions
//! refer to the original.
//!
//! Files: `lexer.rs` finds the regions, `tokens.rs` reads tokens and variables inside them,
//! `checks.rs` refuses what must not reach Liquid, `analysis.rs` finds what a template reads
//! and places the probes, `parser.rs` is Liquid's parser and its errors, `stdlib.rs` is
//! Liquid's standard library made to see objects in key order (through `sorted.rs`, the view,
//! `sorted_lookups.rs`, the runtime lending views, kept on a `shelf.rs`; `sort_filters.rs`
//! are our `sort` and `sort_natural`), `data.rs` turns event data into Liquid values and fills
//! the paths read with nil, `ranges.rs` bounds ranges over event data, `budget.rs` counts what
//! a render spends, and `html_text.rs` turns HTML into plain text (for mails written only in
//! HTML).

mod analysis;
mod budget;
mod checks;
mod data;
mod html_text;
mod lexer;
mod parser;
mod ranges;
mod shelf;
mod sort_filters;
mod sorted;
mod sorted_lookups;
mod stdlib;
#[cfg(test)]
mod test_support;
mod tokens;

pub use html_text::{decode_entities, html_to_text};

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};

use liquid::model::{KString, Object};
use serde::{Deserialize, Serialize};

use analysis::{instrument, Analyzer};
use budget::{CappedWriter, Globals};
use checks::{check_nesting, check_no_wall_clock};
use data::{fill_root, to_liquid, Seg};
use lexer::lex;
use parser::{
    describe_liquid_error, describe_render_error, panic_message, parse_error, parse_liquid, parser,
    ParseFailure,
};
use ranges::RangeCheck;

/// Largest rendered output, and largest value (string length or array size) a template may
/// build with `assign` or `capture`.
pub const MAX_OUTPUT_BYTES: usize = 256 * 1024;
/// Most loop iterations one render may run, all `for` loops together.
pub const MAX_LOOP_ITERATIONS: usize = 10_000;
/// Most items a `(start..stop)` range may have.
pub const MAX_RANGE_ITEMS: i64 = 10_000;
/// Longest template source accepted.
pub const MAX_SOURCE_BYTES: usize = 1024 * 1024;

// The guards' other limits and the probes' names live here, beside the public limits,
// because several of the files below enforce or place them.

/// Deepest nesting of blocks (each `elsif` counts as one more level: Liquid nests them).
const MAX_BLOCK_DEPTH: usize = 64;
/// Most `and` / `or` in one condition (Liquid evaluates them recursively).
const MAX_CONDITION_TERMS: usize = 100;
/// Deepest nesting of `[...]` indexes inside one variable.
const MAX_BRACKET_DEPTH: usize = 16;
/// Most parts in one variable path (`a.b.c` has three).
const MAX_PATH_SEGMENTS: usize = 32;
/// Deeper event data is cut off (rendered as nil) so conversions cannot exhaust the stack.
const MAX_DATA_DEPTH: usize = 64;
/// Error messages quoting rendered values are cut to this many characters.
const MAX_MESSAGE_CHARS: usize = 300;

/// Probe rendered at the start of every loop body; each lookup spends one iteration.
const TICK: &str = "__nudge_loop_tick";
/// Probe rendered when an assigned or captured value is too large; its lookup fails.
const TOO_LARGE: &str = "__nudge_value_too_large";
/// Scratch variable holding the size of the value just assigned or captured.
const SIZE: &str = "__nudge_size";
/// Probe rendered at the start of every `if`, `elsif`, `unless` and `else` body: the tag has
/// read its values (see `sorted_lookups.rs`). Its lookup gives nil.
const BODY: &str = "__nudge_body";
/// Filter placed at the end of every `{{ }}`: renders the value with its objects' keys in order.
const SORTED: &str = "__nudge_sorted";

/// A template failed to compile or render. `line` and `column` are 1-based positions in the
/// template text when known (parse errors), else 1:1.
#[derive(thiserror::Error, Debug, Clone, PartialEq)]
#[error("{line}:{column}: {message}")]
pub struct TemplateError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl TemplateError {
    fn general(message: impl Into<String>) -> Self {
        TemplateError {
            line: 1,
            column: 1,
            message: message.into(),
        }
    }

    fn at(source: &str, offset: usize, message: impl Into<String>) -> Self {
        let (line, column) = line_col(source, offset);
        TemplateError {
            line,
            column,
            message: message.into(),
        }
    }
}

/// A compiled Liquid template plus the variable paths it reads.
#[derive(Clone, Serialize, Deserialize)]
#[serde(into = "TemplateParts", from = "TemplateParts")]
pub struct Template {
    source: String,
    /// What Liquid parses: the source, guarded where needed. `None` for text without Liquid
    /// markup (no `{{`, no `{%`), which renders as itself: Liquid's parser walks plain text a
    /// character at a time, most of a rule set's load.
    liquid: Option<Arc<str>>,
    /// `liquid` parsed: at compile time, or at the first render of a template read from a
    /// compiled snapshot (see `rules::snapshot`), which so parses only what it renders.
    compiled: OnceLock<Option<Arc<liquid::Template>>>,
    referenced: Vec<Vec<String>>,
    fills: Vec<Vec<Seg>>,
    range_checks: Vec<RangeCheck>,
}

/// A template as a compiled snapshot keeps it: everything but the parsed Liquid.
#[derive(Serialize, Deserialize)]
struct TemplateParts {
    source: String,
    liquid: Option<Arc<str>>,
    referenced: Vec<Vec<String>>,
    fills: Vec<Vec<Seg>>,
    range_checks: Vec<RangeCheck>,
}

impl From<Template> for TemplateParts {
    fn from(t: Template) -> Self {
        TemplateParts {
            source: t.source,
            liquid: t.liquid,
            referenced: t.referenced,
            fills: t.fills,
            range_checks: t.range_checks,
        }
    }
}

impl From<TemplateParts> for Template {
    fn from(p: TemplateParts) -> Self {
        Template {
            source: p.source,
            liquid: p.liquid,
            compiled: OnceLock::new(),
            referenced: p.referenced,
            fills: p.fills,
            range_checks: p.range_checks,
        }
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Template")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Template {
    /// Parses `source`, reporting the first error with its position.
    pub fn compile(source: &str) -> Result<Template, TemplateError> {
        if source.len() > MAX_SOURCE_BYTES {
            return Err(TemplateError::general(format!(
                "template is {} bytes long; at most {MAX_SOURCE_BYTES} are allowed",
                source.len()
            )));
        }
        if !source.contains("{{") && !source.contains("{%") {
            return Ok(Template {
                source: source.to_owned(),
                liquid: None,
                compiled: OnceLock::from(None),
                referenced: Vec::new(),
                fills: Vec::new(),
                range_checks: Vec::new(),
            });
        }
        let lexed = lex(source);
        check_nesting(source, &lexed)?;
        check_no_wall_clock(source, &lexed)?;
        let parser = parser()?;
        let parse_plain = || {
            parse_liquid(parser, source).map_err(|failure| match failure {
                ParseFailure::Liquid(error) => parse_error(source, &lexed, &error),
                ParseFailure::Panic(message) => {
                    TemplateError::general(format!("template could not be parsed ({message})"))
                }
            })
        };
        // Liquid's parser is most of a rule set's load time: the text is parsed once, as it
        // will render (guarded where needed). The source as written is parsed only to explain
        // a failure, so that a syntax error is reported where the author wrote it, and before
        // any error of the analysis, as always.
        let analysis = match Analyzer::run(source, &lexed) {
            Ok(analysis) => analysis,
            Err(e) => {
                parse_plain()?;
                return Err(e);
            }
        };
        let (liquid, compiled) = if analysis.insertions.is_empty() {
            (source.to_owned(), parse_plain()?)
        } else {
            let instrumented = instrument(source, &analysis.insertions);
            match parse_liquid(parser, &instrumented) {
                Ok(compiled) => (instrumented, compiled),
                Err(failure) => {
                    parse_plain()?;
                    let detail = match failure {
                        ParseFailure::Liquid(error) => describe_liquid_error(&error.to_string()).1,
                        ParseFailure::Panic(message) => message,
                    };
                    return Err(TemplateError::general(format!(
                        "internal error: the guarded template does not parse: {detail}"
                    )));
                }
            }
        };
        Ok(Template {
            source: source.to_owned(),
            liquid: Some(liquid.into()),
            compiled: OnceLock::from(Some(Arc::new(compiled))),
            referenced: analysis.referenced,
            fills: analysis.fills,
            range_checks: analysis.range_checks,
        })
    }

    /// Variable paths the template reads, e.g. `[["traits","first_name"], ["data","items"]]`,
    /// deduplicated, in order of first appearance. Paths read through loop variables,
    /// `forloop`, and variables the template assigns or captures are not included; a path
    /// stops before an index computed at render time (`data.items[i]` gives `data.items`).
    pub fn referenced_paths(&self) -> &[Vec<String>] {
        &self.referenced
    }

    /// Renders against `globals` (a JSON object). Any path the template reads that `globals`
    /// lacks renders as nil, so `{{ traits.first_name | default: "there" }}` gives "there"
    /// when the trait is absent and `{{ traits.first_name }}` gives "". Paths the data has but
    /// cannot follow (an index past the end of an array, `.first` of an empty one, a key of a
    /// string) fail as in Liquid. Errors from rendering are reported at 1:1.
    pub fn render(
        &self,
        globals: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String, TemplateError> {
        let Some(liquid) = &self.liquid else {
            return if self.source.len() > MAX_OUTPUT_BYTES {
                Err(output_too_large())
            } else {
                Ok(self.source.clone())
            };
        };
        let compiled = self
            .compiled
            .get_or_init(|| {
                let parser = parser().ok()?;
                parse_liquid(parser, liquid).ok().map(Arc::new)
            })
            .as_ref()
            .ok_or_else(|| {
                TemplateError::general(
                    "template could not be parsed (a damaged compiled rule set?)",
                )
            })?;
        let mut data = Object::new();
        for (key, value) in globals {
            data.insert(KString::from_ref(key), to_liquid(value, 0));
        }
        for path in &self.fills {
            fill_root(&mut data, path);
        }
        for check in &self.range_checks {
            check.verify(&data, &self.source)?;
        }
        let globals = Globals::new(data);
        let mut out = CappedWriter::default();
        let result =
            panic::catch_unwind(AssertUnwindSafe(|| compiled.render_to(&mut out, &globals)));
        if out.overflowed {
            return Err(output_too_large());
        }
        if globals.loop_budget_spent.get() {
            return Err(TemplateError::general(format!(
                "loops ran more than {MAX_LOOP_ITERATIONS} iterations"
            )));
        }
        if globals.too_large.get() {
            return Err(TemplateError::general(format!(
                "an assigned or captured value is larger than {} KiB",
                MAX_OUTPUT_BYTES / 1024
            )));
        }
        match result {
            Err(payload) => Err(TemplateError::general(panic_message(payload.as_ref()))),
            Ok(Err(error)) => Err(TemplateError::general(describe_render_error(
                &error.to_string(),
            ))),
            Ok(Ok(())) => String::from_utf8(out.buf)
                .map_err(|_| TemplateError::general("rendered output is not valid UTF-8")),
        }
    }

    /// The template text as written.
    pub fn source(&self) -> &str {
        &self.source
    }
}

fn output_too_large() -> TemplateError {
    TemplateError::general(format!(
        "rendered output is larger than {} KiB",
        MAX_OUTPUT_BYTES / 1024
    ))
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::test_support::{globals, p, paths, render, render_err, render_every_way};
    use liquid::model::Value;
    use serde_json::{json, Map};

    #[test]
    fn plain_text_renders_unchanged() {
        for text in [
            "",
            "Hello there!",
            "Braces { alone } and 100% } are text\nline two\ttab é ü 🚀",
            "a { {b} } c % d",
        ] {
            assert_eq!(render(text, json!({})), text);
            assert!(paths(text).is_empty());
        }
    }

    #[test]
    fn loops_render_arrays_of_objects() {
        let source = "{% for item in data.items %}{{ item.name }} ({{ item.price }}){% unless forloop.last %}, {% endunless %}{% endfor %}";
        let data = json!({"data": {"items": [
            {"name": "Tea", "price": 3},
            {"name": "Cake", "price": 4.5}
        ]}});
        assert_eq!(render(source, data), "Tea (3), Cake (4.5)");
        assert_eq!(paths(source), vec![p(&["data", "items"])]);
    }

    #[test]
    fn template_is_clone_debug_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Template>();
        let template = Template::compile("Hi {{ traits.name }}").unwrap();
        let copy = template.clone();
        assert_eq!(copy.source(), "Hi {{ traits.name }}");
        assert_eq!(copy.referenced_paths(), template.referenced_paths());
        assert!(format!("{template:?}").contains("Hi {{ traits.name }}"));
        assert_eq!(
            copy.render(&globals(json!({"traits": {"name": "Bo"}})))
                .unwrap(),
            "Hi Bo"
        );
    }

    #[test]
    fn render_errors_are_reported_not_raised() {
        let e = render_err("{{ 5 | divided_by: 0 }}", json!({}));
        assert_eq!((e.line, e.column), (1, 1));
        assert!(e.message.contains("divide by zero"), "{e}");
        let e = render_err(
            "{{ traits.name | truncate: 'x' }}",
            json!({"traits": {"name": "Bo"}}),
        );
        assert!(!e.message.is_empty());
    }

    #[test]
    fn engine_panics_become_errors() {
        // Liquid's math filters overflow (this one panics in release builds too).
        let e = render_err("{{ -9223372036854775808 | divided_by: -1 }}", json!({}));
        assert!(e.message.contains("failed"), "{e}");
        let e = render_err("{{ p.n | divided_by: -1 }}", json!({"p": {"n": i64::MIN}}));
        assert!(e.message.contains("failed"), "{e}");
    }

    #[test]
    fn text_without_markup_renders_as_liquid_renders_it() {
        let liquid = parser().unwrap();
        for text in [
            "",
            "Billing tip",
            "Hi there,\n\n  Your profile is almost done. {braces} and }} stay.\r\n",
            "{ {  % } {-  -} %} }}{",
            "Ünïcödé — ✓",
        ] {
            let template = Template::compile(text).unwrap();
            assert!(template.liquid.is_none(), "{text:?}");
            assert!(template.referenced_paths().is_empty());
            let expected = liquid.parse(text).unwrap().render(&Object::new()).unwrap();
            assert_eq!(template.render(&Map::new()).unwrap(), expected, "{text:?}");
        }
        let at_cap = "x".repeat(MAX_OUTPUT_BYTES);
        assert_eq!(render(&at_cap, json!({})).len(), MAX_OUTPUT_BYTES);
        let e = render_err(&format!("{at_cap}!"), json!({}));
        assert!(e.message.contains("256 KiB"), "{e}");
        assert!(Template::compile("{{- x -}}").unwrap().liquid.is_some());
        assert!(Template::compile("a {%- comment %}b{% endcomment %}")
            .unwrap()
            .liquid
            .is_some());
    }

    // --- robustness ---

    /// What the fuzz target (`fuzz/fuzz_targets/template.rs`) found: an object rendered whole
    /// came out in another key order after a trip through the compiled snapshot (Liquid's
    /// objects are hash maps). The inputs as the target reads them: the template, then after a
    /// NUL byte the data, or the target's sample data when that is not a JSON object.
    #[test]
    fn fuzz_findings_render_objects_the_same_every_time() {
        let sample = json!({
            "traits": {"first_name": "Alice", "email": "alice@example.com", "plan": "team", "seats": 5},
            "properties": {"step": "profile", "step_index": 2, "items": [
                {"name": "Tea", "price": 3.5, "tags": ["hot", "green"]},
                {"name": "Cake", "price": 4, "tags": []}
            ]},
            "user_id": "alice",
            "event": "Onboarding Step Viewed"
        });
        let traits = "emailalice@example.comfirst_nameAliceplanteamseats5";
        for (input, expected) in [
            (
                "{{ properties}}.url }}\0{\"traits\": { waiti_name\": \"Bob\", \"emai}]}, \
                 \"variant\": \"b\", \"user_id\": \"bob\"}",
                "itemsnameTeaprice3.5tagshotgreennameCakeprice4tagsstepprofilestep_index2.url }}"
                    .to_owned(),
            ),
            (
                "{{ traits }}, finish yZZZZZZ \"price\": 2}]}, \": \"bh yZZZZZZ \"priob\"}",
                format!("{traits}, finish yZZZZZZ \"price\": 2}}]}}, \": \"bh yZZZZZZ \"priob\"}}"),
            ),
            (
                "\r\n Here\"is boarding we*i#na\u{1}Y {{ traits }}\0{\"traiti<| \0\r\n*",
                format!("\r\n Here\"is boarding we*i#na\u{1}Y {traits}"),
            ),
        ] {
            let (source, data_text) = input.split_once('\0').unwrap_or((input, ""));
            let data = match serde_json::from_str(data_text) {
                Ok(data @ serde_json::Value::Object(_)) => data,
                _ => sample.clone(),
            };
            assert_eq!(render_every_way(source, data), Ok(expected), "{input:?}");
        }
    }

    /// Well-formed Liquid with loops, assigns, captures and whitespace control.
    fn liquid_snippet() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let leaf = proptest::sample::select(vec![
            "{{ i }}",
            "{{- a -}}",
            "{{ c }}",
            "{{ forloop.index }}",
            "{{ i.a }}",
            " ",
            "  ",
            "\n",
            "\r\n",
            "\t",
            "x",
            "é",
            "{% assign a = x | append: i %}",
            "{%- assign b = d.items | size -%}",
            "{% break %}",
            "{% raw %}{{ i }} {% endraw %}",
            "{% comment %}{{ i }}{% for i in x %}{% endfor %}{% endcomment %}",
            "{% case i %}{% when 1, 2 %}one{% else %}other{% endcase %}",
        ])
        .prop_map(str::to_owned);
        leaf.prop_recursive(3, 24, 4, |inner| {
            (
                proptest::sample::select(vec![
                    ("{% for i in d.items %}", "{% endfor %}"),
                    ("{%- for i in d.items -%}", " {%- endfor -%}"),
                    ("{% for j in (1..p.n) -%}\n ", "\n{% endfor %}"),
                    (
                        "{% for i in d.items limit: 2 reversed %}",
                        "{% else %}none{% endfor %}",
                    ),
                    (
                        "{% if i %}",
                        "{% elsif x == 's' %} s {% else %} {% endif %}",
                    ),
                    ("{% capture c -%}  ", "  {%- endcapture -%}  "),
                    ("{% ifchanged %}", "{% endifchanged %}"),
                    ("{% unless a %}\n", "{% endunless %}"),
                ]),
                proptest::collection::vec(inner, 0..4),
            )
                .prop_map(|((open, close), body)| format!("{open}{}{close}", body.concat()))
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 512,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        #[test]
        fn arbitrary_templates_never_panic(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "{{", "}}", "{%", "%}", "-", "'", "\"", "[", "]", "(", ")", "..", ".", "|",
                    ":", ",", " ", "\n", "x", "p.n", "d.items", "i", "1", "-1", "99999999",
                    "for", "in", "endfor", "if", "elsif", "endif", "raw", "endraw",
                    "comment", "endcomment", "assign", "=", "capture", "endcapture",
                    "append", "plus", "é", "<", ">", "&amp;", "<br>", "<li>",
                ]),
                0..40,
            )
        ) {
            let source: String = parts.concat();
            let data = globals(json!({"p": {"n": 3}, "d": {"items": [1, {"a": 2}]}, "x": "s"}));
            if let Ok(template) = Template::compile(&source) {
                let _ = template.referenced_paths();
                let _ = template.render(&data);
            }
            let _ = html_to_text(&source);
        }

        #[test]
        fn guarded_templates_parse_and_render_like_liquid(
            parts in proptest::collection::vec(liquid_snippet(), 0..6)
        ) {
            let source: String = parts.concat();
            let data = json!({
                "p": {"n": 3}, "d": {"items": [{"a": 1}, {"a": 2}, {"a": 2}]},
                "x": "s", "i": {"a": 0}, "a": "A", "c": "C"
            });
            // Liquid itself panics on some malformed input (unclosed blocks in comments).
            let plain = panic::catch_unwind(|| {
                liquid::ParserBuilder::with_stdlib().build().unwrap().parse(&source)
            })
            .unwrap_or_else(|_| Err(liquid::Error::with_msg("panicked")));
            match (Template::compile(&source), plain) {
                (Ok(template), Ok(plain)) => {
                    let ours = template.render(&globals(data.clone()));
                    let object = match to_liquid(&data, 0) {
                        Value::Object(object) => object,
                        _ => Object::new(),
                    };
                    // Where plain Liquid renders (`forloop` outside a loop fails), the guards
                    // change nothing.
                    let expected = plain.render(&object);
                    proptest::prop_assume!(expected.is_ok());
                    proptest::prop_assert_eq!(ours, Ok(expected.unwrap_or_default()), "{:?}", source);
                }
                (Err(e), Ok(_)) => proptest::prop_assert!(false, "{source:?}: {e}"),
                (Ok(_), Err(e)) => proptest::prop_assert!(false, "{source:?} should fail: {e}"),
                (Err(_), Err(e)) => proptest::prop_assert!(false, "{source:?} does not parse: {e}"),
            }
        }
    }
}
