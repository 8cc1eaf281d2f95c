//! `GET /openapi.json`: the OpenAPI 3 description of the API, generated from the handlers'
//! annotations and the request types, built once and served without authentication.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorBody, ErrorObject};
use crate::AppState;

/// The name of the security scheme every authenticated operation names.
pub const BEARER: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "huifu",
        description = "A real-time payment engine: payments for the platform's services and \
            merchants' back offices, the ledger for operators. Authenticate with \
            `Authorization: Bearer <key>`; roles are admin, platform and merchant (which sees \
            only its own objects). Object ids carry a type prefix (`usr_`, `mer_`, `pay_`, ...); \
            amounts are integers in minor units. Every error is an `ErrorBody`."
    ),
    paths(
        crate::ledger::create_accounts,
        crate::ledger::create_transfers,
        crate::ledger::lookup_accounts,
        crate::ledger::lookup_transfers,
        crate::ledger::account_transfers,
        crate::api::parties::create_channel,
        crate::api::parties::create_user,
        crate::api::parties::create_merchant,
        crate::api::parties::create_rider,
        crate::api::topups_withdrawals::create_topup,
        crate::api::topups_withdrawals::create_withdrawal,
        crate::api::topups_withdrawals::bank_answer_topup,
        crate::api::topups_withdrawals::bank_answer_withdrawal,
        crate::api::payments::create_payment,
        crate::api::payments::list_payments,
        crate::api::payments::get_payment,
        crate::api::payments::resolve_payment,
        crate::api::refunds::create_refund,
        crate::api::refunds::get_refund,
        crate::api::campaigns::create_campaign,
        crate::api::campaigns::get_campaign,
        crate::api::campaigns::create_coupon,
        crate::api::settlement::create_payout,
        crate::api::settlement::payout_answer,
        crate::api::settlement::create_settlement,
        crate::api::settlement::get_settlement,
        crate::api::settlement::settlement_csv,
        crate::api::balances::get_balance,
        crate::api::balances::get_statement,
        crate::api::balances::platform_balances,
        crate::api::batch::batch,
        crate::api::api_keys::create_api_key,
        crate::api::api_keys::list_api_keys,
        crate::api::api_keys::get_api_key,
        crate::api::api_keys::revoke_api_key,
        crate::api::api_keys::rotate_api_key,
        crate::recon::upload_statement,
        crate::recon::get_run,
        crate::recon::list_exceptions,
        crate::recon::resolve_exception,
        crate::recon::set_bank_account,
        crate::recon::get_bank_account,
        crate::events::events,
        crate::webhooks::create_endpoint,
        crate::webhooks::list_endpoints,
        crate::webhooks::get_endpoint,
        crate::webhooks::update_endpoint,
        crate::webhooks::delete_endpoint,
        crate::webhooks::rotate_secret,
        crate::webhooks::list_attempts,
        crate::webhooks::replay,
        crate::webhooks::get_event,
        crate::metrics::livez,
        crate::metrics::healthz,
        crate::metrics::render,
        crate::cluster::cluster,
        crate::cluster::add_node,
        crate::cluster::remove_node,
        openapi_json,
    ),
    components(schemas(ErrorBody, ErrorObject)),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

/// Registers the bearer-key security scheme the operations refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("An API key: `Authorization: Bearer <key>`."))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(BEARER, SecurityScheme::Http(scheme));
    }
}

/// The document, as JSON.
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| ApiDoc::openapi().to_json().expect("the OpenAPI document serializes"))
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/openapi.json", get(openapi_json))
}

#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    summary = "This OpenAPI document",
    responses((status = 200, body = Object, description = "The OpenAPI 3 description of the API.")),
)]
async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], document())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn the_document_is_openapi_3_with_every_reference_resolved() {
        let doc: Value = serde_json::from_str(super::document()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        assert_eq!(doc["components"]["securitySchemes"][super::BEARER]["scheme"], "bearer");
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for r in found {
            let name = r.strip_prefix("#/components/schemas/").expect("a schema reference");
            assert!(doc["components"]["schemas"].get(name).is_some(), "{r} is not defined");
        }
        // Every authenticated operation names the bearer scheme and documents its errors.
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let public =
                    ["/livez", "/healthz", "/metrics", "/openapi.json"].contains(&path.as_str());
                assert_eq!(op.get("security").is_none(), public, "{method} {path}");
                assert!(op["responses"].get("200").is_some(), "{method} {path}");
                if !public {
                    let statuses = [
                        "400", "401", "403", "404", "405", "409", "415", "422", "429", "503", "507",
                    ];
                    for status in statuses {
                        let r = &op["responses"][status]["content"]["application/json"];
                        assert_eq!(r["schema"]["$ref"], "#/components/schemas/ErrorBody");
                    }
                    let retry = &op["responses"]["503"]["headers"]["Retry-After"];
                    assert_eq!(retry["schema"]["type"], "integer", "{method} {path}");
                }
            }
        }
    }

    /// The ledger endpoints answer `created` for an event that was made, as the ledger names
    /// it; the schema says the same.
    #[test]
    fn the_ledger_results_are_documented_as_the_endpoints_answer_them() {
        use huifu_ledger::{CreateAccountResult, CreateTransferResult};
        let doc: Value = serde_json::from_str(super::document()).unwrap();
        let result = &doc["components"]["schemas"]["EventResult"]["properties"]["result"];
        let created = CreateAccountResult::Created.to_string();
        assert_eq!(created, CreateTransferResult::Created.to_string());
        assert_eq!(result["example"], created.as_str(), "{result}");
        let description = result["description"].as_str().unwrap();
        assert!(description.starts_with(&format!("`{created}`")), "{description}");
        assert!(!description.contains("`ok`"), "{description}");
        for path in ["/v1/ledger/accounts", "/v1/ledger/transfers"] {
            let ok = &doc["paths"][path]["post"]["responses"]["200"]["description"];
            assert!(ok.as_str().unwrap().contains(&format!("`{created}`")), "{path}: {ok}");
        }
    }

    /// The documented page limits are the enforced ones.
    #[test]
    fn the_page_limits_are_documented_as_enforced() {
        use crate::constants::{LEDGER_PAGE_LIMIT_MAX, LIST_LIMIT_MAX, PAGE_LIMIT_DEFAULT};
        let doc: Value = serde_json::from_str(super::document()).unwrap();
        let thousands = |n: u32| {
            let digits = n.to_string();
            let mut out = String::new();
            for (i, c) in digits.chars().enumerate() {
                if i > 0 && (digits.len() - i).is_multiple_of(3) {
                    out.push(',');
                }
                out.push(c);
            }
            out
        };
        for (path, max) in [
            ("/v1/payments", LIST_LIMIT_MAX),
            ("/v1/statements/{object}", LIST_LIMIT_MAX),
            ("/v1/reconciliation/runs/{id}/exceptions", LIST_LIMIT_MAX),
            ("/v1/ledger/accounts/{id}/transfers", LEDGER_PAGE_LIMIT_MAX),
        ] {
            let params = doc["paths"][path]["get"]["parameters"].as_array().unwrap();
            let limit = params.iter().find(|p| p["name"] == "limit").unwrap();
            let description = limit["description"].as_str().unwrap();
            let says = format!("1 to {} ({PAGE_LIMIT_DEFAULT} by default)", thousands(max));
            assert!(description.contains(&says), "{path}: {description}");
            assert_eq!(limit["schema"]["minimum"], 1, "{path}");
            assert_eq!(limit["schema"]["maximum"], max, "{path}");
        }
    }
}
