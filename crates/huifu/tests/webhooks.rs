//! Webhooks on the real binary, with real receivers on loopback: endpoints and their secrets,
//! signed deliveries in sequence, retries, `410 Gone`, kill -9 and restart, and the refusal of
//! private addresses without `--webhooks-allow-private`.

#[path = "support/webhooks.rs"]
mod hooks;
mod support;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hooks::{events_by_sequence, sequences, signed_by, Delivery, Receiver};
use serde_json::{json, Value};
use support::{Server, UNLIMITED};

const ADMIN: &str = "test-admin-key-0123456789";

fn start(dir: &std::path::Path, allow_private: bool) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_huifu"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(["--key-rate-per-second", UNLIMITED])
        .env("HUIFU_ADMIN_KEY", ADMIN)
        .stderr(Stdio::null());
    if allow_private {
        command.arg("--webhooks-allow-private");
    }
    Server::spawn(command)
}

fn call(s: &Server, method: &str, path: &str, key: &str, body: Option<Value>) -> (u16, Value) {
    let text = body.map(|b| b.to_string());
    s.request(method, path, Some(key), None, text.as_deref().map(|t| ("application/json", t)))
}

fn ok(s: &Server, path: &str, body: Value) -> Value {
    let (status, v) = call(s, "POST", path, ADMIN, Some(body));
    assert_eq!(status, 200, "POST {path}: {v}");
    v
}

fn get(s: &Server, path: &str) -> Value {
    let (status, v) = call(s, "GET", path, ADMIN, None);
    assert_eq!(status, 200, "GET {path}: {v}");
    v
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_owned()
}

fn pay(s: &Server, (user, merchant, rider): &(String, String, String)) -> String {
    let body = json!({"user": user, "merchant": merchant, "rider": rider, "food_amount": 100,
        "delivery_fee": 10, "currency": "CNY"});
    id(&ok(s, "/v1/payments", body))
}

