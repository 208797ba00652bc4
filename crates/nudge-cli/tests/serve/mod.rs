//! `nudge serve` end to end: a real server process on loopback, driven over HTTP.

mod api;
mod channels;
mod kill_loop;
mod restart;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::TempDir;

pub const WRITE_KEY: &str = "wk_test";
pub const ADMIN_KEY: &str = "ak_test";
pub const INBOX_SECRET: &str = "inbox-secret-for-tests";
pub const SIGNING_SECRET: &str = "signing-secret-for-tests";

/// A small rule set exercising every channel, a timer and the tracking plan. `{hook}` is
/// replaced with the webhook receiver's URL.
pub const RULES: &str = r#"
name: serve-test
settings: {default_timezone: UTC, track_email_opens: true}
tracking_plan:
  allow_unknown_events: true
  events:
    Signed Up: {}
    Mail Again: {}
    Tip Wanted: {}
    Ping: {}
    Hook Me: {}
    Remind Me: {}
    Plan Chosen:
      properties:
        seats: {type: integer, required: true}
triggers:
  welcome:
    on: Signed Up
    send: {channel: email, message: welcome}
  again:
    on: Mail Again
    send: {channel: email, message: welcome}
  tip:
    on: Tip Wanted
    send: {channel: in_app, message: tip}
  ping:
    on: Ping
    send: {channel: in_app, message: tip}
  hook:
    on: Hook Me
    send: {channel: webhook, message: hook}
  later:
    on: Remind Me
    wait: 3s
    send: {channel: in_app, message: reminder}
messages:
  welcome:
    channel: email
    email:
      subject: "Welcome {{ traits.first_name | default: 'there' }}"
      text: "Hello {{ traits.first_name | default: 'there' }}"
      html: "<p>Hello {{ traits.first_name | default: 'there' }}</p><p><a href=\"https://example.com/start?from=mail&amp;step=1\">Start</a> <a href=\"mailto:help@example.com\">Help</a></p>"
  tip:
    channel: in_app
    in_app: {title: Tip, body: A tip, url: "https://example.com/tip"}
  reminder:
    channel: in_app
    in_app: {title: Reminder, body: You asked to be reminded}
  hook:
    channel: webhook
    webhook:
      url: "{hook}"
      body: {user: "{{ user_id }}", kind: hook}
"#;

/// A running `nudge serve`.
pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub data: PathBuf,
    rules: PathBuf,
    args: Vec<String>,
    pub http: reqwest::Client,
    _dir: Option<TempDir>,
}

impl Server {
    /// Starts a server on the test rule set with its own data folder.
    pub fn start(tag: &str, hook_url: &str, extra: &[&str]) -> Server {
        let dir = TempDir::new(tag);
        let rules = dir.path().join("rules");
        std::fs::create_dir_all(&rules).unwrap();
        std::fs::write(rules.join("nudge.yaml"), RULES.replace("{hook}", hook_url)).unwrap();
        let data = dir.path().join("data");
        let mut s = Server {
            child: None,
            base: String::new(),
            data,
            rules,
            args: extra.iter().map(|s| s.to_string()).collect(),
            http: reqwest::Client::new(),
            _dir: Some(dir),
        };
        s.spawn(None);
        s
    }

    fn spawn(&mut self, listen: Option<&str>) {
        assert!(
            self.try_spawn(listen, &[]),
            "nudge serve did not print its address"
        );
    }

    /// Starts the process with `env` added; false if it ended before it was listening.
    fn try_spawn(&mut self, listen: Option<&str>, env: &[(&str, &str)]) -> bool {
        let listen = listen.unwrap_or("127.0.0.1:0").to_string();
        let mut child = Command::new(env!("CARGO_BIN_EXE_nudge"))
            .arg("serve")
            .arg("--rules")
            .arg(&self.rules)
            .arg("--data")
            .arg(&self.data)
            .args(["--listen", &listen])
            .args(["--write-key", WRITE_KEY, "--admin-key", ADMIN_KEY])
            .args([
                "--inbox-secret",
                INBOX_SECRET,
                "--signing-secret",
                SIGNING_SECRET,
            ])
            .args(&self.args)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .env_remove("NUDGE_WRITE_KEY")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nudge serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent {
                    if let Some(rest) = line.split("listening on http://").nth(1) {
                        let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                        let _ = tx.send(addr);
                        sent = true;
                    }
                }
                if std::env::var_os("NUDGE_TEST_SERVER_LOGS").is_some() {
                    eprintln!("[serve] {line}");
                }
            }
        });
        let Ok(addr) = rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        };
        self.base = format!("http://{addr}");
        self.child = Some(child);
        true
    }

    /// Kills the process without warning (SIGKILL).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the same server again on the same address and data.
    pub fn restart(&mut self) {
        let addr = self.base.trim_start_matches("http://").to_string();
        self.kill9();
        self.spawn(Some(&addr));
    }

    /// [`Server::restart`] with `env` added; false if the process ended before it was
    /// listening (a crash point that fired while starting).
    pub fn restart_with(&mut self, env: &[(&str, &str)]) -> bool {
        let addr = self.base.trim_start_matches("http://").to_string();
        self.kill9();
        self.try_spawn(Some(&addr), env)
    }

    /// Waits up to `wait` for the process to end by itself; how it ended, if it did.
    pub fn ended_within(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            let child = self.child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs a tracking call with the write key as Basic username.
    pub async fn track(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .basic_auth(WRITE_KEY, Some(""))
            .json(body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn admin(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .expect("request");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    pub async fn inbox(&self, user: &str, hash_for: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.url(&format!("/v1/users/{user}/inbox")))
            .header("X-User-Hash", user_hash(hash_for))
            .send()
            .await
            .expect("request");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// The user's deliveries once `pred` holds for them (polls up to `wait`).
    pub async fn decisions_until(
        &self,
        user: &str,
        wait: Duration,
        pred: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + wait;
        loop {
            let (_, v) = self
                .admin(&format!("/v1/admin/users/{user}/decisions"))
                .await;
            let list = v["decisions"].as_array().cloned().unwrap_or_default();
            if pred(&list) || Instant::now() > deadline {
                return list;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The `.eml` files in the outbox.
    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The outbox once a mail is in it.
    pub async fn mailed(&self) -> Vec<PathBuf> {
        eventually(Duration::from_secs(10), || async {
            let f = self.outbox();
            (!f.is_empty()).then_some(f)
        })
        .await
        .expect("no email in the outbox")
    }

    pub fn outbox(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.data.join("outbox"))
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The inbox hash the host app computes server-side.
pub fn user_hash(user: &str) -> String {
    nudge_service::signing::inbox_hash(INBOX_SECRET.as_bytes(), user)
}

/// Polls `f` until it returns `Some` or `wait` passes.
pub async fn eventually<T, F, Fut>(wait: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + wait;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn track(user: &str, event: &str, id: &str) -> Value {
    json!({"type": "track", "userId": user, "event": event, "messageId": id})
}
