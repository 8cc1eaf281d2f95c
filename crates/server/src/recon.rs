//! Reconciliation over HTTP: upload a bank statement of a channel, get the run and its
//! exceptions, record a resolution. Operators only (admin and platform keys); a merchant key
//! gets 403. Statements are kept in the data folder (`recon/`), as `huifu reconcile` keeps them,
//! so the command line and the API see the same statements and resolutions.
//!
//! A run's id names its channel and its statement (`rcn_<channel>_<statement key>`); reading a
//! run reconciles again with the ledger as it is now and the statements stored now, so it
//! converges as the bank's late bookings and new statements arrive.

use std::path::PathBuf;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use huifu_recon::constants::STATEMENT_BYTES_MAX;
use huifu_recon::statement::{currency_code, format_day};
use huifu_recon::{
    channel_entries, run, Exception, Format, ImportError, MatchConfig, Report, Store, StoreError,
};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Role;
use crate::constants::LIST_LIMIT_MAX;
use crate::error::ApiError;
use crate::wire::{self, json_value_ok, page_limit, parse_body, parse_id, Path, Prefix, Query};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/reconciliation/runs/{id}", get(get_run))
        .route("/v1/reconciliation/runs/{id}/exceptions", get(list_exceptions))
        .route("/v1/reconciliation/runs/{id}/resolutions", post(resolve_exception))
        .route("/v1/channels/{id}/bank_account", get(get_bank_account).put(set_bank_account))
        .route_layer(axum::middleware::from_fn(wire::json_bodies))
        // A statement is a file: its handler takes XML or CSV (`statement_format`).
        .route("/v1/reconciliation/statements", post(upload_statement))
}

fn run_id(channel: u64, key: &str) -> String {
    format!("rcn_{channel}_{key}")
}

/// `rcn_<channel>_<key>`: the channel and the statement key (hex and one dash only, so it is
/// safe as a file name).
fn parse_run_id(text: &str) -> Result<(u64, String), ApiError> {
    let bad = || {
        ApiError::invalid(
            "invalid_id",
            format!("`{text}` is not a reconciliation run id"),
            Some("id"),
        )
    };
    let rest = text.strip_prefix("rcn_").ok_or_else(bad)?;
    let (channel, key) = rest.split_once('_').ok_or_else(bad)?;
    let channel: u64 = wire::parse_decimal(channel).filter(|c| *c > 0).ok_or_else(bad)?;
    let (a, b) = key.split_once('-').ok_or_else(bad)?;
    let hex = |s: &str| {
        s.len() == 32 && s.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    };
    if !(hex(a) && hex(b)) {
        return Err(bad());
    }
    Ok((channel, key.to_owned()))
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Import(ImportError::TooLarge { .. }) => ApiError::too_large(),
        StoreError::Import(ImportError::Conflict { id }) => ApiError {
            status: StatusCode::CONFLICT,
            kind: "invalid_request_error",
            code: "statement_conflict",
            message: format!("statement `{id}` was already imported with different content; a corrected statement needs a new id"),
            param: None,
            retry_after: None,
        },
        StoreError::Import(ImportError::CurrencyMismatch { .. }) | StoreError::Full { .. } => ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            kind: "business_error",
            code: "statement_refused",
            message: e.to_string(),
            param: None,
            retry_after: None,
        },
        StoreError::Import(e) => ApiError::invalid("invalid_statement", e.to_string(), Some("body")),
        StoreError::InvalidResolution(message) => ApiError::invalid("invalid_field", message, None),
        StoreError::InvalidAccount(message) => ApiError::invalid("invalid_field", message, Some("account")),
        StoreError::AccountTaken { .. } => ApiError {
            status: StatusCode::CONFLICT,
            kind: "invalid_request_error",
            code: "bank_account_taken",
            message: e.to_string(),
            param: Some("account".into()),
            retry_after: None,
        },
        StoreError::Io(error) if huifu_engine::is_storage_full(&error) => {
            tracing::error!(%error, "reconciliation store");
            ApiError::storage_full("recon")
        }
        StoreError::Io(error) => {
            tracing::error!(%error, "reconciliation store");
            ApiError::internal()
        }
    }
}

