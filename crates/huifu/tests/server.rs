//! Integration tests of `huifu serve`: the real binary on a free port, driven over HTTP.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::Server;

const ADMIN: &str = "test-admin-key-0123456789";

impl Server {
    /// A request with an optional JSON body; see `Server::request`.
    fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
        idem: Option<&str>,
    ) -> (u16, Value) {
        let text = body.map(|b| b.to_string());
        self.request(method, path, key, idem, text.as_deref().map(|t| ("application/json", t)))
    }

    fn post(&self, path: &str, key: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, Some(key), Some(body), None)
    }

    fn get(&self, path: &str, key: &str) -> (u16, Value) {
        self.call("GET", path, Some(key), None, None)
    }

    fn ok(&self, path: &str, key: &str, body: Value) -> Value {
        let (status, v) = self.post(path, key, body);
        assert_eq!(status, 200, "POST {path}: {v}");
        v
    }
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_owned()
}

#[test]
fn ledger_endpoints_follow_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), ADMIN);
    let (status, v) = s.post(
        "/v1/ledger/accounts",
        ADMIN,
        json!([
            {"id": "1", "ledger": 7, "code": 1},
            {"id": "2", "ledger": 7, "code": 1, "flags": ["debits_must_not_exceed_credits"]},
            {"id": "1", "ledger": 8, "code": 1},
            {"id": "0", "ledger": 7, "code": 1},
        ]),
    );
    assert_eq!(status, 200);
    assert_eq!(
        v,
        json!([
            {"index": 0, "result": "created"},
            {"index": 1, "result": "created"},
            {"index": 2, "result": "exists_with_different_ledger"},
            {"index": 3, "result": "id_must_not_be_zero"},
        ])
    );
    let v = s.ok(
        "/v1/ledger/transfers",
        ADMIN,
        json!([
            {"id": "10", "debit_account_id": "1", "credit_account_id": "2", "amount": "100", "ledger": 7, "code": 1, "flags": ["linked"]},
            {"id": "11", "debit_account_id": "1", "credit_account_id": "2", "amount": "5", "ledger": 7, "code": 1},
            {"id": "12", "debit_account_id": "2", "credit_account_id": "1", "amount": "500", "ledger": 7, "code": 1},
            {"id": "13", "debit_account_id": "2", "credit_account_id": "1", "amount": "50", "ledger": 7, "code": 1, "flags": ["pending"], "timeout": 3600},
        ]),
    );
    assert_eq!(v[0]["result"], "created");
    assert_eq!(v[2]["result"], "exceeds_credits");
    assert_eq!(v[3]["result"], "created");
    // A retry of the same transfer: idempotent by its id.
    let v = s.ok(
        "/v1/ledger/transfers",
        ADMIN,
        json!([{"id": "11", "debit_account_id": "1", "credit_account_id": "2", "amount": "5", "ledger": 7, "code": 1}]),
    );
    assert_eq!(v, json!([{"index": 0, "result": "exists"}]));
    let v = s.ok("/v1/ledger/accounts/lookup", ADMIN, json!({"ids": ["2", "99"]}));
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["credits_posted"], "105");
    assert_eq!(v[0]["debits_pending"], "50");
    assert_eq!(v[0]["flags"], json!(["debits_must_not_exceed_credits"]));
    assert!(v[0]["timestamp"].as_str().unwrap().parse::<u64>().unwrap() > 0);
    let v = s.ok("/v1/ledger/transfers/lookup", ADMIN, json!({"ids": ["13"]}));
    assert_eq!(v[0]["timeout"], 3600);
    assert_eq!(v[0]["flags"], json!(["pending"]));
    // Paging through account 2's transfers, oldest first.
    let (_, page) = s.get("/v1/ledger/accounts/2/transfers?limit=2", ADMIN);
    let ids: Vec<&str> =
        page.as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["10", "11"]);
    let (_, page) = s.get("/v1/ledger/accounts/2/transfers?limit=2&starting_after=11", ADMIN);
    assert_eq!(page[0]["id"], "13");
    assert_eq!(page.as_array().unwrap().len(), 1);

    // Bad input: a clear error naming the field, and nothing changes.
    let (status, v) = s.post("/v1/ledger/transfers", ADMIN, json!([{"id": 10}]));
    assert_eq!(status, 400);
    assert_eq!(v["error"]["param"], "[0].id");
    let (status, v) = s.post(
        "/v1/ledger/accounts",
        ADMIN,
        json!([{"id": "5", "ledger": 1, "code": 1, "colour": "red"}]),
    );
    assert_eq!(status, 400);
    assert_eq!(v["error"]["code"], "invalid_field");
    let (status, v) = s.post(
        "/v1/ledger/accounts",
        ADMIN,
        json!([{"id": "5", "ledger": 1, "code": 1, "flags": ["shiny"]}]),
    );
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("invalid_flag")));
    let too_many: Vec<Value> =
        (0..8_191).map(|i| json!({"id": (i + 100).to_string(), "ledger": 1, "code": 1})).collect();
    let (status, _) = s.post("/v1/ledger/accounts", ADMIN, Value::Array(too_many));
    assert_eq!(status, 400);
    let v = s.ok("/v1/ledger/accounts/lookup", ADMIN, json!({"ids": ["5", "100"]}));
    assert_eq!(v, json!([]));
    // Access: no key, a wrong key.
    let (status, v) = s.call("POST", "/v1/ledger/accounts", None, Some(json!([])), None);
    assert_eq!((status, v["error"]["type"].as_str()), (401, Some("authentication_error")));
    let (status, _) = s.post("/v1/ledger/accounts", "hk_not_a_key", json!([]));
    assert_eq!(status, 401);
}

