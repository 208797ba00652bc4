//! What keeps a trigger from firing now: a spent `once`, or a running cooldown.

use super::{Block, Evidence};
use crate::engine::conditions::{lookup, value_key};
use crate::rules::compiled::{COnce, CTrigger};
use serde_json::{Map, Value};

/// What keeps the trigger from firing now (once before cooldown: once is for good).
pub(super) fn block(
    e: &Evidence<'_>,
    t: &CTrigger,
    ti: usize,
    props: Option<&Map<String, Value>>,
) -> Option<Block> {
    let memo = e.state.triggers.get(ti)?;
    let once = match &t.once {
        COnce::Never => None,
        COnce::User => memo.last.map(|at| Block::OnceUser { at }),
        COnce::Session => (memo.session == Some(e.state.sessions)).then_some(Block::OnceSession {
            session: e.state.sessions,
        }),
        COnce::PerProperty(path) => {
            // The engine keys the value as kept in state; missing reads as null.
            let v = props
                .and_then(|p| lookup(p, path))
                .map(|v| crate::state::Scalar::from_json(v).to_json())
                .unwrap_or(Value::Null);
            memo.keys
                .contains(&value_key(&v))
                .then(|| Block::OncePerValue {
                    property: path.join("."),
                    value: v,
                })
        }
    };
    once.or_else(|| {
        let (cd, last) = (t.cooldown?, memo.last?);
        let until = last.saturating_add(cd.0);
        (e.at < until).then_some(Block::Cooldown { until })
    })
}
