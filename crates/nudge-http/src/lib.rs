//! nudge's HTTP adapter: signed webhooks sent with reqwest (rustls, one connection pool, no
//! redirects), the [`WebhookTransport`](nudge_service::ports::WebhookTransport) of both
//! deployments. The retry loop and the signing are nudge-service's (`webhook::post_signed`).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use nudge_service::ports::{SendError, WebhookTransport};
use tracing::instrument;

/// Why the webhook HTTP client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum WebhookClientError {
    #[error("cannot build the webhook HTTP client: {0}")]
    Build(#[source] reqwest::Error),
}

/// Webhook transport over one shared reqwest client (rustls, connection pool, no redirects).
#[derive(Debug, Clone)]
pub struct HttpWebhookTransport {
    /// Built at construction ([`HttpWebhookTransport::new`]) or on the first webhook
    /// ([`HttpWebhookTransport::lazy`]); clones share it and its connection pool.
    client: Arc<OnceLock<Result<reqwest::Client, Arc<reqwest::Error>>>>,
}

impl HttpWebhookTransport {
    /// Builds the client now, so that a process that cannot build one fails at start.
    pub fn new() -> Result<Self, WebhookClientError> {
        let client = build_client().map_err(WebhookClientError::Build)?;
        Ok(HttpWebhookTransport {
            client: Arc::new(OnceLock::from(Ok(client))),
        })
    }

    /// Builds the client on the first webhook: a Lambda function whose rules send no webhook
    /// (most) does not pay for it (parsing the TLS roots) at every cold start. Should the
    /// build fail then, each webhook fails as not retryable, with the reason.
    pub fn lazy() -> Self {
        HttpWebhookTransport {
            client: Arc::new(OnceLock::new()),
        }
    }

    fn client(&self) -> Result<&reqwest::Client, SendError> {
        self.client
            .get_or_init(|| build_client().map_err(Arc::new))
            .as_ref()
            .map_err(|e| SendError::new("cannot build the webhook HTTP client", e.clone(), false))
    }
}

fn build_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .use_rustls_tls()
        // A redirect would re-send the signed body to an address nobody configured.
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

impl WebhookTransport for HttpWebhookTransport {
    #[instrument(skip_all, fields(timeout_ms = timeout_ms))]
    async fn post(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
        timeout_ms: u64,
    ) -> Result<u16, SendError> {
        let mut request = self
            .client()?
            .post(url)
            .timeout(Duration::from_millis(timeout_ms))
            .body(body.to_vec());
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        match request.send().await {
            // The body is not read: only the status matters, and dropping it frees the socket.
            Ok(response) => Ok(response.status().as_u16()),
            // A bad URL or header fails the same way every time; the network may recover.
            Err(e) => {
                let retryable = !e.is_builder();
                Err(SendError::new("webhook", e, retryable))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nudge_core::engine::decision::DecisionId;
    use nudge_service::signing::verify_webhook_signature;
    use nudge_service::webhook::{post_signed, RetryPolicy, WebhookFailure, WebhookOutcome};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    const SECRET: &[u8] = b"whsec";
    const ID: DecisionId = DecisionId(0xfeed_beef_0000_0001);

    /// A request as the test server saw it.
    #[derive(Debug, Clone)]
    struct Seen {
        head: String,
        body: Vec<u8>,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<String> {
            self.head.split("\r\n").skip(1).find_map(|line| {
                let (n, v) = line.split_once(':')?;
                n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
        }
    }

    /// What the server does with the n-th request (0-based).
    #[derive(Debug, Clone, Copy)]
    enum Reply {
        Status(u16),
        /// Answer only after this long (to trip the client's timeout).
        Stall(u64, u16),
    }

    /// A one-thread HTTP/1.1 server on 127.0.0.1 answering with `script` in turn (the last
    /// entry repeats) and recording what it received.
    struct Server {
        url: String,
        hits: Arc<AtomicU32>,
        seen: Arc<Mutex<Vec<Seen>>>,
    }

    async fn server(script: Vec<Reply>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicU32::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (h, s) = (hits.clone(), seen.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (h, s, script) = (h.clone(), s.clone(), script.clone());
                tokio::spawn(async move { serve_one(stream, h, s, script).await });
            }
        });
        Server { url, hits, seen }
    }

    async fn serve_one(
        mut stream: TcpStream,
        hits: Arc<AtomicU32>,
        seen: Arc<Mutex<Vec<Seen>>>,
        script: Vec<Reply>,
    ) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        // Read the head, then Content-Length bytes of body.
        let head_end = loop {
            let n = stream.read(&mut chunk).await.unwrap();
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
        };
        let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
        let mut request = Seen {
            head,
            body: Vec::new(),
        };
        let len: usize = request
            .header("content-length")
            .map(|v| v.parse().unwrap())
            .unwrap_or(0);
        let mut body = buf[head_end + 4..].to_vec();
        while body.len() < len {
            let n = stream.read(&mut chunk).await.unwrap();
            body.extend_from_slice(&chunk[..n]);
        }
        request.body = body;
        let n = hits.fetch_add(1, Ordering::SeqCst) as usize;
        seen.lock().unwrap().push(request);
        let reply = script[n.min(script.len() - 1)];
        let status = match reply {
            Reply::Status(s) => s,
            Reply::Stall(ms, s) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                s
            }
        };
        let response =
            format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            attempts: 4,
            first_backoff_ms: 1,
            max_backoff_ms: 5,
            timeout_ms: 2_000,
        }
    }

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    async fn post(server: &Server, policy: &RetryPolicy) -> WebhookOutcome {
        let transport = HttpWebhookTransport::new().unwrap();
        let body = serde_json::json!({"user": "ana", "text": "Grüße"});
        post_signed(&transport, policy, SECRET, &server.url, ID, &body, now).await
    }