/// The parties and money of a small platform, made over HTTP.
struct World {
    channel: String,
    user: String,
    merchant: String,
    other_merchant: String,
    rider: String,
}

fn world(s: &Server, key: &str) -> World {
    let channel = id(&s.ok("/v1/channels", key, json!({"currency": "CNY"})));
    let user = id(&s.ok("/v1/users", key, json!({"currency": "CNY"})));
    let merchant = id(&s.ok(
        "/v1/merchants",
        key,
        json!({"currency": "CNY", "commission_bps": 1000, "channel": channel}),
    ));
    let other_merchant = id(&s.ok(
        "/v1/merchants",
        key,
        json!({"currency": "CNY", "commission_bps": 500, "channel": channel}),
    ));
    let rider = id(&s.ok("/v1/riders", key, json!({"currency": "CNY"})));
    let topup =
        s.ok("/v1/topups", key, json!({"user": user, "channel": channel, "amount": 100_000}));
    assert_eq!(topup["status"], "pending");
    let done = s.ok(&format!("/v1/topups/{}/confirm", id(&topup)), key, json!({}));
    assert_eq!(done["status"], "succeeded");
    World { channel, user, merchant, other_merchant, rider }
}

#[test]
fn payments_refunds_coupons_payouts_and_settlement_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), ADMIN);
    let platform = s.ok("/v1/api_keys", ADMIN, json!({"role": "platform"}))["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let w = world(&s, &platform);

    let pay = s.ok(
        "/v1/payments",
        &platform,
        json!({"user": w.user, "merchant": w.merchant, "rider": w.rider, "food_amount": 3000, "delivery_fee": 500, "currency": "CNY"}),
    );
    assert_eq!(pay["status"], "succeeded");
    assert_eq!(pay["amount"], 3500);
    assert_eq!(pay["commission"], 300);
    assert_eq!(pay["merchant_amount"], 2700);
    // Real-time crediting: the merchant's balance shows it at once.
    let (_, bal) = s.get(&format!("/v1/balances/{}", w.merchant), &platform);
    assert_eq!(bal["available"], "2700");
    let (_, bal) = s.get(&format!("/v1/balances/{}", w.user), &platform);
    assert_eq!(bal["available"], "96500");

    // A partial refund, then the rest.
    let r1 = s.ok("/v1/refunds", &platform, json!({"payment": id(&pay), "amount": 1000}));
    assert_eq!(r1["amount"], 1000);
    assert_eq!(r1["completes_refund"], false);
    let (status, v) =
        s.post("/v1/refunds", &platform, json!({"payment": id(&pay), "amount": 2501}));
    assert_eq!((status, v["error"]["code"].as_str()), (422, Some("refund_exceeds_payment")));
    let r2 = s.ok("/v1/refunds", &platform, json!({"payment": id(&pay), "amount": 2500}));
    assert_eq!(r2["completes_refund"], true);
    let (_, got) = s.get(&format!("/v1/payments/{}", id(&pay)), &platform);
    assert_eq!(got["amount_refunded"], 3500);
    assert_eq!(got["refunds"].as_array().unwrap().len(), 2);
    let (_, bal) = s.get(&format!("/v1/balances/{}", w.user), &platform);
    assert_eq!(bal["available"], "100000");

    // A coupon of a platform campaign.
    let campaign = s.ok(
        "/v1/campaigns",
        &platform,
        json!({"currency": "CNY", "funder": "platform", "budget": 10_000, "amount_off": 800, "min_order": 2000}),
    );
    let coupon = s.ok("/v1/coupons", &platform, json!({"campaign": id(&campaign), "user": w.user}));
    let pay2 = s.ok(
        "/v1/payments",
        &platform,
        json!({"user": w.user, "merchant": w.merchant, "rider": w.rider, "food_amount": 5000, "delivery_fee": 400, "currency": "CNY", "coupon": id(&coupon)}),
    );
    assert_eq!(pay2["discount"], 800);
    assert_eq!(pay2["amount"], 4600);
    let (_, c) = s.get(&format!("/v1/campaigns/{}", id(&campaign)), &platform);
    assert_eq!(c["spent"], 800);
    let (status, v) = s.post(
        "/v1/payments",
        &platform,
        json!({"user": w.user, "merchant": w.merchant, "rider": w.rider, "food_amount": 5000, "currency": "CNY", "coupon": id(&coupon)}),
    );
    assert_eq!((status, v["error"]["code"].as_str()), (422, Some("coupon_used")));

    // A bank-channel payment: authorised, then captured.
    let pay3 = s.ok(
        "/v1/payments",
        &platform,
        json!({"user": w.user, "merchant": w.other_merchant, "rider": w.rider, "food_amount": 2000, "currency": "CNY", "channel": w.channel}),
    );
    assert_eq!(pay3["status"], "authorized");
    let captured = s.ok(&format!("/v1/payments/{}/capture", id(&pay3)), &platform, json!({}));
    assert_eq!(captured["status"], "succeeded");

    // Statement, newest first, paged.
    let (_, st) = s.get(&format!("/v1/statements/{}?limit=2", w.user), &platform);
    assert_eq!(st["data"].as_array().unwrap().len(), 2);
    assert_eq!(st["has_more"], true);
    let last = st["data"][1]["id"].as_str().unwrap().to_owned();
    let (_, st2) =
        s.get(&format!("/v1/statements/{}?limit=100&starting_after={last}", w.user), &platform);
    assert!(!st2["data"].as_array().unwrap().is_empty());
    assert_eq!(st2["has_more"], false);

    // A settlement run pays each merchant what it has; a payout confirmed, the CSV file.
    let run = s.ok("/v1/settlement_runs", &platform, json!({}));
    let lines = run["lines"].as_array().unwrap();
    let line = lines.iter().find(|l| l["merchant"] == json!(w.merchant)).unwrap();
    // The first payment was refunded in full; the second leaves food 5000 − commission 500.
    assert_eq!(line["net"], 4500);
    let payout = line["payout"].as_str().unwrap().to_owned();
    let (_, bal) = s.get(&format!("/v1/balances/{}", w.merchant), &platform);
    assert_eq!(bal["available"], "0");
    let paid = s.ok(&format!("/v1/payouts/{payout}/confirm"), &platform, json!({}));
    assert_eq!(paid["status"], "paid");
    let (status, csv) = s.get(&format!("/v1/settlement_runs/{}/payouts.csv", id(&run)), &platform);
    assert_eq!(status, 200);
    assert!(csv["text"].as_str().unwrap().contains(&payout));
    // Nothing left to refund from the merchant: rejected, not negative.
    let (status, v) =
        s.post("/v1/refunds", &platform, json!({"payment": id(&pay2), "amount": 4600}));
    assert_eq!((status, v["error"]["code"].as_str()), (422, Some("merchant_balance_insufficient")));

    // Lists by merchant and by user, newest first, paged.
    let (_, list) = s.get(&format!("/v1/payments?merchant={}&limit=1", w.merchant), &platform);
    assert_eq!(list["data"][0]["id"], json!(id(&pay2)));
    assert_eq!(list["has_more"], true);
    let (_, list) = s.get(
        &format!("/v1/payments?merchant={}&limit=10&starting_after={}", w.merchant, id(&pay2)),
        &platform,
    );
    assert_eq!(list["data"][0]["id"], json!(id(&pay)));
    assert_eq!(list["has_more"], false);
    let (_, list) = s.get(&format!("/v1/payments?user={}", w.user), &platform);
    assert_eq!(list["data"].as_array().unwrap().len(), 3);

    // The merchant's money movements as server-sent events, from the start of its history
    // (`starting_after=0`; a stream starts at now by default), resumable from an id.
    let merchant_key =
        s.ok("/v1/api_keys", ADMIN, json!({"role": "merchant", "merchant": w.merchant}))["key"]
            .as_str()
            .unwrap()
            .to_owned();
    let events = ureq::get(&format!("{}/v1/events?starting_after=0", s.base))
        .set("Authorization", &format!("Bearer {merchant_key}"))
        .call()
        .unwrap();
    let mut lines = BufReader::new(events.into_reader()).lines();
    let first_id = lines
        .by_ref()
        .map(|l| l.unwrap())
        .find_map(|l| l.strip_prefix("id:").map(|v| v.trim().to_owned()))
        .unwrap();
    let first_event = lines.next().unwrap().unwrap();
    assert_eq!(first_event, "event: balance.credited");
    let resumed = ureq::get(&format!("{}/v1/events", s.base))
        .set("Authorization", &format!("Bearer {merchant_key}"))
        .set("Last-Event-ID", &first_id)
        .call()
        .unwrap();
    let next_id = BufReader::new(resumed.into_reader())
        .lines()
        .map(|l| l.unwrap())
        .find_map(|l| l.strip_prefix("id:").map(|v| v.trim().parse::<u64>().unwrap()))
        .unwrap();
    assert!(next_id > first_id.parse::<u64>().unwrap());

    // A body above the limit gets a JSON error too, decided from its announced length (sent
    // by hand: a client still writing the body could see the connection close first).
    let answer = {
        use std::io::{Read, Write};
        let mut tcp = std::net::TcpStream::connect(s.base.trim_start_matches("http://")).unwrap();
        let head = format!(
            "POST /v1/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {platform}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            9 << 20
        );
        tcp.write_all(head.as_bytes()).unwrap();
        // The server may keep the connection open for the body it refused: read what comes.
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut answer = Vec::new();
        let mut chunk = [0u8; 4096];
        while !String::from_utf8_lossy(&answer).contains("body_too_large") {
            match tcp.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
        }
        String::from_utf8_lossy(&answer).into_owned()
    };
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("body_too_large"), "{answer}");

    for path in ["/healthz", "/livez"] {
        let (status, text) = s.call("GET", path, None, None, None);
        assert_eq!((status, text["text"].as_str()), (200, Some("ok\n")), "{path}");
    }
    let (_, metrics) = s.call("GET", "/metrics", None, None, None);
    let metrics = metrics["text"].as_str().unwrap();
    assert!(metrics.contains("huifu_http_requests_total"));
    // Every write of this test was made durable by a group commit: each counted, with its
    // fsync's time, and no group without a command.
    let value = |name: &str| -> f64 {
        let line =
            metrics.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name}"));
        line[name.len()..].trim().parse().unwrap()
    };
    let groups = value("huifu_engine_group_commands_count ");
    assert!(groups >= 1.0, "{metrics}");
    assert_eq!(value("huifu_journal_sync_seconds_count "), groups);
    assert!(value("huifu_journal_sync_seconds_sum ") > 0.0);
    assert!(value("huifu_engine_group_commands_sum ") >= groups);
    assert_eq!(value("huifu_engine_group_commands_bucket{le=\"+Inf\"} "), groups);
    assert!(metrics.contains("huifu_journal_sync_seconds_bucket{le=\"0.00005\"} "), "{metrics}");
}

