//! A compiled rule set saved as JSON beside its YAML files (`nudge compile`), so that a
//! process that starts often (a Lambda cold start) reads it instead of parsing YAML, checking
//! every reference and parsing every Liquid template: a few hundred microseconds instead of
//! one or two milliseconds. Liquid templates are parsed at their first render.
//!
//! A snapshot names the exact sources it was compiled from (a hash of each file's name and
//! text) and the build of nudge that wrote it (its version and a hash of this crate's
//! source); a snapshot of other sources or another build is ignored and the YAML compiled as
//! always, so a stale file can cost time, never behaviour.

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use super::{CompiledRules, RuleFile};

/// The file name of a rule set's snapshot, in the rule set's directory.
pub const FILE_NAME: &str = "nudge-compiled.json";

/// Bumped when the snapshot's layout changes in a way the build would not tell.
const FORMAT: u32 = 1;

/// This build: the version and a hash of nudge-core's source (see `build.rs`).
fn build() -> String {
    format!(
        "{}+{}",
        env!("CARGO_PKG_VERSION"),
        env!("NUDGE_CORE_SOURCE_HASH")
    )
}

#[derive(Serialize)]
struct SnapshotOut<'a> {
    format: u32,
    nudge: &'a str,
    sources: String,
    rules: &'a CompiledRules,
}

/// The header alone: read to tell why a snapshot did not load.
#[derive(Deserialize)]
struct Header {
    format: u32,
    nudge: String,
    sources: String,
}

#[derive(Deserialize)]
struct SnapshotIn {
    format: u32,
    nudge: String,
    sources: String,
    rules: CompiledRules,
}

/// What identifies a rule set's sources: each file's name (without its directory, so that a
/// copied directory keeps its snapshot) and text, in order.
pub fn sources_hash(files: &[RuleFile]) -> String {
    let mut h = Xxh3::new();
    for f in files {
        let name = std::path::Path::new(&f.name)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for part in [name.as_bytes(), f.text.as_bytes()] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part);
        }
    }
    format!("{:032x}", h.digest128())
}

/// The snapshot of `rules`, compiled from `files`.
pub fn write(rules: &CompiledRules, files: &[RuleFile]) -> Result<String, serde_json::Error> {
    serde_json::to_string(&SnapshotOut {
        format: FORMAT,
        nudge: &build(),
        sources: sources_hash(files),
        rules,
    })
}

/// Why a snapshot was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    #[error("written by nudge {0} (format {1}), this is nudge {build}", build = build())]
    OtherVersion(String, u32),
    #[error("compiled from other sources than the rule files now there")]
    OtherSources,
    #[error("unreadable: {0}")]
    Unreadable(String),
}

/// The rule set in `snapshot`, if it was compiled from exactly `files` by this version.
pub fn read(snapshot: &str, files: &[RuleFile]) -> Result<CompiledRules, Unusable> {
    let rules = match serde_json::from_str::<SnapshotIn>(snapshot) {
        Ok(s) => Header {
            format: s.format,
            nudge: s.nudge,
            sources: s.sources,
        }
        .check(files)
        .map(|()| s.rules)?,
        // Another version's layout may not read as this one's: say so if the header does.
        Err(e) => {
            let header: Header =
                serde_json::from_str(snapshot).map_err(|_| Unusable::Unreadable(e.to_string()))?;
            header.check(files)?;
            return Err(Unusable::Unreadable(e.to_string()));
        }
    };
    Ok(rules)
}

impl Header {
    fn check(self, files: &[RuleFile]) -> Result<(), Unusable> {
        if self.format != FORMAT || self.nudge != build() {
            return Err(Unusable::OtherVersion(self.nudge, self.format));
        }
        if self.sources != sources_hash(files) {
            return Err(Unusable::OtherSources);
        }
        Ok(())
    }
}
