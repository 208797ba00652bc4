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
//!   string in memory before the caps see it.
//!
//! The liquid crate does not expose its syntax tree, so the template text is scanned with a
//! small lexer that mirrors Liquid's tokenisation. The same scan places the budget probes: a
//! `{{ __nudge_loop_tick }}` at the start of every loop body and a size check after every
//! `assign` and `capture`. They render nothing; the compiled template is the instrumented text
//! while `source()` and error positions refer to the original.

use std::cell::Cell;
use std::collections::HashSet;
use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};

use liquid::model::{DisplayCow, KString, KStringCow, Object, State, Value};
use liquid::{ObjectView, ValueView};
use serde::{Deserialize, Serialize};

/// Largest rendered output, and largest value (string length or array size) a template may
/// build with `assign` or `capture`.
pub const MAX_OUTPUT_BYTES: usize = 256 * 1024;
/// Most loop iterations one render may run, all `for` loops together.
pub const MAX_LOOP_ITERATIONS: usize = 10_000;
/// Most items a `(start..stop)` range may have.
pub const MAX_RANGE_ITEMS: i64 = 10_000;
/// Longest template source accepted.
pub const MAX_SOURCE_BYTES: usize = 1024 * 1024;

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

/// Tags that open a block closed by `end<name>`.
const BLOCK_TAGS: [&str; 9] = [
    "if",
    "unless",
    "for",
    "case",
    "capture",
    "comment",
    "raw",
    "ifchanged",
    "tablerow",
];

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
            Ok(Err(error)) => Err(TemplateError::general(
                describe_liquid_error(&error.to_string()).1,
            )),
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

// ---------------------------------------------------------------------------------------------
// Liquid engine glue

fn parser() -> Result<&'static liquid::Parser, TemplateError> {
    static PARSER: OnceLock<Option<liquid::Parser>> = OnceLock::new();
    PARSER
        .get_or_init(|| liquid::ParserBuilder::with_stdlib().build().ok())
        .as_ref()
        .ok_or_else(|| TemplateError::general("internal error: the Liquid parser failed to build"))
}

enum ParseFailure {
    Liquid(liquid::Error),
    Panic(String),
}

fn parse_liquid(parser: &liquid::Parser, text: &str) -> Result<liquid::Template, ParseFailure> {
    match panic::catch_unwind(AssertUnwindSafe(|| parser.parse(text))) {
        Ok(Ok(template)) => Ok(template),
        Ok(Err(error)) => Err(ParseFailure::Liquid(error)),
        Err(payload) => Err(ParseFailure::Panic(panic_message(payload.as_ref()))),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let detail = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown cause".to_owned());
    truncate_chars(&format!("the template engine failed: {detail}"))
}

/// Maps a Liquid parse error to a positioned error; Liquid gives positions for syntax errors
/// and the name (but no position) of an unknown filter.
fn parse_error(source: &str, lexed: &Lexed<'_>, error: &liquid::Error) -> TemplateError {
    let text = error.to_string();
    let (position, message) = describe_liquid_error(&text);
    if let Some((line, column)) = position {
        return TemplateError {
            line,
            column,
            message,
        };
    }
    let filter_offset = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("requested filter="))
        .and_then(|name| find_filter(lexed, name.trim()));
    match filter_offset {
        Some(offset) => TemplateError::at(source, offset, message),
        None => TemplateError::general(message),
    }
}

/// Turns liquid's multi-line error text into an optional `(line, column)` and one line.
fn describe_liquid_error(text: &str) -> (Option<(usize, usize)>, String) {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("");
    let first = first.strip_prefix("liquid:").unwrap_or(first).trim();
    let mut position = None;
    let mut main: Option<String> = None;
    if let Some(location) = first.strip_prefix("-->") {
        position = parse_line_col(location.trim());
    } else if !first.is_empty() {
        main = Some(first.to_owned());
    }
    let mut details: Vec<String> = Vec::new();
    let mut in_context = false;
    for line in lines {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("= ") {
            if main.is_none() {
                main = Some(rest.to_owned());
            }
            in_context = false;
        } else if line == "with:" {
            in_context = true;
        } else if let Some(rest) = line.strip_prefix("from:") {
            details.push(format!("in {}", rest.trim()));
            in_context = false;
        } else if in_context && line.contains('=') && !line.starts_with("available") {
            details.push(line.to_owned());
        }
    }
    let mut message = main.unwrap_or_else(|| "template error".to_owned());
    while message.ends_with('.') {
        message.pop();
    }
    if !details.is_empty() {
        message = format!("{message} ({})", details.join("; "));
    }
    (position, truncate_chars(&message))
}

fn parse_line_col(text: &str) -> Option<(usize, usize)> {
    let (line, column) = text.split_once(':')?;
    Some((line.trim().parse().ok()?, column.trim().parse().ok()?))
}

