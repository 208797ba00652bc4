//! Real channels: outbox emails with one-click unsubscribe, the per-user inbox, signed
//! webhooks with retries and a dead-letter record, timers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use super::{eventually, track, user_hash, Server, SIGNING_SECRET};

/// What the webhook receiver saw, and the statuses it answers with (then 200).
#[derive(Default)]
struct Receiver {
    seen: Vec<(HeaderMap, Bytes)>,
    script: Vec<u16>,
}

async fn receiver(script: Vec<u16>) -> (String, Arc<Mutex<Receiver>>) {
    let state = Arc::new(Mutex::new(Receiver {
        seen: vec![],
        script,
    }));
    let st = state.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let st = st.clone();
            async move {
                let mut r = st.lock().unwrap();
                r.seen.push((headers, body));
                let status = if r.script.is_empty() {
                    200
                } else {
                    r.script.remove(0)
                };
                StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), state)
}

fn header<'a>(eml: &'a str, name: &str) -> Vec<&'a str> {
    eml.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then_some(v.trim())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn email_goes_to_the_outbox_and_its_one_click_unsubscribe_link_is_honoured() {
    let s = Server::start("email", "http://127.0.0.1:9/none", &[]);
    s.track("/v1/identify", &json!({"userId": "e1", "traits": {"email": "e1@example.com", "first_name": "Eve"}, "messageId": "e1-id"})).await;
    s.track("/v1/track", &track("e1", "Signed Up", "e1-s"))
        .await;
    let files = s.mailed().await;
    assert_eq!(files.len(), 1);
    let eml = std::fs::read_to_string(&files[0]).unwrap();
    assert_eq!(header(&eml, "To"), vec!["e1@example.com"]);
    assert_eq!(header(&eml, "Subject"), vec!["Welcome Eve"]);
    assert_eq!(
        header(&eml, "List-Unsubscribe-Post"),
        vec!["List-Unsubscribe=One-Click"]
    );
    assert!(eml.contains("multipart/alternative"), "{eml}");
    assert!(
        eml.contains("text/plain") && eml.contains("text/html"),
        "{eml}"
    );
    let list = header(&eml, "List-Unsubscribe");
    assert_eq!(list.len(), 1, "{eml}");
    let link = list[0]
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_string();
    assert!(link.starts_with(&s.base), "{link}");

    // A scanner's GET only shows a confirmation page.
    let page = s.http.get(&link).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("<form"));
    // A tampered link is refused.
    let bad = s.http.post(format!("{link}x")).send().await.unwrap();
    assert_eq!(bad.status().as_u16(), 403);
    // RFC 8058 one-click POST.
    let r = s
        .http
        .post(&link)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // The next email to that user is suppressed as unsubscribed; no new file.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        s.track(
            "/v1/track",
            &track(
                "e1",
                "Mail Again",
                &format!("e1-again-{}", deadline.elapsed().as_nanos()),
            ),
        )
        .await;
        let d = s
            .decisions_until("e1", Duration::from_secs(2), |d| {
                d.iter().any(|x| x["trigger"] == "again")
            })
            .await;
        if let Some(x) = d.iter().find(|x| x["trigger"] == "again") {
            assert_eq!(x["status"], "suppressed", "{x}");
            assert_eq!(x["reason"], "unsubscribed", "{x}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no decision for Mail Again"
        );
    }
    assert_eq!(s.outbox().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn inbox_is_per_user_and_needs_that_users_hash() {
    let s = Server::start("inbox", "http://127.0.0.1:9/none", &[]);
    s.track("/v1/track", &track("ua", "Tip Wanted", "ua-1"))
        .await;
    s.track("/v1/track", &track("ub", "Tip Wanted", "ub-1"))
        .await;
    let items = eventually(Duration::from_secs(10), || async {
        let (_, v) = s.inbox("ua", "ua").await;
        let items = v["items"].as_array().cloned().unwrap_or_default();
        (!items.is_empty()).then_some(items)
    })
    .await
    .expect("no inbox item");
    assert_eq!(items[0]["title"], "Tip");
    assert_eq!(items[0]["url"], "https://example.com/tip");
    let id = items[0]["id"].as_str().unwrap().to_string();

    // B's hash does not open A's inbox; no hash, no inbox.
    assert_eq!(s.inbox("ua", "ub").await.0, 403);
    let r = s
        .http
        .get(s.url("/v1/users/ua/inbox"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "missing_user_hash"
    );
    // B cannot touch A's item through B's own inbox either.
    let r = s
        .http
        .post(s.url(&format!("/v1/users/ub/inbox/{id}/dismiss")))
        .header("X-User-Hash", user_hash("ub"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);

    // A marks read, then dismisses.
    let post = |action: &str| {
        s.http
            .post(s.url(&format!("/v1/users/ua/inbox/{id}/{action}")))
            .header("X-User-Hash", user_hash("ua"))
            .send()
    };
    assert_eq!(post("read").await.unwrap().status().as_u16(), 200);
    let (_, v) = s.inbox("ua", "ua").await;
    assert_eq!(v["unread"], 0);
    assert!(v["items"][0]["read_at"].is_string());
    assert_eq!(post("dismiss").await.unwrap().status().as_u16(), 200);
    assert_eq!(s.inbox("ua", "ua").await.1["items"], json!([]));
    // B still has its item.
    assert_eq!(
        s.inbox("ub", "ub").await.1["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Delivered twice (ua, ub), read and dismissed once, counted for the trigger and variant.
    let tip = trigger_report_until(&s, "tip", |t| t["dismissed"] == 1).await;
    assert_eq!(
        (&tip["sent"], &tip["delivered"], &tip["opened"]),
        (&json!(2), &json!(2), &json!(1)),
        "{tip}"
    );
    assert_eq!(tip["variants"][0]["variant"], "default", "{tip}");
    assert_eq!(tip["variants"][0]["dismissed"], 1, "{tip}");
}

/// The report of one trigger, once `done` holds for it (engagement arrives through the bus).
async fn trigger_report_until(s: &Server, trigger: &str, done: impl Fn(&Value) -> bool) -> Value {
    let path = format!("/v1/admin/reports/triggers/{trigger}");
    let found = eventually(Duration::from_secs(10), || async {
        let (status, v) = s.admin(&path).await;
        assert_eq!(status, 200, "{v}");
        let t = v["item"].clone();
        done(&t).then_some(t)
    })
    .await;
    match found {
        Some(t) => t,
        None => panic!(
            "{trigger} never reached the expected counts: {}",
            s.admin(&path).await.1
        ),
    }
}

/// The decoded parts of a mail as lettre writes it (7bit or quoted-printable bodies).
fn mail_text(eml: &str) -> String {
    eml.replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=")
}

#[tokio::test(flavor = "multi_thread")]
async fn email_links_and_the_open_pixel_are_tracked_and_counted() {
    let s = Server::start("email-tracking", "http://127.0.0.1:9/none", &[]);
    s.track(
        "/v1/identify",
        &json!({"userId": "m1", "traits": {"email": "m1@example.com"}, "messageId": "m1-id"}),
    )
    .await;
    s.track("/v1/track", &track("m1", "Signed Up", "m1-s"))
        .await;
    let files = s.mailed().await;
    let eml = mail_text(&std::fs::read_to_string(&files[0]).unwrap());
    // The web link goes through a click link; mailto: stays; the pixel closes the HTML.
    assert!(!eml.contains("https://example.com/start"), "{eml}");
    assert!(eml.contains("href=\"mailto:help@example.com\""), "{eml}");
    let link_at = eml
        .find(&format!("{}/v1/c/", s.base))
        .expect("no click link");
    let link: String = eml[link_at..]
        .chars()
        .take_while(|c| !matches!(c, '"' | '<' | '>') && !c.is_whitespace())
        .collect();
    let pixel_at = eml
        .find(&format!("{}/v1/o/", s.base))
        .expect("no open pixel");
    let pixel: String = eml[pixel_at..].chars().take_while(|c| *c != '"').collect();
    assert!(pixel.ends_with(".gif"), "{pixel}");

    // The click redirects to the URL the message had (entities decoded) and is recorded.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for _ in 0..2 {
        let r = no_redirects.get(&link).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 302);
        assert_eq!(
            r.headers()["location"],
            "https://example.com/start?from=mail&step=1"
        );
    }
    // A forged click link: a page, no redirect.
    let forged = format!("{}x", &link[..link.len() - 1]);
    let r = no_redirects.get(&forged).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.headers().get("location").is_none());

    // The pixel is a GIF, loaded as often as the mail is looked at, counted once.
    for _ in 0..3 {
        let r = s.http.get(&pixel).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(r.headers()["content-type"], "image/gif");
        assert_eq!(&r.bytes().await.unwrap()[..6], b"GIF89a");
    }
    // A click token is not an open pixel.
    let token = link.rsplit('/').next().unwrap();
    let r = s
        .http
        .get(s.url(&format!("/v1/o/{token}.gif")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);

    let welcome = trigger_report_until(&s, "welcome", |t| {
        t["clicked"] == 1 && t["opened"] == 1 && t["delivered"] == 1
    })
    .await;
    assert_eq!(
        (&welcome["sent"], &welcome["failed"]),
        (&json!(1), &json!(0)),
        "{welcome}"
    );
    // Clicked and opened once each, however often the link and pixel were loaded.
    assert_eq!(welcome["variants"][0]["clicked"], 1, "{welcome}");

    // The engagement events are the user's: rules may use them, support can read them.
    let (_, user) = s.admin("/v1/admin/users/m1/decisions").await;
    assert_eq!(user["decisions"][0]["status"], "sent", "{user}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_email_is_counted_as_failed() {
    let s = Server::start("email-failed", "http://127.0.0.1:9/none", &[]);
    // No `email` trait: the mail cannot be sent.
    s.track("/v1/track", &track("m2", "Signed Up", "m2-s"))
        .await;
    let welcome = trigger_report_until(&s, "welcome", |t| t["failed"] == 1).await;
    assert_eq!(
        (&welcome["sent"], &welcome["delivered"]),
        (&json!(1), &json!(0)),
        "{welcome}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_are_signed_and_retried_then_dead_lettered() {
    let (hook, rx) = receiver(vec![503, 503]).await;
    let s = Server::start(
        "webhook",
        &hook,
        &["--webhook-attempts", "3", "--webhook-backoff-ms", "50"],
    );
    s.track("/v1/track", &track("w1", "Hook Me", "w1-h")).await;
    let d = s
        .decisions_until("w1", Duration::from_secs(15), |d| {
            d.iter().any(|x| x["status"] != "sending")
        })
        .await;
    assert_eq!(d[0]["status"], "sent", "{d:?}");
    assert_eq!(d[0]["attempts"], 3, "{d:?}");
    {
        let r = rx.lock().unwrap();
        assert_eq!(r.seen.len(), 3);
        let (headers, body) = &r.seen[2];
        let sig = headers["nudge-signature"].to_str().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        nudge_service::signing::verify_webhook_signature(
            SIGNING_SECRET.as_bytes(),
            sig,
            body,
            now,
            300,
        )
        .expect("signature verifies");
        assert!(
            nudge_service::signing::verify_webhook_signature(b"other", sig, body, now, 300)
                .is_err()
        );
        let json: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(json, json!({"user": "w1", "kind": "hook"}));
        // Every attempt carries the same id, for the receiver to dedupe on.
        let ids: Vec<_> = r
            .seen
            .iter()
            .map(|(h, _)| h["nudge-webhook-id"].clone())
            .collect();
        assert!(ids.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(ids[0].to_str().unwrap(), d[0]["id"].as_str().unwrap());
    }

    // A receiver that keeps failing: after the last attempt the send is recorded as failed.
    rx.lock().unwrap().script = vec![500; 10];
    s.track("/v1/track", &track("w2", "Hook Me", "w2-h")).await;
    let d = s
        .decisions_until("w2", Duration::from_secs(15), |d| {
            d.iter().any(|x| x["status"] != "sending")
        })
        .await;
    assert_eq!(d[0]["status"], "failed", "{d:?}");
    assert_eq!(d[0]["attempts"], 3);
    assert!(d[0]["error"].as_str().unwrap().contains("500"), "{d:?}");
    let metrics = s.metrics().await;
    assert!(
        metrics.contains("nudge_sends_total{channel=\"webhook\",outcome=\"failed\",reason=\"\"} 1"),
        "{metrics}"
    );
    // Webhook Delivered for w1, Webhook Failed for w2, as the report counts them.
    let hook = trigger_report_until(&s, "hook", |t| t["failed"] == 1).await;
    assert_eq!(
        (&hook["sent"], &hook["delivered"]),
        (&json!(2), &json!(1)),
        "{hook}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timer_fires_once_within_a_second_of_its_due_time() {
    let s = Server::start("timer", "http://127.0.0.1:9/none", &[]);
    s.track("/v1/track", &track("t1", "Remind Me", "t1-r"))
        .await;
    // Sent twice (an SDK retry): still one timer, one reminder.
    s.track("/v1/track", &track("t1", "Remind Me", "t1-r"))
        .await;
    let items = eventually(Duration::from_secs(15), || async {
        let (_, v) = s.inbox("t1", "t1").await;
        let items = v["items"].as_array().cloned().unwrap_or_default();
        (!items.is_empty()).then_some(items)
    })
    .await
    .expect("the reminder never came");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, v) = s.inbox("t1", "t1").await;
    assert_eq!(v["items"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(items[0]["title"], "Reminder");
    // Lateness as the server measured it: every firing within the 1.024 s bucket.
    let text = s.metrics().await;
    let count = metric(&text, "nudge_timer_lateness_seconds_count");
    let within = metric(&text, "nudge_timer_lateness_seconds_bucket{le=\"1.024\"}");
    assert!(count >= 1.0, "{text}");
    assert_eq!(within, count, "{text}");
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name)
                .map(|v| v.trim().parse().unwrap_or(f64::NAN))
        })
        .unwrap_or(f64::NAN)
}