    #[tokio::test]
    async fn a_lazy_transport_builds_its_client_on_the_first_webhook_and_keeps_it() {
        // Given a transport whose client is not built yet, and a receiver of two webhooks
        let transport = HttpWebhookTransport::lazy();
        assert!(transport.client.get().is_none());
        let server = server(vec![Reply::Status(204), Reply::Status(200)]).await;
        let body = serde_json::json!({"user": "ana"});
        // When two webhooks are posted through it and a clone of it
        let first = post_signed(&transport, &fast(), SECRET, &server.url, ID, &body, now).await;
        let clone = transport.clone();
        let second = post_signed(&clone, &fast(), SECRET, &server.url, ID, &body, now).await;
        // Then both arrive, over one client that the clones share
        assert_eq!(first.result.unwrap(), 204);
        assert_eq!(second.result.unwrap(), 200);
        assert_eq!(server.seen.lock().unwrap().len(), 2);
        assert!(Arc::ptr_eq(&transport.client, &clone.client));
        assert!(transport.client.get().unwrap().is_ok());
    }

    #[tokio::test]
    async fn delivers_a_signed_webhook_on_first_try() {
        // Given a receiver that answers 204
        let server = server(vec![Reply::Status(204)]).await;
        // When a webhook is posted
        let outcome = post(&server, &fast()).await;
        // Then one try succeeds
        assert_eq!(outcome.attempts, 1);
        assert_eq!(outcome.result.unwrap(), 204);
        // And the receiver got JSON with our headers and a signature it can verify
        let seen = server.seen.lock().unwrap()[0].clone();
        assert!(seen.head.starts_with("POST /hook HTTP/1.1"));
        assert_eq!(seen.header("content-type").unwrap(), "application/json");
        assert_eq!(seen.header("nudge-webhook-id").unwrap(), "feedbeef00000001");
        assert_eq!(
            seen.header("user-agent").unwrap(),
            format!("nudge/{}", env!("CARGO_PKG_VERSION"))
        );
        let body: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
        assert_eq!(body["text"], "Grüße");
        let signature = seen.header("nudge-signature").unwrap();
        assert_eq!(
            verify_webhook_signature(SECRET, &signature, &seen.body, now(), 300),
            Ok(())
        );
        assert!(verify_webhook_signature(b"other", &signature, &seen.body, now(), 300).is_err());
    }

    #[tokio::test]
    async fn retries_after_two_503s_then_succeeds() {
        // Given a receiver that fails twice with 503, then answers 200
        let server = server(vec![
            Reply::Status(503),
            Reply::Status(503),
            Reply::Status(200),
        ])
        .await;
        // When a webhook is posted
        let outcome = post(&server, &fast()).await;
        // Then the third try succeeds
        assert_eq!(outcome.attempts, 3);
        assert_eq!(outcome.result.unwrap(), 200);
        assert_eq!(server.hits.load(Ordering::SeqCst), 3);
        // And every try carried the same webhook id and a valid signature
        let seen = server.seen.lock().unwrap().clone();
        for s in &seen {
            assert_eq!(s.header("nudge-webhook-id").unwrap(), "feedbeef00000001");
            let sig = s.header("nudge-signature").unwrap();
            assert_eq!(
                verify_webhook_signature(SECRET, &sig, &s.body, now(), 300),
                Ok(())
            );
        }
    }

    #[tokio::test]
    async fn retries_throttling_and_request_timeouts() {
        // Given a receiver answering 429, then 408, then 201
        let server = server(vec![
            Reply::Status(429),
            Reply::Status(408),
            Reply::Status(201),
        ])
        .await;
        // When a webhook is posted
        let outcome = post(&server, &fast()).await;
        // Then both are retried
        assert_eq!(outcome.attempts, 3);
        assert_eq!(outcome.result.unwrap(), 201);
    }

