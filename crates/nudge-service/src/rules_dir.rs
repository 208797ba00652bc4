//! Reading a rule set directory: every `*.yaml` / `*.yml` file directly in it.

use nudge_core::rules::{self, snapshot, CompiledRules, RuleError, RuleFile};
use std::path::{Path, PathBuf};
use tracing::warn;

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

/// Loads the rule set in `dir`: from its compiled snapshot (`nudge compile`) when that was
/// compiled from exactly these files by this version, else by compiling the YAML.
pub fn load(dir: &Path) -> Result<CompiledRules, LoadError> {
    let files = read_files(dir)?;
    let path = dir.join(snapshot::FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(text) => match snapshot::read(&text, &files) {
            Ok(rules) => return Ok(rules),
            Err(why) => {
                warn!(path = %path.display(), %why, "compiled rule set not used: compiling the YAML")
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            warn!(path = %path.display(), error = %e, "compiled rule set unreadable: compiling the YAML")
        }
    }
    rules::load(&files).map_err(LoadError::Rules)
}

/// Compiles the YAML rule set in `dir` and saves the snapshot [`load`] reads beside it;
/// returns the snapshot's path.
pub fn compile(dir: &Path) -> Result<PathBuf, LoadError> {
    let files = read_files(dir)?;
    let rules = rules::load(&files).map_err(LoadError::Rules)?;
    let path = dir.join(snapshot::FILE_NAME);
    let io = |source| LoadError::Io {
        path: path.clone(),
        source,
    };
    let text = snapshot::write(&rules, &files).map_err(|e| io(std::io::Error::other(e)))?;
    // Written beside, then renamed: a reader never sees half a snapshot.
    let tmp = dir.join(format!(".{}.tmp", snapshot::FILE_NAME));
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A copy of `examples/saas-onboarding` in a fresh folder, removed on drop.
    struct Copy(PathBuf);

    impl Copy {
        fn new(name: &str) -> Copy {
            let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/saas-onboarding");
            let to = std::env::temp_dir().join(format!(
                "nudge-rules-{name}-{}-{:?}",
                std::process::id(),
                std::time::SystemTime::now()
            ));
            std::fs::create_dir_all(&to).unwrap();
            for f in read_files(&from).unwrap() {
                let file = Path::new(&f.name).file_name().unwrap();
                std::fs::write(to.join(file), f.text).unwrap();
            }
            Copy(to)
        }
    }

    impl Drop for Copy {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_compiled_rule_set_is_read_from_its_snapshot_until_a_file_changes() {
        let dir = Copy::new("snapshot");
        let path = compile(&dir.0).unwrap();
        assert_eq!(path, dir.0.join(snapshot::FILE_NAME));
        let yaml_name = load(&dir.0).unwrap().name;

        // Marked, to see where a load reads from.
        let text = std::fs::read_to_string(&path).unwrap();
        let marked = text.replacen(
            &format!("\"name\":\"{yaml_name}\""),
            "\"name\":\"from the snapshot\"",
            1,
        );
        assert_ne!(marked, text);
        std::fs::write(&path, marked).unwrap();
        assert_eq!(load(&dir.0).unwrap().name, "from the snapshot");

        // An edited file: the snapshot no longer applies; the YAML is compiled.
        let nudge_yaml = dir.0.join("nudge.yaml");
        let mut yaml = std::fs::read_to_string(&nudge_yaml).unwrap();
        yaml.push_str("\n# edited\n");
        std::fs::write(&nudge_yaml, yaml).unwrap();
        assert_eq!(load(&dir.0).unwrap().name, yaml_name);

        // A damaged snapshot is passed over too.
        std::fs::write(&path, "{\"format\":").unwrap();
        assert_eq!(load(&dir.0).unwrap().name, yaml_name);
    }

    #[test]
    fn a_rule_set_with_mistakes_is_not_compiled() {
        let dir = Copy::new("bad");
        std::fs::write(dir.0.join("broken.yaml"), "triggers: [").unwrap();
        assert!(matches!(compile(&dir.0), Err(LoadError::Rules(_))));
        assert!(!dir.0.join(snapshot::FILE_NAME).exists());
    }
}
