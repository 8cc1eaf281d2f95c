//! API keys and roles. Keys are random, shown once, and stored only as SHA-256 hashes, one per
//! line in `api_keys` in the data folder (appended and fsynced, through a [`Storage`]).
//!
//! A line is `<hash hex>\t<role>\t<check>\n`, the check being the first 4 bytes of the SHA-256
//! of what comes before it, in hex (lines of earlier versions have no check). Only the last line
//! can be torn by a crash, because each is fsynced before the next is written: opening the file
//! cuts bytes after its last newline, so a later line never runs on from a torn one, and skips a
//! line whose check fails (a crash kept some pages of it and not others). Neither key was ever
//! shown to anyone.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::Instant;

use axum::http::HeaderMap;
use huifu_journal::{FileStorage, Storage, StorageFile};
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
    file: Box<dyn KeyFile>,
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
    pub fn open(data_dir: &Path) -> io::Result<KeyStore> {
        KeyStore::open_with(FileStorage, data_dir)
    }

    /// [`KeyStore::open`] over any [`Storage`] (a faulty one in tests).
    pub fn open_with<S: Storage + Sync>(storage: S, data_dir: &Path) -> io::Result<KeyStore> {
        let path = data_dir.join(KEY_FILE);
        let mut bytes = Vec::new();
        let exists = match storage.open_read(&path, 0) {
            Ok(mut reader) => {
                reader.read_to_end(&mut bytes)?;
                true
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(e),
        };
        let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if whole < bytes.len() {
            tracing::warn!(
                bytes = bytes.len() - whole,
                "cutting a torn last line off {} (that key was never shown)",
                path.display()
            );
            storage.truncate(&path, whole as u64)?;
        }
        let mut keys = HashMap::new();
        for (n, line) in bytes[..whole].split(|&b| b == b'\n').enumerate() {
            match std::str::from_utf8(line).ok().and_then(parse_line) {
                Some((h, role)) => {
                    keys.insert(h, role);
                }
                None if line.is_empty() => {}
                None => tracing::warn!(
                    line = n + 1,
                    "skipping an unreadable line of {} (that key was never shown)",
                    path.display()
                ),
            }
        }
        let file = StoredKeys {
            storage,
            path: path.clone(),
            dir: data_dir.to_path_buf(),
            written: Mutex::new(exists.then_some(whole as u64)),
        };
        Ok(KeyStore {
            path,
            file: Box::new(file),
            keys: RwLock::new(keys),
            buckets: Mutex::new(HashMap::new()),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.read().expect("lock").is_empty()
    }

    /// Registers `key` (given by the operator) with `role`, durably.
    pub fn add(&self, key: &str, role: Role) -> io::Result<()> {
        let h = hash(key);
        if self.keys.read().expect("lock").get(&h) == Some(&role) {
            return Ok(());
        }
        self.file.append(line(&h, role).as_bytes())?;
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

/// The key file's name in the data folder.
const KEY_FILE: &str = "api_keys";

/// The check of a line's content: the first 4 bytes of its SHA-256, in hex.
fn check(content: &str) -> String {
    hex(&Sha256::digest(content.as_bytes())[..4])
}

fn line(hash: &[u8; 32], role: Role) -> String {
    let content = format!("{}\t{}", hex(hash), role.encode());
    let check = check(&content);
    format!("{content}\t{check}\n")
}

/// A line without its newline; `None` if it is not whole or its check fails.
fn parse_line(line: &str) -> Option<([u8; 32], Role)> {
    let (content, stated) = match line.rsplit_once('\t') {
        // Lines of earlier versions have two fields and no check.
        Some((content, stated)) if content.contains('\t') => (content, Some(stated)),
        _ => (line, None),
    };
    if stated.is_some_and(|stated| stated != check(content)) {
        return None;
    }
    let (h, role) = content.split_once('\t')?;
    Some((unhex(h)?, Role::decode(role)?))
}

/// Appends lines to the key file durably.
trait KeyFile: Send + Sync + std::fmt::Debug {
    fn append(&self, line: &[u8]) -> io::Result<()>;
}

struct StoredKeys<S> {
    storage: S,
    path: PathBuf,
    dir: PathBuf,
    /// The bytes of the file that are whole and durable; `None` until the file exists. Held
    /// while appending, so appends do not interleave.
    written: Mutex<Option<u64>>,
}

impl<S> std::fmt::Debug for StoredKeys<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKeys").field("path", &self.path).finish_non_exhaustive()
    }
}

impl<S: Storage + Sync> KeyFile for StoredKeys<S> {
    fn append(&self, line: &[u8]) -> io::Result<()> {
        let mut written = self.written.lock().expect("lock");
        let len = written.unwrap_or(0);
        // A failed append (a full disk) may have left part of its line: cut it, so that this
        // line does not run on from it.
        match self.storage.file_len(&self.path) {
            Ok(actual) if actual != len => self.storage.truncate(&self.path, len)?,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut file = self.storage.open_append(&self.path)?;
        file.write_all(line)?;
        file.sync()?;
        if written.is_none() {
            // The new file's name is durable only once its folder is.
            self.storage.sync_dir(&self.dir)?;
        }
        *written = Some(len + line.len() as u64);
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

    fn role_of(store: &KeyStore, key: &str) -> Option<Role> {
        store.keys.read().unwrap().get(&hash(key)).copied()
    }

    /// Power cuts at every point of a few rounds of key creation: every key whose creation
    /// returned is there with its role after each; a key whose creation failed is there with
    /// its own role or not at all; and keys made after a cut survive the next one (a torn line
    /// once ran on into the next, losing it).
    #[test]
    fn power_cuts_keep_every_key_that_was_made() {
        use huifu_journal::faulty::FaultyStorage;
        const SEEDS: u64 = 300;
        const ROUNDS: u64 = 3;
        const KEYS_PER_ROUND: u64 = 6;
        let dir = Path::new("/data");
        let mut total = huifu_journal::faulty::CrashStats::default();
        for seed in 0..SEEDS {
            let storage = FaultyStorage::new(seed);
            storage.create_dir_all(dir).unwrap();
            let mut made: Vec<(String, Role)> = Vec::new();
            let mut tried: Vec<(String, Role)> = Vec::new();
            for round in 0..ROUNDS {
                let store = KeyStore::open_with(storage.clone(), dir).unwrap();
                // A key file write takes 2 or 3 storage operations.
                storage.set_fail_after(Some((seed * 7 + round * 13) % (3 * KEYS_PER_ROUND + 2)));
                for k in 0..KEYS_PER_ROUND {
                    let role = Role::Merchant(seed * 100 + round * 10 + k);
                    let key = new_key();
                    if store.add(&key, role).is_ok() {
                        made.push((key, role));
                    } else {
                        tried.push((key, role));
                        break;
                    }
                }
                drop(store);
                storage.crash();
                storage.set_fail_after(None);
                let store = KeyStore::open_with(storage.clone(), dir)
                    .unwrap_or_else(|e| panic!("seed {seed}: reopening failed: {e}"));
                for (key, role) in &made {
                    assert_eq!(
                        role_of(&store, key),
                        Some(*role),
                        "seed {seed}: a made key is lost"
                    );
                }
                let mut survived = 0;
                for (key, role) in &tried {
                    match role_of(&store, key) {
                        None => {}
                        Some(found) if found == *role => survived += 1,
                        Some(found) => panic!("seed {seed}: a failed key has role {found:?}"),
                    }
                }
                // No key other than these, such as one read from a torn line.
                assert_eq!(store.keys.read().unwrap().len(), made.len() + survived, "seed {seed}");
            }
            let stats = storage.crash_stats();
            total.dropped += stats.dropped;
            total.torn += stats.torn;
            total.pages += stats.pages;
        }
        assert!(total.dropped > 0 && total.torn > 0 && total.pages > 0, "{total:?}");
    }

    #[test]
    fn a_full_disk_refuses_a_key_and_the_next_one_is_kept_whole() {
        use huifu_journal::faulty::FaultyStorage;
        let dir = Path::new("/data");
        let storage = FaultyStorage::new(3);
        storage.create_dir_all(dir).unwrap();
        let store = KeyStore::open_with(storage.clone(), dir).unwrap();
        let first = store.create(Role::Platform).unwrap();
        storage.set_full(true);
        let error = store.create(Role::Merchant(1)).unwrap_err();
        assert!(huifu_engine::is_storage_full(&error), "{error}");
        storage.set_full(false);
        let second = store.create(Role::Merchant(2)).unwrap();
        storage.crash();
        let store = KeyStore::open_with(storage.clone(), dir).unwrap();
        assert_eq!(role_of(&store, &first), Some(Role::Platform));
        assert_eq!(role_of(&store, &second), Some(Role::Merchant(2)));
        assert_eq!(store.keys.read().unwrap().len(), 2);
    }

    #[test]
    fn lines_of_earlier_versions_are_read_and_a_line_failing_its_check_is_not() {
        let h = hash("hk_a");
        assert_eq!(parse_line(&format!("{}\tplatform", hex(&h))), Some((h, Role::Platform)));
        let good = line(&h, Role::Merchant(12));
        assert_eq!(parse_line(good.trim_end()), Some((h, Role::Merchant(12))));
        let bad = good.trim_end().replace("merchant:12", "merchant:13");
        assert_eq!(parse_line(&bad), None);
    }
}