fn truncate_chars(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
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

/// The render globals: the event data plus the two budget probes.
#[derive(Debug)]
struct Globals {
    data: Object,
    nil: Value,
    ticks: Cell<usize>,
    loop_budget_spent: Cell<bool>,
    too_large: Cell<bool>,
}

impl Globals {
    fn new(data: Object) -> Self {
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
        index == TICK || index == TOO_LARGE || ObjectView::contains_key(&self.data, index)
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
        ObjectView::get(&self.data, index)
    }
}

/// Collects output, refusing to grow past `MAX_OUTPUT_BYTES`.
#[derive(Default)]
struct CappedWriter {
    buf: Vec<u8>,
    overflowed: bool,
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

// ---------------------------------------------------------------------------------------------
// Data: JSON to Liquid values, nil filling, range checks

/// One step of a variable path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
enum Seg {
    Key(String),
    Index(i64),
    /// Every item of an array (the items a loop variable takes).
    Each,
}

fn to_liquid(value: &serde_json::Value, depth: usize) -> Value {
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

fn seg_key(seg: &Seg) -> Option<String> {
    match seg {
        Seg::Key(k) => Some(k.clone()),
        Seg::Index(i) => Some(i.to_string()),
        Seg::Each => None,
    }
}

/// Makes `path` resolve (to nil when absent) in the globals.
fn fill_root(data: &mut Object, path: &[Seg]) {
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

fn array_index(len: usize, index: i64) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let index = if index < 0 { len + index } else { index };
    usize::try_from(index).ok()
}

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
enum Bound {
    Literal(i64),
    /// Event data, read at render time.
    Path(Vec<Seg>),
    /// Not a whole number: Liquid itself refuses it when rendering.
    Invalid,
}

/// A range whose size depends on event data, checked before each render.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RangeCheck {
    start: Bound,
    stop: Bound,
    offset: usize,
}

impl RangeCheck {
    fn verify(&self, data: &Object, source: &str) -> Result<(), TemplateError> {
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

fn check_range_size(low: i64, high: i64, source: &str, offset: usize) -> Result<(), TemplateError> {
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

// ---------------------------------------------------------------------------------------------
// Lexing: `{{ ... }}` and `{% ... %}` regions, mirroring Liquid's grammar

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RegionKind {
    Output,
    Tag,
}

/// One `{{ ... }}` or `{% ... %}` in the source.
#[derive(Debug, Clone)]
struct Region<'s> {
    kind: RegionKind,
    /// Offset of the opening brace.
    start: usize,
    /// Offset just past the closing delimiter.
    end: usize,
    /// Text between the delimiters and their whitespace-control hyphens.
    inner: &'s str,
    inner_start: usize,
    /// Closed by `-}}` / `-%}`, which also swallows the whitespace that follows.
    trim_right: bool,
}

impl<'s> Region<'s> {
    fn tag_name(&self) -> Option<&'s str> {
        if self.kind != RegionKind::Tag {
            return None;
        }
        let trimmed = self.inner.trim_start();
        let len = trimmed.bytes().take_while(|b| is_ident_byte(*b)).count();
        Some(&trimmed[..len])
    }

    /// Source offset of the tag name.
    fn name_offset(&self) -> usize {
        self.inner_start + (self.inner.len() - self.inner.trim_start().len())
    }

    /// The text after the tag name (the whole inner text for outputs) and its source offset.
    fn arguments(&self) -> (&'s str, usize) {
        let skip = match self.tag_name() {
            Some(name) => self.inner.len() - self.inner.trim_start().len() + name.len(),
            None => 0,
        };
        (&self.inner[skip..], self.inner_start + skip)
    }

    /// Where text inserted after this region keeps the original whitespace handling.
    fn insertion_point(&self, source: &str) -> usize {
        if !self.trim_right {
            return self.end;
        }
        // Liquid's whitespace is spaces and newlines only.
        let skipped = source.as_bytes()[self.end..]
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\n' | b'\r'))
            .count();
        self.end + skipped
    }
}

struct Lexed<'s> {
    regions: Vec<Region<'s>>,
    /// Deepest `[` nesting seen in any attempted region, and where.
    deepest_brackets: (usize, usize),
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn lex(source: &str) -> Lexed<'_> {
    let bytes = source.as_bytes();
    let mut regions = Vec::new();
    let mut deepest_brackets = (0, 0);
    let mut i = 0;
    while let Some(found) = bytes
        .get(i..)
        .and_then(|b| b.iter().position(|&c| c == b'{'))
    {
        let at = i + found;
        if !matches!(bytes.get(at + 1), Some(b'{' | b'%')) {
            i = at + 1;
            continue;
        }
        let (region, depth) = scan_region(source, at);
        if depth > deepest_brackets.0 {
            deepest_brackets = (depth, at);
        }
        match region {
            Some(region) => {
                i = region.end;
                regions.push(region);
            }
            // Liquid treats a malformed opening as plain text and carries on after it.
            None => i = at + 1,
        }
    }
    Lexed {
        regions,
        deepest_brackets,
    }
}

/// Scans the region opening at `start` (`{{` or `{%`). Fails where Liquid's grammar cannot
/// match: an unterminated string, a brace outside a string, or no closing delimiter.
fn scan_region(source: &str, start: usize) -> (Option<Region<'_>>, usize) {
    let bytes = source.as_bytes();
    let kind = if bytes.get(start + 1) == Some(&b'{') {
        RegionKind::Output
    } else {
        RegionKind::Tag
    };
    let close = match kind {
        RegionKind::Output => b'}',
        RegionKind::Tag => b'%',
    };
    let mut j = start + 2;
    if bytes.get(j) == Some(&b'-') {
        j += 1;
    }
    let inner_start = j;
    let (mut depth, mut deepest) = (0usize, 0usize);
    let region = |inner_end: usize, end: usize, trim_right: bool| Region {
        kind,
        start,
        end,
        inner: &source[inner_start..inner_end],
        inner_start,
        trim_right,
    };
    while let Some(&b) = bytes.get(j) {
        match b {
            b'"' | b'\'' => match bytes[j + 1..].iter().position(|&c| c == b) {
                Some(len) => j += len + 2,
                None => return (None, deepest),
            },
            b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
                j += 1;
            }
            b']' => {
                depth = depth.saturating_sub(1);
                j += 1;
            }
            b'-' if bytes.get(j + 1) == Some(&close) && bytes.get(j + 2) == Some(&b'}') => {
                return (Some(region(j, j + 3, true)), deepest);
            }
            _ if b == close && bytes.get(j + 1) == Some(&b'}') => {
                return (Some(region(j, j + 2, false)), deepest);
            }
            b'{' | b'}' => return (None, deepest),
            _ => j += 1,
        }
    }
    (None, deepest)
}

/// Refuses nesting deep enough to exhaust the stack in Liquid's recursive parser and renderer.
fn check_nesting(source: &str, lexed: &Lexed<'_>) -> Result<(), TemplateError> {
    let (depth, offset) = lexed.deepest_brackets;
    if depth > MAX_BRACKET_DEPTH {
        return Err(TemplateError::at(
            source,
            offset,
            format!("indexes are nested more than {MAX_BRACKET_DEPTH} deep"),
        ));
    }
    // Weight of each open block: 1, plus 1 per `elsif` (Liquid nests those).
    let mut open: Vec<usize> = Vec::new();
    let mut total = 0usize;
    let mut in_raw = false;
    for region in &lexed.regions {
        let Some(name) = region.tag_name() else {
            continue;
        };
        if in_raw {
            in_raw = name != "endraw";
            continue;
        }
        if name == "raw" {
            in_raw = true;
            continue;
        }
        let (arguments, _) = region.arguments();
        let terms = tokenize(arguments)
            .iter()
            .filter(|t| matches!(t.tok, Tok::Ident("and" | "or")))
            .count();
        if terms > MAX_CONDITION_TERMS {
            return Err(TemplateError::at(
                source,
                region.start,
                format!("condition has more than {MAX_CONDITION_TERMS} `and` / `or` terms"),
            ));
        }
        if BLOCK_TAGS.contains(&name) {
            open.push(1);
            total += 1;
        } else if name == "elsif" {
            if let Some(weight) = open.last_mut() {
                *weight += 1;
                total += 1;
            }
        } else if name
            .strip_prefix("end")
            .is_some_and(|block| BLOCK_TAGS.contains(&block))
        {
            total -= open.pop().unwrap_or(0);
        }
        if total > MAX_BLOCK_DEPTH {
            return Err(TemplateError::at(
                source,
                region.start,
                format!("blocks are nested more than {MAX_BLOCK_DEPTH} deep"),
            ));
        }
    }
    Ok(())
}

/// The regions Liquid executes: everything outside `raw` and `comment` bodies, without the
/// `raw` / `comment` tags themselves.
fn executable_regions<'a, 's>(lexed: &'a Lexed<'s>) -> Vec<&'a Region<'s>> {
    let mut out = Vec::new();
    let mut in_raw = false;
    let mut comment_depth = 0usize;
    for region in &lexed.regions {
        let name = region.tag_name();
        if in_raw {
            in_raw = name != Some("endraw");
            continue;
        }
        if name == Some("raw") {
            in_raw = true;
            continue;
        }
        if comment_depth > 0 {
            match name {
                Some("comment") => comment_depth += 1,
                Some("endcomment") => comment_depth -= 1,
                _ => {}
            }
            continue;
        }
        if name == Some("comment") {
            comment_depth = 1;
            continue;
        }
        out.push(region);
    }
    out
}

/// Refuses `"now"` / `"today"` literals: the wall clock would make replays differ run to run.
fn check_no_wall_clock(source: &str, lexed: &Lexed<'_>) -> Result<(), TemplateError> {
    for region in &lexed.regions {
        let (arguments, offset) = region.arguments();
        for t in tokenize(arguments) {
            if let Tok::Str(text) = t.tok {
                if text.eq_ignore_ascii_case("now") || text.eq_ignore_ascii_case("today") {
                    return Err(TemplateError::at(
                        source,
                        offset + t.offset,
                        format!("\"{text}\" reads the wall clock, which would make replays differ; use `event.timestamp`"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Offset of the first use of filter `name` (after a `|`).
fn find_filter(lexed: &Lexed<'_>, name: &str) -> Option<usize> {
    lexed.regions.iter().find_map(|region| {
        let (arguments, offset) = region.arguments();
        let tokens = tokenize(arguments);
        tokens
            .windows(2)
            .find_map(|pair| match (&pair[0].tok, &pair[1].tok) {
                (Tok::Pipe, Tok::Ident(filter)) if *filter == name => Some(offset + pair[1].offset),
                _ => None,
            })
    })
}

// ---------------------------------------------------------------------------------------------
// Tokens inside a region

#[derive(Debug, Clone, PartialEq)]
enum Tok<'s> {
    Ident(&'s str),
    /// A string literal's content, without quotes.
    Str(&'s str),
    Int(&'s str),
    Float,
    Dot,
    DotDot,
    LBracket,
    RBracket,
    LParen,
    RParen,
    Pipe,
    Colon,
    Comma,
    /// Comparison operators, `=` and anything else.
    Op,
}

#[derive(Debug, Clone)]
struct Token<'s> {
    tok: Tok<'s>,
    /// Byte offset in the tokenized text.
    offset: usize,
}

fn tokenize(text: &str) -> Vec<Token<'_>> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let start = i;
        let tok = match b {
            _ if b.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            b'"' | b'\'' => {
                let len = bytes[i + 1..].iter().position(|&c| c == b);
                let end = len.map_or(bytes.len(), |len| i + 1 + len);
                i = (end + 1).min(bytes.len());
                Tok::Str(&text[start + 1..end])
            }
            _ if b.is_ascii_digit()
                || (matches!(b, b'+' | b'-')
                    && bytes.get(i + 1).is_some_and(|c| c.is_ascii_digit())) =>
            {
                i += 1;
                while bytes.get(i).is_some_and(|c| c.is_ascii_digit()) {
                    i += 1;
                }
                if bytes.get(i) == Some(&b'.')
                    && bytes.get(i + 1).is_some_and(|c| c.is_ascii_digit())
                {
                    i += 1;
                    while bytes.get(i).is_some_and(|c| c.is_ascii_digit()) {
                        i += 1;
                    }
                    Tok::Float
                } else {
                    Tok::Int(&text[start..i])
                }
            }
            _ if b.is_ascii_alphabetic() || b == b'_' || b == b'-' => {
                while bytes.get(i).is_some_and(|c| is_ident_byte(*c)) {
                    i += 1;
                }
                Tok::Ident(&text[start..i])
            }
            b'.' if bytes.get(i + 1) == Some(&b'.') => {
                i += 2;
                Tok::DotDot
            }
            _ => {
                let tok = match b {
                    b'.' => Tok::Dot,
                    b'[' => Tok::LBracket,
                    b']' => Tok::RBracket,
                    b'(' => Tok::LParen,
                    b')' => Tok::RParen,
                    b'|' => Tok::Pipe,
                    b':' => Tok::Colon,
                    b',' => Tok::Comma,
                    _ => Tok::Op,
                };
                // Step over one whole character (the text may hold non-ASCII).
                i += text[i..].chars().next().map_or(1, char::len_utf8);
                tok
            }
        };
        tokens.push(Token { tok, offset: start });
    }
    tokens
}

/// Words Liquid reads as literals rather than variables.
fn is_literal_word(word: &str) -> bool {
    matches!(word, "true" | "false" | "nil" | "null" | "empty" | "blank")
}

/// Operator words inside tags.
fn is_tag_keyword(word: &str) -> bool {
    matches!(word, "and" | "or" | "contains" | "reversed")
}

/// A variable expression: `root(.key | [literal] | [variable])*`.
#[derive(Debug, Clone)]
struct VarRef<'s> {
    /// The path up to the first index computed at render time; starts with the root name.
    segs: Vec<Seg>,
    root: &'s str,
    /// The path continues past an index computed at render time.
    dynamic: bool,
    /// Variables used as indexes inside this one.
    nested: Vec<VarRef<'s>>,
    /// Offset of the root in the tokenized text.
    offset: usize,
}

/// Parses the variable starting at `tokens[start]` (an identifier); returns it and the index
/// of the first token after it.
fn parse_var<'s>(tokens: &[Token<'s>], start: usize, depth: usize) -> (VarRef<'s>, usize) {
    let root = match tokens.get(start).map(|t| &t.tok) {
        Some(Tok::Ident(name)) => *name,
        _ => "",
    };
    let mut var = VarRef {
        segs: vec![Seg::Key(root.to_owned())],
        root,
        dynamic: false,
        nested: Vec::new(),
        offset: tokens.get(start).map_or(0, |t| t.offset),
    };
    let mut j = start + 1;
    let tok = |k: usize| tokens.get(k).map(|t| &t.tok);
    loop {
        match (tok(j), tok(j + 1), tok(j + 2)) {
            (Some(Tok::Dot), Some(Tok::Ident(key)), _) => {
                if !var.dynamic {
                    var.segs.push(Seg::Key((*key).to_owned()));
                }
                j += 2;
            }
            (Some(Tok::LBracket), Some(Tok::Str(key)), Some(Tok::RBracket)) => {
                if !var.dynamic {
                    var.segs.push(Seg::Key((*key).to_owned()));
                }
                j += 3;
            }
            (Some(Tok::LBracket), Some(Tok::Int(index)), Some(Tok::RBracket)) => {
                match index.parse::<i64>() {
                    Ok(index) if !var.dynamic => var.segs.push(Seg::Index(index)),
                    _ => var.dynamic = true,
                }
                j += 3;
            }
            (Some(Tok::LBracket), Some(Tok::Ident(word)), _)
                if !is_literal_word(word) && depth < MAX_BRACKET_DEPTH =>
            {
                let (inner, next) = parse_var(tokens, j + 1, depth + 1);
                var.nested.push(inner);
                var.dynamic = true;
                j = next;
                if tok(j) == Some(&Tok::RBracket) {
                    j += 1;
                } else {
                    break;
                }
            }
            (Some(Tok::LBracket), _, _) => {
                // Some other index (a float, a literal word): computed by Liquid at render.
                var.dynamic = true;
                let close = tokens[j..]
                    .iter()
                    .position(|t| t.tok == Tok::RBracket)
                    .map_or(tokens.len(), |p| j + p + 1);
                j = close;
            }
            _ => break,
        }
    }
    (var, j)
}

// ---------------------------------------------------------------------------------------------
// Analysis: referenced paths, nil fills, range checks and budget probes

/// Where a variable's value comes from.
enum Origin {
    /// The render globals, at this path.
    Global(Vec<Seg>),
    /// Items of global data, through a loop variable (the path contains `Each`).
    LoopItem(Vec<Seg>),
    /// The template's own values (`assign`, `capture`, counters, ranges, `forloop`).
    Local,
}

struct Analysis {
    referenced: Vec<Vec<String>>,
    fills: Vec<Vec<Seg>>,
    range_checks: Vec<RangeCheck>,
    insertions: Vec<(usize, String)>,
}

struct Analyzer<'s> {
    source: &'s str,
    /// Names assigned or captured anywhere: their global value may be replaced mid-render.
    ever_assigned: HashSet<&'s str>,
    /// Names used by `increment` / `decrement`, which live beside the globals.
    counters: HashSet<&'s str>,
    /// Open loops: variable name and, when it walks global data, the path of that data.
    loops: Vec<(&'s str, Option<Vec<Seg>>)>,
    assigned: HashSet<&'s str>,
    captures: Vec<&'s str>,
    referenced: Vec<Vec<String>>,
    referenced_seen: HashSet<Vec<String>>,
    fills: Vec<Vec<Seg>>,
    fills_seen: HashSet<Vec<Seg>>,
    range_checks: Vec<RangeCheck>,
    insertions: Vec<(usize, String)>,
}

impl<'s> Analyzer<'s> {
    fn run(source: &'s str, lexed: &Lexed<'s>) -> Result<Analysis, TemplateError> {
        let regions = executable_regions(lexed);
        let mut analyzer = Analyzer {
            source,
            ever_assigned: HashSet::new(),
            counters: HashSet::new(),
            loops: Vec::new(),
            assigned: HashSet::new(),
            captures: Vec::new(),
            referenced: Vec::new(),
            referenced_seen: HashSet::new(),
            fills: Vec::new(),
            fills_seen: HashSet::new(),
            range_checks: Vec::new(),
            insertions: Vec::new(),
        };
        for region in &regions {
            let (arguments, _) = region.arguments();
            let target = || match tokenize(arguments).first().map(|t| t.tok.clone()) {
                Some(Tok::Ident(name)) => Some(name),
                _ => None,
            };
            match region.tag_name() {
                Some("assign" | "capture") => analyzer.ever_assigned.extend(target()),
                Some("increment" | "decrement") => analyzer.counters.extend(target()),
                _ => {}
            }
        }
        for region in regions {
            analyzer.region(region)?;
        }
        Ok(Analysis {
            referenced: analyzer.referenced,
            fills: analyzer.fills,
            range_checks: analyzer.range_checks,
            insertions: analyzer.insertions,
        })
    }

    fn region(&mut self, region: &Region<'s>) -> Result<(), TemplateError> {
        let (arguments, offset) = region.arguments();
        let tokens = tokenize(arguments);
        let Some(name) = region.tag_name() else {
            return self.scan(&tokens, 0, offset, false);
        };
        match name {
            "include" | "render" => Err(TemplateError::at(
                self.source,
                region.name_offset(),
                format!("`{name}` is not supported: message templates cannot include other files"),
            )),
            "tablerow" => Err(TemplateError::at(
                self.source,
                region.name_offset(),
                "`tablerow` is not supported; use `for`",
            )),
            "for" => self.for_tag(region, &tokens, offset),
            "endfor" => {
                self.loops.pop();
                Ok(())
            }
            "assign" => {
                let target = match tokens.first().map(|t| &t.tok) {
                    Some(Tok::Ident(target)) => Some(*target),
                    _ => None,
                };
                // The value is read before the name is bound.
                self.scan(&tokens, 1, offset, false)?;
                if let Some(target) = target {
                    self.assigned.insert(target);
                    self.guard_size(region, target);
                }
                Ok(())
            }
            "capture" => {
                if let Some(Tok::Ident(target)) = tokens.first().map(|t| &t.tok) {
                    self.captures.push(target);
                }
                Ok(())
            }
            "endcapture" => {
                if let Some(target) = self.captures.pop() {
                    self.assigned.insert(target);
                    self.guard_size(region, target);
                }
                Ok(())
            }
            "increment" | "decrement" => Ok(()),
            _ => self.scan(&tokens, 0, offset, true),
        }
    }

    /// `for VAR in COLLECTION [limit: n] [offset: n] [reversed]`
    fn for_tag(
        &mut self,
        region: &Region<'s>,
        tokens: &[Token<'s>],
        offset: usize,
    ) -> Result<(), TemplateError> {
        let var_name = match (
            tokens.first().map(|t| &t.tok),
            tokens.get(1).map(|t| &t.tok),
        ) {
            (Some(Tok::Ident(name)), Some(Tok::Ident("in"))) => Some(*name),
            _ => None,
        };
        let mut item_source = None;
        let mut rest = 0;
        if var_name.is_some() {
            let collection = 2;
            rest = match tokens.get(collection).map(|t| &t.tok) {
                Some(Tok::LParen) => self.range(region, tokens, collection, offset)?,
                Some(Tok::Ident(word)) if !is_literal_word(word) => {
                    let (var, next) = parse_var(tokens, collection, 0);
                    let origin = self.record(&var, offset)?;
                    if !var.dynamic {
                        item_source = match origin {
                            Origin::Global(path) | Origin::LoopItem(path) => Some(path),
                            Origin::Local => None,
                        };
                    }
                    next
                }
                _ => collection,
            };
        }
        self.scan(tokens, rest, offset, true)?;
        self.loops.push((var_name.unwrap_or(""), item_source));
        self.insertions.push((
            region.insertion_point(self.source),
            format!("{{{{ {TICK} }}}}"),
        ));
        Ok(())
    }

    /// `(start..stop)` at `tokens[open]`; returns the index after `)`.
    fn range(
        &mut self,
        region: &Region<'s>,
        tokens: &[Token<'s>],
        open: usize,
        offset: usize,
    ) -> Result<usize, TemplateError> {
        let (start, next) = self.bound(tokens, open + 1, offset)?;
        if tokens.get(next).map(|t| &t.tok) != Some(&Tok::DotDot) {
            return Ok(next);
        }
        let (stop, next) = self.bound(tokens, next + 1, offset)?;
        let next = match tokens.get(next).map(|t| &t.tok) {
            Some(Tok::RParen) => next + 1,
            _ => next,
        };
        match (&start, &stop) {
            (Bound::Literal(low), Bound::Literal(high)) => {
                check_range_size(*low, *high, self.source, region.inner_start)?;
            }
            (Bound::Invalid, _) | (_, Bound::Invalid) => {}
            _ => self.range_checks.push(RangeCheck {
                start,
                stop,
                offset: region.inner_start,
            }),
        }
        Ok(next)
    }

    fn bound(
        &mut self,
        tokens: &[Token<'s>],
        at: usize,
        offset: usize,
    ) -> Result<(Bound, usize), TemplateError> {
        let Some(token) = tokens.get(at) else {
            return Ok((Bound::Invalid, at));
        };
        match &token.tok {
            Tok::Int(text) | Tok::Str(text) => {
                let bound = text
                    .trim()
                    .parse::<i64>()
                    .map_or(Bound::Invalid, Bound::Literal);
                Ok((bound, at + 1))
            }
            Tok::Ident(word) if !is_literal_word(word) => {
                let (var, next) = parse_var(tokens, at, 0);
                let origin = self.record(&var, offset)?;
                let path = match origin {
                    Origin::Global(path) | Origin::LoopItem(path)
                        if !var.dynamic && !self.may_be_reassigned(&path) =>
                    {
                        path
                    }
                    _ => {
                        return Err(TemplateError::at(
                            self.source,
                            offset + token.offset,
                            "range bounds must be whole numbers or event data, not values the \
                             template computes",
                        ))
                    }
                };
                Ok((Bound::Path(path), next))
            }
            _ => Ok((Bound::Invalid, at + 1)),
        }
    }

    fn may_be_reassigned(&self, path: &[Seg]) -> bool {
        match path.first() {
            Some(Seg::Key(root)) => self.ever_assigned.contains(root.as_str()),
            _ => true,
        }
    }

    /// Records the variables in `tokens[from..]`, skipping filter names, keyword-argument
    /// names, literals and (in tags) operator words.
    fn scan(
        &mut self,
        tokens: &[Token<'s>],
        from: usize,
        offset: usize,
        in_tag: bool,
    ) -> Result<(), TemplateError> {
        let mut i = from;
        while let Some(token) = tokens.get(i) {
            match &token.tok {
                Tok::Pipe => {
                    i += 1;
                    if matches!(tokens.get(i).map(|t| &t.tok), Some(Tok::Ident(_))) {
                        i += 1;
                    }
                }
                Tok::Ident(word) => {
                    let named_argument = tokens.get(i + 1).map(|t| &t.tok) == Some(&Tok::Colon);
                    if named_argument || is_literal_word(word) || (in_tag && is_tag_keyword(word)) {
                        i += 1;
                    } else {
                        let (var, next) = parse_var(tokens, i, 0);
                        self.record(&var, offset)?;
                        i = next;
                    }
                }
                _ => i += 1,
            }
        }
        Ok(())
    }

    /// Notes a variable the template reads (and the variables in its indexes).
    fn record(&mut self, var: &VarRef<'s>, offset: usize) -> Result<Origin, TemplateError> {
        if var.segs.len() > MAX_PATH_SEGMENTS {
            return Err(TemplateError::at(
                self.source,
                offset + var.offset,
                format!("variable path has more than {MAX_PATH_SEGMENTS} parts"),
            ));
        }
        let origin = self.origin(var);
        match &origin {
            Origin::Global(path) => {
                let shown: Vec<String> = path.iter().filter_map(seg_key).collect();
                if self.referenced_seen.insert(shown.clone()) {
                    self.referenced.push(shown);
                }
                self.add_fill(path.clone());
            }
            Origin::LoopItem(path) => self.add_fill(path.clone()),
            Origin::Local => {}
        }
        for nested in &var.nested {
            self.record(nested, offset)?;
        }
        Ok(origin)
    }

    fn add_fill(&mut self, path: Vec<Seg>) {
        if self.fills_seen.insert(path.clone()) {
            self.fills.push(path);
        }
    }

    fn origin(&self, var: &VarRef<'s>) -> Origin {
        if var.root == "forloop" || var.root.is_empty() {
            return Origin::Local;
        }
        if let Some((_, source)) = self.loops.iter().rev().find(|(name, _)| *name == var.root) {
            return match source {
                Some(base) => {
                    let mut path = base.clone();
                    path.push(Seg::Each);
                    path.extend(var.segs.iter().skip(1).cloned());
                    Origin::LoopItem(path)
                }
                None => Origin::Local,
            };
        }
        if self.assigned.contains(var.root) || self.counters.contains(var.root) {
            return Origin::Local;
        }
        Origin::Global(var.segs.clone())
    }

    /// Fails the render when `name` has grown past the size cap.
    fn guard_size(&mut self, region: &Region<'s>, name: &str) {
        self.insertions.push((
            region.insertion_point(self.source),
            format!(
                "{{% assign {SIZE} = {name} | size %}}\
                 {{% if {SIZE} > {MAX_OUTPUT_BYTES} %}}{{{{ {TOO_LARGE} }}}}{{% endif %}}"
            ),
        ));
    }
}

/// The source with the probes inserted (offsets ascending).
fn instrument(source: &str, insertions: &[(usize, String)]) -> String {
    let extra: usize = insertions.iter().map(|(_, text)| text.len()).sum();
    let mut out = String::with_capacity(source.len() + extra);
    let mut copied = 0;
    for (offset, text) in insertions {
        let offset = (*offset).clamp(copied, source.len());
        out.push_str(&source[copied..offset]);
        out.push_str(text);
        copied = offset;
    }
    out.push_str(&source[copied..]);
    out
}

// ---------------------------------------------------------------------------------------------
// HTML to text

/// Turns simple HTML into readable plain text: tags are dropped; `<br>`, `</p>`, `</li>` and
/// `</h1>`..`</h6>` end lines; `<li>` starts a "- " item; `&amp; &lt; &gt; &quot; &#39;
/// &nbsp;` (and numeric references) are decoded; `<script>`, `<style>` and comments vanish;
/// whitespace runs collapse as a browser would; at most one blank line is kept in a row.
pub fn html_to_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        push_collapsed(&mut text, &rest[..lt]);
        rest = &rest[lt..];
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |end| &after[end + 3..]);
            continue;
        }
        let tag = match parse_html_tag(rest) {
            TagScan::Tag(tag) => tag,
            TagScan::Text => {
                push_collapsed(&mut text, "<");
                rest = &rest[1..];
                continue;
            }
            // No `>` anywhere after: the rest cannot hold a tag.
            TagScan::Unclosed => break,
        };
        rest = &rest[tag.len..];
        match (tag.closing, tag.name.as_str()) {
            (false, "script" | "style") => {
                let closer = format!("</{}", tag.name);
                rest = find_ascii_case_insensitive(rest, &closer).map_or("", |at| &rest[at..]);
            }
            (_, "br") => text.push('\n'),
            (true, "p" | "li" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6") => text.push('\n'),
            (false, "li") => {
                if !text.is_empty() && !text.ends_with('\n') {
                    text.push('\n');
                }
                text.push_str("- ");
            }
            _ => {}
        }
    }
    push_collapsed(&mut text, rest);
    tidy_lines(&text)
}

struct HtmlTag {
    name: String,
    closing: bool,
    /// Bytes up to and including `>`.
    len: usize,
}

enum TagScan {
    Tag(HtmlTag),
    /// The `<` is text.
    Text,
    /// The `<` starts a tag that no `>` closes.
    Unclosed,
}

/// Reads a tag at the start of `text` (which begins with `<`).
fn parse_html_tag(text: &str) -> TagScan {
    let bytes = text.as_bytes();
    let mut i = 1;
    let closing = bytes.get(i) == Some(&b'/');
    if closing {
        i += 1;
    }
    let Some(&first) = bytes.get(i) else {
        return TagScan::Text;
    };
    if !(first.is_ascii_alphabetic() || (!closing && matches!(first, b'!' | b'?'))) {
        return TagScan::Text;
    }
    let name_start = i;
    while bytes.get(i).is_some_and(|b| b.is_ascii_alphanumeric()) {
        i += 1;
    }
    let name = text[name_start..i].to_ascii_lowercase();
    // Attributes may quote a `>`; with an unbalanced quote the first `>` ends the tag.
    let mut quote = None;
    let mut first_close = None;
    let mut end = None;
    while let Some(&b) = bytes.get(i) {
        if b == b'>' && first_close.is_none() {
            first_close = Some(i);
        }
        match (quote, b) {
            (Some(q), _) if b == q => quote = None,
            (None, b'"' | b'\'') => quote = Some(b),
            (None, b'>') => {
                end = Some(i);
                break;
            }
            _ => {}
        }
        i += 1;
    }
    match end.or(first_close) {
        Some(close) => TagScan::Tag(HtmlTag {
            name,
            closing,
            len: close + 1,
        }),
        None => TagScan::Unclosed,
    }
}

fn find_ascii_case_insensitive(haystack: &str, needle: &str) -> Option<usize> {
    let needle = needle.as_bytes();
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|window| window.eq_ignore_ascii_case(needle))
}

/// Appends decoded text with whitespace runs (source newlines included) as single spaces.
fn push_collapsed(out: &mut String, raw: &str) {
    let mut pending_space = false;
    for c in decode_entities(raw).chars() {
        if c.is_whitespace() && c != '\u{a0}' {
            pending_space = true;
            continue;
        }
        if pending_space && !out.is_empty() && !out.ends_with([' ', '\n']) {
            out.push(' ');
        }
        pending_space = false;
        out.push(if c == '\u{a0}' { ' ' } else { c });
    }
    if pending_space && !out.is_empty() && !out.ends_with([' ', '\n']) {
        out.push(' ');
    }
}

fn decode_entities(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest
            .get(1..)
            .and_then(|after| {
                // Entity names are short; looking further would make this quadratic.
                let end = after.bytes().take(12).position(|b| b == b';')?;
                Some((after, end))
            })
            .and_then(|(after, end)| decode_entity(&after[..end]).map(|c| (c, end + 2)));
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn decode_entity(name: &str) -> Option<char> {
    let numeric = |digits: &str, radix: u32| u32::from_str_radix(digits, radix).ok();
    let code = match name {
        "amp" => return Some('&'),
        "lt" => return Some('<'),
        "gt" => return Some('>'),
        "quot" => return Some('"'),
        "apos" => return Some('\''),
        "nbsp" => return Some('\u{a0}'),
        _ => match name.strip_prefix('#') {
            Some(hex) if hex.starts_with(['x', 'X']) => numeric(&hex[1..], 16)?,
            Some(decimal) => numeric(decimal, 10)?,
            None => return None,
        },
    };
    char::from_u32(code).filter(|c| *c != '\0')
}

/// Trims each line and keeps at most one blank line in a row, none at either end.
fn tidy_lines(text: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() && out.last().is_none_or(|last| last.is_empty()) {
            continue;
        }
        out.push(line);
    }
    while out.last().is_some_and(|last| last.is_empty()) {
        out.pop();
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Map};

    fn globals(value: serde_json::Value) -> Map<String, serde_json::Value> {
        match value {
            serde_json::Value::Object(map) => map,
            other => panic!("globals must be an object, got {other}"),
        }
    }

    fn render(source: &str, data: serde_json::Value) -> String {
        Template::compile(source)
            .unwrap_or_else(|e| panic!("compile {source:?}: {e}"))
            .render(&globals(data))
            .unwrap_or_else(|e| panic!("render {source:?}: {e}"))
    }

    fn render_err(source: &str, data: serde_json::Value) -> TemplateError {
        match Template::compile(source)
            .unwrap_or_else(|e| panic!("compile {source:?}: {e}"))
            .render(&globals(data))
        {
            Ok(out) => panic!("expected a render error for {source:?}, got {out:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn the_wall_clock_is_refused() {
        let e = compile_err("Sent {{ 'now' | date: '%Y' }}");
        assert_eq!((e.line, e.column), (1, 9));
        assert!(e.message.contains("wall clock"), "{}", e.message);
        assert!(
            Template::compile("{{ event.timestamp | date: '%Y' }} is fine, and so is now").is_ok()
        );
    }

    fn compile_err(source: &str) -> TemplateError {
        match Template::compile(source) {
            Ok(t) => panic!("expected a compile error for {source:?}, got {t:?}"),
            Err(e) => e,
        }
    }

    fn paths(source: &str) -> Vec<Vec<String>> {
        Template::compile(source)
            .unwrap_or_else(|e| panic!("compile {source:?}: {e}"))
            .referenced_paths()
            .to_vec()
    }

    fn p(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|s| (*s).to_owned()).collect()
    }

    /// Renders with the liquid crate directly, for comparing whitespace handling.
    fn plain_liquid(source: &str, data: serde_json::Value) -> String {
        let template = liquid::ParserBuilder::with_stdlib()
            .build()
            .unwrap()
            .parse(source)
            .unwrap();
        let object = match to_liquid(&data, 0) {
            Value::Object(object) => object,
            other => panic!("not an object: {other:?}"),
        };
        template.render(&object).unwrap()
    }

    // --- rendering ---

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
    fn quoted_and_dynamic_indexes_work() {
        let data = json!({"data": {"first name": "Ann", "items": [{"name": "a"}, {"name": "b"}]}, "traits": {"idx": 1}});
        assert_eq!(render("{{ data[\"first name\"] }}", data.clone()), "Ann");
        assert_eq!(
            render("{{ data.items[traits.idx].name }}", data.clone()),
            "b"
        );
        assert_eq!(
            render(
                "{% for i in (0..1) %}{{ data.items[i].name }}{% endfor %}",
                data
            ),
            "ab"
        );
    }

    #[test]
    fn assign_capture_and_counters_work() {
        let source = "{% assign name = traits.first_name | upcase %}{% capture greeting %}Hi {{ name }}{% endcapture %}{{ greeting }}!";
        assert_eq!(
            render(source, json!({"traits": {"first_name": "ann"}})),
            "Hi ANN!"
        );
        assert_eq!(render(source, json!({})), "Hi !");
        assert_eq!(paths(source), vec![p(&["traits", "first_name"])]);

        let counters = "{% increment n %}{% increment n %}{% decrement m %}";
        assert_eq!(
            render(counters, json!({})),
            plain_liquid(counters, json!({}))
        );
        assert!(paths(counters).is_empty());
        assert_eq!(render("{% assign x = nil %}[{{ x }}]", json!({})), "[]");
    }

    #[test]
    fn raw_and_comment_blocks_are_left_alone() {
        let source = "{% raw %}{{ not.a.var }} {% for %}{% endraw %}{% comment %}{{ secret.x }}{% if y %}{% endif %}{% endcomment %}ok";
        assert_eq!(render(source, json!({})), "{{ not.a.var }} {% for %}ok");
        assert!(paths(source).is_empty());
    }

    #[test]
    fn guards_do_not_change_whitespace_handling() {
        let data = json!({"data": {"items": [1, 2]}, "other": {"items": []}});
        for source in [
            "{%- for i in data.items -%}\n  [{{ i }}]\n{%- endfor -%}\nend",
            "{% for i in data.items -%}\n  [{{ i }}]\n  {%- endfor %}\nend",
            "{% for i in data.items -%}\t{{ i }}{% endfor %}",
            "{% for i in data.items -%}\r\n {{ i }} {%- endfor %}",
            "{%for i in data.items%}{{i}}{%endfor%}",
            "{% for i in other.items -%}  x {% else -%}   none  {%- endfor %}",
            "{% for i in data.items %}\n{% if forloop.first %}first {% endif %}{{ i }}{% endfor %}",
            "a\n{%- assign x = 1 -%}\n   b {{ x }}\n{% capture y -%}  c  {%- endcapture -%}  \n d{{ y }}",
            "{% assign x = 1 %}  {%- assign y = 2 -%}  {{ x }}{{ y }}",
            "{% capture c %}{% for i in data.items %}{{ i }}{% endfor %}{% endcapture %}[{{ c }}]",
        ] {
            assert_eq!(
                render(source, data.clone()),
                plain_liquid(source, data.clone()),
                "{source:?}"
            );
        }
    }

    #[test]
    fn size_guard_accepts_odd_sizes() {
        let data = json!({"traits": {"size": "big", "n": 5}});
        assert_eq!(
            render("{% assign t = traits %}{{ t.size }}|{% assign n = traits.n %}{{ n }}|{% assign m = traits.missing %}{{ m }}|{% assign b = true %}{{ b }}", data),
            "big|5||true"
        );
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

    // --- referenced paths ---

    #[test]
    fn referenced_paths_are_deduplicated_in_order_of_appearance() {
        let source = "Hi {{ traits.first_name }}, step {{ properties.step }}{% for i in data.items %}{{ i.name }}{% endfor %} {{ traits.first_name }}";
        assert_eq!(
            paths(source),
            vec![
                p(&["traits", "first_name"]),
                p(&["properties", "step"]),
                p(&["data", "items"])
            ]
        );
    }

    #[test]
    fn referenced_paths_include_filter_arguments_but_not_filter_names() {
        assert_eq!(
            paths("{{ traits.name | default: properties.fallback | append: context.x | upcase }}"),
            vec![
                p(&["traits", "name"]),
                p(&["properties", "fallback"]),
                p(&["context", "x"])
            ]
        );
        assert_eq!(
            paths("{{ \"}}\" | append: traits.x }}{{ 'a' | replace: \"a\", traits.y }}"),
            vec![p(&["traits", "x"]), p(&["traits", "y"])]
        );
    }

    #[test]
    fn referenced_paths_include_tag_expressions() {
        let source = concat!(
            "{% if traits.plan == \"pro\" and properties.count > 3 or traits.tags contains 'x' %}",
            "{% elsif context.a != empty %}{% else %}{% endif %}",
            "{% unless traits.off %}{% endunless %}",
            "{% case traits.tier %}{% when properties.gold, \"silver\" or 'b' %}{% endcase %}",
            "{% cycle traits.c1, \"b\" %}",
            "{% for i in data.items limit: properties.n offset: 2 reversed %}{% endfor %}",
            "{% for n in (1..properties.count) %}{% endfor %}",
            "{% for n in (properties.from..5) %}{% endfor %}",
        );
        assert_eq!(
            paths(source),
            vec![
                p(&["traits", "plan"]),
                p(&["properties", "count"]),
                p(&["traits", "tags"]),
                p(&["context", "a"]),
                p(&["traits", "off"]),
                p(&["traits", "tier"]),
                p(&["properties", "gold"]),
                p(&["traits", "c1"]),
                p(&["data", "items"]),
                p(&["properties", "n"]),
                p(&["properties", "from"]),
            ]
        );
    }

    #[test]
    fn referenced_paths_skip_template_variables() {
        assert_eq!(
            paths("{% for item in data.items %}{{ item.name }}{{ forloop.index }}{% endfor %}{{ item.name }}"),
            vec![p(&["data", "items"]), p(&["item", "name"])]
        );
        // Read before it is assigned: a global at that point.
        assert_eq!(
            paths("{{ x }}{% assign x = 1 %}{{ x }}{% capture y %}{{ y }}{% endcapture %}{{ y }}"),
            vec![p(&["x"]), p(&["y"])]
        );
        assert!(paths("{{ true }}{{ nil }}{{ \"traits.x\" }}{{ 1 | plus: 2.5 }}").is_empty());
    }

    #[test]
    fn referenced_paths_keep_literal_indexes_and_stop_at_computed_ones() {
        assert_eq!(
            paths("{{ data[\"first name\"] }}{{ data.items[0].name }}{{ traits.first-name }}"),
            vec![
                p(&["data", "first name"]),
                p(&["data", "items", "0", "name"]),
                p(&["traits", "first-name"])
            ]
        );
        assert_eq!(
            paths("{{ data.items[traits.idx].name }}"),
            vec![p(&["data", "items"]), p(&["traits", "idx"])]
        );
    }

    // --- errors ---

    #[test]
    fn parse_errors_carry_positions() {
        let e = compile_err("Hello\n  {% foo %}");
        assert_eq!((e.line, e.column), (2, 6), "{e}");
        assert!(e.message.contains("Unknown tag"), "{e}");
        assert!(e.message.contains("foo"), "{e}");
        assert!(!e.message.contains("available"), "{e}");

        let e = compile_err("Hi\n{{ traits.x | nosuch }}");
        assert_eq!((e.line, e.column), (2, 15), "{e}");
        assert!(e.message.contains("nosuch"), "{e}");

        let e = compile_err("line1\n{% if x %}abc");
        assert_eq!(e.line, 2, "{e}");

        let e = compile_err("{{ x ");
        assert_eq!((e.line, e.column), (1, 4), "{e}");
        assert_eq!(e.to_string(), format!("1:4: {}", e.message));
    }

    #[test]
    fn unsupported_tags_are_refused_with_positions() {
        for (source, column) in [
            ("ab {% include 'x' %}", 7),
            ("{% render 'x' %}", 4),
            (
                "{% tablerow i in (1..3) cols: 0 %}{{ i }}{% endtablerow %}",
                4,
            ),
        ] {
            let e = compile_err(source);
            assert_eq!((e.line, e.column), (1, column), "{e}");
        }
        // Inside a comment they never run.
        assert_eq!(
            render(
                "{% comment %}{% include 'x' %}{% endcomment %}ok",
                json!({})
            ),
            "ok"
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

    // --- limits ---

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

    #[test]
    fn ranges_over_computed_values_are_refused() {
        compile_err("{% assign n = 1000000000 %}{% for i in (1..n) %}{% endfor %}");
        compile_err("{% for i in (1..forloop.index) %}{% endfor %}");
        compile_err("{% for i in (1..3) %}{% for j in (1..i) %}{% endfor %}{% endfor %}");
        // A global the template may overwrite later is not trusted either.
        compile_err("{% for i in (1..3) %}{% for j in (1..p.n) %}{% endfor %}{% assign p = x %}{% endfor %}");
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

    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        let ifs = format!("{}x{}", "{% if a %}".repeat(500), "{% endif %}".repeat(500));
        assert!(compile_err(&ifs).message.contains("nested"));
        let elsifs = format!("{{% if a %}}{}{{% endif %}}", "{% elsif a %}".repeat(500));
        assert!(compile_err(&elsifs).message.contains("nested"));
        let ors = format!("{{% if a{} %}}x{{% endif %}}", " or a".repeat(500));
        assert!(compile_err(&ors).message.contains("or"));
        let brackets = format!("{{{{ {}{} }}}}", "a[".repeat(5000), "]".repeat(5000));
        assert!(compile_err(&brackets).message.contains("nested"));
        let unterminated = format!("{{{{ {}", "a[".repeat(100_000));
        assert!(compile_err(&unterminated).message.contains("nested"));
        let long_path = format!("{{{{ a{} }}}}", ".b".repeat(100));
        assert!(compile_err(&long_path).message.contains("parts"));
        let huge = "x".repeat(MAX_SOURCE_BYTES + 1);
        assert!(compile_err(&huge).message.contains("bytes"));
        // Reasonable nesting is fine.
        let ok = format!(
            "{}x{}",
            "{% if true %}".repeat(20),
            "{% endif %}".repeat(20)
        );
        assert_eq!(render(&ok, json!({})), "x");
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

    // --- html_to_text ---

    #[test]
    fn html_to_text_drops_tags_and_breaks_lines() {
        assert_eq!(
            html_to_text("<p>Hello <b>Ann</b>,</p><p>Welcome!</p>"),
            "Hello Ann,\nWelcome!"
        );
        assert_eq!(html_to_text("a<br>b<br/>c<BR />d"), "a\nb\nc\nd");
        assert_eq!(
            html_to_text("<h1>Title</h1>\n<h3 class=\"x\">Sub</h3><p>Body</p>"),
            "Title\nSub\nBody"
        );
        assert_eq!(
            html_to_text("<ul>\n  <li>One</li>\n  <li>Two &amp; three</li>\n</ul>"),
            "- One\n- Two & three"
        );
        assert_eq!(html_to_text("Just text."), "Just text.");
        assert_eq!(html_to_text("  Hello\n   world  "), "Hello world");
    }

    #[test]
    fn html_to_text_decodes_entities_once() {
        assert_eq!(
            html_to_text("&lt;b&gt; &quot;q&quot; &#39;s&#39; a&nbsp;b &amp;amp; &#x41;&#66; &bogus; & alone &#0;"),
            "<b> \"q\" 's' a b &amp; AB &bogus; & alone &#0;"
        );
    }

    #[test]
    fn html_to_text_collapses_blank_lines() {
        assert_eq!(
            html_to_text("<p>a</p><br><br><br><br><p>b</p><br><br>"),
            "a\n\nb"
        );
        assert_eq!(html_to_text("<br><br>a"), "a");
    }

    #[test]
    fn html_to_text_skips_scripts_styles_comments_and_keeps_stray_brackets() {
        assert_eq!(
            html_to_text("<style>p{color:red}</style><SCRIPT>if (a<b) x()</script>Hi"),
            "Hi"
        );
        assert_eq!(html_to_text("a<!-- hidden <b> -->b<!-- unterminated"), "ab");
        assert_eq!(html_to_text("<a href=\"x>y\" title='z'>link</a>"), "link");
        assert_eq!(
            html_to_text("1 < 2 and 3 > 2, a <b"),
            "1 < 2 and 3 > 2, a <b"
        );
        assert_eq!(
            html_to_text("<!DOCTYPE html><html><body>é</body></html>"),
            "é"
        );
        assert_eq!(html_to_text("<a title=\"x>y<b>z"), "yz");
        assert_eq!(html_to_text("a <b title=\"x"), "a <b title=\"x");
    }

    #[test]
    fn html_to_text_is_fast_on_hostile_input() {
        for hostile in [
            "<a".repeat(50_000),
            "&".repeat(100_000),
            "<a \"".repeat(30_000),
        ] {
            let started = std::time::Instant::now();
            let _ = html_to_text(&hostile);
            assert!(started.elapsed() < std::time::Duration::from_secs(2));
        }
    }

    // --- robustness ---

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

        #[test]
        fn html_to_text_never_panics(text in ".{0,200}") {
            let _ = html_to_text(&text);
        }
    }
}
