//! nudge-core's integration tests, one binary: properties over generated input (replays, hostile
//! JSON and rule text, state bytes) and the state-size bound of heavy users.

mod props;
mod snapshot;
mod state_size;

use nudge_core::rules::RuleFile;

/// The rule files of `examples/<name>`, sorted, named by file name.
pub fn example_files(name: &str) -> Vec<RuleFile> {
    let dir = example_dir(name);
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| RuleFile {
            name: p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
            text: std::fs::read_to_string(p).expect("readable rule file"),
        })
        .collect()
}

/// `examples/<name>`.
pub fn example_dir(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}
