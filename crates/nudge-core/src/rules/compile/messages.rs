//! Messages: references to them, their templates compiled, and the paths they read.

use super::{split_path, Compiler, Ctx};
use crate::rules::compiled::{CContent, CContentVariant, CJson, CMessage};
use crate::rules::model::{Content, MessageDef, Pos, Sp, TemplateText};
use crate::template::Template;

impl Compiler<'_> {
    /// The message an id names; an unknown one is reported with the closest known id.
    pub(super) fn message_ref(&mut self, m: &Sp<String>) -> Option<usize> {
        match self.message_ids.get(m.value.as_str()) {
            Some(&i) => Some(i),
            None => {
                super::ids::unknown(self.d, "message", m, self.message_ids.keys().copied());
                None
            }
        }
    }

    fn template(&mut self, t: &TemplateText) -> Template {
        match Template::compile(&t.value) {
            Ok(tpl) => tpl,
            Err(e) => {
                self.d.error(
                    t.pos,
                    format!(
                        "template error (template line {}, column {}): {}",
                        e.line, e.column, e.message
                    ),
                );
                Template::compile("").unwrap_or_else(|_| unreachable!("empty template compiles"))
            }
        }
    }

    fn content(&mut self, c: &Content) -> CContent {
        match c {
            Content::Email {
                subject,
                html,
                text,
            } => CContent::Email {
                subject: self.template(subject),
                html: html.as_ref().map(|t| self.template(t)),
                text: text.as_ref().map(|t| self.template(t)),
            },
            Content::InApp { title, body, url } => CContent::InApp {
                title: self.template(title),
                body: self.template(body),
                url: url.as_ref().map(|t| self.template(t)),
            },
            Content::Webhook { url, body } => CContent::Webhook {
                url: self.template(url),
                body: self.json(&body.value, body.pos),
            },
        }
    }

    fn json(&mut self, v: &serde_json::Value, pos: Pos) -> CJson {
        match v {
            serde_json::Value::String(s) if s.contains("{{") || s.contains("{%") => {
                CJson::Template(self.template(&Sp::new(s.clone(), pos)))
            }
            serde_json::Value::Array(items) => {
                CJson::Array(items.iter().map(|i| self.json(i, pos)).collect())
            }
            serde_json::Value::Object(m) => CJson::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), self.json(v, pos)))
                    .collect(),
            ),
            other => CJson::Literal(other.clone()),
        }
    }

    pub(super) fn message(&mut self, m: &MessageDef) -> CMessage {
        let content = self.content(&m.content);
        let variants = m
            .variants
            .iter()
            .map(|v| CContentVariant {
                name: v.name.value.as_str().into(),
                when: v.when.as_ref().map(|c| self.cond(c, Ctx::Event)),
                requires: v.requires.iter().map(|p| split_path(&p.value)).collect(),
                content: self.content(&v.content),
            })
            .collect();
        CMessage {
            id: m.id.value.as_str().into(),
            default_name: "default".into(),
            channel: m.channel,
            content,
            variants,
        }
    }
}

/// Every template path a message's contents read (all variants).
pub(super) fn message_paths(m: &MessageDef) -> Vec<Vec<String>> {
    let mut out = vec![];
    let mut add = |t: &TemplateText| {
        if let Ok(tpl) = Template::compile(&t.value) {
            out.extend(tpl.referenced_paths().iter().cloned());
        }
    };
    let mut visit = |c: &Content| match c {
        Content::Email {
            subject,
            html,
            text,
        } => {
            add(subject);
            html.iter().chain(text.iter()).for_each(&mut add);
        }
        Content::InApp { title, body, url } => {
            add(title);
            add(body);
            url.iter().for_each(&mut add);
        }
        Content::Webhook { url, body } => {
            add(url);
            json_strings(&body.value, &mut |s| add(&Sp::new(s.to_string(), body.pos)));
        }
    };
    visit(&m.content);
    for v in &m.variants {
        visit(&v.content);
    }
    for v in &m.variants {
        for r in &v.requires {
            out.push(split_path(&r.value));
        }
    }
    out
}

fn json_strings(v: &serde_json::Value, f: &mut dyn FnMut(&str)) {
    match v {
        serde_json::Value::String(s) => f(s),
        serde_json::Value::Array(a) => a.iter().for_each(|x| json_strings(x, f)),
        serde_json::Value::Object(m) => m.values().for_each(|x| json_strings(x, f)),
        _ => {}
    }
}
