//! The router driven in-process (`tower::ServiceExt::oneshot`): every error is the one JSON
//! shape with its status and code, whatever refused the request (an extractor, the router, the
//! content type, a handler); ids are read only as the API writes them; page limits are the
//! documented ones.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use huifu_engine::{Engine, EngineOptions};
use huifu_payments::PaymentsMachine;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::constants::{LEDGER_PAGE_LIMIT_MAX, LIST_LIMIT_MAX};
use crate::{router, AppState, KeyStore, Role};

const ADMIN: &str = "router-test-admin-key";

struct Api {
    router: Router,
    _dir: tempfile::TempDir,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Api {
    fn new() -> Api {
        let dir = tempfile::tempdir().unwrap();
        let (engine, _) = Engine::<PaymentsMachine>::open(EngineOptions::new(dir.path())).unwrap();
        let keys = KeyStore::open(dir.path()).unwrap();
        keys.add(ADMIN, Role::Admin).unwrap();
        let state = AppState::new(Arc::new(engine), Arc::new(keys));
        Api { router: router(state), _dir: dir }
    }

    /// A request with the admin key; `body` is sent with `content_type` when there is one.
    async fn send(
        &self,
        method: &str,
        uri: &str,
        content_type: Option<&str>,
        body: Option<&str>,
    ) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"));
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_owned()));
        let response = self.router.clone().oneshot(request.body(body).unwrap()).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| json!({ "not_json": String::from_utf8_lossy(&bytes) }));
        Reply { status, headers, body }
    }

    async fn get(&self, uri: &str) -> Reply {
        self.send("GET", uri, None, None).await
    }

    async fn post(&self, uri: &str, body: Value) -> Reply {
        self.send("POST", uri, Some("application/json"), Some(&body.to_string())).await
    }

    /// Creates an object and returns its id.
    async fn create(&self, uri: &str, body: Value) -> String {
        let reply = self.post(uri, body).await;
        assert_eq!(reply.status, StatusCode::OK, "POST {uri}: {}", reply.body);
        reply.body["id"].as_str().unwrap().to_owned()
    }

    /// A merchant paid through a new channel.
    async fn merchant(&self) -> String {
        let channel = self.create("/v1/channels", json!({"currency": "CNY"})).await;
        let merchant = json!({"currency": "CNY", "commission_bps": 100, "channel": channel});
        self.create("/v1/merchants", merchant).await
    }
}

/// `reply` is the error shape and nothing else (`{"error": {type, code, message, param}}`),
/// as JSON, with `status`, `code` and `param`.
#[track_caller]
fn assert_error(reply: &Reply, status: u16, code: &str, param: Option<&str>) {
    let what = &reply.body;
    assert_eq!(reply.status.as_u16(), status, "{what}");
    let content_type = reply.headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap());
    assert_eq!(content_type, Some("application/json"), "{what}");
    let outer = what.as_object().unwrap_or_else(|| panic!("not an object: {what}"));
    assert_eq!(outer.len(), 1, "{what}");
    let error = what["error"].as_object().unwrap_or_else(|| panic!("no error object: {what}"));
    let mut keys: Vec<&str> = error.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["code", "message", "param", "type"], "{what}");
    let kind = error["type"].as_str().unwrap();
    let expected_kind = if status >= 500 { "api_error" } else { "invalid_request_error" };
    assert_eq!(kind, expected_kind, "{what}");
    assert_eq!(error["code"], code, "{what}");
    assert!(!error["message"].as_str().unwrap().is_empty(), "{what}");
    assert_eq!(error["param"].as_str(), param, "{what}");
}

#[tokio::test]
async fn a_query_parameter_that_does_not_parse_is_a_json_400_naming_it() {
    let api = Api::new();
    let merchant = api.merchant().await;
    for (uri, param) in [
        (format!("/v1/payments?merchant={merchant}&limit=abc"), Some("limit")),
        (format!("/v1/payments?merchant={merchant}&limit=-1"), Some("limit")),
        (format!("/v1/payments?merchant={merchant}&limit="), Some("limit")),
        (format!("/v1/payments?merchant={merchant}&limit=99999999999"), Some("limit")),
        (format!("/v1/payments?merchant={merchant}&colour=red"), Some("colour")),
        (format!("/v1/payments?merchant={merchant}&merchant={merchant}"), Some("merchant")),
        ("/v1/statements/usr_1?limit=ten".into(), Some("limit")),
        ("/v1/ledger/accounts/1/transfers?limit=1.5".into(), Some("limit")),
        ("/v1/events?account=usr_1&since=0".into(), Some("since")),
        ("/v1/reconciliation/runs/rcn_1_x/exceptions?limit=x".into(), Some("limit")),
    ] {
        let reply = api.get(&uri).await;
        assert_error(&reply, 400, "invalid_parameter", param);
    }
    // A statement upload's query is read before its body.
    let reply = api.send("POST", "/v1/reconciliation/statements?chanel=chn_1", None, None).await;
    assert_error(&reply, 400, "invalid_parameter", Some("chanel"));
}

