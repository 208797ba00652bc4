//! The `messages` section: a message's channel, its content and its content variants.

use super::conditions::parse_cond;
use super::values::channel_of;
use crate::rules::model::{Channel, Content, ContentVariant, MessageDef, Sp};
use crate::rules::yaml::{to_json, Diagnostics, Reader};
use marked_yaml::types::MarkedMappingNode;
use marked_yaml::Node;

pub(super) fn parse_message(
    r: Reader,
    id: Sp<String>,
    n: &Node,
    d: &mut Diagnostics,
) -> Option<MessageDef> {
    let what = format!("message `{}`", id.value);
    let m = r.map(n, &what, d)?;
    r.check_keys(
        m,
        &[
            "description",
            "channel",
            "email",
            "in_app",
            "webhook",
            "variants",
        ],
        &what,
        d,
    );
    let ch_node = r.required(m, "channel", &what, d)?;
    let channel = channel_of(r, ch_node, d)?;
    let content = parse_content(r, m, channel, &what, d)?;
    let mut variants = Vec::new();
    if let Some(v) = m.get_node("variants") {
        for item in r.list(v, "variants", d).unwrap_or_default() {
            let Some(vm) = r.map(item, "a content variant", d) else {
                continue;
            };
            r.check_keys(
                vm,
                &["name", "when", "requires", "email", "in_app", "webhook"],
                "a content variant",
                d,
            );
            let Some(name) = r
                .required(vm, "name", "a content variant", d)
                .and_then(|x| r.string(x, "name", d))
            else {
                continue;
            };
            let vwhat = format!("variant `{}` of {what}", name.value);
            if name.value == "default"
                || variants
                    .iter()
                    .any(|v: &ContentVariant| v.name.value == name.value)
            {
                d.error(
                    name.pos,
                    format!("{what} already has a variant named `{}`", name.value),
                );
            }
            let when = match vm.get_node("when") {
                Some(w) => parse_cond(r, w, &vwhat, d),
                None => None,
            };
            let requires = vm
                .get_node("requires")
                .map(|x| r.strings(x, "requires", d))
                .unwrap_or_default();
            if let Some(content) = parse_content(r, vm, channel, &vwhat, d) {
                variants.push(ContentVariant {
                    name,
                    when,
                    requires,
                    content,
                });
            }
        }
    }
    Some(MessageDef {
        id,
        channel,
        content,
        variants,
    })
}

fn parse_content(
    r: Reader,
    m: &MarkedMappingNode,
    channel: Channel,
    what: &str,
    d: &mut Diagnostics,
) -> Option<Content> {
    let key = channel.as_str();
    for other in Channel::ALL {
        if other != channel {
            if let Some(k) = m.keys().find(|k| k.as_str() == other.as_str()) {
                d.error(
                    r.key_pos(k),
                    format!(
                        "{what} is on channel {key}; `{}` content does not apply",
                        other.as_str()
                    ),
                );
            }
        }
    }
    let body = r.required(m, key, what, d)?;
    let cm = r.map(body, key, d)?;
    match channel {
        Channel::Email => {
            r.check_keys(cm, &["subject", "html", "text"], "email content", d);
            let subject = r.text(r.required(cm, "subject", "email content", d)?, "subject", d)?;
            let html = cm.get_node("html").and_then(|v| r.text(v, "html", d));
            let text = cm.get_node("text").and_then(|v| r.text(v, "text", d));
            if html.is_none() && text.is_none() {
                d.error(r.pos(body), "email content needs `text`, `html` or both");
            }
            Some(Content::Email {
                subject,
                html,
                text,
            })
        }
        Channel::InApp => {
            r.check_keys(cm, &["title", "body", "url"], "in-app content", d);
            let title = r.text(r.required(cm, "title", "in-app content", d)?, "title", d)?;
            let body = r.text(r.required(cm, "body", "in-app content", d)?, "body", d)?;
            let url = cm.get_node("url").and_then(|v| r.text(v, "url", d));
            Some(Content::InApp { title, body, url })
        }
        Channel::Webhook => {
            r.check_keys(cm, &["url", "body"], "webhook content", d);
            let url = r.text(r.required(cm, "url", "webhook content", d)?, "url", d)?;
            let bnode = r.required(cm, "body", "webhook content", d)?;
            Some(Content::Webhook {
                url,
                body: Sp::new(to_json(bnode), r.pos(bnode)),
            })
        }
    }
}