#[test]
fn idempotency_keys_and_roles() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), ADMIN);
    let w = world(&s, ADMIN);
    let body = json!({"user": w.user, "merchant": w.merchant, "rider": w.rider, "food_amount": 1000, "currency": "CNY"});
    let (status, first) =
        s.call("POST", "/v1/payments", Some(ADMIN), Some(body.clone()), Some("order-1"));
    assert_eq!(status, 200);
    let (_, again) =
        s.call("POST", "/v1/payments", Some(ADMIN), Some(body.clone()), Some("order-1"));
    assert_eq!(first, again, "a retry returns the first response");
    let mut other = body.clone();
    other["food_amount"] = json!(2000);
    let (status, v) = s.call("POST", "/v1/payments", Some(ADMIN), Some(other), Some("order-1"));
    assert_eq!((status, v["error"]["code"].as_str()), (409, Some("idempotency_conflict")));
    let (_, bal) = s.get(&format!("/v1/balances/{}", w.user), ADMIN);
    assert_eq!(bal["available"], "99000", "the payment was applied exactly once");

    // A merchant sees its own payment, not another merchant's; it cannot create payments.
    let mine = s.ok("/v1/api_keys", ADMIN, json!({"role": "merchant", "merchant": w.merchant}))
        ["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let theirs =
        s.ok("/v1/api_keys", ADMIN, json!({"role": "merchant", "merchant": w.other_merchant}))
            ["key"]
            .as_str()
            .unwrap()
            .to_owned();
    let pay = id(&first);
    assert_eq!(s.get(&format!("/v1/payments/{pay}"), &mine).0, 200);
    assert_eq!(s.get(&format!("/v1/payments/{pay}"), &theirs).0, 404);
    let (status, _) = s.post("/v1/refunds", &theirs, json!({"payment": pay, "amount": 100}));
    assert_eq!(status, 404);
    let (status, _) = s.post("/v1/refunds", &mine, json!({"payment": pay, "amount": 100}));
    assert_eq!(status, 200);
    assert_eq!(s.post("/v1/payments", &mine, body).0, 403);
    assert_eq!(s.get(&format!("/v1/balances/{}", w.merchant), &theirs).0, 404);
    assert_eq!(s.get(&format!("/v1/balances/{}", w.merchant), &mine).0, 200);
    assert_eq!(s.post("/v1/ledger/accounts", &mine, json!([])).0, 403);

    // A currency that is not the user's.
    let (status, v) = s.post("/v1/payments", ADMIN, json!({"user": w.user, "merchant": w.merchant, "rider": w.rider, "food_amount": 100, "currency": "USD"}));
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("currency_mismatch")));
    // The batch endpoint: each operation its own result, retries by their own keys.
    let item = json!({"user": w.user, "merchant": w.merchant, "rider": w.rider, "food_amount": 100, "idempotency_key": "b-1"});
    let batch = json!({"payments": [item.clone(), {"user": w.user, "merchant": "mer_0", "rider": w.rider, "food_amount": 100}, item]});
    let v = s.ok("/v1/batch", ADMIN, batch);
    let results = v["results"].as_array().unwrap();
    assert_eq!(results[0]["result"]["status"], "succeeded");
    assert_eq!(results[1]["error"]["code"], "invalid_id");
    assert_eq!(results[2]["result"]["id"], results[0]["result"]["id"], "same key, same payment");
    // 100,000 − 1,000 + the merchant's refund of 100 − this batch's one payment of 100.
    let (_, bal) = s.get(&format!("/v1/balances/{}", w.user), ADMIN);
    assert_eq!(bal["available"], "99000");
    // Its two valid operations went to the engine as one batch (the invalid one did not).
    let (_, metrics) = s.call("GET", "/metrics", None, None, None);
    let metrics = metrics["text"].as_str().unwrap();
    assert!(metrics.contains("huifu_http_batch_operations_bucket{le=\"1\"} 0\n"), "{metrics}");
    assert!(metrics.contains("huifu_http_batch_operations_bucket{le=\"10\"} 1\n"), "{metrics}");
    assert!(metrics.contains("huifu_http_batch_operations_sum 2\n"), "{metrics}");

    // Negative, zero and overflowing amounts, unknown ids: clear errors, no money moves.
    let (_, before) = s.get(&format!("/v1/balances/{}", w.user), ADMIN);
    for (food, code) in [
        (json!(-5), "invalid_field"),
        (json!(0), "invalid_amount"),
        (json!(18_446_744_073_709_551_616.0_f64), "invalid_field"),
    ] {
        let (status, v) = s.post(
            "/v1/payments",
            ADMIN,
            json!({"user": w.user, "merchant": w.merchant, "rider": w.rider, "food_amount": food}),
        );
        assert_eq!((status, v["error"]["code"].as_str()), (400, Some(code)), "{v}");
        assert_eq!(v["error"]["param"], "food_amount");
    }
    let (status, v) = s.post(
        "/v1/payments",
        ADMIN,
        json!({"user": "usr_999999", "merchant": w.merchant, "rider": w.rider, "food_amount": 100}),
    );
    assert_eq!((status, v["error"]["code"].as_str()), (404, Some("unknown_user")));
    let (status, _) = s.post("/v1/refunds", ADMIN, json!({"payment": "pay_999999", "amount": 100}));
    assert_eq!(status, 404);
    let (_, after) = s.get(&format!("/v1/balances/{}", w.user), ADMIN);
    assert_eq!(before, after);

    // Malformed JSON, wrong types, unknown fields.
    let (status, v) = s.call("POST", "/v1/users", Some(ADMIN), Some(json!("not an object")), None);
    assert_eq!(status, 400, "{v}");
    let (status, v) = s.post("/v1/users", ADMIN, json!({"currency": "CNY", "name": "x"}));
    assert_eq!((status, v["error"]["param"].as_str()), (400, Some("name")));
    let (status, v) = s.post("/v1/users", ADMIN, json!({"currency": "XXX"}));
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("invalid_currency")));
    let (status, v) = s.post("/v1/payments", ADMIN, json!({"user": w.user, "merchant": w.merchant, "rider": w.rider, "food_amount": "ten", "currency": "CNY"}));
    assert_eq!((status, v["error"]["param"].as_str()), (400, Some("food_amount")));
}

