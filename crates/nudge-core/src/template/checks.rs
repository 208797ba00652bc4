//! What a template is refused for before Liquid parses it: nesting deep enough to exhaust the
//! stack in Liquid's recursive parser and renderer, and reading the wall clock.

use super::lexer::Lexed;
use super::tokens::{tokenize, Tok};
use super::{TemplateError, MAX_BLOCK_DEPTH, MAX_BRACKET_DEPTH, MAX_CONDITION_TERMS};

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

/// Refuses nesting deep enough to exhaust the stack in Liquid's recursive parser and renderer.
pub(super) fn check_nesting(source: &str, lexed: &Lexed<'_>) -> Result<(), TemplateError> {
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

/// Refuses `"now"` / `"today"` literals: the wall clock would make replays differ run to run.
pub(super) fn check_no_wall_clock(source: &str, lexed: &Lexed<'_>) -> Result<(), TemplateError> {
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

#[cfg(test)]
mod tests {
    use crate::template::test_support::{compile_err, render};
    use crate::template::{Template, MAX_SOURCE_BYTES};
    use serde_json::json;

    #[test]
    fn the_wall_clock_is_refused() {
        let e = compile_err("Sent {{ 'now' | date: '%Y' }}");
        assert_eq!((e.line, e.column), (1, 9));
        assert!(e.message.contains("wall clock"), "{}", e.message);
        assert!(
            Template::compile("{{ event.timestamp | date: '%Y' }} is fine, and so is now").is_ok()
        );
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
}
