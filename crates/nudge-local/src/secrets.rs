//! Secrets `nudge serve` generates on first start when none are given, kept in the data
//! folder so that keys, inbox hashes and unsubscribe links stay valid across restarts.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Generated development secrets.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Secrets {
    pub write_key: String,
    pub admin_key: String,
    pub inbox_secret: String,
    pub signing_secret: String,
}

impl Secrets {
    /// Reads the file, or creates it (readable by the owner only) with fresh random values.
    pub fn load_or_create(path: &Path) -> io::Result<Secrets> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let s = Secrets {
                    write_key: format!("wk_dev_{}", random_hex(12)?),
                    admin_key: format!("ak_dev_{}", random_hex(16)?),
                    inbox_secret: random_hex(32)?,
                    signing_secret: random_hex(32)?,
                };
                let text = serde_json::to_vec_pretty(&s).map_err(io::Error::other)?;
                write_private(path, &text)?;
                Ok(s)
            }
            Err(e) => Err(e),
        }
    }
}

fn random_hex(bytes: usize) -> io::Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(hex::encode(buf))
}

fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_read_back() {
        let dir = std::env::temp_dir().join(format!("nudge-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secrets.json");
        let _ = std::fs::remove_file(&path);
        let a = Secrets::load_or_create(&path).unwrap();
        let b = Secrets::load_or_create(&path).unwrap();
        assert_eq!(a.write_key, b.write_key);
        assert_eq!(a.signing_secret, b.signing_secret);
        assert_ne!(a.inbox_secret, a.signing_secret);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
