//! Renders a decided send's content: the chosen message variant's templates over its context.

use crate::engine::Send;
use crate::rules::compiled::{CContent, CJson, CompiledRules};
use crate::template::{html_to_text, Template, TemplateError};
use serde_json::{Map, Value};

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rendered {
    /// Email subject or in-app title.
    pub subject: Option<String>,
    /// Plain text: email text part, in-app body, or the webhook JSON.
    pub body: String,
    pub html: Option<String>,
    /// In-app link or webhook address.
    pub url: Option<String>,
    pub webhook_body: Option<Value>,
}

/// Why content could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("message `{0}` is not in the rule set")]
    UnknownMessage(String),
    #[error("message `{message}`: {source}")]
    Template {
        message: String,
        source: TemplateError,
    },
}

/// Renders `send` with the rule set that decided it.
pub fn render(rules: &CompiledRules, send: &Send) -> Result<Rendered, RenderError> {
    let msg = rules
        .messages
        .iter()
        .find(|m| m.id == send.message)
        .ok_or_else(|| RenderError::UnknownMessage(send.message.to_string()))?;
    let content = msg
        .variants
        .iter()
        .find(|v| v.name == send.content)
        .map(|v| &v.content)
        .unwrap_or(&msg.content);
    let globals = send.context.globals(send);
    let ctx = &globals;
    let r = |t: &Template| {
        t.render(ctx).map_err(|source| RenderError::Template {
            message: msg.id.to_string(),
            source,
        })
    };
    Ok(match content {
        CContent::Email {
            subject,
            html,
            text,
        } => {
            let html = html.as_ref().map(r).transpose()?;
            let body = match (text, &html) {
                (Some(t), _) => r(t)?,
                (None, Some(h)) => html_to_text(h),
                (None, None) => String::new(),
            };
            Rendered {
                subject: Some(r(subject)?),
                body,
                html,
                url: None,
                webhook_body: None,
            }
        }
        CContent::InApp { title, body, url } => Rendered {
            subject: Some(r(title)?),
            body: r(body)?,
            html: None,
            url: url.as_ref().map(r).transpose()?,
            webhook_body: None,
        },
        CContent::Webhook { url, body } => {
            let json = render_json(body, ctx).map_err(|source| RenderError::Template {
                message: msg.id.to_string(),
                source,
            })?;
            Rendered {
                subject: None,
                body: json.to_string(),
                html: None,
                url: Some(r(url)?),
                webhook_body: Some(json),
            }
        }
    })
}

fn render_json(j: &CJson, ctx: &Map<String, Value>) -> Result<Value, TemplateError> {
    Ok(match j {
        CJson::Template(t) => Value::String(t.render(ctx)?),
        CJson::Literal(v) => v.clone(),
        CJson::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| render_json(i, ctx))
                .collect::<Result<_, _>>()?,
        ),
        CJson::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| Ok((k.clone(), render_json(v, ctx)?)))
                .collect::<Result<_, TemplateError>>()?,
        ),
    })
}
