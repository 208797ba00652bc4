//! Test support: one real moto server per test process on 127.0.0.1, SDK configuration
//! pointing at it (built explicitly; the process environment is left alone), and fresh
//! resources per test (a table, a bus routed to an SQS queue, a verified sender),
//! [`stack`]: a whole deployment with its four handlers, and [`calls`]: DynamoDB calls
//! counted.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::config::{Credentials, Region, SharedCredentialsProvider};
use serde_json::{json, Value};

pub(crate) mod calls;
mod one_at_a_time;
pub(crate) mod stack;

/// A running moto server.
pub(crate) struct Moto {
    /// `http://127.0.0.1:PORT`.
    pub(crate) endpoint: String,
    /// The watchdog shell; its stdin is a pipe only this process writes to, so when this
    /// process exits (however it exits) the watchdog reads EOF and stops moto.
    _watchdog: Mutex<Child>,
}

/// Starts moto in the background and stops it when the shell's stdin (fd 3) reaches EOF;
/// the shell itself exits when moto does. `$0` is the binary, `$1` the port.
const WATCHDOG: &str = r#"exec 3<&0
"$0" -H 127.0.0.1 -p "$1" &
pid=$!
(read _ <&3; kill "$pid" 2>/dev/null) &
wait "$pid""#;

static MOTO: OnceLock<Moto> = OnceLock::new();

/// The moto server of this test process, started on first use.
pub(crate) fn moto() -> &'static Moto {
    MOTO.get_or_init(start_moto)
}

/// Where moto_server is: `$NUDGE_MOTO_SERVER`, else `.venv/bin/moto_server` in the crate's
/// directory or one above it (the workspace root), else `moto_server` on `PATH`.
fn moto_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NUDGE_MOTO_SERVER").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in manifest_dir.ancestors() {
        let candidate = dir.join(".venv/bin/moto_server");
        if candidate.is_file() {
            return candidate;
        }
        if dir.join("Cargo.lock").is_file() {
            break; // the workspace root: look no higher
        }
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("moto_server"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("moto_server not found: run scripts/test.sh, which installs it into .venv")
        })
}

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

fn start_moto() -> Moto {
    let binary = moto_binary();
    let port = free_port();
    let log_path = std::env::temp_dir().join(format!("nudge-aws-moto-{}.log", std::process::id()));
    let log = File::create(&log_path).expect("create the moto log");
    let mut watchdog = Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG)
        .arg(&binary)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(log.try_clone().expect("moto log"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if answers_http(port) {
            break;
        }
        let exited = watchdog.try_wait().expect("poll moto");
        if exited.is_some() || Instant::now() > deadline {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            panic!(
                "moto_server ({}) did not start on port {port}: {exited:?}\n{log}",
                binary.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Moto {
        endpoint: format!("http://127.0.0.1:{port}"),
        _watchdog: Mutex::new(watchdog),
    }
}

/// Whether something on the port answers an HTTP request.
fn answers_http(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = "GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    matches!(stream.read(&mut head), Ok(n) if n > 0 && head.starts_with(b"HTTP/"))
}

/// SDK configuration for the moto server: dummy credentials, us-east-1.
pub(crate) fn sdk_config() -> SdkConfig {
    sdk_config_for(&moto().endpoint)
}

/// Like [`sdk_config`], through a proxy that lets one request at a time reach moto, for
/// tests of racing conditional writes (see [`one_at_a_time`]).
pub(crate) fn one_at_a_time_sdk_config() -> SdkConfig {
    let upstream = moto().endpoint.trim_start_matches("http://");
    sdk_config_for(one_at_a_time::endpoint(upstream))
}

fn sdk_config_for(endpoint: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing", "testing", None, None, "moto",
        )))
        .build()
}

/// A name no other test of this process uses.
pub(crate) fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A fresh nudge table on moto, and a client for it.
pub(crate) async fn table() -> (aws_sdk_dynamodb::Client, String) {
    let client = aws_sdk_dynamodb::Client::new(&sdk_config());
    let name = unique("nudge-test");
    nudge_aws::dynamodb::create_table(&client, &name)
        .await
        .expect("create table");
    (client, name)
}

/// An SQS queue on moto, spoken to over its JSON protocol (no SQS SDK in the workspace).
pub(crate) struct Queue {
    pub(crate) url: String,
    pub(crate) arn: String,
}

/// One SQS call; moto routes by the (unverified) SigV4 credential scope.
async fn sqs(action: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(&moto().endpoint)
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/sqs/aws4_request, \
             SignedHeaders=host, Signature=00",
        )
        .header("X-Amz-Target", format!("AmazonSQS.{action}"))
        .header("Content-Type", "application/x-amz-json-1.0")
        .body(body.to_string())
        .send()
        .await
        .expect("SQS request");
    let status = response.status();
    let text = response.text().await.expect("SQS answer");
    assert!(status.is_success(), "SQS {action}: {status} {text}");
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).expect("SQS JSON")
    }
}

