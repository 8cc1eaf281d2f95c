//! The ledger endpoints for operators (admin key only), with TigerBeetle's field and result
//! names: 128- and 64-bit integers as decimal strings, 32- and 16-bit as numbers, flags as lists
//! of snake_case names, at most 8,190 events per call.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use huifu_ledger::constants::BATCH_EVENTS_MAX;
use huifu_ledger::{Account, AccountFilter, AccountFlags, Transfer, TransferFlags};
use huifu_payments::{Done, Op, PaymentsMachine};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Role;
use crate::constants::LEDGER_PAGE_LIMIT_MAX;
use crate::error::ApiError;
use crate::wire::{page_limit, parse_body, parse_decimal, parse_ledger_id, Path, Query};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/ledger/accounts", post(create_accounts))
        .route("/v1/ledger/transfers", post(create_transfers))
        .route("/v1/ledger/accounts/lookup", post(lookup_accounts))
        .route("/v1/ledger/transfers/lookup", post(lookup_transfers))
        .route("/v1/ledger/accounts/{id}/transfers", get(account_transfers))
}

/// A u128 or u64 as a decimal string, written as the API writes it (no sign, no leading zero).
#[derive(Clone, Copy, Debug, Default)]
struct Dec<T>(T);

impl<'de, T: std::str::FromStr> Deserialize<'de> for Dec<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_decimal(&text).map(Dec).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{text}` is not an unsigned integer in range, in decimal digits without a sign \
                 or leading zeros"
            ))
        })
    }
}

impl<T: std::fmt::Display> Serialize for Dec<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

/// An account to create, with TigerBeetle's fields; 128- and 64-bit integers are decimal strings.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AccountIn {
    #[serde(default)]
    #[schema(value_type = String)]
    id: Dec<u128>,
    #[serde(default)]
    #[schema(value_type = String)]
    debits_pending: Dec<u128>,
    #[serde(default)]
    #[schema(value_type = String)]
    debits_posted: Dec<u128>,
    #[serde(default)]
    #[schema(value_type = String)]
    credits_pending: Dec<u128>,
    #[serde(default)]
    #[schema(value_type = String)]
    credits_posted: Dec<u128>,
    #[serde(default)]
    #[schema(value_type = String)]
    user_data_128: Dec<u128>,
    #[serde(default)]
    #[schema(value_type = String)]
    user_data_64: Dec<u64>,
    #[serde(default)]
    user_data_32: u32,
    #[serde(default)]
    reserved: u32,
    #[serde(default)]
    ledger: u32,
    #[serde(default)]
    code: u16,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    #[schema(value_type = String)]
    timestamp: Dec<u64>,
}

/// A transfer to create, with TigerBeetle's fields; 128- and 64-bit integers are decimal strings.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TransferIn {
    #[serde(default)]
    #[schema(value_type = String)]
    id: Dec<u128>,
    #[serde(default)]
    #[schema(value_type = String)]
    debit_account_id: Dec<u128>,
    #[serde(default)]
    #[schema(value_type = String)]
    credit_account_id: Dec<u128>,
    #[serde(default)]
    #[schema(value_type = String)]
    amount: Dec<u128>,
    #[serde(default)]
    #[schema(value_type = String)]
    pending_id: Dec<u128>,
    #[serde(default)]
    #[schema(value_type = String)]
    user_data_128: Dec<u128>,
    #[serde(default)]
    #[schema(value_type = String)]
    user_data_64: Dec<u64>,
    #[serde(default)]
    user_data_32: u32,
    #[serde(default)]
    timeout: u32,
    #[serde(default)]
    ledger: u32,
    #[serde(default)]
    code: u16,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    #[schema(value_type = String)]
    timestamp: Dec<u64>,
}

impl AccountIn {
    fn into_account(self, index: usize) -> Result<Account, ApiError> {
        Ok(Account {
            id: self.id.0,
            debits_pending: self.debits_pending.0,
            debits_posted: self.debits_posted.0,
            credits_pending: self.credits_pending.0,
            credits_posted: self.credits_posted.0,
            user_data_128: self.user_data_128.0,
            user_data_64: self.user_data_64.0,
            user_data_32: self.user_data_32,
            reserved: self.reserved,
            ledger: self.ledger,
            code: self.code,
            flags: account_flags(&self.flags, index)?,
            timestamp: self.timestamp.0,
        })
    }
}

impl TransferIn {
    fn into_transfer(self, index: usize) -> Result<Transfer, ApiError> {
        Ok(Transfer {
            id: self.id.0,
            debit_account_id: self.debit_account_id.0,
            credit_account_id: self.credit_account_id.0,
            amount: self.amount.0,
            pending_id: self.pending_id.0,
            user_data_128: self.user_data_128.0,
            user_data_64: self.user_data_64.0,
            user_data_32: self.user_data_32,
            timeout: self.timeout,
            ledger: self.ledger,
            code: self.code,
            flags: transfer_flags(&self.flags, index)?,
            timestamp: self.timestamp.0,
        })
    }
}

/// What creating accounts and creating transfers share: parse the batch, convert each event
/// (naming the one at fault), apply it as one ledger operation, render one result per event.
async fn create<In: serde::de::DeserializeOwned, Event>(
    state: &AppState,
    headers: &HeaderMap,
    body: &Bytes,
    convert: fn(In, usize) -> Result<Event, ApiError>,
    op: fn(Vec<Event>) -> Op,
) -> Result<Json<Vec<EventResult>>, ApiError> {
    admin(state, headers)?;
    let events: Vec<In> = parse_body(body)?;
    check_batch(events.len())?;
    let events = events
        .into_iter()
        .enumerate()
        .map(|(i, e)| convert(e, i))
        .collect::<Result<Vec<_>, ApiError>>()?;
    match state.execute(op(events)).await? {
        Done::LedgerAccounts(r) => Ok(results(&r)),
        Done::LedgerTransfers(r) => Ok(results(&r)),
        other => Err(state.unexpected(other)),
    }
}

/// What the two lookups share: the objects `find` returns for the ids, in order, those not
/// found left out.
async fn lookup(
    state: &AppState,
    headers: &HeaderMap,
    body: &Bytes,
    find: fn(&PaymentsMachine, u128) -> Option<Value>,
) -> Result<Json<Value>, ApiError> {
    admin(state, headers)?;
    let ids: Ids = parse_body(body)?;
    check_batch(ids.ids.len())?;
    let found =
        state.read(move |m| ids.ids.iter().filter_map(|id| find(m, id.0)).collect()).await?;
    Ok(Json(Value::Array(found)))
}

fn account_flags(names: &[String], index: usize) -> Result<AccountFlags, ApiError> {
    names.iter().try_fold(AccountFlags::default(), |acc, name| {
        AccountFlags::from_name(name).map(|f| acc | f).ok_or_else(|| unknown_flag(name, index))
    })
}

fn transfer_flags(names: &[String], index: usize) -> Result<TransferFlags, ApiError> {
    names.iter().try_fold(TransferFlags::default(), |acc, name| {
        TransferFlags::from_name(name).map(|f| acc | f).ok_or_else(|| unknown_flag(name, index))
    })
}

fn unknown_flag(name: &str, index: usize) -> ApiError {
    ApiError::invalid(
        "invalid_flag",
        format!("event {index}: unknown flag `{name}`"),
        Some(&format!("[{index}].flags")),
    )
}

pub fn account_json(a: &Account) -> Value {
    serde_json::json!({
        "id": a.id.to_string(),
        "debits_pending": a.debits_pending.to_string(),
        "debits_posted": a.debits_posted.to_string(),
        "credits_pending": a.credits_pending.to_string(),
        "credits_posted": a.credits_posted.to_string(),
        "user_data_128": a.user_data_128.to_string(),
        "user_data_64": a.user_data_64.to_string(),
        "user_data_32": a.user_data_32,
        "reserved": a.reserved,
        "ledger": a.ledger,
        "code": a.code,
        "flags": a.flags.names().collect::<Vec<_>>(),
        "timestamp": a.timestamp.to_string(),
    })
}

pub fn transfer_json(t: &Transfer) -> Value {
    serde_json::json!({
        "id": t.id.to_string(),
        "debit_account_id": t.debit_account_id.to_string(),
        "credit_account_id": t.credit_account_id.to_string(),
        "amount": t.amount.to_string(),
        "pending_id": t.pending_id.to_string(),
        "user_data_128": t.user_data_128.to_string(),
        "user_data_64": t.user_data_64.to_string(),
        "user_data_32": t.user_data_32,
        "timeout": t.timeout,
        "ledger": t.ledger,
        "code": t.code,
        "flags": t.flags.names().collect::<Vec<_>>(),
        "timestamp": t.timestamp.to_string(),
    })
}

fn check_batch(len: usize) -> Result<(), ApiError> {
    if len > BATCH_EVENTS_MAX {
        return Err(ApiError::invalid(
            "batch_too_large",
            format!("{len} events; at most {BATCH_EVENTS_MAX} per call"),
            None,
        ));
    }
    Ok(())
}

fn admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    match state.keys.authenticate(headers)?.role {
        Role::Admin => Ok(()),
        _ => Err(ApiError::forbidden()),
    }
}

/// The result of one event of a create call.
#[derive(Serialize, ToSchema)]
pub struct EventResult {
    /// The event's position in the request, from 0.
    index: usize,
    /// `created`, or TigerBeetle's name for why the event was refused (`exists`, ...).
    #[schema(example = "created")]
    result: String,
}

fn results<R: std::fmt::Display>(results: &[R]) -> Json<Vec<EventResult>> {
    Json(
        results
            .iter()
            .enumerate()
            .map(|(index, r)| EventResult { index, result: r.to_string() })
            .collect(),
    )
}

#[utoipa::path(
    post,
    path = "/v1/ledger/accounts",
    tag = "ledger",
    summary = "Create ledger accounts (admin)",
    request_body(content = Vec<AccountIn>, description = "Up to 8,190 accounts."),
    responses(
        (status = 200, body = Vec<EventResult>, description = "One `{index, result}` per event, in order; `result` is `created` or TigerBeetle's result name (such as `exists`, `exceeds_credits`)."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn create_accounts(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Vec<EventResult>>, ApiError> {
    create(&state, &headers, &body, AccountIn::into_account, Op::LedgerAccounts).await
}

#[utoipa::path(
    post,
    path = "/v1/ledger/transfers",
    tag = "ledger",
    summary = "Create ledger transfers (admin)",
    request_body(content = Vec<TransferIn>, description = "Up to 8,190 transfers."),
    responses(
        (status = 200, body = Vec<EventResult>, description = "One `{index, result}` per event, in order; `result` is `created` or TigerBeetle's result name (such as `exists`, `exceeds_credits`)."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn create_transfers(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Vec<EventResult>>, ApiError> {
    create(&state, &headers, &body, TransferIn::into_transfer, Op::LedgerTransfers).await
}

/// The ids to look up, as decimal strings.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Ids {
    #[schema(value_type = Vec<String>)]
    ids: Vec<Dec<u128>>,
}

#[utoipa::path(
    post,
    path = "/v1/ledger/accounts/lookup",
    tag = "ledger",
    summary = "Look up ledger accounts (admin)",
    request_body = Ids,
    responses(
        (status = 200, body = Vec<crate::replies::LedgerAccount>, description = "The accounts found, with TigerBeetle's fields; ids not found are left out."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn lookup_accounts(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    lookup(&state, &headers, &body, |m, id| m.ledger().lookup_account(id).map(account_json)).await
}

#[utoipa::path(
    post,
    path = "/v1/ledger/transfers/lookup",
    tag = "ledger",
    summary = "Look up ledger transfers (admin)",
    request_body = Ids,
    responses(
        (status = 200, body = Vec<crate::replies::LedgerTransfer>, description = "The transfers found, with TigerBeetle's fields; ids not found are left out."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn lookup_transfers(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    // A history store that cannot be read is a broken disk: stopping is better than answering
    // "not found" for a transfer that exists.
    lookup(&state, &headers, &body, |m, id| {
        m.lookup_transfer(id).expect("history store read").map(|t| transfer_json(&t))
    })
    .await
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct TransfersQuery {
    /// Transfers per page: 1 to 8,189 (100 by default).
    #[param(minimum = 1, maximum = 8189)]
    limit: Option<u32>,
    /// The id of the last transfer of the previous page.
    #[param(pattern = "^[1-9][0-9]*$")]
    starting_after: Option<String>,
}

/// An account's transfers, oldest first; `starting_after` is the id of the last transfer of
/// the previous page.
#[utoipa::path(
    get,
    path = "/v1/ledger/accounts/{id}/transfers",
    tag = "ledger",
    summary = "An account's transfers, oldest first (admin)",
    params(("id" = String, Path, pattern = "^(0|[1-9][0-9]*)$", description = "The account id, a decimal u128."), TransfersQuery),
    responses(
        (status = 200, body = Vec<crate::replies::LedgerTransfer>, description = "One page of transfers, with TigerBeetle's fields."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn account_transfers(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(page): Query<TransfersQuery>,
) -> Result<Json<Value>, ApiError> {
    admin(&state, &headers)?;
    let account = parse_ledger_id(&id, "an account", "id")?;
    let limit = page_limit(page.limit, LEDGER_PAGE_LIMIT_MAX)?;
    let after = page
        .starting_after
        .map(|text| parse_ledger_id(&text, "a transfer", "starting_after"))
        .transpose()?;
    let page = state
        .read(move |m| {
            m.ledger().lookup_account(account)?;
            let mut filter = AccountFilter::all(account, limit);
            if let Some(after) = after {
                let after = m.lookup_transfer(after).expect("history store read");
                filter.timestamp_min = after.map(|t| t.timestamp + 1)?;
            }
            let out = m.account_transfers(&filter).expect("history store read");
            Some(out.iter().map(transfer_json).collect::<Vec<_>>())
        })
        .await?
        .ok_or_else(|| ApiError::not_found("account, or no such transfer to start after"))?;
    Ok(Json(Value::Array(page)))
}
