//! A blocking JSON client of the huifu HTTP API that survives a server restart: transport
//! errors, 429 and 5xx are retried with the same method, path, `Idempotency-Key` and body, with
//! backoff, until a bounded wait runs out.

use std::time::{Duration, Instant};

use serde_json::Value;

/// First pause before a retry; it doubles up to `RETRY_PAUSE_MS_MAX`.
const RETRY_PAUSE_MS_MIN: u64 = 10;
/// Longest pause between two retries: how late a restarted server is noticed.
const RETRY_PAUSE_MS_MAX: u64 = 500;
/// A request with no reply by then is abandoned and retried. The server answers 503 after its
/// own timeout (10 s), well before.
const REPLY_TIMEOUT_S: u64 = 30;
/// Longest error text kept from a failed attempt.
const ERROR_TEXT_MAX: usize = 300;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the server at {base} did not answer {method} {path} for {seconds} s (last: {last})")]
    Unavailable { base: String, method: String, path: String, seconds: u64, last: String },
    #[error("{method} {path}: unexpected reply {status}: {body}")]
    Unexpected { method: String, path: String, status: u16, body: String },
}

/// One server: its base URL, the key to use, and how long to keep retrying.
#[derive(Clone)]
pub struct Api {
    agent: ureq::Agent,
    base: String,
    authorization: String,
    retry: Duration,
}

impl Api {
    pub fn new(base: &str, key: &str, retry: Duration) -> Api {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(REPLY_TIMEOUT_S))
            .timeout(Duration::from_secs(REPLY_TIMEOUT_S))
            .build();
        Api {
            agent,
            base: base.trim_end_matches('/').to_owned(),
            authorization: format!("Bearer {key}"),
            retry,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request until the server gives a final answer (any status but 429 and 5xx);
    /// returns that status and its JSON body (`Value::Null` when the body is not JSON).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        idempotency_key: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(u16, Value), ApiError> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(RETRY_PAUSE_MS_MIN);
        loop {
            let mut request = self
                .agent
                .request(method, &format!("{}{path}", self.base))
                .set("Authorization", &self.authorization);
            if let Some(key) = idempotency_key {
                request = request.set("Idempotency-Key", key);
            }
            let result = match body {
                Some(b) => request.send_json(b),
                None if method == "POST" => request.send_string(""),
                None => request.call(),
            };
            let last = match result {
                Ok(response) => return Ok((response.status(), json_of(response))),
                Err(ureq::Error::Status(status, response)) if status != 429 && status < 500 => {
                    return Ok((status, json_of(response)));
                }
                Err(ureq::Error::Status(status, response)) => {
                    format!("{status} {}", truncate(response.into_string().unwrap_or_default()))
                }
                Err(e) => truncate(e.to_string()),
            };
            if started.elapsed() + pause > self.retry {
                return Err(ApiError::Unavailable {
                    base: self.base.clone(),
                    method: method.to_owned(),
                    path: path.to_owned(),
                    seconds: self.retry.as_secs(),
                    last,
                });
            }
            tracing::debug!(%path, %last, "retrying");
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(RETRY_PAUSE_MS_MAX));
        }
    }

    /// A GET that must succeed (200).
    pub fn get(&self, path: &str) -> Result<Value, ApiError> {
        match self.call("GET", path, None, None)? {
            (200, body) => Ok(body),
            (status, body) => Err(ApiError::Unexpected {
                method: "GET".to_owned(),
                path: path.to_owned(),
                status,
                body: truncate(body.to_string()),
            }),
        }
    }
}

fn json_of(response: ureq::Response) -> Value {
    response.into_json().unwrap_or(Value::Null)
}

fn truncate(mut text: String) -> String {
    if text.len() > ERROR_TEXT_MAX {
        let mut end = ERROR_TEXT_MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// The number in an object id: `pay_4503599627370497` → 4503599627370497.
pub fn id_number(id: &str) -> Option<u64> {
    id.split_once('_')?.1.parse().ok()
}

/// The ledger id in a payout id: `po_1f` → 0x1f.
pub fn payout_number(id: &str) -> Option<u128> {
    u128::from_str_radix(id.strip_prefix("po_")?, 16).ok()
}
