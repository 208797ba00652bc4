//! Segment, trigger, message and experiment ids: each defined once and well formed.

use super::Compiler;
use crate::rules::model::{Pos, Sp};
use crate::rules::yaml::{closest, Diagnostics};
use std::collections::HashMap;

impl Compiler<'_> {
    /// Reports ids defined twice (naming the first place) and ids that are not 1-64 letters,
    /// digits, `-` or `_`.
    pub(super) fn check_duplicates(&mut self) {
        fn dups<'b>(
            d: &mut Diagnostics,
            files: &[String],
            what: &str,
            ids: impl Iterator<Item = &'b Sp<String>>,
        ) {
            let mut seen: HashMap<&str, Pos> = HashMap::new();
            for id in ids {
                if let Some(first) = seen.get(id.value.as_str()) {
                    let file = files.get(first.file).map(String::as_str).unwrap_or("?");
                    d.error(
                        id.pos,
                        format!(
                            "{what} `{}` is defined twice (first at {file}:{}:{})",
                            id.value, first.line, first.col
                        ),
                    );
                } else {
                    seen.insert(&id.value, id.pos);
                }
                let valid = !id.value.is_empty()
                    && id.value.len() <= 64
                    && id
                        .value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                if !valid {
                    d.error(
                        id.pos,
                        format!(
                            "{what} id `{}` must be 1-64 letters, digits, `-` or `_`",
                            id.value
                        ),
                    );
                }
            }
        }
        let (set, files) = (self.set, &self.set.file_names);
        dups(self.d, files, "segment", set.segments.iter().map(|s| &s.id));
        dups(self.d, files, "trigger", set.triggers.iter().map(|s| &s.id));
        dups(self.d, files, "message", set.messages.iter().map(|s| &s.id));
        dups(
            self.d,
            files,
            "experiment",
            set.experiments.iter().map(|s| &s.id),
        );
        dups(self.d, files, "goal", set.goals.iter().map(|s| &s.id));
        dups(self.d, files, "funnel", set.funnels.iter().map(|s| &s.id));
    }
}

/// Reports a reference to an unknown `what` (segment, message, ...) with the closest known
/// id, or where to define one when there is none.
pub(super) fn unknown<'k>(
    d: &mut Diagnostics,
    what: &str,
    name: &Sp<String>,
    known: impl Iterator<Item = &'k str>,
) {
    let names: Vec<&str> = known.collect();
    let hint = match closest(&name.value, &names) {
        Some(s) => format!("; did you mean `{s}`?"),
        None if names.is_empty() => format!("; no {what} is defined"),
        None => String::new(),
    };
    d.error(name.pos, format!("unknown {what} `{}`{hint}", name.value));
}