/// Payments acknowledged over HTTP survive `kill -9` of the server, under load.
#[test]
fn acknowledged_payments_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let w = world(&Server::start(dir.path(), ADMIN), ADMIN);
    let mut acked: Vec<String> = Vec::new();
    // Three rounds: start on the same folder, load it from four clients, kill it mid-traffic.
    for round in 0..3u64 {
        let s = Server::start(dir.path(), ADMIN);
        let base = s.base.clone();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let clients: Vec<_> = (0..4)
            .map(|_| {
                let (base, tx) = (base.clone(), tx.clone());
                let body = json!({"user": w.user, "merchant": w.merchant, "rider": w.rider, "food_amount": 1});
                std::thread::spawn(move || {
                    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(5)).build();
                    loop {
                        let r = agent
                            .post(&format!("{base}/v1/payments"))
                            .set("Authorization", &format!("Bearer {ADMIN}"))
                            .send_json(body.clone());
                        match r {
                            Ok(r) => {
                                let v: Value = r.into_json().unwrap();
                                tx.send(v["id"].as_str().unwrap().to_owned()).unwrap();
                            }
                            Err(_) => break, // the server is gone
                        }
                    }
                })
            })
            .collect();
        drop(tx);
        std::thread::sleep(Duration::from_millis(300 + 250 * round));
        s.kill();
        for c in clients {
            c.join().unwrap();
        }
        let got: Vec<String> = rx.iter().collect();
        assert!(got.len() > 10, "round {round}: only {} payments acknowledged", got.len());
        acked.extend(got);
    }

    let s = Server::start(dir.path(), ADMIN);
    for p in &acked {
        let (status, v) = s.get(&format!("/v1/payments/{p}"), ADMIN);
        assert_eq!((status, v["status"].as_str()), (200, Some("succeeded")), "{p} lost");
    }
    // Each payment applied once: the wallet paid 1 for each payment the server holds, and
    // the server holds every acknowledged one (a few more may have been applied, not acked).
    let mut held = 0;
    let mut after: Option<String> = None;
    loop {
        let cursor = after.as_ref().map(|a| format!("&starting_after={a}")).unwrap_or_default();
        let (_, page) = s.get(&format!("/v1/payments?user={}&limit=1000{cursor}", w.user), ADMIN);
        let data = page["data"].as_array().unwrap();
        held += data.len() as u64;
        if page["has_more"] != true {
            break;
        }
        after = Some(data.last().unwrap()["id"].as_str().unwrap().to_owned());
    }
    let (_, bal) = s.get(&format!("/v1/balances/{}", w.user), ADMIN);
    let spent = 100_000 - bal["available"].as_str().unwrap().parse::<u64>().unwrap();
    assert_eq!(spent, held, "the wallet paid for exactly the payments held");
    assert!(held >= acked.len() as u64, "{held} held, {} acknowledged", acked.len());
    s.kill();
    let audit = Command::new(env!("CARGO_BIN_EXE_huifu"))
        .args(["audit", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(audit.status.success(), "{}", String::from_utf8_lossy(&audit.stdout));
}

/// A raw request on the real server: the status, the headers asked for, and the body as JSON
/// (or `{"text": ...}`). A body is sent with `content_type` when there is one, with none else.
fn raw(
    s: &Server,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Option<&str>,
) -> (u16, Option<String>, Value) {
    let mut request = ureq::request(method, &format!("{}{path}", s.base))
        .set("Authorization", &format!("Bearer {ADMIN}"));
    if let Some(content_type) = content_type {
        request = request.set("Content-Type", content_type);
    }
    let result = match body {
        Some(body) => request.send_string(body),
        None => request.call(),
    };
    let response = match result {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(e) => panic!("{method} {path}: {e}"),
    };
    let status = response.status();
    let allow = response.header("Allow").map(str::to_owned);
    let json = response.content_type() == "application/json";
    let text = response.into_string().unwrap();
    let value = serde_json::from_str(&text).unwrap_or_else(|_| json!({ "text": text }));
    assert!(json || status < 400, "{method} {path}: an error that is not JSON: {text}");
    (status, allow, value)
}

/// The error shape and nothing else, with `status`, `code` and `param`.
#[track_caller]
fn assert_error(
    reply: &(u16, Option<String>, Value),
    status: u16,
    code: &str,
    param: Option<&str>,
) {
    let (got, _, v) = reply;
    assert_eq!(*got, status, "{v}");
    assert_eq!(v.as_object().map(|o| o.len()), Some(1), "{v}");
    let error = v["error"].as_object().unwrap_or_else(|| panic!("no error object: {v}"));
    let mut keys: Vec<&str> = error.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["code", "message", "param", "type"], "{v}");
    assert_eq!(error["type"], "invalid_request_error", "{v}");
    assert_eq!(error["code"], code, "{v}");
    assert!(!error["message"].as_str().unwrap_or_default().is_empty(), "{v}");
    assert_eq!(error["param"].as_str(), param, "{v}");
}

