//! The HTTP API contract: every rejection, the admin endpoints, GDPR erase, health, metrics.

use std::time::Duration;

use serde_json::{json, Value};

use super::{eventually, track, user_hash, Server, ADMIN_KEY, WRITE_KEY};

async fn raw(s: &Server, path: &str, auth: Option<&str>, body: Vec<u8>) -> (u16, Value) {
    let mut req = s
        .http
        .post(s.url(path))
        .header("content-type", "application/json")
        .body(body);
    if let Some(k) = auth {
        req = req.basic_auth(k, Some(""));
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn assert_error(got: &(u16, Value), status: u16, code: &str) {
    assert_eq!(got.0, status, "{got:?}");
    assert_eq!(got.1["success"], false, "{got:?}");
    assert_eq!(got.1["error"], code, "{got:?}");
    assert!(
        got.1["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{got:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_rejection_is_a_4xx_with_a_json_body_naming_the_problem() {
    let s = Server::start("rejections", "http://127.0.0.1:9/none", &[]);
    let ok = serde_json::to_vec(&json!({"userId": "u1", "event": "Signed Up"})).unwrap();

    // Write key: missing, unknown; accepted as Basic username or `writeKey` in the body.
    assert_error(
        &raw(&s, "/v1/track", None, ok.clone()).await,
        401,
        "missing_write_key",
    );
    assert_error(
        &raw(&s, "/v1/track", Some("nope"), ok.clone()).await,
        401,
        "unknown_write_key",
    );
    assert_eq!(
        raw(&s, "/v1/track", Some(WRITE_KEY), ok.clone()).await.1,
        json!({"success": true})
    );
    let in_body =
        serde_json::to_vec(&json!({"userId": "u1", "event": "X", "writeKey": WRITE_KEY})).unwrap();
    assert_eq!(raw(&s, "/v1/track", None, in_body).await.0, 200);

    // Body: malformed JSON, not an object, oversize (single and batch), bad batch.
    assert_error(
        &raw(&s, "/v1/track", Some(WRITE_KEY), b"{\"userId\":".to_vec()).await,
        400,
        "malformed_json",
    );
    assert_error(
        &raw(&s, "/v1/track", Some(WRITE_KEY), b"[1,2]".to_vec()).await,
        400,
        "not_an_object",
    );
    let big = json!({"userId": "u1", "event": "X", "properties": {"p": "a".repeat(33 * 1024)}});
    assert_error(
        &raw(
            &s,
            "/v1/track",
            Some(WRITE_KEY),
            serde_json::to_vec(&big).unwrap(),
        )
        .await,
        413,
        "payload_too_large",
    );
    let huge = json!({"batch": (0..20).map(|_| json!({"type":"track","userId":"u1","event":"X","properties":{"p":"a".repeat(30_000)}})).collect::<Vec<_>>()});
    assert_error(
        &raw(
            &s,
            "/v1/batch",
            Some(WRITE_KEY),
            serde_json::to_vec(&huge).unwrap(),
        )
        .await,
        413,
        "payload_too_large",
    );
    // Far over the limit: the server reads on (and throws away) what the client sends before
    // answering, so the client reads the 413 instead of a reset connection, every time.
    for _ in 0..20 {
        let way_too_big = vec![b' '; 2 * 1024 * 1024];
        assert_error(
            &raw(&s, "/v1/batch", Some(WRITE_KEY), way_too_big).await,
            413,
            "payload_too_large",
        );
    }
    assert_error(
        &raw(&s, "/v1/batch", Some(WRITE_KEY), b"{\"batch\":{}}".to_vec()).await,
        400,
        "invalid_batch",
    );

    // Message: no userId nor anonymousId; wrong type per tracking plan; bad type field.
    let r = s.track("/v1/track", &json!({"event": "Signed Up"})).await;
    assert_error(&r, 400, "invalid_event");
    assert_eq!(r.1["errors"][0]["field"], "userId");
    let r = s
        .track(
            "/v1/track",
            &json!({"userId": "u1", "event": "Plan Chosen", "properties": {"seats": "ten"}}),
        )
        .await;
    assert_error(&r, 400, "invalid_event");
    assert_eq!(r.1["errors"][0]["field"], "properties.seats", "{r:?}");
    let r = s
        .track(
            "/v1/identify",
            &json!({"userId": "u1", "type": "track", "event": "X"}),
        )
        .await;
    assert_error(&r, 400, "invalid_event");
    let r = s
        .track(
            "/v1/track",
            &json!({"userId": "u1", "event": "X", "timestamp": "yesterday"}),
        )
        .await;
    assert_error(&r, 400, "invalid_event");
    assert_eq!(r.1["errors"][0]["field"], "timestamp");

    // Batch: good messages are kept, bad ones reported by index and messageId.
    let r = s
        .track(
            "/v1/batch",
            &json!({"batch": [
                track("b1", "Tip Wanted", "b-ok-1"),
                {"type": "track", "event": "No User", "messageId": "b-bad"},
                {"type": "track", "userId": "b1", "event": "Plan Chosen", "properties": {"seats": 2}, "messageId": "b-ok-2"},
                {"type": "track", "userId": "b1", "event": "X", "properties": {"p": "a".repeat(33 * 1024)}, "messageId": "b-big"},
            ]}),
        )
        .await;
    assert_error(&r, 400, "invalid_events");
    assert_eq!(r.1["accepted"], 2);
    let rejected: Vec<(u64, &str)> = r.1["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["index"].as_u64().unwrap(),
                x["messageId"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(rejected, vec![(1, "b-bad"), (3, "b-big")]);
    // The accepted tip reached the inbox.
    let got = eventually(Duration::from_secs(10), || async {
        let (_, v) = s.inbox("b1", "b1").await;
        (v["items"].as_array().map_or(0, Vec::len) == 1).then_some(v)
    })
    .await;
    assert!(got.is_some(), "the batch's good message was not applied");

    // Gzipped bodies (RudderStack SDKs compress) are accepted; broken gzip is named.
    let gz = |bytes: &[u8]| {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    };
    let send_gz = |body: Vec<u8>| {
        s.http
            .post(s.url("/v1/batch"))
            .basic_auth(WRITE_KEY, Some(""))
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(body)
            .send()
    };
    let batch =
        serde_json::to_vec(&json!({"batch": [track("gz1", "Tip Wanted", "gz-1")]})).unwrap();
    let r = send_gz(gz(&batch)).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = send_gz(b"not gzip".to_vec()).await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "malformed_gzip");

    // Routing: unknown path, wrong method, both JSON.
    let r = s.http.get(s.url("/v1/nope")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "not_found");
    let r = s.http.get(s.url("/v1/track")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "method_not_allowed"
    );

    // Rejections are counted.
    let metrics = s.metrics().await;
    assert!(
        metrics.contains("nudge_events_rejected_total{reason=\"unknown_write_key\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("nudge_events_accepted_total"), "{metrics}");
}

/// Deliver records a decision as "sending" before it sends and "sent" (or another outcome)
/// after: a decision list is settled once its newest entry is past "sending".
fn settled(d: &[Value]) -> bool {
    d.first().is_some_and(|x| x["status"] != "sending")
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_endpoints_need_the_admin_key_and_show_state_timers_decisions_and_explain() {
    let s = Server::start("admin", "http://127.0.0.1:9/none", &[]);
    assert_eq!(s.admin("/v1/admin/users/a1").await.0, 404, "unknown user");
    // Without the key, or with a wrong one, every admin path is refused alike, whether it
    // exists or not: one status, one body, one challenge; none is told apart.
    let mut answers = std::collections::BTreeSet::new();
    for path in [
        "/v1/admin",
        "/v1/admin/",
        "/v1/admin/nothing/here",
        "/v1/admin/users/a1",
        "/v1/admin/users/a1/decisions",
        "/v1/admin/users/a1/bogus",
        "/v1/admin/reports",
        "/v1/admin/reports/triggers/nope",
    ] {
        for method in [
            reqwest::Method::GET,
            reqwest::Method::POST,
            reqwest::Method::DELETE,
        ] {
            for key in [
                None,
                Some("wrong"),
                Some(""),
                Some("ak_tes"),
                Some("ak_test2"),
            ] {
                let mut req = s.http.request(method.clone(), s.url(path));
                if let Some(k) = key {
                    req = req.bearer_auth(k);
                }
                let r = req.send().await.unwrap();
                let challenge = r.headers()["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .to_string();
                let status = r.status().as_u16();
                let body = r.text().await.unwrap();
                answers.insert((status, challenge, body));
            }
        }
    }
    assert_eq!(answers.len(), 1, "{answers:?}");
    let (status, _, body) = answers.into_iter().next().unwrap();
    assert_eq!(status, 401);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"],
        "invalid_admin_key"
    );

    s.track(
        "/v1/identify",
        &json!({"userId": "a1", "traits": {"email": "a1@example.com", "first_name": "Ann"}}),
    )
    .await;
    s.track("/v1/track", &track("a1", "Remind Me", "a1-r"))
        .await;
    s.track("/v1/track", &track("a1", "Tip Wanted", "a1-t"))
        .await;
    let d = s
        .decisions_until("a1", Duration::from_secs(10), settled)
        .await;
    assert_eq!(d[0]["trigger"], "tip");
    assert_eq!(d[0]["status"], "sent");

    // The timer is set by schedule-delay from the bus, after the decisions: wait for it.
    let timers = eventually(Duration::from_secs(10), || async {
        let (status, timers) = s.admin("/v1/admin/users/a1/timers").await;
        assert_eq!(status, 200);
        timers["timer"]["due"].is_string().then_some(timers)
    })
    .await;
    assert!(timers.is_some(), "the timer of `Remind Me` never showed");

    let (status, user) = s.admin("/v1/admin/users/a1").await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["user"]["traits"]["first_name"], "Ann");
    assert!(user["version"].as_u64().unwrap() >= 1);

    let (status, x) = s.admin("/v1/admin/users/a1/explain?trigger=later").await;
    assert_eq!(status, 200, "{x}");
    assert_eq!(x["triggers"][0]["id"], "later");
    let (status, x) = s.admin("/v1/admin/users/a1/explain?trigger=nope").await;
    assert_eq!(status, 404, "{x}");
    assert!(x["message"].as_str().unwrap().contains("nope"));
    let _ = ADMIN_KEY;
}

#[tokio::test(flavor = "multi_thread")]
async fn gdpr_delete_removes_state_timers_inbox_and_delivery_log() {
    let s = Server::start("gdpr", "http://127.0.0.1:9/none", &[]);
    for u in ["g1", "g2"] {
        s.track("/v1/track", &track(u, "Tip Wanted", &format!("{u}-t")))
            .await;
        s.track("/v1/track", &track(u, "Remind Me", &format!("{u}-r")))
            .await;
    }
    for u in ["g1", "g2"] {
        s.decisions_until(u, Duration::from_secs(10), settled).await;
    }
    let r = s
        .http
        .delete(s.url("/v1/admin/users/g1"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(s.admin("/v1/admin/users/g1").await.0, 404);
    assert_eq!(
        s.admin("/v1/admin/users/g1/timers").await.1["timer"],
        Value::Null
    );
    assert_eq!(
        s.admin("/v1/admin/users/g1/decisions").await.1["decisions"],
        json!([])
    );
    assert_eq!(s.inbox("g1", "g1").await.1["items"], json!([]));
    // The other user is untouched.
    assert_eq!(s.admin("/v1/admin/users/g2").await.0, 200);
    assert_eq!(
        s.inbox("g2", "g2").await.1["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(s.admin("/v1/admin/users/g2/timers").await.1["timer"]["due"].is_string());
    // Deletion without the admin key is refused.
    let r = s
        .http
        .delete(s.url("/v1/admin/users/g2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_metrics() {
    let s = Server::start("health", "http://127.0.0.1:9/none", &[]);
    let r = s.http.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "ok");
    s.track("/v1/track", &track("h1", "Tip Wanted", "h1-t"))
        .await;
    s.decisions_until("h1", Duration::from_secs(10), settled)
        .await;
    let families = [
        "nudge_events_accepted_total 1",
        "nudge_triggers_fired_total{trigger=\"tip\",variant=\"default\"} 1",
        "nudge_sends_total{channel=\"in_app\",outcome=\"sent\",reason=\"\"} 1",
        "nudge_handler_latency_seconds_bucket{le=",
        "nudge_timer_lateness_seconds_count",
    ];
    // The delivery log shows the send a moment before deliver counts it.
    let complete = eventually(Duration::from_secs(10), || async {
        let text = s.metrics().await;
        families.iter().all(|f| text.contains(f)).then_some(text)
    })
    .await;
    if complete.is_none() {
        let text = s.metrics().await;
        let missing: Vec<&&str> = families.iter().filter(|f| !text.contains(**f)).collect();
        panic!("{missing:?} missing:\n{text}");
    }
    let _ = user_hash;
}

/// `nudge serve`'s own routes (metrics, the inbox stream, the demo) refuse other methods as the
/// API does, in JSON with `Allow`, and a user id that is not UTF-8 once decoded is refused in
/// JSON on the stream too (axum's path extraction used to answer it in plain text).
#[tokio::test(flavor = "multi_thread")]
async fn serve_routes_answer_other_methods_and_odd_paths_in_json_like_the_api() {
    let s = Server::start("serve-routes", "http://127.0.0.1:9/none", &[]);
    for (method, path, allow) in [
        (reqwest::Method::POST, "/metrics", "GET"),
        (reqwest::Method::DELETE, "/demo", "GET"),
        (reqwest::Method::GET, "/demo/session", "POST"),
        (reqwest::Method::PUT, "/v1/users/u1/inbox/stream", "GET"),
        (reqwest::Method::PATCH, "/v1/track", "POST"),
    ] {
        let r = s
            .http
            .request(method.clone(), s.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 405, "{method} {path}");
        assert_eq!(r.headers()["allow"], allow, "{method} {path}");
        assert_eq!(r.headers()["content-type"], "application/json");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "method_not_allowed", "{method} {path}");
    }
    let r = s
        .http
        .get(s.url("/v1/users/%FF%FE/inbox/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "missing_user_hash"
    );
    // An empty path parameter names nothing.
    let r = s.http.get(s.url("/v1/users//inbox")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "not_found");
    // The description is served, as kept in the repository.
    let r = s.http.get(s.url("/openapi.json")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let served: Value = r.json().await.unwrap();
    let kept: Value =
        serde_json::from_str(include_str!("../../../../schema/openapi.json")).unwrap();
    assert_eq!(served, kept);
}
