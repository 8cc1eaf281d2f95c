//! A blocking JSON client of the huifu HTTP API that survives a server restart and a cluster's
//! failover: transport errors, 429 and 5xx are retried with the same method, path,
//! `Idempotency-Key` and body, with backoff, until a bounded wait runs out. Given several
//! servers (the nodes of a cluster, as `URL,URL,...`), a failed attempt moves every clone of
//! the client on to the next one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
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

/// One server or the nodes of a cluster: their base URLs, the one in use, the key to use, and
/// how long to keep retrying.
#[derive(Clone)]
pub struct Api {
    agent: ureq::Agent,
    bases: Arc<Vec<String>>,
    /// Index in `bases` of the server requests go to; shared by every clone.
    current: Arc<AtomicUsize>,
    authorization: String,
    retry: Duration,
}

impl Api {
    /// `base` is one URL, or several separated by commas (the nodes of a cluster).
    pub fn new(base: &str, key: &str, retry: Duration) -> Api {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(REPLY_TIMEOUT_S))
            .timeout(Duration::from_secs(REPLY_TIMEOUT_S))
            .build();
        let bases: Vec<String> = base
            .split(',')
            .map(|b| b.trim().trim_end_matches('/').to_owned())
            .filter(|b| !b.is_empty())
            .collect();
        Api {
            agent,
            bases: Arc::new(bases),
            current: Arc::new(AtomicUsize::new(0)),
            authorization: format!("Bearer {key}"),
            retry,
        }
    }

    /// The servers, as given.
    pub fn base(&self) -> String {
        self.bases.join(",")
    }

    /// The server requests go to now.
    fn current(&self) -> (usize, &str) {
        let i = self.current.load(Ordering::Relaxed) % self.bases.len().max(1);
        (i, self.bases.get(i).map_or("", String::as_str))
    }

    /// After a failed attempt on server `i`: the next one (unless another thread moved on
    /// already).
    fn move_on(&self, i: usize) {
        let _ = self.current.compare_exchange(
            i,
            (i + 1) % self.bases.len().max(1),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
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
            let (server, base) = self.current();
            let mut request = self
                .agent
                .request(method, &format!("{base}{path}"))
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
            self.move_on(server);
            if started.elapsed() + pause > self.retry {
                return Err(ApiError::Unavailable {
                    base: self.base(),
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
