//! Wire formats: object ids with type prefixes, currencies, JSON bodies.

use axum::body::Bytes;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The prefix of each kind of object id: `usr_42`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prefix {
    User,
    Merchant,
    Rider,
    Channel,
    Campaign,
    Coupon,
    TopUp,
    Withdrawal,
    Payment,
    Refund,
    Settlement,
}

impl Prefix {
    pub fn text(self) -> &'static str {
        match self {
            Prefix::User => "usr",
            Prefix::Merchant => "mer",
            Prefix::Rider => "rdr",
            Prefix::Channel => "chn",
            Prefix::Campaign => "cmp",
            Prefix::Coupon => "cpn",
            Prefix::TopUp => "top",
            Prefix::Withdrawal => "wdr",
            Prefix::Payment => "pay",
            Prefix::Refund => "ref",
            Prefix::Settlement => "stl",
        }
    }

    pub fn id(self, id: u64) -> String {
        format!("{}_{id}", self.text())
    }
}

/// Parses `usr_42` as user 42; anything else is a 400 naming `param`.
pub fn parse_id(prefix: Prefix, text: &str, param: &str) -> Result<u64, ApiError> {
    text.strip_prefix(prefix.text())
        .and_then(|rest| rest.strip_prefix('_'))
        .and_then(|n| n.parse::<u64>().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            ApiError::invalid(
                "invalid_id",
                format!("`{text}` is not a {} id (like {}_1)", prefix.text(), prefix.text()),
                Some(param),
            )
        })
}

/// A payout's id is its ledger transfer id, in hex.
pub fn payout_id(id: u128) -> String {
    format!("po_{id:x}")
}

pub fn parse_payout_id(text: &str, param: &str) -> Result<u128, ApiError> {
    text.strip_prefix("po_").and_then(|hex| u128::from_str_radix(hex, 16).ok()).ok_or_else(|| {
        ApiError::invalid("invalid_id", format!("`{text}` is not a payout id"), Some(param))
    })
}

/// The currencies the API knows, for the OpenAPI document (the same list as `CURRENCIES`).
#[allow(clippy::upper_case_acronyms, dead_code)]
#[derive(utoipa::ToSchema)]
pub enum CurrencyCode {
    CNY,
    HKD,
    JPY,
    KRW,
    SGD,
    THB,
    GBP,
    USD,
    EUR,
}

/// Currencies by ISO 4217 code and number. Amounts are integers in the minor unit.
const CURRENCIES: &[(&str, u32)] = &[
    ("CNY", 156),
    ("HKD", 344),
    ("JPY", 392),
    ("KRW", 410),
    ("SGD", 702),
    ("THB", 764),
    ("GBP", 826),
    ("USD", 840),
    ("EUR", 978),
];

pub fn parse_currency(code: &str) -> Result<u32, ApiError> {
    CURRENCIES.iter().find(|(c, _)| *c == code).map(|(_, n)| *n).ok_or_else(|| {
        ApiError::invalid(
            "invalid_currency",
            format!("unknown currency `{code}`; known: {}", currency_list()),
            Some("currency"),
        )
    })
}

pub fn currency_code(number: u32) -> String {
    CURRENCIES
        .iter()
        .find(|(_, n)| *n == number)
        .map(|(c, _)| (*c).to_owned())
        .unwrap_or_else(|| number.to_string())
}

fn currency_list() -> String {
    CURRENCIES.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", ")
}

/// Parses a JSON body strictly (unknown fields are rejected by the types), naming the field
/// at fault.
pub fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::invalid("missing_body", "the request needs a JSON body", None));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let code =
            if inner.is_syntax() || inner.is_eof() { "invalid_json" } else { "invalid_field" };
        let param = (path != ".").then_some(path);
        ApiError::invalid(code, inner.to_string(), param.as_deref())
    })?;
    de.end().map_err(|e| ApiError::invalid("invalid_json", e.to_string(), None))?;
    Ok(value)
}