#[tokio::test]
async fn a_path_parameter_that_is_not_text_is_a_json_400() {
    let api = Api::new();
    assert_error(&api.get("/v1/payments/pay_%FF").await, 400, "invalid_id", Some("id"));
    assert_error(&api.get("/v1/balances/%C3%28").await, 400, "invalid_id", Some("object"));
    let reply = api.send("POST", "/v1/payments/pay_1/%FF", None, None).await;
    assert_error(&reply, 400, "invalid_parameter", Some("action"));
}

#[tokio::test]
async fn an_unknown_route_is_a_json_404_and_a_wrong_method_a_json_405_with_allow() {
    let api = Api::new();
    for (method, uri) in
        [("GET", "/v1/nothing"), ("POST", "/v1/nothing"), ("GET", "/"), ("GET", "/v1/payments/")]
    {
        let reply = api.send(method, uri, None, None).await;
        assert_error(&reply, 404, "route_not_found", None);
    }
    // Without a key too: the route is decided before anything else.
    let request = Request::builder().uri("/v2/payments").body(Body::empty()).unwrap();
    let response = api.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 404);

    for (method, uri, allow) in [
        ("DELETE", "/v1/payments", "GET,HEAD,POST"),
        ("PUT", "/v1/users", "POST"),
        ("POST", "/v1/payments/pay_1", "GET,HEAD"),
        ("GET", "/v1/ledger/transfers", "POST"),
        ("POST", "/healthz", "GET,HEAD"),
    ] {
        let reply = api.send(method, uri, Some("application/json"), Some("{}")).await;
        assert_error(&reply, 405, "method_not_allowed", None);
        let mut allowed: Vec<&str> =
            reply.headers[header::ALLOW].to_str().unwrap().split(',').map(str::trim).collect();
        allowed.sort_unstable();
        assert_eq!(allowed.join(","), allow, "{method} {uri}");
    }
}

