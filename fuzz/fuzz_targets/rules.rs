#![no_main]
//! Rule sets: YAML through validation and compilation, the path `nudge validate`, `nudge
//! compile` and every start take (`nudge_core::rules::load`). The input is the rule files'
//! text, files separated by NUL bytes (which no YAML file holds). A rule set that compiles
//! must also save as a compiled snapshot that reads back; one that does not must say why, at a
//! place in a file.

use libfuzzer_sys::fuzz_target;
use nudge_core::rules::{self, snapshot, RuleFile};
use nudge_core::state::UserState;
use nudge_fuzz::panics;

fuzz_target!(|data: &[u8]| {
    // `nudge validate` reads files as UTF-8 text; other bytes stop it before parsing.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let files: Vec<RuleFile> = text
        .split('\0')
        .enumerate()
        .map(|(i, text)| RuleFile {
            name: format!("rules/{i:02}.yaml"),
            text: text.to_string(),
        })
        .collect();
    panics::contained(|| match rules::load(&files) {
        Ok(compiled) => {
            let saved = snapshot::write(&compiled, &files).expect("a compiled rule set saves");
            let read = snapshot::read(&saved, &files);
            assert!(
                read.is_ok(),
                "a saved snapshot does not read back: {read:?}"
            );
            // A new user's state of this rule set stores and loads.
            let state = UserState::new(&compiled);
            let back = UserState::decode(&state.encode(&compiled), &compiled);
            assert_eq!(back.ok().as_ref(), Some(&state));
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "refused without a reason");
            for e in &errors {
                assert!(e.line >= 1 && e.col >= 1, "an error without a place: {e}");
                assert!(
                    files.iter().any(|f| f.name == e.file),
                    "an error in no file: {e}"
                );
            }
        }
    });
});
