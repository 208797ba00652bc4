//! The `segments` section: each segment is one condition plus a description.

use super::conditions::parse_cond_map;
use crate::rules::model::{SegmentDef, Sp};
use crate::rules::yaml::{Diagnostics, Reader};
use marked_yaml::Node;

pub(super) fn parse_segment(
    r: Reader,
    id: Sp<String>,
    n: &Node,
    d: &mut Diagnostics,
) -> Option<SegmentDef> {
    let what = format!("segment `{}`", id.value);
    let m = r.map(n, &what, d)?;
    let mut description = None;
    if let Some(v) = m.get_node("description") {
        description = r.text(v, "description", d).map(|s| s.value);
    }
    let condition = parse_cond_map(r, m, &what, &["description"], d)?;
    Some(SegmentDef {
        id,
        description,
        condition,
    })
}
