//! Comparing a presented secret (a write key, the admin key) with the expected one without
//! telling, through the time it takes, how much of a guess was right. Signatures and inbox
//! hashes are HMACs, checked by `Mac::verify_slice` (`signing.rs`), constant-time as well.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The digest a secret is compared by: fixed length, so lengths take no part in the comparison.
pub type SecretDigest = [u8; 32];

/// The digest of a secret (SHA-256).
pub fn secret_digest(secret: &[u8]) -> SecretDigest {
    Sha256::digest(secret).into()
}

/// Whether `presented` hashes to `expected`, compared in constant time (`subtle`).
pub fn matches_digest(presented: &[u8], expected: &SecretDigest) -> bool {
    secret_digest(presented).ct_eq(expected).into()
}

/// Whether `presented` is `expected`, in a time that depends on neither's bytes.
pub fn same_secret(presented: &[u8], expected: &[u8]) -> bool {
    matches_digest(presented, &secret_digest(expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_secrets_match_and_any_difference_does_not() {
        assert!(same_secret(b"ak_live_123", b"ak_live_123"));
        assert!(!same_secret(b"ak_live_124", b"ak_live_123"));
        assert!(!same_secret(b"ak_live_12", b"ak_live_123"), "a prefix");
        assert!(
            !same_secret(b"ak_live_1234", b"ak_live_123"),
            "an extension"
        );
        assert!(!same_secret(b"", b"ak_live_123"));
        assert!(same_secret(b"", b""));
    }

    /// Secrets are never compared with `==` or `!=` (which stop at the first differing byte):
    /// the code that handles keys, hashes, tokens and signatures is read for comparisons whose
    /// sides name one.
    #[test]
    fn no_secret_is_compared_with_eq_in_the_adapters_and_the_api() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut found = Vec::new();
        for krate in [
            "nudge-service",
            "nudge-local",
            "nudge-aws",
            "nudge-cli",
            "nudge-http",
        ] {
            scan(&root.join(krate).join("src"), &mut found);
        }
        assert!(
            found.is_empty(),
            "secrets compared with ==/!=:\n{}",
            found.join("\n")
        );
    }

    /// Words that name a secret (an identifier is split at `_` and `.`).
    const SECRET_WORDS: &[&str] = &[
        "key",
        "secret",
        "hash",
        "mac",
        "tag",
        "token",
        "signature",
        "sig",
        "password",
        "admin",
    ];

    fn scan(dir: &std::path::Path, found: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                scan(&path, found);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            for (n, line) in lines.iter().enumerate() {
                // A comparison of something public whose name reads like a secret's says so,
                // on its line or in the comment just above.
                let above = n.checked_sub(1).map_or("", |i| lines[i]);
                if line.contains(NOT_A_SECRET) || above.trim_start().starts_with(NOT_A_SECRET) {
                    continue;
                }
                let code = without_strings(line);
                let code = code.split("//").next().unwrap_or("");
                if !(code.contains("==") || code.contains("!=")) {
                    continue;
                }
                if comparison_names_a_secret(code) {
                    found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        }
    }

    /// The comment that exempts a line from the scan, with its reason after it.
    const NOT_A_SECRET: &str = "// not a secret:";

    /// The line with the text of its string literals dropped (the quotes stay).
    fn without_strings(line: &str) -> String {
        let mut out = String::new();
        let (mut in_string, mut escaped) = (false, false);
        for c in line.chars() {
            if in_string {
                match (escaped, c) {
                    (false, '\\') => escaped = true,
                    (false, '"') => {
                        in_string = false;
                        out.push(c);
                    }
                    _ => escaped = false,
                }
            } else {
                in_string = c == '"';
                out.push(c);
            }
        }
        out
    }

    /// Whether an operand next to `==`/`!=` is an identifier with a secret's word in it.
    fn comparison_names_a_secret(code: &str) -> bool {
        code.split(['=', '!'])
            .flat_map(|side| {
                // The operand touching the operator: the last word before, the first after.
                let words: Vec<&str> = side
                    .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
                    .filter(|w| !w.is_empty())
                    .collect();
                [words.first().copied(), words.last().copied()]
            })
            .flatten()
            .any(|operand| {
                operand
                    .split(['_', '.'])
                    .any(|w| SECRET_WORDS.contains(&w.to_ascii_lowercase().as_str()))
            })
    }

    #[test]
    fn the_scan_reads_code_not_the_text_of_strings() {
        assert_eq!(
            without_strings("f(\"a == key\", \"x\\\"y\") == b"),
            "f(\"\", \"\") == b"
        );
        assert!(!comparison_names_a_secret(&without_strings(
            "assert!(ok(\"if key == admin\"));"
        )));
    }

    #[test]
    fn the_scan_sees_a_secret_compared_with_eq() {
        assert!(comparison_names_a_secret("if presented_key == admin {"));
        assert!(comparison_names_a_secret(
            "        .any(|t| t == self.keys.admin)"
        ));
        assert!(comparison_names_a_secret("if hash != expected {"));
        assert!(!comparison_names_a_secret(
            "if e.kind() == io::ErrorKind::NotFound {"
        ));
        assert!(!comparison_names_a_secret(
            "Ok(view) if w.sent.as_deref() != Some(view.etag.as_str()) => {"
        ));
    }
}