/// A fresh SQS queue.
pub(crate) async fn queue() -> Queue {
    let created = sqs("CreateQueue", json!({ "QueueName": unique("nudge-q") })).await;
    let url = created["QueueUrl"].as_str().expect("QueueUrl").to_string();
    let attributes = sqs(
        "GetQueueAttributes",
        json!({ "QueueUrl": url, "AttributeNames": ["QueueArn"] }),
    )
    .await;
    let arn = attributes["Attributes"]["QueueArn"]
        .as_str()
        .expect("QueueArn")
        .to_string();
    Queue { url, arn }
}

impl Queue {
    /// Receives message bodies (as JSON) until `want` arrived or `wait` passed.
    pub(crate) async fn receive(&self, want: usize, wait: Duration) -> Vec<Value> {
        let deadline = Instant::now() + wait;
        let mut bodies = Vec::new();
        while bodies.len() < want && Instant::now() < deadline {
            let answer = sqs(
                "ReceiveMessage",
                json!({ "QueueUrl": self.url, "MaxNumberOfMessages": 10, "VisibilityTimeout": 600 }),
            )
            .await;
            let messages = answer["Messages"].as_array().cloned().unwrap_or_default();
            if messages.is_empty() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            for message in messages {
                let body = message["Body"].as_str().expect("Body");
                bodies.push(serde_json::from_str(body).expect("event JSON"));
            }
        }
        bodies
    }

    /// Every message body (as JSON) in the queue now, each taken once.
    pub(crate) async fn drain(&self) -> Vec<Value> {
        let mut bodies = Vec::new();
        loop {
            let answer = sqs(
                "ReceiveMessage",
                json!({ "QueueUrl": self.url, "MaxNumberOfMessages": 10, "VisibilityTimeout": 3600 }),
            )
            .await;
            let messages = answer["Messages"].as_array().cloned().unwrap_or_default();
            if messages.is_empty() {
                return bodies;
            }
            for message in messages {
                let body = message["Body"].as_str().expect("Body");
                bodies.push(serde_json::from_str(body).expect("event JSON"));
            }
        }
    }
}

/// A fresh EventBridge bus whose `{"source":["nudge"]}` rule targets a fresh SQS queue.
pub(crate) async fn bus_to_queue() -> (String, Queue) {
    let client = aws_sdk_eventbridge::Client::new(&sdk_config());
    let bus = unique("nudge-bus");
    client
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .expect("create bus");
    let queue = route_pattern(&bus, json!({ "source": [nudge_service::bus::SOURCE] })).await;
    (bus, queue)
}

/// A fresh SQS queue that a new rule on `bus` sends nudge's events of these detail-types to.
pub(crate) async fn route(bus: &str, detail_types: &[&str]) -> Queue {
    route_pattern(
        bus,
        json!({ "source": [nudge_service::bus::SOURCE], "detail-type": detail_types }),
    )
    .await
}

/// A fresh SQS queue that a new rule with `pattern` on `bus` targets.
async fn route_pattern(bus: &str, pattern: Value) -> Queue {
    let client = aws_sdk_eventbridge::Client::new(&sdk_config());
    let queue = queue().await;
    let rule = unique("nudge-rule");
    client
        .put_rule()
        .name(&rule)
        .event_bus_name(bus)
        .event_pattern(pattern.to_string())
        .send()
        .await
        .expect("put rule");
    let target = aws_sdk_eventbridge::types::Target::builder()
        .id("queue")
        .arn(&queue.arn)
        .build()
        .expect("target");
    let out = client
        .put_targets()
        .rule(&rule)
        .event_bus_name(bus)
        .targets(target)
        .send()
        .await
        .expect("put targets");
    assert_eq!(out.failed_entry_count, 0, "{out:?}");
    queue
}

/// Everything moto's model dump holds for one service and model (e.g. `ses`/`RawMessage`).
///
/// moto builds the dump by walking every backend while other tests of the process keep
/// changing them, and answers an error page when a model changed under it; the dump is asked
/// for again then.
pub(crate) async fn moto_models(service: &str, model: &str) -> Vec<Value> {
    let url = format!("{}/moto-api/data.json", moto().endpoint);
    let mut last = String::new();
    for _ in 0..5 {
        let reply = reqwest::get(&url).await.expect("moto data.json");
        let status = reply.status();
        let text = reply.text().await.expect("moto data.json body");
        if let (true, Ok(data)) = (status.is_success(), serde_json::from_str::<Value>(&text)) {
            return data[service][model].as_array().cloned().unwrap_or_default();
        }
        last = format!("{status}: {}", text.chars().take(300).collect::<String>());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("moto data.json is not JSON after 5 tries; last answer {last}");
}
