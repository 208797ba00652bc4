//! A compiled snapshot behaves exactly as the YAML it was compiled from, and is refused when
//! the sources or the version differ.

use nudge_core::event::Message;
use nudge_core::replay::{replay_all, ReplayLine};
use nudge_core::rules::snapshot::{self, Unusable};
use nudge_core::rules::{self, CompiledRules};
use nudge_core::time::Millis;

use crate::{example_dir, example_files};

/// The example's demo events, replayed to 30 days after the last: every send as the replay
/// contract writes it (rendered subject and body included).
fn replayed(rules: &CompiledRules, example: &str) -> Vec<String> {
    let text = std::fs::read_to_string(example_dir(example).join("events.jsonl")).unwrap();
    let mut events: Vec<(Message, Millis)> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let m = Message::from_json(&serde_json::from_str(l).ok()?, None).ok()?;
            let at = m.timestamp?;
            Some((m, at))
        })
        .collect();
    events.sort_by_key(|(_, at)| *at);
    let until = events.last().map_or(0, |(_, at)| *at) + 30 * 24 * 3_600_000;
    let (sends, _) = replay_all(rules, &events, until);
    sends
        .iter()
        .map(|s| serde_json::to_string(&ReplayLine::from_send(rules, s)).unwrap())
        .collect()
}

#[test]
fn a_snapshot_decides_and_renders_as_its_yaml_does() {
    for example in ["saas-onboarding", "ecommerce"] {
        let files = example_files(example);
        let compiled = rules::load(&files).unwrap();
        let text = snapshot::write(&compiled, &files).unwrap();

        let read = snapshot::read(&text, &files).unwrap();

        let expected = replayed(&compiled, example);
        assert!(expected.len() >= 4, "{example}: the demo sends");
        assert_eq!(replayed(&read, example), expected, "{example}");
        // Written again, the same document (maps in any order): nothing is lost on the way.
        let again: serde_json::Value =
            serde_json::from_str(&snapshot::write(&read, &files).unwrap()).unwrap();
        let first: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(again, first, "{example}");
    }
}

#[test]
fn a_snapshot_of_other_sources_or_another_version_is_refused() {
    let files = example_files("saas-onboarding");
    let text = snapshot::write(&rules::load(&files).unwrap(), &files).unwrap();

    let mut edited = files.clone();
    edited[0].text.push_str("\n# an edit\n");
    assert_eq!(
        snapshot::read(&text, &edited).err(),
        Some(Unusable::OtherSources)
    );
    let mut renamed = files.clone();
    renamed[0].name = "other.yaml".into();
    assert_eq!(
        snapshot::read(&text, &renamed).err(),
        Some(Unusable::OtherSources)
    );

    let build = format!("\"nudge\":\"{}+", env!("CARGO_PKG_VERSION"));
    assert!(text.contains(&build));
    let older = text.replacen(&build, "\"nudge\":\"0.0.1+", 1);
    assert!(matches!(
        snapshot::read(&older, &files),
        Err(Unusable::OtherVersion(v, 1)) if v.starts_with("0.0.1+")
    ));

    assert!(matches!(
        snapshot::read(&text[..text.len() / 2], &files),
        Err(Unusable::Unreadable(_))
    ));
    // A copy of the directory elsewhere keeps its snapshot: names count without their folder.
    let moved: Vec<_> = files
        .iter()
        .map(|f| rules::RuleFile {
            name: format!("/opt/rules/saas-onboarding/{}", f.name),
            text: f.text.clone(),
        })
        .collect();
    assert!(snapshot::read(&text, &moved).is_ok());
}
