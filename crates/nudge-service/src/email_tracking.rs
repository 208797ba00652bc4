//! Engagement tracking in emails (settings `track_email_links`, `track_email_opens`): web
//! links of the HTML and text parts go through signed click links (`/v1/c/<token>`), so a
//! click is recorded as `Email Link Clicked` before the redirect, and the HTML part may carry
//! an open pixel (`/v1/o/<token>.gif`, `Email Opened`).
//!
//! Only `http(s)` links are rewritten: `mailto:`, `tel:`, anchors and relative links stay as
//! written, as does a link marked `data-nudge-track="off"` (the attribute is removed).

use std::cell::Cell;

use lol_html::html_content::ContentType;
use lol_html::{element, rewrite_str, RewriteStrSettings};
use nudge_core::template::decode_entities;

/// Whether a link leads to a web page (the only links a click link may redirect to).
pub fn is_web_link(url: &str) -> bool {
    let lower = |n: usize| url.get(..n).map(str::to_ascii_lowercase);
    lower(8).as_deref() == Some("https://") || lower(7).as_deref() == Some("http://")
}

/// The HTML part with its web links replaced by `link_for(url)` (when `links`) and `pixel`
/// (an `<img>`) appended to the body, or to the end when the HTML has no `<body>`. HTML the
/// rewriter cannot handle is returned unchanged: the mail matters more than its counting.
pub fn track_html(
    html: &str,
    links: bool,
    link_for: &dyn Fn(&str) -> String,
    pixel: Option<&str>,
) -> String {
    let pixel_placed = Cell::new(false);
    let rewritten = rewrite_str(
        html,
        RewriteStrSettings {
            element_content_handlers: vec![
                element!("a[href]", |el| {
                    let opted_out = el
                        .get_attribute("data-nudge-track")
                        .is_some_and(|v| matches!(v.trim(), "off" | "false" | "no"));
                    if opted_out {
                        el.remove_attribute("data-nudge-track");
                        return Ok(());
                    }
                    if !links {
                        return Ok(());
                    }
                    let href = el.get_attribute("href").unwrap_or_default();
                    // The attribute as written may hold `&amp;`; the link signs the URL itself.
                    let url = decode_entities(href.trim());
                    if is_web_link(&url) {
                        el.set_attribute("href", &link_for(&url))?;
                    }
                    Ok(())
                }),
                element!("body", |el| {
                    if let Some(img) = pixel {
                        el.append(img, ContentType::Html);
                        pixel_placed.set(true);
                    }
                    Ok(())
                }),
            ],
            ..RewriteStrSettings::new()
        },
    );
    match rewritten {
        Ok(mut out) => {
            if let (Some(img), false) = (pixel, pixel_placed.get()) {
                out.push_str(img);
            }
            out
        }
        Err(e) => {
            tracing::warn!(error = %e, "email links could not be rewritten; sent as written");
            html.to_string()
        }
    }
}

/// The text part with each web URL replaced by `link_for(url)`. A URL runs to the next
/// whitespace or `<>"`, without the punctuation that ends a sentence after it (`.,;:!?'`, and
/// a closing bracket it does not open).
pub fn track_text(text: &str, link_for: &dyn Fn(&str) -> String) -> String {
    // Lowercased once (ASCII only, so byte offsets are the text's) to find `http` in any case.
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut done = 0;
    let mut from = 0;
    while let Some(found) = lower[from..].find("http") {
        let start = from + found;
        from = start + 4;
        if start < done || !is_web_link(&text[start..]) {
            continue;
        }
        let tail = &text[start..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"'))
            .unwrap_or(tail.len());
        let url = trim_trailing_punctuation(&tail[..end]);
        if url.len() > "https://".len() {
            out.push_str(&text[done..start]);
            out.push_str(&link_for(url));
            done = start + url.len();
            from = done;
        }
    }
    out.push_str(&text[done..]);
    out
}

fn trim_trailing_punctuation(url: &str) -> &str {
    let mut url = url;
    loop {
        let Some(last) = url.chars().last() else {
            return url;
        };
        let unmatched_close = |open: char| url.matches(open).count() < url.matches(last).count();
        let trim = match last {
            '.' | ',' | ';' | ':' | '!' | '?' | '\'' => true,
            ')' => unmatched_close('('),
            ']' => unmatched_close('['),
            '}' => unmatched_close('{'),
            _ => false,
        };
        if !trim {
            return url;
        }
        url = &url[..url.len() - last.len_utf8()];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrap(url: &str) -> String {
        format!("https://t.example/c/{}", url.len())
    }

    #[test]
    fn html_web_links_are_rewritten_with_their_decoded_url() {
        let html = r##"<p><a href="https://app.example.com/a?x=1&amp;y=2">Go</a> <a href='mailto:help@example.com'>mail</a> <a href="#top">top</a> <a href="/rel">rel</a> <a href=HTTP://A.example/>caps</a></p>"##;
        let urls = std::cell::RefCell::new(Vec::new());
        let out = track_html(
            html,
            true,
            &|u| {
                urls.borrow_mut().push(u.to_string());
                format!("https://t.example/c/{}", urls.borrow().len())
            },
            None,
        );
        assert_eq!(
            urls.into_inner(),
            ["https://app.example.com/a?x=1&y=2", "HTTP://A.example/"]
        );
        assert!(
            out.contains(r#"<a href="https://t.example/c/1">Go</a>"#),
            "{out}"
        );
        assert!(out.contains(r#"href='mailto:help@example.com'"#), "{out}");
        assert!(out.contains(r##"href="#top""##) && out.contains(r#"href="/rel""#));
        assert!(out.contains(r#"href="https://t.example/c/2""#), "{out}");
    }

    #[test]
    fn a_link_can_opt_out_and_links_can_stay_untracked() {
        let html = r#"<a href="https://a.example/" data-nudge-track="off">a</a><a href="https://b.example/">b</a>"#;
        let out = track_html(html, true, &wrap, None);
        assert_eq!(
            out,
            r#"<a href="https://a.example/">a</a><a href="https://t.example/c/18">b</a>"#
        );
        let untouched = r#"<a href="https://b.example/">b</a>"#;
        assert_eq!(track_html(untouched, false, &wrap, None), untouched);
    }

    #[test]
    fn the_pixel_goes_at_the_end_of_the_body_or_of_a_fragment() {
        let img = r#"<img src="https://t.example/o/x.gif" alt="">"#;
        let doc = "<html><body><p>Hi</p></body></html>";
        assert_eq!(
            track_html(doc, false, &wrap, Some(img)),
            format!("<html><body><p>Hi</p>{img}</body></html>")
        );
        assert_eq!(
            track_html("<p>Hi</p>", true, &wrap, Some(img)),
            format!("<p>Hi</p>{img}")
        );
    }

    #[test]
    fn text_urls_are_rewritten_without_the_punctuation_after_them() {
        let text = "Finish here: https://app.example.com/setup?step=2. Or (see https://docs.example.com/a_(b)). <https://x.example/y> http://\nhttpx://no";
        let out = track_text(text, &|u| format!("[{u}]"));
        assert_eq!(
            out,
            "Finish here: [https://app.example.com/setup?step=2]. Or (see [https://docs.example.com/a_(b)]). <[https://x.example/y]> http://\nhttpx://no"
        );
        assert_eq!(track_text("no links", &wrap), "no links");
        // Non-ASCII text around a link is kept whole.
        assert_eq!(
            track_text("Grüße: https://ü.example/é!", &|u| format!("[{u}]")),
            "Grüße: [https://ü.example/é]!"
        );
    }
}
