//! Reading a rule set directory: every `*.yaml` / `*.yml` file directly in it.

use nudge_core::rules::{self, CompiledRules, RuleError, RuleFile};
use std::path::{Path, PathBuf};

/// Why a rule set could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read rule directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} has no rule files (*.yaml)")]
    Empty(PathBuf),
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Rules(Vec<RuleError>),
}

/// The rule files of a directory, sorted by name, named as `DIR/file.yaml`.
pub fn read_files(dir: &Path) -> Result<Vec<RuleFile>, LoadError> {
    let io = |source| LoadError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
        })
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(LoadError::Empty(dir.to_path_buf()));
    }
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).map_err(|source| LoadError::Io {
                path: p.clone(),
                source,
            })?;
            Ok(RuleFile {
                name: p.display().to_string(),
                text,
            })
        })
        .collect()
}

/// Loads and compiles the rule set in `dir`.
pub fn load(dir: &Path) -> Result<CompiledRules, LoadError> {
    let files = read_files(dir)?;
    rules::load(&files).map_err(LoadError::Rules)
}