/// The currency of `channel`; 404 when there is no such channel.
async fn channel_currency(state: &AppState, channel: u64) -> Result<u32, ApiError> {
    let currency = state.read(move |m| m.channel_currency(channel)).await?;
    currency.ok_or_else(|| ApiError::not_found("channel"))
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|error| {
        tracing::error!(%error, "reconciliation task");
        ApiError::internal()
    })?
}

/// Reconciles the stored statement `key` of `channel` and renders the run.
async fn reconcile(
    state: &AppState,
    channel: u64,
    key: String,
    imported: Option<bool>,
) -> Result<(Value, Report, u32), ApiError> {
    let currency = channel_currency(state, channel).await?;
    let config = MatchConfig::default();
    let folder: PathBuf = state.keys.folder().to_path_buf();
    let k = key.clone();
    let (statements, resolutions) = blocking(move || {
        let store = Store::new(&folder);
        let all = store.statements(channel).map_err(store_error)?;
        let statements = run::context(all, &k, &config)
            .ok_or_else(|| ApiError::not_found("reconciliation run"))?;
        Ok((statements, store.resolutions(channel).map_err(store_error)?))
    })
    .await?;
    let (from, to) = run::ledger_range(&statements[0], &config);
    let entries = state.read(move |m| channel_entries(m, currency, channel, from, to)).await?;
    let result =
        blocking(move || Ok(run::run(statements, &entries, &resolutions, &config))).await?;
    let s = &result.statements[0];
    let r = result.report;
    let summary: Vec<Value> = r
        .tallies
        .iter()
        .map(|(state, t)| {
            json!({
                "state": state.name(),
                "lines": t.lines,
                "bank_amount": u64::try_from(t.lines_minor).unwrap_or(u64::MAX),
                "entries": t.entries,
                "ledger_amount": u64::try_from(t.entries_minor).unwrap_or(u64::MAX),
            })
        })
        .collect();
    let mut body = json!({
        "id": run_id(channel, &key),
        "object": "reconciliation_run",
        "channel": Prefix::Channel.id(channel),
        "currency": wire::currency_code(currency),
        "statement": {
            "id": s.id,
            "account": s.account,
            "from_date": format_day(s.from_day),
            "to_date": format_day(s.to_day),
            "lines": s.lines.len(),
            "pending_lines": s.pending_lines,
            // Closing balance less opening balance and lines, when the statement does not add
            // up (a decimal string: minor units, signed); null when it does or has no balances.
            "balance_difference": s.balance_difference().map(|d| d.to_string()),
        },
        "summary": summary,
        "matched_late": r.matched_late,
        "exceptions": r.exceptions.len(),
        "open_exceptions": r.open_exceptions(),
    });
    if let Some(imported) = imported {
        body["imported"] = imported.into();
    }
    let exponent = currency_code(currency).map_or(0, |(_, e)| e);
    Ok((body, r, exponent))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct UploadQuery {
    /// The bank channel the statement is of (`chn_1`). Without it, each statement of the file
    /// goes to the channel whose bank account it names (`PUT /v1/channels/{id}/bank_account`).
    #[param(pattern = "^chn_[1-9][0-9]*$")]
    channel: Option<String>,
    /// `camt053`, `mt940` or `csv`; by default from the `Content-Type` (`application/xml`,
    /// `text/xml`, `text/csv`), else from the content.
    #[param(pattern = "^(camt053|mt940|csv)$")]
    format: Option<String>,
}

/// Imports a bank statement (idempotent: the same file again changes nothing; the same
/// statement id with other content is a 409) and reconciles it with the channel's ledger.
#[utoipa::path(
    post,
    path = "/v1/reconciliation/statements",
    tag = "reconciliation",
    summary = "Upload a bank statement (camt.053, MT940 or CSV) and reconcile it",
    params(UploadQuery),
    request_body(
        description = "The statement file: ISO 20022 camt.053/.054/.052 XML, SWIFT MT940, or huifu's CSV layout (see docs/reconciliation.md).",
        content((String = "application/xml"), (String = "text/plain"), (String = "text/csv")),
    ),
    responses(
        (status = 200, body = Object, description = "With `channel`: the run, `{id, object: reconciliation_run, channel, currency, statement: {id, account, from_date, to_date, lines, pending_lines, balance_difference}, summary: [{state, lines, bank_amount, entries, ledger_amount}], matched_late, exceptions, open_exceptions, imported}`; `balance_difference` is non-null for a statement whose balances do not add up. Without: `{object: list, data: [run], unrouted: [{statement, account}]}`, a run per statement whose account is a channel's, and the statements no channel has."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn upload_statement(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<UploadQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    state.keys.authenticate_operator(&headers)?;
    let channel =
        q.channel.as_deref().map(|c| parse_id(Prefix::Channel, c, "channel")).transpose()?;
    let given = match q.format.as_deref() {
        Some(name) => Some(Format::from_name(name).ok_or_else(|| {
            ApiError::invalid(
                "invalid_format",
                format!("unknown format `{name}`: camt053, mt940 or csv"),
                Some("format"),
            )
        })?),
        None => None,
    };
    let declared = statement_format(wire::content_type(&headers), body.is_empty(), given)?;
    let format = given.or(declared).unwrap_or_else(|| Format::sniff(&body));
    if body.is_empty() {
        return Err(ApiError::invalid(
            "missing_body",
            "the request needs the statement file as its body",
            None,
        ));
    }
    // The body limit (8 MiB) is below this; kept so the store's own limit is never the one hit.
    if body.len() > STATEMENT_BYTES_MAX {
        return Err(ApiError::too_large());
    }
    let folder = state.keys.folder().to_path_buf();
    let Some(channel) = channel else {
        return upload_routed(&state, folder, format, body).await;
    };
    let currency = channel_currency(&state, channel).await?;
    let (key, new) = blocking(move || {
        let (stored, new) =
            Store::new(&folder).import(channel, currency, format, &body).map_err(store_error)?;
        Ok((stored.key, new))
    })
    .await?;
    let (body, _, _) = reconcile(&state, channel, key, Some(new)).await?;
    Ok(json_value_ok(body))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct BankAccountBody {
    /// The channel's account at its bank, as its statements name it: an IBAN (spaces and case
    /// do not matter) or the bank's own account id; 1 to 35 characters.
    account: String,
}

/// Records the bank account of a channel: statements naming it are the channel's.
#[utoipa::path(
    put,
    path = "/v1/channels/{id}/bank_account",
    tag = "reconciliation",
    summary = "Set a channel's bank account (operators)",
    description = "The account its bank's statements name (camt `Acct/Id`, MT940 `:25:`): a \
        statement uploaded without `channel` goes to the channel whose account it names. An \
        account is one channel's at most (409 `bank_account_taken`).",
    params(("id" = String, Path, pattern = "^chn_[1-9][0-9]*$", description = "The channel id (`chn_1`).")),
    request_body = BankAccountBody,
    responses(
        (status = 200, body = crate::replies::BankAccount, description = "The channel's bank account."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn set_bank_account(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    state.keys.authenticate_operator(&headers)?;
    let channel = parse_id(Prefix::Channel, &id, "id")?;
    let b: BankAccountBody = parse_body(&body)?;
    channel_currency(&state, channel).await?;
    let folder = state.keys.folder().to_path_buf();
    let account = blocking(move || {
        let store = Store::new(&folder);
        store.set_account(channel, &b.account).map_err(store_error)?;
        store.account(channel).map_err(store_error)
    })
    .await?;
    Ok(json_value_ok(bank_account_json(channel, account)))
}

/// A channel's bank account.
#[utoipa::path(
    get,
    path = "/v1/channels/{id}/bank_account",
    tag = "reconciliation",
    summary = "A channel's bank account (operators)",
    params(("id" = String, Path, pattern = "^chn_[1-9][0-9]*$", description = "The channel id (`chn_1`).")),
    responses(
        (status = 200, body = crate::replies::BankAccount, description = "The channel's bank account; `account` is null when none was set."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn get_bank_account(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    state.keys.authenticate_operator(&headers)?;
    let channel = parse_id(Prefix::Channel, &id, "id")?;
    channel_currency(&state, channel).await?;
    let folder = state.keys.folder().to_path_buf();
    let account =
        blocking(move || Store::new(&folder).account(channel).map_err(store_error)).await?;
    Ok(json_value_ok(bank_account_json(channel, account)))
}

fn bank_account_json(channel: u64, account: Option<String>) -> Value {
    let account = account.map(|a| huifu_recon::store::normalize_account(&a));
    json!({"object": "bank_account", "channel": Prefix::Channel.id(channel), "account": account})
}

/// An upload without a channel: every statement of the file goes to the channel whose bank
/// account it names; one run per statement taken, and the statements no channel has listed.
/// Nothing is stored unless every statement taken is accepted.
async fn upload_routed(
    state: &AppState,
    folder: PathBuf,
    format: Format,
    body: Bytes,
) -> Result<Response, ApiError> {
    let accounts = {
        let folder = folder.clone();
        blocking(move || Store::new(&folder).accounts().map_err(store_error)).await?
    };
    let channels: Vec<u64> = accounts.values().copied().collect();
    let currencies = state
        .read(move |m| {
            channels.iter().filter_map(|&c| Some((c, m.channel_currency(c)?))).collect::<Vec<_>>()
        })
        .await?;
    let imported = blocking(move || {
        let currency_of = |c: u64| currencies.iter().find(|(k, _)| *k == c).map(|(_, v)| *v);
        Store::new(&folder).import_file(format, &body, None, currency_of).map_err(store_error)
    })
    .await?;
    let mut runs = Vec::with_capacity(imported.stored.len());
    for (channel, stored, new) in imported.stored {
        runs.push(reconcile(state, channel, stored.key, Some(new)).await?.0);
    }
    let unrouted: Vec<Value> = imported
        .unrouted
        .iter()
        .map(|u| json!({"statement": u.id, "account": u.account}))
        .collect();
    Ok(json_value_ok(json!({"object": "list", "data": runs, "unrouted": unrouted})))
}

/// A run: the statement reconciled again with the ledger and the statements stored now.
#[utoipa::path(
    get,
    path = "/v1/reconciliation/runs/{id}",
    tag = "reconciliation",
    summary = "A reconciliation run: counts and sums per state",
    params(("id" = String, Path, pattern = "^rcn_[1-9][0-9]*_[0-9a-f]{32}-[0-9a-f]{32}$", description = "The run id (`rcn_1_…`), from the upload.")),
    responses(
        (status = 200, body = Object, description = "The run, as the upload returns it (without `imported`)."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn get_run(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    state.keys.authenticate_operator(&headers)?;
    let (channel, key) = parse_run_id(&id)?;
    let (body, _, _) = reconcile(&state, channel, key, None).await?;
    Ok(json_value_ok(body))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ExceptionsQuery {
    /// Exceptions per page: 1 to 1,000 (100 by default).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The key of the last exception of the previous page.
    starting_after: Option<String>,
}

fn exception_json(e: &Exception) -> Value {
    json!({
        "key": e.key,
        "state": e.state.name(),
        "direction": e.direction.code(),
        "statement_id": (!e.statement_id.is_empty()).then_some(&e.statement_id),
        "line": (e.line_number != 0).then_some(e.line_number),
        "booking_date": e.booking_day.map(format_day),
        "bank_amount": (!e.statement_id.is_empty()).then_some(e.bank_minor),
        "ledger_amount": (!e.transfer_ids.is_empty()).then_some(e.ledger_minor),
        "ledger_date": e.ledger_day.map(format_day),
        "reference": e.reference,
        "bank_reference": e.bank_reference,
        "transfer_ids": e.transfer_ids.iter().map(|id| id.to_string()).collect::<Vec<_>>(),
        "resolution": e.resolution.as_ref().map(|r| json!({"by": r.by, "reason": r.reason})),
    })
}

/// A run's exceptions: lines and ledger entries that did not match, in run order.
#[utoipa::path(
    get,
    path = "/v1/reconciliation/runs/{id}/exceptions",
    tag = "reconciliation",
    summary = "A reconciliation run's exceptions",
    params(("id" = String, Path, pattern = "^rcn_[1-9][0-9]*_[0-9a-f]{32}-[0-9a-f]{32}$", description = "The run id (`rcn_1_…`)."), ExceptionsQuery),
    responses(
        (status = 200, body = Object, description = "`{object: list, data: [exception], has_more}`; each is `{key, state, direction, statement_id, line, booking_date, bank_amount, ledger_amount, ledger_date, reference, bank_reference, transfer_ids, resolution}`. Add `Accept: text/csv` for the whole list as CSV."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn list_exceptions(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<ExceptionsQuery>,
) -> Result<Response, ApiError> {
    state.keys.authenticate_operator(&headers)?;
    let limit = page_limit(q.limit, LIST_LIMIT_MAX)? as usize;
    let (channel, key) = parse_run_id(&id)?;
    let (_, report, exponent) = reconcile(&state, channel, key, None).await?;
    let wants_csv = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.starts_with("text/csv"));
    if wants_csv {
        use axum::response::IntoResponse;
        let csv = huifu_recon::report::exceptions_csv(&report, exponent);
        return Ok(([(header::CONTENT_TYPE, "text/csv")], csv).into_response());
    }
    let start = match &q.starting_after {
        None => 0,
        Some(after) => {
            1 + report.exceptions.iter().position(|e| e.key == *after).ok_or_else(|| {
                ApiError::invalid(
                    "invalid_id",
                    format!("`{after}` is not an exception of this run"),
                    Some("starting_after"),
                )
            })?
        }
    };
    let page: Vec<Value> =
        report.exceptions[start..].iter().take(limit).map(exception_json).collect();
    let has_more = start + page.len() < report.exceptions.len();
    Ok(json_value_ok(json!({"object": "list", "data": page, "has_more": has_more})))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ResolutionBody {
    /// The exception's key (`line:<statement>:<line>` or `entry:<transfer id>`).
    exception: String,
    /// Why it needs no further action (1 to 500 bytes).
    reason: String,
}

/// Records that an exception was looked into and needs nothing more, with who (the API key's
/// role and key id) and why. It stays in the list, with its resolution.
#[utoipa::path(
    post,
    path = "/v1/reconciliation/runs/{id}/resolutions",
    tag = "reconciliation",
    summary = "Resolve an exception of a reconciliation run",
    params(("id" = String, Path, pattern = "^rcn_[1-9][0-9]*_[0-9a-f]{32}-[0-9a-f]{32}$", description = "The run id (`rcn_1_…`).")),
    request_body = ResolutionBody,
    responses(
        (status = 200, body = Object, description = "The exception with its resolution."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn resolve_exception(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let caller = state.keys.authenticate_operator(&headers)?;
    let (channel, key) = parse_run_id(&id)?;
    let b: ResolutionBody = parse_body(&body)?;
    let (_, report, _) = reconcile(&state, channel, key.clone(), None).await?;
    if !report.exceptions.iter().any(|e| e.key == b.exception) {
        return Err(ApiError::not_found("exception in this run"));
    }
    let role = match caller.role {
        Role::Admin => "admin",
        Role::Platform => "platform",
        Role::Merchant(_) => unreachable!("operators only"),
    };
    let who = format!("{role} key {}", huifu_recon::statement::hex(&caller.key_hash[..4]));
    let folder = state.keys.folder().to_path_buf();
    let (exception, reason) = (b.exception.clone(), b.reason);
    blocking(move || {
        Store::new(&folder).resolve(channel, &exception, &who, &reason).map_err(store_error)
    })
    .await?;
    let (_, report, _) = reconcile(&state, channel, key, None).await?;
    let e =
        report.exceptions.iter().find(|e| e.key == b.exception).ok_or_else(ApiError::internal)?;
    Ok(json_value_ok(exception_json(e)))
}

/// The format a statement's `Content-Type` declares: XML (`application/xml`, `text/xml` or a
/// `+xml` type) is camt.053, `text/csv` is CSV, `text/plain` is MT940 when the `format`
/// parameter (`given`) says so; none leaves it to the `format` parameter or the content. Any
/// other type of a body is a 415.
fn statement_format(
    content_type: Option<&str>,
    empty: bool,
    given: Option<Format>,
) -> Result<Option<Format>, ApiError> {
    let Some(declared) = content_type.filter(|t| !wire::is_curl_default(t)) else {
        return Ok(None);
    };
    let essence = declared.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/xml" | "text/xml" => Ok(Some(Format::Camt053)),
        t if t.contains('/') && t.ends_with("+xml") => Ok(Some(Format::Camt053)),
        "text/csv" => Ok(Some(Format::Csv)),
        "text/plain" if given == Some(Format::Mt940) => Ok(Some(Format::Mt940)),
        _ if empty => Ok(None),
        _ => Err(ApiError::unsupported_media_type(format!(
            "the body is `{declared}`; send a statement as `application/xml` (camt.053), \
             `text/plain` (MT940, with `format=mt940`) or `text/csv`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_is_xml_or_csv_or_says_nothing() {
        for (declared, format) in [
            (Some("application/xml"), Some(Format::Camt053)),
            (Some("text/xml; charset=utf-8"), Some(Format::Camt053)),
            (Some("Application/ISO20022+XML"), Some(Format::Camt053)),
            (Some("text/csv; header=present"), Some(Format::Csv)),
            (Some("application/x-www-form-urlencoded"), None),
            (None, None),
        ] {
            assert_eq!(statement_format(declared, false, None).unwrap(), format, "{declared:?}");
        }
        let plain = Some("text/plain; charset=utf-8");
        let mt940 = Some(Format::Mt940);
        assert_eq!(statement_format(plain, false, mt940).unwrap(), mt940, "MT940 is plain text");
        for declared in ["application/json", "text/plain", "multipart/form-data; boundary=x", ""] {
            let error = statement_format(Some(declared), false, None).unwrap_err();
            assert_eq!((error.status.as_u16(), error.code), (415, "unsupported_media_type"));
            // Without a body there is nothing to refuse: the upload says the body is missing.
            assert_eq!(statement_format(Some(declared), true, None).unwrap(), None);
        }
    }

    #[test]
    fn run_ids_roundtrip_and_refuse_anything_else() {
        let key = format!("{}-{}", "a".repeat(32), "0".repeat(32));
        assert_eq!(parse_run_id(&run_id(7, &key)).unwrap(), (7, key.clone()));
        for bad in [
            "rcn_0_x",
            &format!("rcn_07_{key}"),
            &format!("rcn_+7_{key}"),
            &format!("rcn__{key}"),
            "rcn_1",
            "run_1_x",
            &format!("rcn_1_{}", key.replace('-', "/")),
            &format!("rcn_1_../{key}"),
        ] {
            assert!(parse_run_id(bad).is_err(), "{bad}");
        }
    }
}
