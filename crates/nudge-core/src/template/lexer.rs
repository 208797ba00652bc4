//! The lexer: the `{{ ... }}` and `{% ... %}` regions of a template text, found as Liquid's
//! grammar finds them, and which of them Liquid executes.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RegionKind {
    Output,
    Tag,
}

/// One `{{ ... }}` or `{% ... %}` in the source.
#[derive(Debug, Clone)]
pub(super) struct Region<'s> {
    kind: RegionKind,
    /// Offset of the opening brace.
    pub(super) start: usize,
    /// Offset just past the closing delimiter.
    end: usize,
    /// Text between the delimiters and their whitespace-control hyphens.
    inner: &'s str,
    pub(super) inner_start: usize,
    /// Closed by `-}}` / `-%}`, which also swallows the whitespace that follows.
    trim_right: bool,
}

impl<'s> Region<'s> {
    pub(super) fn tag_name(&self) -> Option<&'s str> {
        if self.kind != RegionKind::Tag {
            return None;
        }
        let trimmed = self.inner.trim_start();
        let len = trimmed.bytes().take_while(|b| is_ident_byte(*b)).count();
        Some(&trimmed[..len])
    }

    /// Source offset of the tag name.
    pub(super) fn name_offset(&self) -> usize {
        self.inner_start + (self.inner.len() - self.inner.trim_start().len())
    }

    /// The text after the tag name (the whole inner text for outputs) and its source offset.
    pub(super) fn arguments(&self) -> (&'s str, usize) {
        let skip = match self.tag_name() {
            Some(name) => self.inner.len() - self.inner.trim_start().len() + name.len(),
            None => 0,
        };
        (&self.inner[skip..], self.inner_start + skip)
    }

    /// Offset just past the last non-blank character between the delimiters: where a filter
    /// appended to an output's filter chain goes.
    pub(super) fn expression_end(&self) -> usize {
        self.inner_start + self.inner.trim_end().len()
    }

    /// Where text inserted after this region keeps the original whitespace handling.
    pub(super) fn insertion_point(&self, source: &str) -> usize {
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

pub(super) struct Lexed<'s> {
    pub(super) regions: Vec<Region<'s>>,
    /// Deepest `[` nesting seen in any attempted region, and where.
    pub(super) deepest_brackets: (usize, usize),
}

pub(super) fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

pub(super) fn lex(source: &str) -> Lexed<'_> {
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

/// The regions Liquid executes: everything outside `raw` and `comment` bodies, without the
/// `raw` / `comment` tags themselves.
pub(super) fn executable_regions<'a, 's>(lexed: &'a Lexed<'s>) -> Vec<&'a Region<'s>> {
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

#[cfg(test)]
mod tests {
    use crate::template::test_support::{paths, render};
    use serde_json::json;

    #[test]
    fn raw_and_comment_blocks_are_left_alone() {
        let source = "{% raw %}{{ not.a.var }} {% for %}{% endraw %}{% comment %}{{ secret.x }}{% if y %}{% endif %}{% endcomment %}ok";
        assert_eq!(render(source, json!({})), "{{ not.a.var }} {% for %}ok");
        assert!(paths(source).is_empty());
    }
}
