//! Reconciliation over HTTP on the real binary: upload a statement, read the run and its
//! exceptions, resolve one; operators only.

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use support::Server;

const ADMIN: &str = "test-admin-key-recon-0123456789";

fn start(dir: &std::path::Path) -> Server {
    Server::start(dir, ADMIN)
}

impl Server {
    /// A request with an optional body (content type, text); see `Server::request`.
    fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<(&str, &str)>,
    ) -> (u16, Value) {
        self.request(method, path, key, None, body)
    }

    fn post(&self, path: &str, body: Value) -> Value {
        let (status, v) =
            self.call("POST", path, Some(ADMIN), Some(("application/json", &body.to_string())));
        assert_eq!(status, 200, "{path}: {v}");
        v
    }
}

fn today() -> String {
    let days = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() / 86_400;
    huifu_recon::statement::format_day(i32::try_from(days).unwrap())
}

fn summary(run: &Value, state: &str) -> (u64, u64) {
    let s = run["summary"].as_array().unwrap().iter().find(|s| s["state"] == state).unwrap();
    (s["lines"].as_u64().unwrap(), s["entries"].as_u64().unwrap())
}

#[test]
fn upload_a_statement_read_the_run_and_resolve_an_exception() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let channel =
        server.post("/v1/channels", json!({"currency": "CNY"}))["id"].as_str().unwrap().to_owned();
    let user =
        server.post("/v1/users", json!({"currency": "CNY"}))["id"].as_str().unwrap().to_owned();
    let merchant = server.post(
        "/v1/merchants",
        json!({"currency": "CNY", "commission_bps": 1000, "channel": channel}),
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut ids = Vec::new();
    for (path, amount) in [("/v1/topups", 10_000), ("/v1/topups", 2_500), ("/v1/withdrawals", 700)]
    {
        let id = server.post(path, json!({"user": user, "channel": channel, "amount": amount}))
            ["id"]
            .as_str()
            .unwrap()
            .to_owned();
        server.post(&format!("{path}/{id}/confirm"), json!({}));
        ids.push(id);
    }
    let day = today();
    let header = "statement_id,account,currency,from_date,to_date,booking_date,value_date,direction,amount,bank_reference,reference";
    let row = |direction: &str, amount: &str, bank: &str, reference: &str| {
        format!("HTTP-1,CLR,CNY,{day},{day},{day},{day},{direction},{amount},{bank},{reference}")
    };
    // The first top-up as booked, the second with another amount, a fee huifu knows nothing
    // of; the withdrawal is missing.
    let csv = [
        header.to_owned(),
        row("CRDT", "100.00", "B1", &ids[0]),
        row("CRDT", "26.00", "B2", &ids[1]),
        row("DBIT", "1.23", "B3", ""),
    ]
    .join("\n");
    let upload = format!("/v1/reconciliation/statements?channel={channel}");
    let (status, run) = server.call("POST", &upload, Some(ADMIN), Some(("text/csv", &csv)));
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["imported"], true);
    assert_eq!(run["object"], "reconciliation_run");
    assert_eq!(summary(&run, "matched"), (1, 1));
    assert_eq!(summary(&run, "amount_mismatch"), (1, 1));
    assert_eq!(summary(&run, "unmatched_bank"), (1, 0));
    assert_eq!(summary(&run, "unmatched_ledger"), (0, 1));
    assert_eq!((run["exceptions"].as_u64(), run["open_exceptions"].as_u64()), (Some(3), Some(3)));
    let id = run["id"].as_str().unwrap().to_owned();

    // Idempotent: the same file again is the same run, nothing new imported.
    let (status, again) = server.call("POST", &upload, Some(ADMIN), Some(("text/csv", &csv)));
    assert_eq!((status, &again["imported"], &again["id"]), (200, &json!(false), &json!(id)));
    // The same statement id with other content is a conflict.
    let changed = csv.replace("1.23", "1.24");
    let (status, err) = server.call("POST", &upload, Some(ADMIN), Some(("text/csv", &changed)));
    assert_eq!((status, err["error"]["code"].as_str()), (409, Some("statement_conflict")));

    let (status, got) =
        server.call("GET", &format!("/v1/reconciliation/runs/{id}"), Some(ADMIN), None);
    assert_eq!(status, 200);
    assert_eq!(got["summary"], run["summary"]);
    let exceptions_path = format!("/v1/reconciliation/runs/{id}/exceptions");
    let (_, page) = server.call("GET", &format!("{exceptions_path}?limit=2"), Some(ADMIN), None);
    assert_eq!((page["data"].as_array().unwrap().len(), &page["has_more"]), (2, &json!(true)));
    let last = page["data"][1]["key"].as_str().unwrap();
    let (_, rest) =
        server.call("GET", &format!("{exceptions_path}?starting_after={last}"), Some(ADMIN), None);
    assert_eq!((rest["data"].as_array().unwrap().len(), &rest["has_more"]), (1, &json!(false)));
    let all: Vec<Value> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["data"].as_array().unwrap())
        .cloned()
        .collect();
    let mismatch = all.iter().find(|e| e["state"] == "amount_mismatch").unwrap();
    assert_eq!(
        (mismatch["bank_amount"].as_u64(), mismatch["ledger_amount"].as_u64()),
        (Some(2_600), Some(2_500))
    );
    assert_eq!(mismatch["reference"], json!(ids[1]));
    let missing = all.iter().find(|e| e["state"] == "unmatched_ledger").unwrap();
    assert_eq!(missing["reference"], json!(ids[2]));

    // A platform key resolves the fee; who and why are kept.
    let platform = server.post("/v1/api_keys", json!({"role": "platform"}))["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let fee = all.iter().find(|e| e["state"] == "unmatched_bank").unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = json!({"exception": fee, "reason": "bank fee, booked to expenses"}).to_string();
    let resolve = format!("/v1/reconciliation/runs/{id}/resolutions");
    let (status, resolved) =
        server.call("POST", &resolve, Some(&platform), Some(("application/json", &body)));
    assert_eq!(status, 200, "{resolved}");
    assert_eq!(resolved["resolution"]["reason"], "bank fee, booked to expenses");
    assert!(resolved["resolution"]["by"].as_str().unwrap().starts_with("platform key "));
    let (_, got) = server.call("GET", &format!("/v1/reconciliation/runs/{id}"), Some(ADMIN), None);
    assert_eq!((got["exceptions"].as_u64(), got["open_exceptions"].as_u64()), (Some(3), Some(2)));
    let (status, csv_list) = {
        let agent = ureq::AgentBuilder::new().build();
        let r = agent
            .get(&format!("{}{exceptions_path}", server.base))
            .set("Authorization", &format!("Bearer {ADMIN}"))
            .set("Accept", "text/csv")
            .call()
            .unwrap();
        (r.status(), r.into_string().unwrap())
    };
    assert_eq!(status, 200);
    assert_eq!(csv_list.lines().count(), 4);
    assert!(csv_list.contains("bank fee, booked to expenses"));

    // Access and errors.
    let merchant_key = server
        .post("/v1/api_keys", json!({"role": "merchant", "merchant": merchant}))["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = server.call("POST", &upload, Some(&merchant_key), Some(("text/csv", &csv)));
    assert_eq!(status, 403);
    let (status, _) =
        server.call("GET", &format!("/v1/reconciliation/runs/{id}"), Some(&merchant_key), None);
    assert_eq!(status, 403);
    let (status, _) = server.call("GET", &format!("/v1/reconciliation/runs/{id}"), None, None);
    assert_eq!(status, 401);
    let bad = csv.replace("26.00", "26.0.0");
    let bad = bad.replace("HTTP-1", "HTTP-2");
    let (status, err) = server.call("POST", &upload, Some(ADMIN), Some(("text/csv", &bad)));
    assert_eq!((status, err["error"]["code"].as_str()), (400, Some("invalid_statement")));
    assert!(
        err["error"]["message"].as_str().unwrap().starts_with("line 3, column amount"),
        "{err}"
    );
    let (status, _) = server.call(
        "POST",
        "/v1/reconciliation/statements?channel=chn_999",
        Some(ADMIN),
        Some(("text/csv", &csv)),
    );
    assert_eq!(status, 404);
    let (status, _) = server.call("GET", "/v1/reconciliation/runs/rcn_1_nope", Some(ADMIN), None);
    assert_eq!(status, 400);
    let unknown = format!("/v1/reconciliation/runs/rcn_1_{}-{}", "0".repeat(32), "1".repeat(32));
    let (status, _) = server.call("GET", &unknown, Some(ADMIN), None);
    assert_eq!(status, 404);
}

/// A camt.053 file with a statement for each of two channels' bank accounts and one for an
/// account no channel has, uploaded without a channel: each statement is reconciled with its
/// channel, the third is listed, and a statement whose balances do not add up says by how much.
#[test]
fn a_file_of_several_statements_goes_to_the_channels_of_their_bank_accounts() {
    use huifu_recon::statement::{parse_day, Direction, Line, Statement};
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let user =
        server.post("/v1/users", json!({"currency": "CNY"}))["id"].as_str().unwrap().to_owned();
    let mut channels = Vec::new();
    let mut topups = Vec::new();
    for account in ["CN12 3456 7890 0001", "CN12345678900002"] {
        let channel = server.post("/v1/channels", json!({"currency": "CNY"}))["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let path = format!("/v1/channels/{channel}/bank_account");
        let body = json!({"account": account}).to_string();
        let (status, set) =
            server.call("PUT", &path, Some(ADMIN), Some(("application/json", &body)));
        assert_eq!(status, 200, "{set}");
        let normalized = account.replace(' ', "");
        assert_eq!(
            set,
            json!({"object": "bank_account", "channel": channel, "account": normalized})
        );
        assert_eq!(server.call("GET", &path, Some(ADMIN), None), (200, set));
        let topup =
            server.post("/v1/topups", json!({"user": user, "channel": channel, "amount": 5_000}));
        let topup = topup["id"].as_str().unwrap().to_owned();
        server.post(&format!("/v1/topups/{topup}/confirm"), json!({}));
        channels.push((channel, normalized));
        topups.push(topup);
    }
    // An account is one channel's only.
    let taken = json!({"account": "CN12345678900002"}).to_string();
    let path = format!("/v1/channels/{}/bank_account", channels[0].0);
    let (status, v) = server.call("PUT", &path, Some(ADMIN), Some(("application/json", &taken)));
    assert_eq!((status, v["error"]["code"].as_str()), (409, Some("bank_account_taken")), "{v}");

    let day = parse_day(&today()).unwrap();
    let statement = |id: &str, account: &str, reference: &str, closing: i128| Statement {
        id: id.to_owned(),
        account: account.to_owned(),
        currency: 156,
        from_day: day,
        to_day: day,
        opening_minor: Some(0),
        closing_minor: Some(closing),
        pending_lines: 0,
        lines: vec![Line::new(1, Direction::Credit, 5_000, day, reference)],
    };
    let file = huifu_recon::camt053::write_all(
        &[
            statement("MULTI-1", &channels[0].1, &topups[0], 5_000),
            // Its closing balance is 1.00 off what its line moved.
            statement("MULTI-2", &channels[1].1, &topups[1], 5_100),
            statement("MULTI-3", "CN99999999999999", "top_999", 5_000),
        ],
        "2026-12-08T00:00:00",
    );
    let (status, reply) = server.call(
        "POST",
        "/v1/reconciliation/statements",
        Some(ADMIN),
        Some(("application/xml", &file)),
    );
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["object"], "list");
    let runs = reply["data"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{reply}");
    for ((channel, _), (run, id)) in channels.iter().zip(runs.iter().zip(["MULTI-1", "MULTI-2"])) {
        assert_eq!((&run["channel"], &run["statement"]["id"]), (&json!(channel), &json!(id)));
        assert_eq!(summary(run, "matched"), (1, 1), "{run}");
    }
    assert_eq!(runs[0]["statement"]["balance_difference"], Value::Null);
    assert_eq!(runs[1]["statement"]["balance_difference"], "100");
    assert_eq!(reply["unrouted"], json!([{"statement": "MULTI-3", "account": "CN99999999999999"}]));
}