#[tokio::test]
async fn a_malformed_id_is_a_400_everywhere_and_a_missing_object_a_404() {
    let api = Api::new();
    let user = api.create("/v1/users", json!({"currency": "CNY"})).await;
    let merchant = api.merchant().await;
    for (uri, param) in [
        ("/v1/balances/usr_abc".to_owned(), "object"),
        ("/v1/balances/usr_".to_owned(), "object"),
        ("/v1/balances/usr_007".to_owned(), "object"),
        ("/v1/balances/pay_1".to_owned(), "object"),
        ("/v1/balances/usr1".to_owned(), "object"),
        ("/v1/statements/usr_x".to_owned(), "object"),
        ("/v1/statements/mer_+1".to_owned(), "object"),
        ("/v1/events?account=usr_x".to_owned(), "account"),
        ("/v1/events?account=nobody".to_owned(), "account"),
        ("/v1/payments/pay_abc".to_owned(), "id"),
        ("/v1/payments/pay_007".to_owned(), "id"),
        ("/v1/payments/pay_+1".to_owned(), "id"),
        ("/v1/payments/pay_".to_owned(), "id"),
        ("/v1/payments/pay_0".to_owned(), "id"),
        ("/v1/payments/pay_18446744073709551616".to_owned(), "id"),
        ("/v1/refunds/ref_01".to_owned(), "id"),
        ("/v1/campaigns/cmp_-1".to_owned(), "id"),
        ("/v1/settlement_runs/stl_1x".to_owned(), "id"),
        ("/v1/settlement_runs/stl_08/payouts.csv".to_owned(), "id"),
        (format!("/v1/payments?merchant=mer_0{}", &merchant[4..]), "merchant"),
        (format!("/v1/payments?user=usr_+{}", &user[4..]), "user"),
        (format!("/v1/payments?merchant={merchant}&starting_after=pay_007"), "starting_after"),
        (format!("/v1/statements/{user}?starting_after=+5"), "starting_after"),
        (format!("/v1/statements/{user}?starting_after=05"), "starting_after"),
        ("/v1/ledger/accounts/007/transfers".to_owned(), "id"),
        ("/v1/ledger/accounts/+7/transfers".to_owned(), "id"),
        ("/v1/ledger/accounts/0/transfers".to_owned(), "id"),
        ("/v1/ledger/accounts/340282366920938463463374607431768211456/transfers".to_owned(), "id"),
        ("/v1/ledger/accounts/7/transfers?starting_after=0x10".to_owned(), "starting_after"),
        ("/v1/reconciliation/runs/rcn_01_x".to_owned(), "id"),
    ] {
        assert_error(&api.get(&uri).await, 400, "invalid_id", Some(param));
    }
    for (uri, body, param) in [
        ("/v1/refunds", json!({"payment": "pay_007", "amount": 1}), "payment"),
        ("/v1/topups", json!({"user": "usr_+1", "channel": "chn_1", "amount": 1}), "user"),
        ("/v1/payouts/po_0ab/confirm", json!({}), "id"),
        ("/v1/payouts/po_AB/confirm", json!({}), "id"),
        ("/v1/topups/top_01/confirm", json!({}), "id"),
    ] {
        assert_error(&api.post(uri, body).await, 400, "invalid_id", Some(param));
    }

    // Well-formed ids of nothing: 404; of something: 200.
    for uri in [
        "/v1/balances/usr_999999",
        "/v1/statements/mer_999999",
        "/v1/events?account=cmp_999999",
        "/v1/payments/pay_999999",
        "/v1/refunds/ref_18446744073709551615",
        "/v1/ledger/accounts/999999/transfers",
    ] {
        assert_error(&api.get(uri).await, 404, "resource_missing", None);
    }
    for uri in [format!("/v1/balances/{user}"), format!("/v1/statements/{merchant}")] {
        assert_eq!(api.get(&uri).await.status, 200, "{uri}");
    }
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_415_and_one_without_a_type_is_read() {
    let api = Api::new();
    let body = r#"{"currency":"CNY"}"#;
    for content_type in [
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/jsonx",
        "",
    ] {
        for uri in ["/v1/users", "/v1/ledger/accounts/lookup", "/v1/batch", "/v1/cluster/nodes"] {
            let reply = api.send("POST", uri, Some(content_type), Some(body)).await;
            assert_error(&reply, 415, "unsupported_media_type", Some("Content-Type"));
        }
    }
    for content_type in [
        Some("application/json"),
        Some("application/json; charset=utf-8"),
        Some("APPLICATION/JSON;charset=UTF-8"),
        Some("application/vnd.huifu+json"),
        // What curl's -d declares when told nothing: read as if no type were given.
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let reply = api.send("POST", "/v1/users", content_type, Some(body)).await;
        assert_eq!(reply.status, 200, "{content_type:?}: {}", reply.body);
        assert!(reply.body["id"].as_str().unwrap().starts_with("usr_"));
    }
    // A request without a body is not looked at, whatever it declares.
    let user = api.create("/v1/users", json!({"currency": "CNY"})).await;
    let reply = api.send("GET", &format!("/v1/balances/{user}"), Some("text/plain"), None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    // A statement is XML or CSV; JSON or anything else is refused before it is read.
    let channel = api.create("/v1/channels", json!({"currency": "CNY"})).await;
    let upload = format!("/v1/reconciliation/statements?channel={channel}");
    for content_type in ["application/json", "text/plain"] {
        let reply = api.send("POST", &upload, Some(content_type), Some("a,b\n")).await;
        assert_error(&reply, 415, "unsupported_media_type", Some("Content-Type"));
    }
    // A CSV statement is read as one (and this one is not a statement).
    let reply = api.send("POST", &upload, Some("text/csv"), Some("a,b\n")).await;
    assert_error(&reply, 400, "invalid_statement", Some("body"));
    // The resolutions of a run take JSON.
    let reply = api
        .send("POST", "/v1/reconciliation/runs/rcn_1_x/resolutions", Some("text/plain"), Some("x"))
        .await;
    assert_error(&reply, 415, "unsupported_media_type", Some("Content-Type"));
}

#[tokio::test]
async fn page_limits_are_the_documented_ones_and_the_error_says_them() {
    let api = Api::new();
    let user = api.create("/v1/users", json!({"currency": "CNY"})).await;
    let merchant = api.merchant().await;
    let list = LIST_LIMIT_MAX;
    let ledger = LEDGER_PAGE_LIMIT_MAX;
    assert_eq!((list, ledger), (1_000, 8_189), "docs/http-api.md and the README say these");
    for (uri, max) in [
        (format!("/v1/payments?merchant={merchant}"), list),
        (format!("/v1/payments?user={user}"), list),
        (format!("/v1/statements/{user}?"), list),
        ("/v1/ledger/accounts/999999/transfers?".to_owned(), ledger),
    ] {
        let uri = if uri.ends_with('?') { uri } else { format!("{uri}&") };
        for limit in [0, max + 1, 5_000.max(max + 1)] {
            let reply = api.get(&format!("{uri}limit={limit}")).await;
            assert_error(&reply, 400, "invalid_limit", Some("limit"));
            let message = reply.body["error"]["message"].as_str().unwrap();
            assert_eq!(message, format!("limit must be between 1 and {max}"));
        }
        // The largest limit is taken (the ledger account does not exist: 404, past the limit).
        let reply = api.get(&format!("{uri}limit={max}")).await;
        assert_ne!(reply.status, 400, "{uri}: {}", reply.body);
    }
}

#[tokio::test]
async fn errors_of_handlers_keep_their_shape() {
    let api = Api::new();
    // Unauthenticated, malformed JSON, an unknown field: the same shape, other types.
    let request = Request::builder().uri("/v1/balances/usr_1").body(Body::empty()).unwrap();
    let response = api.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 401);
    let reply = api.send("POST", "/v1/users", Some("application/json"), Some("{")).await;
    assert_error(&reply, 400, "invalid_json", None);
    let reply = api.post("/v1/users", json!({"currency": "CNY", "name": "x"})).await;
    assert_error(&reply, 400, "invalid_field", Some("name"));
    let reply = api.send("POST", "/v1/users", Some("application/json"), None).await;
    assert_error(&reply, 400, "missing_body", None);
}

#[tokio::test]
async fn a_statement_pages_only_from_its_own_entries() {
    let api = Api::new();
    let channel = api.create("/v1/channels", json!({"currency": "CNY"})).await;
    let mut users = Vec::new();
    for _ in 0..2 {
        let user = api.create("/v1/users", json!({"currency": "CNY"})).await;
        for amount in [500, 700] {
            let body =
                json!({"user": user, "channel": channel, "amount": amount, "timeout_seconds": 60});
            let topup = api.create("/v1/topups", body).await;
            let reply = api.post(&format!("/v1/topups/{topup}/confirm"), json!({})).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        }
        users.push(user);
    }
    let statement =
        |user: &str, after: &str| format!("/v1/statements/{user}?limit=1&starting_after={after}");
    let first = api.get(&format!("/v1/statements/{}?limit=1", users[0])).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let own = first.body["data"][0]["id"].as_str().unwrap().to_owned();
    let reply = api.get(&statement(&users[0], &own)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["data"].as_array().unwrap().len(), 1, "{}", reply.body);

    // Another account's entry answers as one that does not exist.
    let elsewhere = api.get(&statement(&users[1], &own)).await;
    assert_error(&elsewhere, 400, "invalid_id", Some("starting_after"));
    let missing = api.get(&statement(&users[1], "987654321")).await;
    assert_error(&missing, 400, "invalid_id", Some("starting_after"));
}

#[tokio::test]
async fn operators_see_the_platforms_own_accounts() {
    let api = Api::new();
    let empty = api.get("/v1/platform/balances").await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.body);
    assert_eq!(empty.body["data"], json!([]), "{}", empty.body);

    let channel = api.create("/v1/channels", json!({"currency": "CNY"})).await;
    let merchant = json!({"currency": "CNY", "commission_bps": 1_000, "channel": channel});
    let merchant = api.create("/v1/merchants", merchant).await;
    let rider = api.create("/v1/riders", json!({"currency": "CNY"})).await;
    let user = api.create("/v1/users", json!({"currency": "CNY"})).await;
    let topup = json!({"user": user, "channel": channel, "amount": 10_000, "timeout_seconds": 60});
    let topup = api.create("/v1/topups", topup).await;
    let confirmed = api.post(&format!("/v1/topups/{topup}/confirm"), json!({})).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    let payment = json!({"user": user, "merchant": merchant, "rider": rider,
                         "food_amount": 3_000, "delivery_fee": 500});
    api.create("/v1/payments", payment).await;

    let reply = api.get("/v1/platform/balances").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let rows = reply.body["data"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{}", reply.body);
    assert_eq!(rows[0]["currency"], "CNY");
    // 10% of the food: the commission, posted to the platform's revenue.
    let revenue = &rows[0]["platform_revenue"];
    assert_eq!(
        (revenue["credits_posted"].as_str(), revenue["net"].as_str()),
        (Some("300"), Some("300"))
    );
    for kind in ["payouts_in_transit", "platform_marketing"] {
        assert_eq!(rows[0][kind]["net"], "0", "{}", reply.body);
    }
}

/// A request with `key` (none when `None`), as if from `address` over a socket when given.
async fn call(
    api: &Api,
    method: &str,
    uri: &str,
    key: Option<&str>,
    body: Option<Value>,
    address: Option<[u8; 4]>,
) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(key) = key {
        request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let mut request = request.body(body).unwrap();
    if let Some(ip) = address {
        let address = std::net::SocketAddr::from((ip, 40_000));
        request.extensions_mut().insert(axum::extract::ConnectInfo(address));
    }
    let response = api.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply { status, headers, body }
}

/// An error reply in the one shape, of `kind` and `code`, and its `Retry-After` if any.
#[track_caller]
fn assert_refused(reply: &Reply, status: u16, kind: &str, code: &str) -> Option<u64> {
    let what = &reply.body;
    assert_eq!(reply.status.as_u16(), status, "{what}");
    assert_eq!(what.as_object().map(|o| o.len()), Some(1), "{what}");
    assert_eq!(
        (what["error"]["type"].as_str(), what["error"]["code"].as_str()),
        (Some(kind), Some(code)),
        "{what}"
    );
    reply.headers.get(header::RETRY_AFTER).map(|v| v.to_str().unwrap().parse().unwrap())
}

#[tokio::test]
async fn api_keys_are_listed_got_revoked_and_rotated_and_never_shown_again() {
    let api = Api::new();
    let merchant = api.merchant().await;
    let made = api.post("/v1/api_keys", json!({"role": "merchant", "merchant": merchant})).await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.body);
    let (key, id) = (made.body["key"].as_str().unwrap(), made.body["id"].as_str().unwrap());
    assert!(id.starts_with("key_") && id.len() == 24, "{id}");
    assert_eq!(
        (made.body["status"].as_str(), made.body["merchant"].as_str()),
        (Some("active"), Some(merchant.as_str()))
    );
    assert_eq!(
        (made.body["rate_per_second"].as_u64(), made.body["burst"].as_u64()),
        (Some(100), Some(200))
    );
    assert!(made.body["created_at"].as_u64().is_some() && made.body["last_used_at"].is_null());

    // The key works, and its use shows; the list and the key's own page never show a key.
    assert_eq!(
        call(&api, "GET", &format!("/v1/balances/{merchant}"), Some(key), None, None).await.status,
        200
    );
    let list = api.get("/v1/api_keys").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let data = list.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2, "the admin key and the merchant's: {}", list.body);
    let text = list.body.to_string();
    assert!(!text.contains(key) && !text.contains(ADMIN) && !text.contains("\"key\""), "{text}");
    let one = api.get(&format!("/v1/api_keys/{id}")).await;
    assert_eq!((one.body["id"].as_str(), one.body["role"].as_str()), (Some(id), Some("merchant")));
    assert!(one.body["last_used_at"].as_u64().is_some(), "{}", one.body);
    assert!(one.body.get("key").is_none());
    let page = api
        .get(&format!("/v1/api_keys?limit=1&starting_after={}", data[0]["id"].as_str().unwrap()))
        .await;
    assert_eq!(
        (page.body["data"].as_array().unwrap().len(), page.body["has_more"].as_bool()),
        (1, Some(false))
    );

    // Revoked: refused from the next request on; revoking again changes nothing.
    let revoked =
        call(&api, "DELETE", &format!("/v1/api_keys/{id}"), Some(ADMIN), None, None).await;
    assert_eq!((revoked.status.as_u16(), revoked.body["status"].as_str()), (200, Some("revoked")));
    let refused =
        call(&api, "GET", &format!("/v1/balances/{merchant}"), Some(key), None, None).await;
    assert_refused(&refused, 401, "authentication_error", "api_key_revoked");
    let again = call(&api, "DELETE", &format!("/v1/api_keys/{id}"), Some(ADMIN), None, None).await;
    assert_eq!(
        (again.status.as_u16(), again.body["revoked_at"].clone()),
        (200, revoked.body["revoked_at"].clone())
    );
    let rotate =
        call(&api, "POST", &format!("/v1/api_keys/{id}/rotate"), Some(ADMIN), None, None).await;
    assert_refused(&rotate, 409, "invalid_request_error", "api_key_inactive");

    // Rotated with no overlap: the old key stops at once, the new one has its role and rate.
    let platform =
        api.post("/v1/api_keys", json!({"role": "platform", "rate_per_second": 5000})).await;
    let (old_key, old_id) =
        (platform.body["key"].as_str().unwrap(), platform.body["id"].as_str().unwrap());
    let rotated =
        api.post(&format!("/v1/api_keys/{old_id}/rotate"), json!({"overlap_seconds": 0})).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let new_key = rotated.body["key"].as_str().unwrap();
    assert_eq!(
        (rotated.body["role"].as_str(), rotated.body["rate_per_second"].as_u64()),
        (Some("platform"), Some(5000))
    );
    assert_eq!(rotated.body["rotated"]["status"], "expired", "{}", rotated.body);
    let old = call(&api, "GET", "/v1/platform/balances", Some(old_key), None, None).await;
    assert_refused(&old, 401, "authentication_error", "api_key_expired");
    assert_eq!(
        call(&api, "GET", "/v1/platform/balances", Some(new_key), None, None).await.status,
        200
    );
    // With an overlap (a day by default) both work until it ends.
    let next = api
        .post(&format!("/v1/api_keys/{}/rotate", rotated.body["id"].as_str().unwrap()), json!({}))
        .await;
    assert_eq!(next.body["rotated"]["status"], "active", "{}", next.body);
    let overlap_end = next.body["rotated"]["expires_at"].as_u64().unwrap();
    assert_eq!(overlap_end - next.body["created_at"].as_u64().unwrap(), 86_400);
    for key in [new_key, next.body["key"].as_str().unwrap()] {
        assert_eq!(
            call(&api, "GET", "/v1/platform/balances", Some(key), None, None).await.status,
            200
        );
    }
}

