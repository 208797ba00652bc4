//! The rule language: YAML files → checked model → compiled rules.

pub mod compile;
pub mod compiled;
pub mod model;
pub mod parse;
pub mod snapshot;
pub mod yaml;

pub use compiled::CompiledRules;

use std::fmt;

/// A mistake in a rule file, printed as `file:line:col: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RuleError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )
    }
}

/// One rule file: its display name and text.
#[derive(Debug, Clone)]
pub struct RuleFile {
    pub name: String,
    pub text: String,
}

/// Parses and compiles a rule set from its files; every mistake is reported, sorted by place.
pub fn load(files: &[RuleFile]) -> Result<CompiledRules, Vec<RuleError>> {
    let mut d = yaml::Diagnostics::default();
    let mut set = model::RuleSet {
        file_names: files.iter().map(|f| f.name.clone()).collect(),
        ..Default::default()
    };
    for (i, f) in files.iter().enumerate() {
        parse::parse_file(i, &f.text, &mut set, &mut d);
    }
    let compiled = if d.errors.is_empty() {
        compile::compile(&set, &mut d)
    } else {
        // Still run the cross-file checks so one pass reports as much as possible.
        compile::compile(&set, &mut d);
        None
    };
    match compiled {
        Some(c) if d.errors.is_empty() => Ok(c),
        _ => Err(d.into_rule_errors(|i| files.get(i).map(|f| f.name.clone()).unwrap_or_default())),
    }
}
