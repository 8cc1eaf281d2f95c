//! Balances and statements of a party's ledger account (a user's wallet, a merchant's balance,
//! a rider's earnings, a channel's clearing account, a campaign's budget). The events stream
//! (`crate::events`) reads the same accounts and entries.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use huifu_ledger::{AccountFilter, Transfer};
use huifu_payments::chart::{self, Kind};
use huifu_payments::PaymentsMachine;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;

use crate::auth::{Caller, Role};
use crate::constants::LIST_LIMIT_MAX;
use crate::error::ApiError;
use crate::wire::{
    self, json_value_ok, page_limit, parse_id, parse_ledger_id, Path, Prefix, Query,
};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/balances/{object}", get(get_balance))
        .route("/v1/statements/{object}", get(get_statement))
        .route("/v1/platform/balances", get(platform_balances))
}

/// The platform's own accounts, one of each per currency.
const PLATFORM_KINDS: [Kind; 3] =
    [Kind::PlatformRevenue, Kind::PayoutsInTransit, Kind::PlatformMarketing];

#[utoipa::path(
    get,
    path = "/v1/platform/balances",
    tag = "balances",
    summary = "The platform's own accounts (operators)",
    description = "For every currency the platform has moved money in, its own accounts: \
        `platform_revenue` (commission earned), `payouts_in_transit` (merchant payouts sent to \
        the bank and not yet confirmed) and `platform_marketing` (what platform-funded campaigns \
        spent). Each gives `debits_posted`, `credits_posted`, `debits_pending`, \
        `credits_pending` and `net` (credits posted less debits posted, negative for money \
        spent), as decimal strings. The channels' clearing accounts are at \
        `/v1/balances/chn_...`.",
    responses(
        (status = 200, body = crate::replies::PlatformBalances, description = "`{object: list, data: [{object: platform_balance, currency, platform_revenue, payouts_in_transit, platform_marketing}]}`, by currency."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn platform_balances(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.keys.authenticate_operator(&headers)?;
    let found = state
        .read(|m| {
            let mut rows = Vec::new();
            for &(_, number, _) in huifu_payments::currency::CURRENCIES {
                let accounts: Vec<_> = PLATFORM_KINDS
                    .iter()
                    .map(|&kind| m.ledger().lookup_account(chart::account_id(kind, number, 0)))
                    .collect();
                if accounts.iter().all(Option::is_none) {
                    continue;
                }
                let mut row = json!({
                    "object": "platform_balance",
                    "currency": wire::currency_code(number),
                });
                for (kind, account) in PLATFORM_KINDS.iter().zip(accounts) {
                    let a = account.copied().unwrap_or_default();
                    let net = i128::try_from(a.credits_posted).unwrap_or(i128::MAX)
                        - i128::try_from(a.debits_posted).unwrap_or(i128::MAX);
                    row[kind.name()] = json!({
                        "debits_posted": a.debits_posted.to_string(),
                        "credits_posted": a.credits_posted.to_string(),
                        "debits_pending": a.debits_pending.to_string(),
                        "credits_pending": a.credits_pending.to_string(),
                        "net": net.to_string(),
                    });
                }
                rows.push(row);
            }
            rows
        })
        .await?;
    Ok(json_value_ok(json!({"object": "list", "data": found})))
}

/// The party whose account an object id names (`usr_1` → a wallet, user 1): its kind of
/// account and its number. An id that is not a well-formed `usr_`, `mer_`, `rdr_`, `chn_` or
/// `cmp_` id is a 400 `invalid_id` naming `param`; whether the party exists is for
/// [`account_of`].
pub(crate) fn parse_party(text: &str, param: &str) -> Result<(Kind, u64), ApiError> {
    let (kind, prefix) = match text.split_once('_').map_or("", |(prefix, _)| prefix) {
        "usr" => (Kind::Wallet, Prefix::User),
        "mer" => (Kind::Merchant, Prefix::Merchant),
        "rdr" => (Kind::Rider, Prefix::Rider),
        "chn" => (Kind::Channel, Prefix::Channel),
        "cmp" => (Kind::CampaignBudget, Prefix::Campaign),
        _ => {
            return Err(ApiError::invalid(
                "invalid_id",
                format!("`{text}` is not a usr_, mer_, rdr_, chn_ or cmp_ id (like usr_1)"),
                Some(param),
            ))
        }
    };
    Ok((kind, parse_id(prefix, text, param)?))
}

/// The ledger account of a party (`parse_party`) and its currency, if the party exists.
pub(crate) fn account_of(m: &PaymentsMachine, kind: Kind, id: u64) -> Option<(u128, u32)> {
    let currency = match kind {
        Kind::Merchant => m.merchant(id)?.currency,
        Kind::CampaignBudget => m.campaign(id)?.0.currency,
        Kind::Wallet => m.user_currency(id)?,
        Kind::Rider => m.rider_currency(id)?,
        Kind::Channel => m.channel_currency(id)?,
        _ => return None,
    };
    Some((chart::account_id(kind, currency, id), currency))
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
    params(("object" = String, Path, pattern = "^(usr|mer|rdr|chn|cmp)_[1-9][0-9]*$", description = "The party whose account: `usr_`, `mer_`, `rdr_`, `chn_` or `cmp_` id.")),
    responses(
        (status = 200, body = crate::replies::Balance, description = "`{object: balance, account, kind, currency, available, pending_in, pending_out, debits_posted, credits_posted}`; amounts as decimal strings."),
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
    let (kind, entity) = parse_party(&object, "object")?;
    // Before anything is read: a merchant learns nothing of accounts not its own.
    check_owner(&caller, kind, entity)?;
    let found = state
        .read(move |m| {
            let (account, currency) = account_of(m, kind, entity)?;
            Some((*m.ledger().lookup_account(account)?, currency))
        })
        .await?;
    let (a, currency) = found.ok_or_else(|| ApiError::not_found("account"))?;
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

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct StatementQuery {
    /// Entries per page: 1 to 1,000 (100 by default).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The id of the last entry of the previous page.
    #[param(pattern = "^[1-9][0-9]*$")]
    starting_after: Option<String>,
}

/// An account's entries, newest first; `starting_after` is the last entry id of the previous
/// page.
#[utoipa::path(
    get,
    path = "/v1/statements/{object}",
    tag = "balances",
    summary = "A party's account entries, newest first",
    params(("object" = String, Path, pattern = "^(usr|mer|rdr|chn|cmp)_[1-9][0-9]*$", description = "The party whose account: `usr_`, `mer_`, `rdr_`, `chn_` or `cmp_` id."), StatementQuery),
    responses(
        (status = 200, body = crate::replies::Statement, description = "`{object: list, data: [entry], has_more}`; each entry is `{id, direction, amount, code, operation, flags, timestamp}`."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn get_statement(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(object): Path<String>,
    Query(page): Query<StatementQuery>,
) -> Result<Response, ApiError> {
    let caller = state.keys.authenticate(&headers)?;
    let limit = page_limit(page.limit, LIST_LIMIT_MAX)?;
    let (kind, entity) = parse_party(&object, "object")?;
    // Before anything is read: a merchant learns nothing of accounts not its own.
    check_owner(&caller, kind, entity)?;
    let after = page
        .starting_after
        .as_deref()
        .map(|text| parse_ledger_id(text, "an entry", "starting_after"))
        .transpose()?;
    let found = state
        .read(move |m| {
            let Some((account, _)) = account_of(m, kind, entity) else {
                return Err(ApiError::not_found("account"));
            };
            let mut filter = AccountFilter::all(account, limit + 1);
            filter.reversed = true;
            if let Some(after) = after {
                // Only an entry of this account: a transfer elsewhere answers as one that does
                // not exist, so a statement tells nothing of other accounts' transfers.
                let entry = m
                    .lookup_transfer(after)
                    .expect("history store read")
                    .filter(|t| t.debit_account_id == account || t.credit_account_id == account)
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "invalid_id",
                            format!("`{after}` is not an entry of this account"),
                            Some("starting_after"),
                        )
                    })?;
                match entry.timestamp.checked_sub(1) {
                    Some(max) if max > 0 => filter.timestamp_max = max,
                    _ => return Ok((account, Vec::new())),
                }
            }
            Ok((account, m.statement(&filter)))
        })
        .await?;
    let (account, mut entries) = found?;
    let has_more = entries.len() > limit as usize;
    entries.truncate(limit as usize);
    Ok(json_value_ok(json!({
        "object": "list",
        "data": entries.iter().map(|t| entry_json(t, account)).collect::<Vec<_>>(),
        "has_more": has_more,
    })))
}
