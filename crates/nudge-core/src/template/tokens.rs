//! Tokens inside one region, and the variable expressions (`a.b[0][c.d]`) read from them.

use super::data::Seg;
use super::lexer::is_ident_byte;
use super::MAX_BRACKET_DEPTH;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok<'s> {
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
pub(super) struct Token<'s> {
    pub(super) tok: Tok<'s>,
    /// Byte offset in the tokenized text.
    pub(super) offset: usize,
}

pub(super) fn tokenize(text: &str) -> Vec<Token<'_>> {
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
pub(super) fn is_literal_word(word: &str) -> bool {
    matches!(word, "true" | "false" | "nil" | "null" | "empty" | "blank")
}

/// Operator words inside tags.
pub(super) fn is_tag_keyword(word: &str) -> bool {
    matches!(word, "and" | "or" | "contains" | "reversed")
}

/// A variable expression: `root(.key | [literal] | [variable])*`.
#[derive(Debug, Clone)]
pub(super) struct VarRef<'s> {
    /// The path up to the first index computed at render time; starts with the root name.
    pub(super) segs: Vec<Seg>,
    pub(super) root: &'s str,
    /// The path continues past an index computed at render time.
    pub(super) dynamic: bool,
    /// Variables used as indexes inside this one.
    pub(super) nested: Vec<VarRef<'s>>,
    /// Offset of the root in the tokenized text.
    pub(super) offset: usize,
}

/// Parses the variable starting at `tokens[start]` (an identifier); returns it and the index
/// of the first token after it.
pub(super) fn parse_var<'s>(
    tokens: &[Token<'s>],
    start: usize,
    depth: usize,
) -> (VarRef<'s>, usize) {
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

#[cfg(test)]
mod tests {
    use crate::template::test_support::render;
    use serde_json::json;

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
}
