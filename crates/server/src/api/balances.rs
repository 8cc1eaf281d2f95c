//! Balances and statements of a party's ledger account (a user's wallet, a merchant's balance,
//! a rider's earnings, a channel's clearing account, a campaign's budget). The events stream
//! (`crate::events`) reads the same accounts and entries.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use huifu_ledger::{AccountFilter, Transfer};
use huifu_payments::chart::{self, Kind};
use huifu_payments::PaymentsMachine;
use serde_json::{json, Value};

use crate::auth::{Caller, Role};
use crate::constants::LIST_LIMIT_MAX;
use crate::error::ApiError;
use crate::ledger::PageQuery;
use crate::wire::{self, json_value_ok};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/balances/{object}", get(get_balance))
        .route("/v1/statements/{object}", get(get_statement))
}

/// The ledger account behind an object id (`usr_1` → its wallet), if the party exists.
pub(crate) fn account_of(m: &PaymentsMachine, object: &str) -> Option<(u128, Kind, u64, u32)> {
    let (prefix, id) = object.split_once('_')?;
    let id: u64 = id.parse().ok()?;
    let kind = match prefix {
        "usr" => Kind::Wallet,
        "mer" => Kind::Merchant,
        "rdr" => Kind::Rider,
        "chn" => Kind::Channel,
        "cmp" => Kind::CampaignBudget,
        _ => return None,
    };
    let currency = match kind {
        Kind::Merchant => m.merchant(id)?.currency,
        Kind::CampaignBudget => m.campaign(id)?.0.currency,
        Kind::Wallet => m.user_currency(id)?,
        Kind::Rider => m.rider_currency(id)?,
        Kind::Channel => m.channel_currency(id)?,
        _ => return None,
    };
    Some((chart::account_id(kind, currency, id), kind, id, currency))
}

pub(crate) fn check_owner(caller: &Caller, kind: Kind, entity: u64) -> Result<(), ApiError> {
    match caller.role {
        Role::Merchant(own) if !(kind == Kind::Merchant && entity == own) => {
            Err(ApiError::not_found("account"))
        }
        _ => Ok(()),
    }
}

#[utoipa::path(
    get,
    path = "/v1/balances/{object}",
    tag = "balances",
    summary = "A party's balance",
    params(("object" = String, Path, description = "The party whose account: `usr_`, `mer_`, `rdr_`, `chn_` or `cmp_` id.")),
    responses(
        (status = 200, body = Object, description = "`{object: balance, account, kind, currency, available, pending_in, pending_out, debits_posted, credits_posted}`; amounts as decimal strings."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn get_balance(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(object): Path<String>,
) -> Result<Response, ApiError> {
    let caller = state.keys.authenticate(&headers)?;
    let o = object.clone();
    let found = state
        .read(move |m| {
            let (account, kind, entity, currency) = account_of(m, &o)?;
            Some((*m.ledger().lookup_account(account)?, kind, entity, currency))
        })
        .await?;
    let (a, kind, entity, currency) = found.ok_or_else(|| ApiError::not_found("account"))?;
    check_owner(&caller, kind, entity)?;
    // Credit-normal accounts (wallets, merchants, riders, budgets): available = what is owed to
    // the party less what is held for money going out.
    let available = a.credits_posted.saturating_sub(a.debits_posted + a.debits_pending);
    Ok(json_value_ok(json!({
        "object": "balance",
        "account": object,
        "kind": kind.name(),
        "currency": wire::currency_code(currency),
        "available": available.to_string(),
        "pending_in": a.credits_pending.to_string(),
        "pending_out": a.debits_pending.to_string(),
        "debits_posted": a.debits_posted.to_string(),
        "credits_posted": a.credits_posted.to_string(),
    })))
}

pub(crate) fn entry_json(t: &Transfer, account: u128) -> Value {
    let credit = t.credit_account_id == account;
    json!({
        "id": t.id.to_string(),
        "direction": if credit { "credit" } else { "debit" },
        "amount": t.amount.to_string(),
        "code": t.code,
        "operation": t.user_data_64.to_string(),
        "flags": t.flags.names().collect::<Vec<_>>(),
        "timestamp": t.timestamp.to_string(),
    })
}

/// An account's entries, newest first; `starting_after` is the last entry id of the previous
/// page.
#[utoipa::path(
    get,
    path = "/v1/statements/{object}",
    tag = "balances",
    summary = "A party's account entries, newest first",
    params(("object" = String, Path, description = "The party whose account: `usr_`, `mer_`, `rdr_`, `chn_` or `cmp_` id."), PageQuery),
    responses(
        (status = 200, body = Object, description = "`{object: list, data: [entry], has_more}`; each entry is `{id, direction, amount, code, operation, flags, timestamp}`."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn get_statement(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(object): Path<String>,
    Query(page): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let caller = state.keys.authenticate(&headers)?;
    let limit = crate::ledger::page_limit(page.limit)?.min(LIST_LIMIT_MAX);
    let after: Option<u128> = match &page.starting_after {
        None => None,
        Some(text) => Some(text.parse().map_err(|_| {
            ApiError::invalid(
                "invalid_id",
                format!("`{text}` is not an entry id"),
                Some("starting_after"),
            )
        })?),
    };
    let o = object.clone();
    let found = state
        .read(move |m| {
            let (account, kind, entity, _) = account_of(m, &o)?;
            let mut filter = AccountFilter::all(account, limit + 1);
            filter.reversed = true;
            if let Some(after) = after {
                let after = m.lookup_transfer(after).expect("history store read")?;
                filter.timestamp_max = after.timestamp.checked_sub(1)?;
                if filter.timestamp_max == 0 {
                    return Some((account, kind, entity, Vec::new()));
                }
            }
            Some((account, kind, entity, m.statement(&filter)))
        })
        .await?;
    let (account, kind, entity, mut entries) =
        found.ok_or_else(|| ApiError::not_found("account"))?;
    check_owner(&caller, kind, entity)?;
    let has_more = entries.len() > limit as usize;
    entries.truncate(limit as usize);
    Ok(json_value_ok(json!({
        "object": "list",
        "data": entries.iter().map(|t| entry_json(t, account)).collect::<Vec<_>>(),
        "has_more": has_more,
    })))
}