#[test]
fn every_error_is_json_ids_are_canonical_and_bodies_are_json() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), ADMIN);
    let w = world(&s, ADMIN);

    // A query parameter that does not parse, and one the endpoint does not know.
    let limit_abc = format!("/v1/payments?merchant={}&limit=abc", w.merchant);
    assert_error(&raw(&s, "GET", &limit_abc, None, None), 400, "invalid_parameter", Some("limit"));
    let unknown = format!("/v1/statements/{}?colour=red", w.user);
    assert_error(&raw(&s, "GET", &unknown, None, None), 400, "invalid_parameter", Some("colour"));

    // No such route; a route without the method keeps its Allow header.
    for path in ["/v1/nothing", "/v2/payments", "/"] {
        assert_error(&raw(&s, "GET", path, None, None), 404, "route_not_found", None);
    }
    let reply = raw(&s, "DELETE", "/v1/payments", None, None);
    assert_error(&reply, 405, "method_not_allowed", None);
    let allow = reply.1.as_deref().expect("an Allow header");
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    let reply = raw(&s, "PUT", "/v1/users", Some("application/json"), Some("{}"));
    assert_error(&reply, 405, "method_not_allowed", None);
    assert_eq!(reply.1.as_deref(), Some("POST"));

    // Malformed ids: 400 everywhere; well-formed ids of nothing: 404.
    let number = |id: &str| id.split_once('_').unwrap().1.to_owned();
    for (path, param) in [
        ("/v1/balances/usr_abc".to_owned(), "object"),
        ("/v1/statements/usr_x".to_owned(), "object"),
        ("/v1/events?account=usr_x".to_owned(), "account"),
        ("/v1/payments/pay_abc".to_owned(), "id"),
        ("/v1/payments/pay_007".to_owned(), "id"),
        ("/v1/payments/pay_+1".to_owned(), "id"),
        ("/v1/payments/pay_".to_owned(), "id"),
        ("/v1/payments/pay_99999999999999999999".to_owned(), "id"),
        (format!("/v1/balances/usr_0{}", number(&w.user)), "object"),
        (format!("/v1/balances/usr_+{}", number(&w.user)), "object"),
        (format!("/v1/payments?merchant=mer_0{}", number(&w.merchant)), "merchant"),
        ("/v1/ledger/accounts/007/transfers".to_owned(), "id"),
    ] {
        assert_error(&raw(&s, "GET", &path, None, None), 400, "invalid_id", Some(param));
    }
    let (status, v) = s.post("/v1/refunds", ADMIN, json!({"payment": "pay_+1", "amount": 1}));
    assert_error(&(status, None, v), 400, "invalid_id", Some("payment"));
    for path in ["/v1/balances/usr_999999", "/v1/payments/pay_999999", "/v1/statements/usr_999999"]
    {
        assert_error(&raw(&s, "GET", path, None, None), 404, "resource_missing", None);
    }
    let (status, _, _) = raw(&s, "GET", &format!("/v1/balances/{}", w.user), None, None);
    assert_eq!(status, 200);

    // A body that is not JSON is refused; JSON with parameters, or without a type, is read.
    let body = r#"{"currency":"CNY"}"#;
    for content_type in ["text/plain", "application/xml"] {
        let reply = raw(&s, "POST", "/v1/users", Some(content_type), Some(body));
        assert_error(&reply, 415, "unsupported_media_type", Some("Content-Type"));
    }
    for content_type in
        [Some("application/json; charset=utf-8"), Some("application/x-www-form-urlencoded"), None]
    {
        let (status, _, v) = raw(&s, "POST", "/v1/users", content_type, Some(body));
        assert_eq!(status, 200, "{content_type:?}: {v}");
        assert!(v["id"].as_str().unwrap().starts_with("usr_"), "{v}");
    }

    // The documented page limits, with the range in the error.
    let page = |limit: u32| format!("/v1/payments?merchant={}&limit={limit}", w.merchant);
    for limit in [0, 1_001, 5_000] {
        let reply = raw(&s, "GET", &page(limit), None, None);
        assert_error(&reply, 400, "invalid_limit", Some("limit"));
        assert_eq!(reply.2["error"]["message"], "limit must be between 1 and 1000");
    }
    assert_eq!(raw(&s, "GET", &page(1_000), None, None).0, 200);
    let reply = raw(&s, "GET", "/v1/ledger/accounts/1/transfers?limit=8190", None, None);
    assert_error(&reply, 400, "invalid_limit", Some("limit"));
    assert_eq!(reply.2["error"]["message"], "limit must be between 1 and 8189");
    s.kill();
}

