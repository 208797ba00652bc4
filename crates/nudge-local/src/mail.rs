//! Local mail for `nudge serve`: an outbox folder of `.eml` files (the default, nothing
//! leaves the machine) or an SMTP relay (a real provider, or a catcher such as MailHog).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use lettre::address::{Address, Envelope};
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{AsyncTransport, Tokio1Executor};
use nudge_core::engine::decision::DecisionId;
use nudge_service::email::message_id;
use nudge_service::ports::{Mailer, OutgoingEmail, SendError};
use tracing::instrument;

/// Writes each mail to `<dir>/<decision hex>.eml`, once.
#[derive(Debug, Clone)]
pub struct OutboxMailer {
    dir: PathBuf,
}

impl OutboxMailer {
    /// An outbox in `dir`, created if missing.
    pub fn new(dir: impl AsRef<Path>) -> std::io::Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir)?;
        Ok(OutboxMailer { dir })
    }

    /// The outbox folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the mail of decision `id` is (or will be) written.
    pub fn path_of(&self, id: DecisionId) -> PathBuf {
        self.dir.join(format!("{id}.eml"))
    }
}

/// Tells temp files of one process apart (the process id tells processes apart).
static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Writes `raw` to `target` unless it exists: temp file in the same folder, fsync, rename,
/// so a reader never sees half a mail and a crash leaves no `.eml` behind. Two concurrent
/// writers of one id both rename a complete file, the last one winning; the bytes differ at
/// most in the Date header.
fn write_once(dir: &Path, target: &Path, id: DecisionId, raw: &[u8]) -> std::io::Result<()> {
    if target.try_exists()? {
        return Ok(());
    }
    let temp = dir.join(format!(
        ".{id}.{}-{}.tmp",
        std::process::id(),
        TEMP_SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut file = std::fs::File::create_new(&temp)?;
        file.write_all(raw)?;
        file.sync_all()?;
        std::fs::rename(&temp, target)?;
        sync_dir(dir)
    })();
    if written.is_err() {
        // Best effort: the temp name is unique, so a leftover only costs disk space.
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// Makes the rename durable (the directory entry is data of the folder).
#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Other systems cannot open a folder to fsync it; the rename is still atomic there.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

impl Mailer for OutboxMailer {
    /// A decision's mail is one file, written once.
    fn keyed_by_decision(&self) -> bool {
        true
    }

    /// Returns the mail's Message-ID.
    #[instrument(skip_all, fields(decision_id = %email.id))]
    async fn send(&self, email: &OutgoingEmail) -> Result<String, SendError> {
        let (dir, target) = (self.dir.clone(), self.path_of(email.id));
        let (id, raw) = (email.id, email.raw.clone());
        let shown = target.display().to_string();
        // File I/O and fsync block; keep them off the async workers.
        tokio::task::spawn_blocking(move || write_once(&dir, &target, id, &raw))
            .await
            .map_err(|e| SendError::new(format!("outbox writer for {shown}"), e, true).held())?
            .map_err(|e| {
                // A full disk (or a failing one) is freed or fixed: the mail waits for it
                // rather than failing. A folder we may not write stays so.
                let retryable = e.kind() != std::io::ErrorKind::PermissionDenied;
                let failure = SendError::new(format!("outbox {shown}"), e, retryable);
                if retryable {
                    failure.held()
                } else {
                    failure
                }
            })?;
        Ok(message_id(email.id))
    }
}

/// Why an SMTP URL was refused.
#[derive(Debug, thiserror::Error)]
pub enum MailConfigError {
    /// lettre's message names the scheme or TLS mode at fault, never the password.
    #[error("invalid SMTP URL: {0}")]
    Url(#[source] lettre::transport::smtp::Error),
}

/// Sends mail through an SMTP relay.
#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The transport holds the credentials.
        f.debug_struct("SmtpMailer").finish_non_exhaustive()
    }
}

/// Rewrites `tls=starttls` (the name people know) to lettre's `tls=required`.
fn lettre_url(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let query: Vec<&str> = query
        .split('&')
        .map(|pair| {
            if pair.eq_ignore_ascii_case("tls=starttls") {
                "tls=required"
            } else {
                pair
            }
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

impl SmtpMailer {
    /// A mailer for `smtp://[user:pass@]host[:port]` (plain, for local catchers),
    /// `smtp://…?tls=starttls` (STARTTLS required; also lettre's `tls=required` and
    /// `tls=opportunistic`) or `smtps://…` (TLS from the first byte). User and password are
    /// percent-decoded; without a port, 25, 587 (STARTTLS) or 465 (smtps) is used.
    pub fn from_url(url: &str) -> Result<Self, MailConfigError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&lettre_url(url))
            .map_err(MailConfigError::Url)?
            .build();
        Ok(SmtpMailer { transport })
    }
}

/// Whether an SMTP failure may pass: 4xx replies, lost connections and timeouts may; 5xx
/// replies (unknown recipient, rejected content) and client-side faults will not.
fn smtp_retryable(e: &lettre::transport::smtp::Error) -> bool {
    !(e.is_permanent() || e.is_client())
}

fn envelope(email: &OutgoingEmail) -> Result<Envelope, SendError> {
    let address = |field: &str, value: &str| {
        value
            .parse::<Address>()
            .map_err(|e| SendError::new(format!("{field} address `{value}`"), e, false))
    };
    Envelope::new(
        Some(address("from", &email.from)?),
        vec![address("to", &email.to)?],
    )
    .map_err(|e| SendError::new("envelope", e, false))
}

impl Mailer for SmtpMailer {
    /// Returns the relay's acceptance reply (e.g. `2.0.0 Ok: queued as 4F2A1`), which names
    /// its queue id; the mail's Message-ID when the reply is empty.
    #[instrument(skip_all, fields(decision_id = %email.id))]
    async fn send(&self, email: &OutgoingEmail) -> Result<String, SendError> {
        let envelope = envelope(email)?;
        match self.transport.send_raw(&envelope, &email.raw).await {
            Ok(reply) => {
                let text = reply.message().collect::<Vec<_>>().join(" ");
                Ok(if text.trim().is_empty() {
                    message_id(email.id)
                } else {
                    text
                })
            }
            Err(e) => {
                let retryable = smtp_retryable(&e);
                Err(SendError::new("SMTP", e, retryable))
            }
        }
    }
}

/// The mailer `nudge serve` was configured with.
#[derive(Debug, Clone)]
pub enum LocalMailer {
    Outbox(OutboxMailer),
    Smtp(SmtpMailer),
}

impl LocalMailer {
    /// Mail written to `dir` (created if missing).
    pub fn outbox(dir: &Path) -> std::io::Result<Self> {
        OutboxMailer::new(dir).map(LocalMailer::Outbox)
    }

    /// Mail sent through the SMTP relay at `url` (see [`SmtpMailer::from_url`]).
    pub fn smtp(url: &str) -> Result<Self, MailConfigError> {
        SmtpMailer::from_url(url).map(LocalMailer::Smtp)
    }
}

impl Mailer for LocalMailer {
    fn keyed_by_decision(&self) -> bool {
        match self {
            LocalMailer::Outbox(m) => m.keyed_by_decision(),
            LocalMailer::Smtp(m) => m.keyed_by_decision(),
        }
    }

    async fn send(&self, email: &OutgoingEmail) -> Result<String, SendError> {
        match self {
            LocalMailer::Outbox(m) => m.send(email).await,
            LocalMailer::Smtp(m) => m.send(email).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nudge_service::email::{build_email, EmailParts};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, SystemTime};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    const ID: DecisionId = DecisionId(0x0000_1111_2222_3333);

    fn mail(id: DecisionId, text: &str) -> OutgoingEmail {
        build_email(&EmailParts {
            id,
            from: "Nudge <hello@example.com>",
            to: "ana@example.org",
            subject: "Finish your profile",
            text,
            html: Some("<p>Two fields left.</p>"),
            unsubscribe_url: "https://nudge.example.com/v1/unsubscribe?token=t",
            unsubscribe_mailto: None,
            date: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        })
        .unwrap()
    }

    /// A fresh, empty folder under the system temp folder, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "nudge-mail-{name}-{}-{}",
                std::process::id(),
                TEMP_SEQ.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            TempDir(dir)
        }

        fn files(&self) -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(&self.0)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The top-level header `name` of a mail, failing unless it appears exactly once.
    fn header(raw: &[u8], name: &str) -> String {
        let text = std::str::from_utf8(raw).unwrap();
        let head = text.split("\r\n\r\n").next().unwrap();
        let found: Vec<&str> = head
            .split("\r\n")
            .filter_map(|line| line.split_once(": "))
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .collect();
        assert_eq!(found.len(), 1, "{name}");
        found[0].to_string()
    }

    #[tokio::test]
    async fn outbox_writes_one_parseable_eml_per_decision() {
        // Given an outbox in a folder that does not exist yet
        let dir = TempDir::new("outbox");
        let outbox = OutboxMailer::new(dir.0.join("outbox")).unwrap();
        let email = mail(ID, "Two fields left.");
        // When a mail is sent
        let provider_id = outbox.send(&email).await.unwrap();
        // Then it is written whole as <decision hex>.eml, named by its Message-ID
        assert_eq!(provider_id, "<0000111122223333@nudge>");
        let path = outbox.path_of(ID);
        assert_eq!(path.file_name().unwrap(), "0000111122223333.eml");
        let written = std::fs::read(&path).unwrap();
        assert_eq!(written, email.raw);
        assert_eq!(header(&written, "Message-ID"), provider_id);
        assert_eq!(header(&written, "To"), "ana@example.org");
        assert!(header(&written, "Content-Type").starts_with("multipart/alternative"));
    }

    #[tokio::test]
    async fn outbox_send_is_idempotent_per_decision() {
        // Given a mail already in the outbox
        let dir = TempDir::new("idempotent");
        let outbox = OutboxMailer::new(&dir.0).unwrap();
        let first = mail(ID, "First version.");
        outbox.send(&first).await.unwrap();
        // When the same decision is sent again (a retry), once more and concurrently
        let again = mail(ID, "Second version.");
        let (a, b) = tokio::join!(outbox.send(&again), outbox.send(&again));
        let c = outbox.send(&again).await;
        // Then each counts as sent, the first file is left as is, and nothing else is there
        for r in [a, b, c] {
            assert_eq!(r.unwrap(), "<0000111122223333@nudge>");
        }
        assert_eq!(std::fs::read(outbox.path_of(ID)).unwrap(), first.raw);
        assert_eq!(dir.files(), vec!["0000111122223333.eml".to_string()]);
        // And another decision gets its own file
        outbox.send(&mail(DecisionId(7), "Other.")).await.unwrap();
        assert_eq!(dir.files().len(), 2);
    }

    #[tokio::test]
    async fn outbox_reports_an_unwritable_folder() {
        // Given an outbox whose folder was replaced by a file
        let dir = TempDir::new("gone");
        let outbox = OutboxMailer::new(dir.0.join("outbox")).unwrap();
        std::fs::remove_dir(outbox.dir()).unwrap();
        std::fs::write(outbox.dir(), b"not a folder").unwrap();
        // When a mail is sent
        let err = outbox.send(&mail(ID, "x")).await.unwrap_err();
        // Then the failure names the outbox path
        assert!(err.to_string().contains("0000111122223333.eml"), "{}", err);
    }

    /// What the fake SMTP server answers to RCPT TO.
    #[derive(Clone, Copy)]
    enum Rcpt {
        Accept,
        Reply(&'static str),
    }

    /// A minimal SMTP server on 127.0.0.1 speaking EHLO/MAIL/RCPT/DATA/RSET/QUIT; returns its
    /// `smtp://` URL and the messages (envelope lines and DATA) it accepted.
    async fn smtp_server(rcpt: Rcpt) -> (String, Arc<Mutex<Vec<(Vec<String>, String)>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("smtp://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let store = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let store = store.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let mut envelope = Vec::new();
                    write.write_all(b"220 test ESMTP ready\r\n").await.unwrap();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                        let reply: &str = match verb.as_str() {
                            "EHLO" | "HELO" => "250 test\r\n",
                            "MAIL" => {
                                envelope = vec![line.clone()];
                                "250 2.1.0 Ok\r\n"
                            }
                            "RCPT" => match rcpt {
                                Rcpt::Accept => {
                                    envelope.push(line.clone());
                                    "250 2.1.5 Ok\r\n"
                                }
                                Rcpt::Reply(r) => r,
                            },
                            "DATA" => {
                                write
                                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                                    .await
                                    .unwrap();
                                let mut data = String::new();
                                while let Ok(Some(l)) = lines.next_line().await {
                                    if l == "." {
                                        break;
                                    }
                                    // Undo the client's dot-stuffing.
                                    data.push_str(l.strip_prefix('.').unwrap_or(&l));
                                    data.push_str("\r\n");
                                }
                                store.lock().unwrap().push((envelope.clone(), data));
                                "250 2.0.0 Ok: queued as TEST42\r\n"
                            }
                            "RSET" | "NOOP" => "250 2.0.0 Ok\r\n",
                            "QUIT" => {
                                let _ = write.write_all(b"221 2.0.0 Bye\r\n").await;
                                return;
                            }
                            _ => "502 5.5.2 Unknown command\r\n",
                        };
                        write.write_all(reply.as_bytes()).await.unwrap();
                    }
                });
            }
        });
        (url, accepted)
    }

    #[tokio::test]
    async fn smtp_sends_the_raw_mail_with_its_envelope() {
        // Given an SMTP server that accepts everything
        let (url, accepted) = smtp_server(Rcpt::Accept).await;
        let mailer = SmtpMailer::from_url(&url).unwrap();
        let email = mail(ID, "Two fields left.\r\n.A line starting with a dot.");
        // When a mail is sent
        let reply = mailer.send(&email).await.unwrap();
        // Then the server got exactly our bytes for the envelope's bare addresses
        assert_eq!(reply, "2.0.0 Ok: queued as TEST42");
        let accepted = accepted.lock().unwrap().clone();
        assert_eq!(accepted.len(), 1);
        let (envelope, data) = &accepted[0];
        assert_eq!(
            envelope,
            &vec![
                "MAIL FROM:<hello@example.com>".to_string(),
                "RCPT TO:<ana@example.org>".to_string()
            ]
        );
        let sent = String::from_utf8(email.raw.clone()).unwrap();
        assert_eq!(data.trim_end_matches("\r\n"), sent.trim_end_matches("\r\n"));
    }

    #[tokio::test]
    async fn smtp_permanent_rejection_is_not_retryable() {
        // Given an SMTP server that rejects the recipient with 550
        let (url, accepted) = smtp_server(Rcpt::Reply("550 5.1.1 No such user\r\n")).await;
        let mailer = SmtpMailer::from_url(&url).unwrap();
        // When a mail is sent
        let err = mailer.send(&mail(ID, "x")).await.unwrap_err();
        // Then the failure is final and carries the server's words
        assert!(!err.retryable, "{err}");
        assert!(err.to_string().contains("No such user"), "{err}");
        assert!(accepted.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn smtp_transient_rejection_is_retryable() {
        // Given an SMTP server that defers the recipient with 451
        let (url, _) = smtp_server(Rcpt::Reply("451 4.7.1 Try again later\r\n")).await;
        let mailer = SmtpMailer::from_url(&url).unwrap();
        // When a mail is sent
        let err = mailer.send(&mail(ID, "x")).await.unwrap_err();
        // Then trying later may help
        assert!(err.retryable, "{err}");
    }

    #[tokio::test]
    async fn smtp_refused_connection_is_retryable() {
        // Given a port nobody listens on
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("smtp://{}", listener.local_addr().unwrap());
        drop(listener);
        let mailer = SmtpMailer::from_url(&url).unwrap();
        // When a mail is sent
        let err = mailer.send(&mail(ID, "x")).await.unwrap_err();
        // Then trying later may help
        assert!(err.retryable, "{err}");
    }

    #[test]
    fn smtp_urls_cover_plain_starttls_and_implicit_tls() {
        // Given the URL forms the docs promise
        // When they are read
        // Then each gives a mailer, and tls=starttls is lettre's tls=required
        for url in [
            "smtp://localhost:1025",
            "smtp://user:p%40ss@mail.example.com:587?tls=starttls",
            "smtp://mail.example.com?tls=opportunistic",
            "smtps://user:pass@mail.example.com",
        ] {
            assert!(SmtpMailer::from_url(url).is_ok(), "{url}");
        }
        assert_eq!(
            lettre_url("smtp://h:587?tls=starttls"),
            "smtp://h:587?tls=required"
        );
        assert_eq!(lettre_url("smtp://h:25"), "smtp://h:25");
    }

    #[test]
    fn bad_smtp_urls_are_refused_without_echoing_the_password() {
        // Given URLs with an unknown scheme or TLS mode
        for url in [
            "ftp://user:hunter2@host",
            "smtp://user:hunter2@host?tls=maybe",
            "not a url",
        ] {
            // When they are read
            let err = SmtpMailer::from_url(url).unwrap_err();
            // Then they are refused, and the password is not in the message
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[tokio::test]
    async fn local_mailer_dispatches_to_the_configured_mailer() {
        // Given a local mailer configured with an outbox
        let dir = TempDir::new("local");
        let mailer = LocalMailer::outbox(&dir.0).unwrap();
        // When a mail is sent
        mailer.send(&mail(ID, "x")).await.unwrap();
        // Then it lands in the outbox
        assert_eq!(dir.files(), vec!["0000111122223333.eml".to_string()]);
    }
}