    #[tokio::test]
    async fn does_not_retry_a_permanent_400() {
        // Given a receiver that answers 400
        let server = server(vec![Reply::Status(400), Reply::Status(200)]).await;
        // When a webhook is posted
        let outcome = post(&server, &fast()).await;
        // Then it is rejected after one try
        assert_eq!(outcome.attempts, 1);
        assert!(matches!(
            outcome.result,
            Err(WebhookFailure::Rejected { status: 400 })
        ));
        assert_eq!(server.hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn does_not_follow_redirects() {
        // Given a receiver that redirects
        let server = server(vec![Reply::Status(307)]).await;
        // When a webhook is posted
        let outcome = post(&server, &fast()).await;
        // Then the redirect is final, the signed body goes nowhere else
        assert_eq!(outcome.attempts, 1);
        assert!(matches!(
            outcome.result,
            Err(WebhookFailure::Rejected { status: 307 })
        ));
    }

    #[tokio::test]
    async fn retries_a_timed_out_try() {
        // Given a receiver that stalls past the timeout once, then answers 200
        let server = server(vec![Reply::Stall(2_000, 200), Reply::Status(200)]).await;
        let policy = RetryPolicy {
            timeout_ms: 200,
            ..fast()
        };
        // When a webhook is posted
        let outcome = post(&server, &policy).await;
        // Then the timed-out try is retried and the second succeeds
        assert_eq!(outcome.attempts, 2);
        assert_eq!(outcome.result.unwrap(), 200);
    }

    #[tokio::test]
    async fn gives_up_after_the_last_try() {
        // Given a receiver that always answers 500
        let server = server(vec![Reply::Status(500)]).await;
        // When a webhook is posted with 3 tries
        let policy = RetryPolicy {
            attempts: 3,
            ..fast()
        };
        let outcome = post(&server, &policy).await;
        // Then it is exhausted after exactly 3 requests, naming the last error
        assert_eq!(outcome.attempts, 3);
        assert_eq!(server.hits.load(Ordering::SeqCst), 3);
        match outcome.result {
            Err(WebhookFailure::Exhausted { last }) => assert_eq!(last, "HTTP 500"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn retries_a_refused_connection() {
        // Given a port nobody listens on
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        drop(listener);
        let transport = HttpWebhookTransport::new().unwrap();
        // When a webhook is posted there with 2 tries
        let policy = RetryPolicy {
            attempts: 2,
            ..fast()
        };
        let outcome = post_signed(
            &transport,
            &policy,
            SECRET,
            &url,
            ID,
            &serde_json::json!({}),
            now,
        )
        .await;
        // Then both tries are made and the failure is reported as exhausted
        assert_eq!(outcome.attempts, 2);
        assert!(matches!(
            outcome.result,
            Err(WebhookFailure::Exhausted { .. })
        ));
    }

    #[tokio::test]
    async fn does_not_retry_an_invalid_url() {
        // Given a URL reqwest cannot use
        let transport = HttpWebhookTransport::new().unwrap();
        // When a webhook is posted there
        let outcome = post_signed(
            &transport,
            &fast(),
            SECRET,
            "not a url",
            ID,
            &serde_json::json!({}),
            now,
        )
        .await;
        // Then it fails at once as unsendable
        assert_eq!(outcome.attempts, 1);
        assert!(matches!(
            outcome.result,
            Err(WebhookFailure::Unsendable(SendError {
                retryable: false,
                ..
            }))
        ));
    }

    #[tokio::test]
    async fn signs_each_try_with_the_current_time() {
        // Given a receiver failing once, and a clock that moves 100 s between tries
        let server = server(vec![Reply::Status(502), Reply::Status(200)]).await;
        let transport = HttpWebhookTransport::new().unwrap();
        let clock = AtomicU32::new(0);
        let tick = || 1_000 + 100 * i64::from(clock.fetch_add(1, Ordering::SeqCst));
        // When a webhook is posted
        let outcome = post_signed(
            &transport,
            &fast(),
            SECRET,
            &server.url,
            ID,
            &serde_json::json!({"a": 1}),
            tick,
        )
        .await;
        // Then each try carries its own timestamp, each verifying at its time
        assert_eq!(outcome.attempts, 2);
        let seen = server.seen.lock().unwrap().clone();
        for (s, t) in seen.iter().zip([1_000, 1_100]) {
            let sig = s.header("nudge-signature").unwrap();
            assert!(sig.starts_with(&format!("t={t},")), "{sig}");
            assert_eq!(
                verify_webhook_signature(SECRET, &sig, &s.body, t, 0),
                Ok(())
            );
        }
    }
}
