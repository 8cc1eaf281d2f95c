//! The payment resources under `/v1`, one module per resource: each holds its handlers, its
//! wire types (request and reply structs) and their OpenAPI annotations, and exposes a
//! `routes()` that the crate's `router` merges, as it does for the ledger, reconciliation and
//! events.
//!
//! They sit in a folder rather than beside ledger.rs, recon.rs and events.rs because they share
//! what this file holds and the other edges do not use: which merchant may see what
//! (`may_see`), the idempotency key of an `Op::Keyed` and the call that applies one
//! (`execute_keyed`), the amount check, the bank's confirm-or-fail answer
//! (`parse_bank_answer`). What every module of the crate shares stays at its root: ids,
//! currencies, bodies and replies in wire.rs, the error in error.rs, keys, roles and the
//! operator check in auth.rs.

pub mod api_keys;
pub mod balances;
pub mod batch;
pub mod campaigns;
pub mod parties;
pub mod payments;
pub mod refunds;
pub mod settlement;
pub mod topups_withdrawals;

use axum::http::HeaderMap;
use huifu_payments::{Done, Op};
use sha2::{Digest, Sha256};

use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::AppState;

/// May `caller` see or act on merchant `merchant`'s objects? A merchant sees only its own;
/// another merchant's objects are answered as missing, not forbidden.
fn may_see(caller: &Caller, merchant: u64, what: &str) -> Result<(), ApiError> {
    match caller.role {
        Role::Merchant(own) if own != merchant => Err(ApiError::not_found(what)),
        _ => Ok(()),
    }
}

/// The key of an `Op::Keyed`: the client's `Idempotency-Key`, scoped to its API key and the
/// route, or a random one when the request has none (then a retry is a new operation).
fn idempotency_key(caller: &Caller, headers: &HeaderMap, route: &str) -> Result<u128, ApiError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(rand::random()) };
    let key = value.to_str().ok().filter(|k| !k.is_empty() && k.len() <= 255).ok_or_else(|| {
        ApiError::invalid(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 visible characters",
            Some("Idempotency-Key"),
        )
    })?;
    Ok(scoped_key(caller, route, key))
}

/// The client's `Idempotency-Key` scoped as `idempotency_key` scopes it, or `None` without one.
pub(crate) fn scoped_idempotency_key(
    caller: &Caller,
    headers: &HeaderMap,
    route: &str,
) -> Result<Option<u128>, ApiError> {
    if headers.get("idempotency-key").is_none() {
        return Ok(None);
    }
    idempotency_key(caller, headers, route).map(Some)
}

fn scoped_key(caller: &Caller, route: &str, key: &str) -> u128 {
    let mut h = Sha256::new();
    h.update(caller.key_hash);
    h.update(route.as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    let digest = h.finalize();
    u128::from_le_bytes(digest[..16].try_into().expect("16 bytes"))
}

/// Applies `op` under the request's idempotency key; the id it was given and its outcome.
async fn execute_keyed(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    route: &str,
    op: Op,
) -> Result<(u64, Done), ApiError> {
    let key = idempotency_key(caller, headers, route)?;
    match state.execute(Op::Keyed { key, op: Box::new(op) }).await? {
        Done::Allocated { id, outcome } => Ok((id, (*outcome)?)),
        other => Err(state.unexpected(other)),
    }
}

fn amount_field(value: u64, param: &str) -> Result<u64, ApiError> {
    if value == 0 || value > huifu_payments::constants::AMOUNT_MAX {
        return Err(ApiError::invalid(
            "invalid_amount",
            format!("{param} must be between 1 and {}", huifu_payments::constants::AMOUNT_MAX),
            Some(param),
        ));
    }
    Ok(value)
}

fn parse_bank_answer(answer: &str) -> Result<bool, ApiError> {
    match answer {
        "confirm" => Ok(true),
        "fail" => Ok(false),
        _ => Err(ApiError::not_found("action (use confirm or fail)")),
    }
}