#[test]
fn a_merchants_endpoint_gets_each_payment_signed_and_in_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), true);
    let w = s.paying_merchant(ADMIN);
    let receiver = Receiver::start(|_, _| (200, vec![]));
    let endpoint = ok(
        &s,
        "/v1/webhook_endpoints",
        json!({"url": receiver.url, "enabled_events": ["payment.succeeded", "refund.succeeded"],
               "merchant": w.1, "description": "orders"}),
    );
    let secret = endpoint["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{endpoint}");
    assert_eq!(endpoint["merchant"], w.1.as_str());
    assert_eq!(endpoint["status"], "enabled");
    // The secret is shown once.
    let shown = get(&s, &format!("/v1/webhook_endpoints/{}", id(&endpoint)));
    assert!(shown.get("secret").is_none(), "{shown}");

    let payments: Vec<String> = (0..30).map(|_| pay(&s, &w)).collect();
    let refund = ok(&s, "/v1/refunds", json!({"payment": payments[0], "amount": 50}));
    let got = receiver.wait(Duration::from_secs(20), |got| sequences(got).len() == 31);
    assert_eq!(sequences(&got), (1..=31).collect::<Vec<u64>>());
    for d in &got {
        assert!(signed_by(d, &secret), "a bad signature: {:?}", d.headers);
        assert_eq!(d.json["endpoint"], id(&endpoint));
        assert_eq!(d.headers["webhook-id"], d.json["id"]);
        let age = d.headers["webhook-timestamp"].parse::<u64>().unwrap();
        assert!(age > 1_700_000_000);
    }
    let paid: std::collections::BTreeSet<String> = got
        .iter()
        .filter(|d| d.json["type"] == "payment.succeeded")
        .map(|d| d.json["data"]["object"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(paid, payments.iter().cloned().collect());
    let refunded: Vec<&Delivery> =
        got.iter().filter(|d| d.json["type"] == "refund.succeeded").collect();
    assert_eq!(refunded[0].json["data"]["object"]["id"], refund["id"]);
    // `payment.refunded` was not asked for.
    assert!(got.iter().all(|d| d.json["type"] != "payment.refunded"));

    // The event is there to fetch, the same as delivered but for the endpoint's fields.
    let event = get(&s, &format!("/v1/events/{}", refunded[0].json["id"].as_str().unwrap()));
    assert_eq!(event["type"], "refund.succeeded");
    assert_eq!(event["data"], refunded[0].json["data"]);
    let shown = receiver.wait(Duration::from_secs(5), |_| {
        get(&s, &format!("/v1/webhook_endpoints/{}", id(&endpoint)))["delivered_sequence"] == 31
    });
    assert!(!shown.is_empty());
    // What was missed can be listed: the payments' events, oldest first, page by page.
    let page = get(&s, "/v1/events?type=payment.succeeded&limit=20");
    assert_eq!(page["has_more"], true, "{page}");
    let first: Vec<Value> = page["data"].as_array().unwrap().clone();
    assert_eq!(first.len(), 20);
    let last = first[19]["id"].as_str().unwrap();
    let rest = get(&s, &format!("/v1/events?type=payment.succeeded&starting_after={last}"));
    assert_eq!(rest["has_more"], false, "{rest}");
    let listed: Vec<String> = first
        .iter()
        .chain(rest["data"].as_array().unwrap())
        .map(|e| e["data"]["object"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, payments);
    let (status, bad) = call(&s, "GET", "/v1/events?type=payment.made", ADMIN, None);
    assert_eq!((status, bad["error"]["code"].as_str()), (400, Some("invalid_parameter")));

    let attempts = get(&s, &format!("/v1/webhook_endpoints/{}/attempts", id(&endpoint)));
    assert_eq!(attempts["data"][0]["status"], "succeeded", "{attempts}");
    assert_eq!(attempts["data"][0]["response_status"], 200);
}

#[test]
fn endpoints_are_kept_to_their_owner_and_refused_on_private_networks_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), false);
    let (status, v) = call(
        &s,
        "POST",
        "/v1/webhook_endpoints",
        ADMIN,
        Some(json!({"url": "http://127.0.0.1:9/hook", "enabled_events": ["*"]})),
    );
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("url_not_allowed")), "{v}");
    for (body, code) in [
        (json!({"url": "ftp://example.com/", "enabled_events": ["*"]}), "invalid_url"),
        (json!({"url": "https://93.184.215.14/", "enabled_events": []}), "invalid_events"),
        (
            json!({"url": "https://93.184.215.14/", "enabled_events": ["payment.made"]}),
            "invalid_events",
        ),
    ] {
        let (status, v) = call(&s, "POST", "/v1/webhook_endpoints", ADMIN, Some(body));
        assert_eq!((status, v["error"]["code"].as_str()), (400, Some(code)), "{v}");
    }
    assert_eq!(get(&s, "/v1/webhook_endpoints")["data"], json!([]));
    s.kill();

    // Allowed to loopback (port 9 refuses connections: nothing leaves the machine).
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), true);
    let w = s.paying_merchant(ADMIN);
    // A merchant's key makes endpoints for itself and sees only its own.
    let key = ok(&s, "/v1/api_keys", json!({"role": "merchant", "merchant": w.1}));
    let merchant_key = key["key"].as_str().unwrap().to_owned();
    let platform = ok(
        &s,
        "/v1/webhook_endpoints",
        json!({"url": "http://127.0.0.1:9/all", "enabled_events": ["*"]}),
    );
    assert_eq!(platform["merchant"], Value::Null);
    assert_eq!(platform["enabled_events"], json!(["*"]));
    let (status, own) = call(
        &s,
        "POST",
        "/v1/webhook_endpoints",
        &merchant_key,
        Some(json!({"url": "http://127.0.0.1:9/mine", "enabled_events": ["payout.paid"]})),
    );
    assert_eq!(status, 200, "{own}");
    assert_eq!(own["merchant"], w.1.as_str());
    let (_, list) = call(&s, "GET", "/v1/webhook_endpoints", &merchant_key, None);
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
    let (status, _) =
        call(&s, "GET", &format!("/v1/webhook_endpoints/{}", id(&platform)), &merchant_key, None);
    assert_eq!(status, 404);
    assert_eq!(get(&s, "/v1/webhook_endpoints")["data"].as_array().unwrap().len(), 2);

    // Update, disable, enable, delete.
    let path = format!("/v1/webhook_endpoints/{}", id(&own));
    let updated = ok(&s, &path, json!({"disabled": true, "description": "payouts"}));
    assert_eq!(
        (updated["status"].as_str(), updated["disabled_reason"].as_str()),
        (Some("disabled"), Some("requested"))
    );
    let updated = ok(&s, &path, json!({"disabled": false}));
    assert_eq!(updated["status"], "enabled");
    assert_eq!(updated["description"], "payouts");
    let (status, deleted) = call(&s, "DELETE", &path, ADMIN, None);
    assert_eq!((status, deleted["deleted"].as_bool()), (200, Some(true)));
    assert_eq!(call(&s, "GET", &path, ADMIN, None).0, 404);

    // A retry with the same idempotency key gets the same endpoint and secret.
    let body = json!({"url": "http://127.0.0.1:9/again", "enabled_events": ["*"]}).to_string();
    let first = s.request(
        "POST",
        "/v1/webhook_endpoints",
        Some(ADMIN),
        Some("k1"),
        Some(("application/json", &body)),
    );
    let again = s.request(
        "POST",
        "/v1/webhook_endpoints",
        Some(ADMIN),
        Some("k1"),
        Some(("application/json", &body)),
    );
    assert_eq!(first, again);
    assert_eq!(first.0, 200);
}