#[test]
fn openapi_document_lists_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), ADMIN);
    let (status, doc) = s.call("GET", "/openapi.json", None, None, None);
    assert_eq!(status, 200, "{doc}");
    assert!(doc["openapi"].as_str().expect("an openapi version").starts_with("3."), "{doc}");
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    // Every route of the router, with its methods.
    let routes: &[(&str, &[&str])] = &[
        ("/v1/ledger/accounts", &["post"]),
        ("/v1/ledger/transfers", &["post"]),
        ("/v1/ledger/accounts/lookup", &["post"]),
        ("/v1/ledger/transfers/lookup", &["post"]),
        ("/v1/ledger/accounts/{id}/transfers", &["get"]),
        ("/v1/channels", &["post"]),
        ("/v1/users", &["post"]),
        ("/v1/merchants", &["post"]),
        ("/v1/riders", &["post"]),
        ("/v1/topups", &["post"]),
        ("/v1/withdrawals", &["post"]),
        ("/v1/topups/{id}/{answer}", &["post"]),
        ("/v1/withdrawals/{id}/{answer}", &["post"]),
        ("/v1/payments", &["post", "get"]),
        ("/v1/payments/{id}", &["get"]),
        ("/v1/payments/{id}/{action}", &["post"]),
        ("/v1/refunds", &["post"]),
        ("/v1/refunds/{id}", &["get"]),
        ("/v1/campaigns", &["post"]),
        ("/v1/campaigns/{id}", &["get"]),
        ("/v1/coupons", &["post"]),
        ("/v1/payouts", &["post"]),
        ("/v1/payouts/{id}/{answer}", &["post"]),
        ("/v1/settlement_runs", &["post"]),
        ("/v1/settlement_runs/{id}", &["get"]),
        ("/v1/settlement_runs/{id}/payouts.csv", &["get"]),
        ("/v1/balances/{object}", &["get"]),
        ("/v1/statements/{object}", &["get"]),
        ("/v1/platform/balances", &["get"]),
        ("/v1/events", &["get"]),
        ("/v1/batch", &["post"]),
        ("/v1/api_keys", &["post", "get"]),
        ("/v1/api_keys/{id}", &["get", "delete"]),
        ("/v1/api_keys/{id}/rotate", &["post"]),
        ("/v1/reconciliation/statements", &["post"]),
        ("/v1/channels/{id}/bank_account", &["get", "put"]),
        ("/v1/reconciliation/runs/{id}", &["get"]),
        ("/v1/reconciliation/runs/{id}/exceptions", &["get"]),
        ("/v1/reconciliation/runs/{id}/resolutions", &["post"]),
        ("/v1/webhook_endpoints", &["post", "get"]),
        ("/v1/webhook_endpoints/{id}", &["get", "post", "delete"]),
        ("/v1/webhook_endpoints/{id}/rotate_secret", &["post"]),
        ("/v1/webhook_endpoints/{id}/attempts", &["get"]),
        ("/v1/webhook_endpoints/{id}/replay", &["post"]),
        ("/v1/events/{id}", &["get"]),
        ("/livez", &["get"]),
        ("/healthz", &["get"]),
        ("/metrics", &["get"]),
        ("/openapi.json", &["get"]),
        ("/v1/cluster", &["get"]),
        ("/v1/cluster/nodes", &["post"]),
        ("/v1/cluster/nodes/{id}", &["delete"]),
    ];
    let paths = doc["paths"].as_object().expect("paths");
    for (path, methods) in routes {
        let item = paths.get(*path).unwrap_or_else(|| panic!("{path} is not documented"));
        for method in *methods {
            let op = &item[*method];
            assert!(op.is_object(), "{method} {path} is not documented");
            assert!(op["responses"]["200"].is_object(), "{method} {path}: no 200 response");
        }
    }
    assert_eq!(paths.len(), routes.len(), "documented paths that the router does not have");
    // The request bodies are the real ones, with their fields.
    let payment = &doc["components"]["schemas"]["PaymentBody"];
    for field in ["user", "merchant", "rider", "food_amount"] {
        assert!(payment["required"].as_array().unwrap().iter().any(|f| f == field), "{field}");
    }
    // An error response is the error object.
    let error = &doc["paths"]["/v1/payments"]["post"]["responses"]["422"]["content"]
        ["application/json"]["schema"]["$ref"];
    assert_eq!(error, "#/components/schemas/ErrorBody");
    s.kill();
}

