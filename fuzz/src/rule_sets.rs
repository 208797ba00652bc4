//! The example rule sets (`examples/`) and the SDK tests' (`tests/sdk-rules`), built into the
//! targets and compiled once per process: the tracking plans, slots and templates that real
//! input meets.

use std::sync::OnceLock;

use nudge_core::rules::{self, CompiledRules, RuleFile};

/// Each rule set's files, by name in name order (as `nudge validate` reads a folder).
const SOURCES: [&[(&str, &str)]; 3] = [
    &[
        (
            "saas-onboarding/goals.yaml",
            include_str!("../../examples/saas-onboarding/goals.yaml"),
        ),
        (
            "saas-onboarding/messages.yaml",
            include_str!("../../examples/saas-onboarding/messages.yaml"),
        ),
        (
            "saas-onboarding/nudge.yaml",
            include_str!("../../examples/saas-onboarding/nudge.yaml"),
        ),
        (
            "saas-onboarding/segments.yaml",
            include_str!("../../examples/saas-onboarding/segments.yaml"),
        ),
        (
            "saas-onboarding/triggers.yaml",
            include_str!("../../examples/saas-onboarding/triggers.yaml"),
        ),
    ],
    &[
        (
            "ecommerce/goals.yaml",
            include_str!("../../examples/ecommerce/goals.yaml"),
        ),
        (
            "ecommerce/messages.yaml",
            include_str!("../../examples/ecommerce/messages.yaml"),
        ),
        (
            "ecommerce/nudge.yaml",
            include_str!("../../examples/ecommerce/nudge.yaml"),
        ),
        (
            "ecommerce/segments.yaml",
            include_str!("../../examples/ecommerce/segments.yaml"),
        ),
        (
            "ecommerce/triggers.yaml",
            include_str!("../../examples/ecommerce/triggers.yaml"),
        ),
    ],
    &[
        (
            "sdk-rules/messages.yaml",
            include_str!("../../tests/sdk-rules/messages.yaml"),
        ),
        (
            "sdk-rules/nudge.yaml",
            include_str!("../../tests/sdk-rules/nudge.yaml"),
        ),
        (
            "sdk-rules/triggers.yaml",
            include_str!("../../tests/sdk-rules/triggers.yaml"),
        ),
    ],
];

/// The rule sets, compiled: saas-onboarding (the default of the sample events), ecommerce,
/// and the SDK tests'.
pub fn all() -> &'static [CompiledRules] {
    static ALL: OnceLock<Vec<CompiledRules>> = OnceLock::new();
    ALL.get_or_init(|| {
        SOURCES
            .iter()
            .map(|files| {
                let files: Vec<RuleFile> = files
                    .iter()
                    .map(|(name, text)| RuleFile {
                        name: (*name).to_string(),
                        text: (*text).to_string(),
                    })
                    .collect();
                match rules::load(&files) {
                    Ok(rules) => rules,
                    Err(errors) => panic!("an example rule set does not compile: {errors:?}"),
                }
            })
            .collect()
    })
}

/// saas-onboarding, the rule set the sample events (`events/`) are written for.
pub fn saas() -> &'static CompiledRules {
    &all()[0]
}
