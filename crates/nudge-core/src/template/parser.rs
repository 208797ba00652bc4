//! Liquid's parser, built once and kept from panicking, and its errors turned into one-line
//! [`TemplateError`]s placed where the author wrote the mistake.

use std::panic::{self, AssertUnwindSafe};
use std::sync::OnceLock;

use super::lexer::Lexed;
use super::stdlib;
use super::tokens::{tokenize, Tok};
use super::{TemplateError, MAX_MESSAGE_CHARS};

pub(super) fn parser() -> Result<&'static liquid::Parser, TemplateError> {
    static PARSER: OnceLock<Option<liquid::Parser>> = OnceLock::new();
    PARSER
        .get_or_init(|| stdlib::parser_builder().build().ok())
        .as_ref()
        .ok_or_else(|| TemplateError::general("internal error: the Liquid parser failed to build"))
}

pub(super) enum ParseFailure {
    Liquid(liquid::Error),
    Panic(String),
}

pub(super) fn parse_liquid(
    parser: &liquid::Parser,
    text: &str,
) -> Result<liquid::Template, ParseFailure> {
    match panic::catch_unwind(AssertUnwindSafe(|| parser.parse(text))) {
        Ok(Ok(template)) => Ok(template),
        Ok(Err(error)) => Err(ParseFailure::Liquid(error)),
        Err(payload) => Err(ParseFailure::Panic(panic_message(payload.as_ref()))),
    }
}

pub(super) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let detail = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown cause".to_owned());
    truncate_chars(&format!("the template engine failed: {detail}"))
}

/// Maps a Liquid parse error to a positioned error; Liquid gives positions for syntax errors
/// and the name (but no position) of an unknown filter.
pub(super) fn parse_error(source: &str, lexed: &Lexed<'_>, error: &liquid::Error) -> TemplateError {
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
pub(super) fn describe_liquid_error(text: &str) -> (Option<(usize, usize)>, String) {
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

/// A render error in one line that reads the same for the same template and data.
///
/// Around a failure, Liquid quotes values (a failing filter's input, the value a `case`
/// compared, the keys an object has) in whatever key order its hash maps had in that render,
/// and a quoted value can run over several lines, so that nothing after it can be read. The
/// message keeps what Liquid says of the failure itself, the failing filter, the enclosing tags
/// and a loop's iteration, and stops at the first line it cannot vouch for.
pub(super) fn describe_render_error(text: &str) -> String {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("");
    let first = first.strip_prefix("liquid:").unwrap_or(first).trim();
    // A variable indexed by something other than a scalar: Liquid quotes that value whole.
    if let Some(found) = first.strip_prefix("Expected scalar, found `") {
        return match found.chars().next() {
            Some('{') => "Expected scalar, found an object".to_owned(),
            Some('[') => "Expected scalar, found an array".to_owned(),
            _ => truncate_chars(first),
        };
    }
    let mut message = first.trim_end_matches('.').to_owned();
    let mut details: Vec<String> = Vec::new();
    let mut context = Context::Failure;
    for line in lines {
        let line = line.trim();
        if line == "with:" {
            continue;
        }
        if let Some(trace) = line.strip_prefix("from:") {
            let trace = trace.trim();
            context = if trace == "Filter error" {
                Context::Filter
            } else if trace.starts_with("{%") {
                details.push(format!("in {trace}"));
                if trace.starts_with("{% for ") {
                    Context::Loop
                } else {
                    Context::Tag
                }
            } else {
                break;
            };
            continue;
        }
        let vouched = match context {
            // What the failing code said (filters see sorted values); not the keys it lists.
            Context::Failure => line.contains('=') && !line.starts_with("available"),
            // The filter as written, and its input unless that has items or entries.
            Context::Filter => {
                line.starts_with("filter=")
                    || line
                        .strip_prefix("input=")
                        .is_some_and(|input| !input.starts_with(['{', '[']))
            }
            Context::Loop => line
                .strip_prefix("index=")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
            Context::Tag => false,
        };
        if !vouched {
            break;
        }
        details.push(line.to_owned());
    }
    if !details.is_empty() {
        message = format!("{message} ({})", details.join("; "));
    }
    truncate_chars(&message)
}

/// Whose context lines `describe_render_error` is reading.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    Failure,
    Filter,
    Loop,
    Tag,
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

#[cfg(test)]
mod tests {
    use super::describe_render_error;
    use crate::template::test_support::compile_err;

    #[test]
    fn render_errors_stop_at_what_liquid_quotes() {
        // A failing filter: its own words, the filter, and its input when that is a scalar.
        let text =
            "liquid: Invalid argument\n  with:\n    argument=operand\n    cause=Can't divide \
                    by zero\nfrom: Filter error\n  with:\n    filter=divided_by : 0\n    input=1\n\
                    from: {% for i in (1..3) %}\n  with:\n    index=2\n";
        assert_eq!(
            describe_render_error(text),
            "Invalid argument (argument=operand; cause=Can't divide by zero; filter=divided_by : 0; \
             input=1; in {% for i in (1..3) %}; index=2)"
        );
        // An object's text can run over lines that look like anything: nothing after it counts.
        let text =
            "liquid: Invalid input\n  with:\n    cause=Number expected\nfrom: Filter error\n\
                    \x20 with:\n    filter=plus : 1\n    input={\"a\": x\nfrom: {% for y in z %}\n\
                    \x20   index=1, }\n";
        assert_eq!(
            describe_render_error(text),
            "Invalid input (cause=Number expected; filter=plus : 1)"
        );
        let text = "liquid: Unknown index\n  with:\n    variable=t\n    requested index=x\n    \
                    available indexes=b\nk=v, a\n";
        assert_eq!(
            describe_render_error(text),
            "Unknown index (variable=t; requested index=x)"
        );
        // The value a `case` compared, keyed by its own text.
        let text = "liquid: Invalid input\nfrom: {% case index %}\n  with:\n    index=ab\n";
        assert_eq!(
            describe_render_error(text),
            "Invalid input (in {% case index %})"
        );
        let text = "liquid: Expected scalar, found `{\"a\": 1\n, }`\n";
        assert_eq!(
            describe_render_error(text),
            "Expected scalar, found an object"
        );
        let text = "liquid: Expected scalar, found `[{\"a\": 1, }, ]`\n";
        assert_eq!(
            describe_render_error(text),
            "Expected scalar, found an array"
        );
        let text = "liquid: Expected scalar, found `nil`\n";
        assert_eq!(describe_render_error(text), "Expected scalar, found `nil`");
    }

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
}
