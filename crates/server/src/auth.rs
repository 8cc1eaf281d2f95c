//! API keys and roles. Keys are random, shown once, and stored only as SHA-256 hashes, one per
//! line in `api_keys` in the data folder (appended and fsynced).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::Instant;

use axum::http::HeaderMap;
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::constants::{RATE_BURST_PER_KEY, RATE_PER_KEY_PER_SECOND};
use crate::error::ApiError;

/// Characters of a key after its `hk_` prefix: 32 alphanumerics, about 190 bits.
const KEY_CHARS: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Everything, including the ledger endpoints and key management.
    Admin,
    /// The platform's services: parties, payments, refunds, top-ups, campaigns, payouts.
    Platform,
    /// One merchant: only its own payments, refunds, balance, statement and settlements.
    Merchant(u64),
}

impl Role {
    pub(crate) fn encode(self) -> String {
        match self {
            Role::Admin => "admin".into(),
            Role::Platform => "platform".into(),
            Role::Merchant(id) => format!("merchant:{id}"),
        }
    }

    fn decode(text: &str) -> Option<Role> {
        match text {
            "admin" => Some(Role::Admin),
            "platform" => Some(Role::Platform),
            _ => text.strip_prefix("merchant:")?.parse().ok().map(Role::Merchant),
        }
    }

    /// Admin or platform: may act for any party.
    pub fn is_operator(self) -> bool {
        matches!(self, Role::Admin | Role::Platform)
    }
}

/// The caller of a request: its role, and the hash of its key (which scopes idempotency keys).
#[derive(Clone, Copy, Debug)]
pub struct Caller {
    pub role: Role,
    pub key_hash: [u8; 32],
}

#[derive(Debug)]
pub struct KeyStore {
    path: PathBuf,
    keys: RwLock<HashMap<[u8; 32], Role>>,
    /// Per key: (tokens left, last refill); one token per request.
    buckets: Mutex<HashMap<[u8; 32], (u64, Instant)>>,
}

pub(crate) fn hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A new random key: `hk_` and 32 alphanumerics.
pub(crate) fn new_key() -> String {
    let suffix: String = rand::thread_rng()
        .sample_iter(rand::distributions::Alphanumeric)
        .take(KEY_CHARS)
        .map(char::from)
        .collect();
    format!("hk_{suffix}")
}

impl KeyStore {
    /// The data folder the keys are kept in (other stores of the API live there too).
    pub fn folder(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// Loads the key hashes of a data folder (none if the file does not exist yet).
    pub fn open(data_dir: &Path) -> std::io::Result<KeyStore> {
        let path = data_dir.join("api_keys");
        let mut keys = HashMap::new();
        if path.exists() {
            for (n, line) in BufReader::new(File::open(&path)?).lines().enumerate() {
                let line = line?;
                let mut parts = line.split('\t');
                let parsed = (|| Some((unhex(parts.next()?)?, Role::decode(parts.next()?)?)))();
                match parsed {
                    Some((h, role)) => {
                        keys.insert(h, role);
                    }
                    // A torn last line from a crash mid-append: that key was never shown.
                    None => tracing::warn!(
                        line = n + 1,
                        "skipping an unreadable line of {}",
                        path.display()
                    ),
                }
            }
        }
        Ok(KeyStore { path, keys: RwLock::new(keys), buckets: Mutex::new(HashMap::new()) })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.read().expect("lock").is_empty()
    }

    /// Registers `key` (given by the operator) with `role`, durably.
    pub fn add(&self, key: &str, role: Role) -> std::io::Result<()> {
        let h = hash(key);
        if self.keys.read().expect("lock").get(&h) == Some(&role) {
            return Ok(());
        }
        let mut file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        writeln!(file, "{}\t{}", hex(&h), role.encode())?;
        file.sync_all()?;
        self.keys.write().expect("lock").insert(h, role);
        Ok(())
    }

    /// Creates a new random key with `role`; the key itself is returned and never stored.
    pub fn create(&self, role: Role) -> std::io::Result<String> {
        let key = new_key();
        self.add(&key, role)?;
        Ok(key)
    }

    /// Accepts the key whose SHA-256 is `hash` with the role named `role` from now on, in
    /// memory: on a cluster node, keys are kept by the replicated log. A role this server
    /// does not know is skipped with a warning.
    pub fn accept(&self, hash: [u8; 32], role: &str) {
        match Role::decode(role) {
            Some(role) => {
                self.keys.write().expect("lock").insert(hash, role);
            }
            None => tracing::warn!(role, "skipping a replicated API key of an unknown role"),
        }
    }

    /// The caller of a request, from its `Authorization: Bearer` header.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let key = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(ApiError::unauthenticated)?;
        let key_hash = hash(key.trim());
        let role = *self
            .keys
            .read()
            .expect("lock")
            .get(&key_hash)
            .ok_or_else(ApiError::unauthenticated)?;
        self.take_token(&key_hash)?;
        Ok(Caller { role, key_hash })
    }

    /// The caller of a request, which must be an operator (an admin or a platform key).
    pub fn authenticate_operator(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let caller = self.authenticate(headers)?;
        if caller.role.is_operator() {
            Ok(caller)
        } else {
            Err(ApiError::forbidden())
        }
    }

    /// The per-key rate limit: a token bucket of `RATE_BURST_PER_KEY` tokens refilled at
    /// `RATE_PER_KEY_PER_SECOND`.
    fn take_token(&self, key_hash: &[u8; 32]) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("lock");
        let (tokens, last) = buckets.entry(*key_hash).or_insert((RATE_BURST_PER_KEY, now));
        let refill = u64::try_from(
            now.duration_since(*last).as_micros() * u128::from(RATE_PER_KEY_PER_SECOND) / 1_000_000,
        )
        .unwrap_or(u64::MAX);
        if refill > 0 {
            *tokens = tokens.saturating_add(refill).min(RATE_BURST_PER_KEY);
            *last = now;
        }
        if *tokens == 0 {
            return Err(ApiError::rate_limited());
        }
        *tokens -= 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_survive_a_reopen_and_only_hashes_are_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(dir.path()).unwrap();
        let key = store.create(Role::Merchant(7)).unwrap();
        let stored = std::fs::read_to_string(dir.path().join("api_keys")).unwrap();
        assert!(!stored.contains(&key));
        let store = KeyStore::open(dir.path()).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("authorization", format!("Bearer {key}").parse().unwrap());
        assert_eq!(store.authenticate(&headers).unwrap().role, Role::Merchant(7));
        headers.insert("authorization", "Bearer hk_wrong".parse().unwrap());
        assert!(store.authenticate(&headers).is_err());
    }
}