#[tokio::test]
async fn api_key_requests_that_cannot_be_are_refused_with_typed_errors() {
    let api = Api::new();
    // A key only for a merchant that exists.
    let missing =
        api.post("/v1/api_keys", json!({"role": "merchant", "merchant": "mer_99999999"})).await;
    assert_error(&missing, 404, "resource_missing", Some("merchant"));
    assert_eq!(api.get("/v1/api_keys").await.body["data"].as_array().unwrap().len(), 1);
    let now = crate::auth::now_seconds();
    for (body, code, param) in [
        (json!({"role": "platform", "expires_at": now - 1}), "invalid_expiry", "expires_at"),
        (
            json!({"role": "platform", "expires_at": now + 11 * 365 * 86_400}),
            "invalid_expiry",
            "expires_at",
        ),
        (json!({"role": "platform", "rate_per_second": 0}), "invalid_rate", "rate_per_second"),
        (
            json!({"role": "platform", "rate_per_second": 10_000_001}),
            "invalid_rate",
            "rate_per_second",
        ),
        (json!({"role": "platform", "burst": 0}), "invalid_rate", "burst"),
        (json!({"role": "platform", "expires_at": "tomorrow"}), "invalid_field", "expires_at"),
        (json!({"role": "owner"}), "invalid_role", "role"),
    ] {
        assert_error(&api.post("/v1/api_keys", body).await, 400, code, Some(param));
    }
    assert_error(&api.get("/v1/api_keys/key_xyz").await, 400, "invalid_id", Some("id"));
    assert_error(
        &api.get("/v1/api_keys/key_0123456789abcdef0123").await,
        404,
        "resource_missing",
        None,
    );
    let admin_id = api.get("/v1/api_keys").await.body["data"][0]["id"].as_str().unwrap().to_owned();
    let rotate = api
        .post(&format!("/v1/api_keys/{admin_id}/rotate"), json!({"overlap_seconds": 40 * 86_400}))
        .await;
    assert_error(&rotate, 400, "invalid_overlap", Some("overlap_seconds"));
    // The last admin key that works cannot be revoked; once there is another, it can.
    let last =
        call(&api, "DELETE", &format!("/v1/api_keys/{admin_id}"), Some(ADMIN), None, None).await;
    assert_error(&last, 409, "last_admin_key", None);
    let other = api.post("/v1/api_keys", json!({"role": "admin"})).await.body["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked =
        call(&api, "DELETE", &format!("/v1/api_keys/{admin_id}"), Some(&other), None, None).await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    assert_refused(&api.get("/v1/api_keys").await, 401, "authentication_error", "api_key_revoked");
    // Only an admin manages keys.
    let platform =
        call(&api, "POST", "/v1/api_keys", Some(&other), Some(json!({"role": "platform"})), None)
            .await;
    let platform = platform.body["key"].as_str().unwrap();
    assert_refused(
        &call(&api, "GET", "/v1/api_keys", Some(platform), None, None).await,
        403,
        "permission_error",
        "forbidden",
    );
}

/// A key above its rate gets 429 in the error shape with `Retry-After`, and nothing is done;
/// another key is not held by it.
#[tokio::test]
async fn a_key_above_its_rate_is_refused_with_429_and_retry_after() {
    let api = Api::new();
    let slow = api
        .post("/v1/api_keys", json!({"role": "platform", "rate_per_second": 1, "burst": 2}))
        .await;
    assert_eq!(
        (slow.body["rate_per_second"].as_u64(), slow.body["burst"].as_u64()),
        (Some(1), Some(2))
    );
    let slow = slow.body["key"].as_str().unwrap();
    for _ in 0..2 {
        assert_eq!(
            call(&api, "GET", "/v1/platform/balances", Some(slow), None, None).await.status,
            200
        );
    }
    let refused =
        call(&api, "POST", "/v1/users", Some(slow), Some(json!({"currency": "CNY"})), None).await;
    let retry = assert_refused(&refused, 429, "rate_limit_error", "rate_limited");
    assert_eq!(retry, Some(1));
    assert_eq!(api.get("/v1/platform/balances").await.status, StatusCode::OK);
}

/// Requests without a valid key are limited per client address (each costs a hash): above
/// the budget they get 429 with `Retry-After`, while that address's valid keys and other
/// addresses go on as before.
#[tokio::test]
async fn failed_authentications_are_limited_per_client_address() {
    use crate::constants::ADDRESS_AUTH_FAILURES_BURST;
    let api = Api::new();
    let guesser = Some([10, 0, 0, 7]);
    // The whole burst is answered 401; then, once what the rate let through meanwhile is
    // spent, 429.
    let burst = ADDRESS_AUTH_FAILURES_BURST;
    let mut n = 0;
    let over = loop {
        let key = format!("hk_guess{n}");
        let reply = call(&api, "GET", "/v1/platform/balances", Some(&key), None, guesser).await;
        if reply.status != StatusCode::UNAUTHORIZED {
            break reply;
        }
        assert_refused(&reply, 401, "authentication_error", "invalid_api_key");
        n += 1;
        assert!(n < burst + burst / 2, "never refused");
    };
    assert!(n >= burst, "refused after {n}");
    let retry = assert_refused(&over, 429, "rate_limit_error", "rate_limited");
    assert!(retry.is_some_and(|s| s >= 1), "{:?}", over.headers);
    let none = call(&api, "GET", "/v1/platform/balances", None, None, guesser).await;
    assert_refused(&none, 429, "rate_limit_error", "rate_limited");
    // A valid key from the same address is not held to it; another address is not either.
    let valid = call(&api, "GET", "/v1/platform/balances", Some(ADMIN), None, guesser).await;
    assert_eq!(valid.status, StatusCode::OK);
    let other =
        call(&api, "GET", "/v1/platform/balances", Some("hk_typo"), None, Some([10, 0, 0, 8]))
            .await;
    assert_refused(&other, 401, "authentication_error", "invalid_api_key");
}