#[test]
fn zero_http_threads_are_refused_before_anything_is_opened() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let output = Command::new(env!("CARGO_BIN_EXE_huifu"))
        .args(["serve", "--listen", "127.0.0.1:0", "--http-threads", "0", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--http-threads must be at least 1"), "{stderr}");
    assert!(!data.exists(), "the data folder was created");
}

/// A journal write that the operating system refuses ends the process. The refusal is real:
/// a file size limit (RLIMIT_FSIZE, which binds root too, unlike a folder's permissions) below
/// what the first write needs, with SIGXFSZ ignored so that the write fails (EFBIG) instead of
/// killing the process. The history store is off: it reserves its own journal's space at open.
#[test]
fn a_writer_that_cannot_write_ends_the_process_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new("sh");
    command
        .arg("-c")
        // 64 blocks of 512 bytes (of 1,024 for bash): room for the key store, not for a batch.
        .arg("trap '' XFSZ; ulimit -f 64 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_huifu"))
        .args(["serve", "--listen", "127.0.0.1:0", "--memory-transfers-max", "all"])
        .arg("--data-dir")
        .arg(dir.path())
        .env("HUIFU_ADMIN_KEY", ADMIN)
        .stderr(Stdio::piped());
    let mut s = Server::spawn(command);
    let mut stderr = s.child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    // 1,000 accounts: 128 KiB of journal, past the limit.
    let accounts: Vec<Value> =
        (1..=1_000).map(|i| json!({"id": i.to_string(), "ledger": 1, "code": 1})).collect();
    let (status, v) = s.post("/v1/ledger/accounts", ADMIN, Value::Array(accounts));
    assert_eq!((status, v["error"]["code"].as_str()), (503, Some("storage_failed")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("journal"), "{v}");

    // While the server still answers, it is not ready and says why.
    match ureq::get(&format!("{}/healthz", s.base)).call() {
        Err(ureq::Error::Status(status, response)) => {
            let v: Value = response.into_json().unwrap();
            assert_eq!((status, v["error"]["code"].as_str()), (503, Some("storage_failed")));
        }
        Ok(response) => panic!("ready after the writer stopped: {}", response.status()),
        Err(ureq::Error::Transport(_)) => {} // already gone
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the server did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(1), "{status}");
    let log = log.join().unwrap();
    let journal = dir.path().join("journal");
    let line = log.lines().find(|l| l.starts_with("error: ")).unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains(&format!("the engine stopped: storage failed in {}: ", journal.display())),
        "{line}"
    );
    assert!(line.contains("File too large"), "{line}");
}

