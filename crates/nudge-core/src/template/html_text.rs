//! Plain text from simple HTML: the text part of a mail written only in HTML.

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

/// Decodes the character references `html_to_text` knows (`&amp; &lt; &gt; &quot; &apos;
/// &nbsp;` and numeric ones); anything else stays as written.
pub fn decode_entities(raw: &str) -> String {
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

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 512,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        #[test]
        fn html_to_text_never_panics(text in ".{0,200}") {
            let _ = html_to_text(&text);
        }
    }
}