#[test]
fn a_failed_delivery_is_retried_in_order_and_410_disables_the_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), true);
    let w = s.paying_merchant(ADMIN);
    // The first attempt of sequence 2 fails with a 500.
    let twos = AtomicUsize::new(0);
    let flaky = Receiver::start(move |d, _| {
        let first_of_two = d.json["sequence"] == 2 && twos.fetch_add(1, Ordering::SeqCst) == 0;
        (if first_of_two { 500 } else { 200 }, vec![])
    });
    let endpoint = ok(
        &s,
        "/v1/webhook_endpoints",
        json!({"url": flaky.url, "enabled_events": ["*"], "merchant": w.1}),
    );
    let gone = Receiver::start(|_, _| (410, vec![]));
    let gone_endpoint = ok(
        &s,
        "/v1/webhook_endpoints",
        json!({"url": gone.url, "enabled_events": ["*"], "merchant": w.1}),
    );
    for _ in 0..3 {
        pay(&s, &w);
    }
    // Sequence 2 failed at first: it comes again about 5 s later, and 3 is delivered in order
    // after it at the latest.
    let got = flaky.wait(Duration::from_secs(30), |got| {
        got.iter().filter(|d| d.json["sequence"] == 2).count() >= 2 && sequences(got) == [1, 2, 3]
    });
    let twos: Vec<&Delivery> = got.iter().filter(|d| d.json["sequence"] == 2).collect();
    assert_eq!(twos[0].json["id"], twos[1].json["id"]);
    let attempts = get(&s, &format!("/v1/webhook_endpoints/{}/attempts", id(&endpoint)));
    let failed: Vec<&Value> =
        attempts["data"].as_array().unwrap().iter().filter(|a| a["status"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{attempts}");
    assert_eq!(failed[0]["response_status"], 500);
    let (at, next) = (failed[0]["attempted_at"].as_u64(), failed[0]["next_attempt_at"].as_u64());
    assert!(next.unwrap() >= at.unwrap() + 4, "{attempts}");

    // 410 Gone disabled the other endpoint at once, its position kept.
    let path = format!("/v1/webhook_endpoints/{}", id(&gone_endpoint));
    let started = Instant::now();
    let disabled = loop {
        let e = get(&s, &path);
        if e["status"] == "disabled" {
            break e;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "not disabled: {e}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(disabled["disabled_reason"], "gone");
    assert_eq!(disabled["delivered_sequence"], 0);
    // The first answer disabled it: nothing is sent after the deliveries already in flight.
    let sent = gone.deliveries().len();
    assert!((1..=3).contains(&sent), "{sent}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(gone.deliveries().len(), sent, "nothing more after the 410");
}

#[test]
fn deliveries_resume_after_kill_9_without_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), true);
    let w = s.paying_merchant(ADMIN);
    let receiver = Receiver::start(|_, _| (200, vec![]));
    let endpoint = ok(
        &s,
        "/v1/webhook_endpoints",
        json!({"url": receiver.url, "enabled_events": ["payment.succeeded"], "merchant": w.1}),
    );
    let secret = endpoint["secret"].as_str().unwrap().to_owned();
    for _ in 0..40 {
        pay(&s, &w);
    }
    s.kill();
    let s = start(dir.path(), true);
    for _ in 0..10 {
        pay(&s, &w);
    }
    let got = receiver.wait(Duration::from_secs(20), |got| sequences(got).len() == 50);
    assert_eq!(sequences(&got), (1..=50).collect::<Vec<u64>>());
    // A sequence number delivered twice (after the restart) is the same event.
    events_by_sequence(&got);
    for d in &got {
        assert!(signed_by(d, &secret));
    }

    // A rotation: both secrets sign during the overlap.
    let rotated = ok(
        &s,
        &format!("/v1/webhook_endpoints/{}/rotate_secret", id(&endpoint)),
        json!({"overlap_seconds": 3600}),
    );
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    pay(&s, &w);
    let got = receiver.wait(Duration::from_secs(20), |got| sequences(got).len() == 51);
    let last = got.iter().find(|d| d.json["sequence"] == 51).unwrap();
    assert!(signed_by(last, &secret) && signed_by(last, &new_secret));
}