/// The admin key given in the environment can be replaced: another admin key is made, the
/// given one revoked, and it stays refused after a restart with the same environment. A key
/// is made only for a merchant that exists.
#[test]
fn the_admin_key_from_the_environment_once_revoked_stays_revoked_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), ADMIN);
    let (status, v) =
        s.post("/v1/api_keys", ADMIN, json!({"role": "merchant", "merchant": "mer_99999999"}));
    assert_eq!((status, v["error"]["code"].as_str()), (404, Some("resource_missing")), "{v}");
    let (status, list) = s.get("/v1/api_keys", ADMIN);
    assert_eq!(status, 200, "{list}");
    let bootstrap = list["data"][0].clone();
    assert_eq!(
        (bootstrap["role"].as_str(), list["data"].as_array().unwrap().len()),
        (Some("admin"), 1)
    );
    let made = s.ok("/v1/api_keys", ADMIN, json!({"role": "admin"}));
    let replacement = made["key"].as_str().unwrap().to_owned();
    let path = format!("/v1/api_keys/{}", id(&bootstrap));
    let (status, v) = s.call("DELETE", &path, Some(&replacement), None, None);
    assert_eq!((status, v["status"].as_str()), (200, Some("revoked")), "{v}");
    let (status, v) = s.get("/v1/api_keys", ADMIN);
    assert_eq!((status, v["error"]["code"].as_str()), (401, Some("api_key_revoked")), "{v}");
    s.kill();

    let s = Server::start(dir.path(), ADMIN);
    let (status, v) = s.get("/v1/api_keys", ADMIN);
    assert_eq!((status, v["error"]["code"].as_str()), (401, Some("api_key_revoked")), "{v}");
    let (status, v) = s.get(&path, &replacement);
    assert_eq!(
        (status, v["status"].as_str(), v["id"].clone()),
        (200, Some("revoked"), bootstrap["id"].clone()),
        "{v}"
    );
    s.kill();
}

/// Without `--key-rate-per-second`, keys have their roles' limits; a key above its own gets 429
/// in the error shape with `Retry-After`, and so does a client address above its failed
/// authentications, whose valid key still works.
#[test]
fn rate_limits_answer_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_huifu"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("HUIFU_ADMIN_KEY", ADMIN)
        .stderr(Stdio::null());
    use huifu_server::constants::{
        ADDRESS_AUTH_FAILURES_BURST, ADMIN_RATE_PER_SECOND, KEY_BURST_PER_RATE,
        MERCHANT_RATE_PER_SECOND, PLATFORM_RATE_PER_SECOND,
    };
    let s = Server::spawn(command);
    let (_, list) = s.get("/v1/api_keys", ADMIN);
    assert_eq!(
        (list["data"][0]["rate_per_second"].as_u64(), list["data"][0]["burst"].as_u64()),
        (
            Some(u64::from(ADMIN_RATE_PER_SECOND)),
            Some(u64::from(ADMIN_RATE_PER_SECOND * KEY_BURST_PER_RATE))
        )
    );
    let platform = s.ok("/v1/api_keys", ADMIN, json!({"role": "platform"}));
    assert_eq!(platform["rate_per_second"], PLATFORM_RATE_PER_SECOND);
    let channel = s.ok("/v1/channels", ADMIN, json!({"currency": "CNY"}));
    let merchant = s.ok(
        "/v1/merchants",
        ADMIN,
        json!({"currency": "CNY", "commission_bps": 100, "channel": channel["id"]}),
    );
    let merchant =
        s.ok("/v1/api_keys", ADMIN, json!({"role": "merchant", "merchant": merchant["id"]}));
    assert_eq!(merchant["rate_per_second"], MERCHANT_RATE_PER_SECOND);
    let slow =
        s.ok("/v1/api_keys", ADMIN, json!({"role": "platform", "rate_per_second": 1, "burst": 2}));
    let slow = slow["key"].as_str().unwrap();

    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
    let get = |key: &str| {
        let request = agent.get(&format!("{}/v1/platform/balances", s.base));
        match request.set("Authorization", &format!("Bearer {key}")).call() {
            Ok(r) | Err(ureq::Error::Status(_, r)) => {
                let retry = r.header("Retry-After").map(str::to_owned);
                (r.status(), retry, r.into_json::<Value>().unwrap())
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(get(slow).0, 200);
    assert_eq!(get(slow).0, 200);
    let (status, retry, v) = get(slow);
    assert_eq!((status, retry.as_deref()), (429, Some("1")), "{v}");
    assert_eq!(
        (v["error"]["type"].as_str(), v["error"]["code"].as_str()),
        (Some("rate_limit_error"), Some("rate_limited"))
    );

    let mut refused = None;
    let tries = ADDRESS_AUTH_FAILURES_BURST * 2;
    for n in 0..tries {
        let (status, retry, v) = get(&format!("hk_guess{n}"));
        match status {
            401 => assert_eq!(v["error"]["code"], "invalid_api_key"),
            429 => {
                assert_eq!(v["error"]["code"], "rate_limited", "{v}");
                refused = Some((n, retry));
                break;
            }
            other => panic!("{other}: {v}"),
        }
    }
    let (n, retry) = refused.expect("guesses from one address were never refused");
    // The burst, and what the rate let through meanwhile.
    let burst = ADDRESS_AUTH_FAILURES_BURST;
    assert!((burst..burst + burst / 2).contains(&n), "refused after {n} guesses");
    assert!(retry.is_some_and(|r| r.parse::<u64>().unwrap() >= 1));
    assert_eq!(get(ADMIN).0, 200, "a valid key from the same address");
    s.kill();

    let output = Command::new(env!("CARGO_BIN_EXE_huifu"))
        .args(["serve", "--key-rate-per-second", "0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("rate_per_second is 1 to"), "{stderr}");
}
