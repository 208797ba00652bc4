//! A journey's result written up for people: one compact line per send, and what went wrong
//! with every send that happened instead.

use super::{offset, ActualSend, Failure, JourneyResult, Loc, Mismatch};
use crate::time::Millis;

impl ActualSend {
    /// One compact line: `+24h1m u1 profile-reminder sent email/profile_reminder variant=default "subject"`.
    pub fn compact(&self, start: Millis) -> String {
        let l = &self.line;
        let mut s = format!("{} {} {} ", offset(self.at - start), l.user_id, l.trigger);
        match l.reason {
            Some(r) => s.push_str(&format!("suppressed({r})")),
            None => s.push_str(l.outcome),
        }
        s.push_str(&format!(
            " {}/{} variant={}",
            l.channel, l.message, l.variant
        ));
        if let Some(e) = &l.experiment {
            s.push_str(&format!(" experiment={e}"));
        }
        if let Some(subject) = &l.subject {
            s.push_str(&format!(" {subject:?}"));
        }
        s
    }
}

impl JourneyResult {
    /// What went wrong and every send that happened instead. `text_diff(expected, actual)`
    /// renders the difference of two multi-line texts (bodies).
    pub fn report(&self, text_diff: &dyn Fn(&str, &str) -> String) -> String {
        let mut out = String::new();
        let at = |loc: &Loc| format!("{}:{loc}", self.file);
        let send = |i: usize| {
            self.sends
                .get(i)
                .map(|s| s.compact(self.start))
                .unwrap_or_default()
        };
        for f in &self.failures {
            match f {
                Failure::Rejected {
                    loc,
                    index,
                    message,
                } => {
                    let what = match index {
                        Some(i) => format!("events[{i}]"),
                        None => "the identify for `traits`".to_string(),
                    };
                    out.push_str(&format!("{what} ({}) was rejected: {message}\n", at(loc)));
                }
                Failure::Missing {
                    loc,
                    expected,
                    closest,
                } => {
                    out.push_str(&format!(
                        "expected send not found ({}): {expected}\n",
                        at(loc)
                    ));
                    match closest {
                        Some((i, mismatches)) => {
                            out.push_str(&format!("    closest: {}\n", send(*i)));
                            for m in mismatches {
                                out.push_str(&mismatch_text(m, text_diff));
                            }
                        }
                        None => out.push_str("    (no unmatched send of this trigger)\n"),
                    }
                }
                Failure::Forbidden { loc, rule, sends } => {
                    out.push_str(&format!(
                        "forbidden send happened ({}): never {rule}\n",
                        at(loc)
                    ));
                    for i in sends {
                        out.push_str(&format!("    {}\n", send(*i)));
                    }
                }
                Failure::Unexpected { sends } => {
                    out.push_str("unexpected sends (exhaustive: no `expect` item matches them):\n");
                    for i in sends {
                        out.push_str(&format!("    {}\n", send(*i)));
                    }
                }
                Failure::Measure {
                    loc,
                    row,
                    field,
                    expected,
                    actual,
                } => {
                    out.push_str(&format!(
                        "report ({}): {row}: {field} is {actual}, expected {expected}\n",
                        at(loc)
                    ));
                }
                Failure::Segments {
                    loc,
                    at: when,
                    user,
                    missing,
                    unexpected,
                    actual,
                } => {
                    out.push_str(&format!(
                        "segments at {} for {user} ({}):\n",
                        offset(when - self.start),
                        at(loc)
                    ));
                    if !missing.is_empty() {
                        out.push_str(&format!("    expected in: {}\n", missing.join(", ")));
                    }
                    if !unexpected.is_empty() {
                        out.push_str(&format!("    expected not in: {}\n", unexpected.join(", ")));
                    }
                    out.push_str(&format!("    actually in: [{}]\n", actual.join(", ")));
                }
            }
        }
        let rejected = self
            .failures
            .iter()
            .any(|f| matches!(f, Failure::Rejected { .. }));
        if rejected {
            out.push_str("(the journey did not run)\n");
        } else if self.sends.is_empty() {
            out.push_str("actual sends: none\n");
        } else {
            out.push_str(&format!("actual sends ({}):\n", self.sends.len()));
            for s in &self.sends {
                out.push_str(&format!("    {}\n", s.compact(self.start)));
            }
        }
        if !self.notes.is_empty() {
            out.push_str("notes:\n");
            for n in &self.notes {
                out.push_str(&format!("    {n}\n"));
            }
        }
        out
    }
}

fn mismatch_text(m: &Mismatch, text_diff: &dyn Fn(&str, &str) -> String) -> String {
    if m.field == "body" && (m.expected.contains('\n') || m.actual.contains('\n')) {
        let diff = text_diff(&m.expected, &m.actual);
        let indented: String = diff
            .lines()
            .map(|l| format!("        {l}").trim_end().to_string() + "\n")
            .collect();
        return format!("      body differs (- expected, + actual):\n{indented}");
    }
    format!(
        "      {}: expected {}, got {}\n",
        m.field, m.expected, m.actual
    )
}

#[cfg(test)]
mod tests {
    use crate::journey::test_support::{plain_diff, run_one, PROFILE_EVENTS};

    #[test]
    fn a_missing_send_shows_the_closest_and_every_actual_send() {
        // Given an expectation one hour off
        let res = run_one(&format!(
            "  - name: wrong time\n{PROFILE_EVENTS}\n    expect:\n      - {{trigger: reminder, at: +25h1m}}\n"
        ));
        // Then the report names the expectation, the nearest send and what really happened
        assert!(!res.passed());
        let report = res.report(&plain_diff);
        assert!(report.contains("expected send not found (t.yaml:13:9): {trigger: reminder, at: +1d1h1m, user: u1, outcome: sent}"), "{report}");
        assert!(
            report.contains("closest: +1d1m u1 reminder sent"),
            "{report}"
        );
        assert!(
            report.contains("at: expected +1d1h1m, got +1d1m"),
            "{report}"
        );
        assert!(report.contains("actual sends (2):\n    +0s u1 welcome sent in_app/hello variant=default \"Hi Alice\"\n"), "{report}");
    }

    #[test]
    fn a_body_mismatch_uses_the_text_diff() {
        let res = run_one(&format!(
            "  - name: body\n{PROFILE_EVENTS}\n    expect:\n      - {{trigger: reminder, body: \"Line one\\nLine 2\"}}\n"
        ));
        let report = res.report(&plain_diff);
        assert!(
            report.contains("body differs (- expected, + actual):\n        -Line one\n"),
            "{report}"
        );
    }
}
