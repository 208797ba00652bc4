//! Helpers shared by the crate's unit tests.

use crate::rules::{load, CompiledRules, RuleFile};
use crate::time::{parse_instant, Millis};

/// Compiles one rule file, failing the test with the errors when it does not compile.
pub fn compile(yaml: &str) -> CompiledRules {
    match load(&[RuleFile {
        name: "rules.yaml".into(),
        text: yaml.into(),
    }]) {
        Ok(r) => r,
        Err(e) => panic!("rules do not compile: {e:?}"),
    }
}

/// An RFC 3339 instant written in a test.
pub fn t(s: &str) -> Millis {
    parse_instant(s).expect("test instant")
}
