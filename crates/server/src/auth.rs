//! API keys, their records and their rate limits. Keys are random, shown once, and stored only
//! as SHA-256 hashes, one record per line in `api_keys` in the data folder (appended and
//! fsynced, through a [`Storage`]).
//!
//! A line is `<hash hex>\t<record>\t<check>\n`, the check being the first 4 bytes of the
//! SHA-256 of what comes before it, in hex (lines of earlier versions have no check). A record
//! is the key's role, then what is known of it as `name=value` words: `created=` and
//! `expires=` (seconds since the Unix epoch), `rate=<per second>/<burst>` and `revoked=`; a
//! record of earlier versions is its role alone. A key's later line is merged into what its
//! earlier ones said ([`KeyRecord::merge`]): a revocation stays, an expiry only comes sooner, so
//! the order in which records arrive (from the file, a cluster's snapshot or its log) does not
//! matter. Only the last line can be torn by a crash, because each is fsynced before the next
//! is written: opening the file cuts bytes after its last newline, so a later line never runs
//! on from a torn one, and skips a line whose check fails (a crash kept some pages of it and
//! not others). Neither key was ever shown to anyone, and a revocation that was not written was
//! not answered.
//!
//! A key is known by a public id, `key_` and 20 hex digits taken from a hash of its hash: every
//! node of a cluster, and every restart, names a key the same way, the key given in the
//! environment included. Rate limits are governor's (GCRA): one limiter per key, and one per
//! client address for requests without a valid key.

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, NotUntil, Quota};
use huifu_journal::{FileStorage, Storage, StorageFile};
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::constants::{
    ADDRESSES_TRACKED_MAX, ADDRESS_AUTH_FAILURES_BURST, ADDRESS_AUTH_FAILURES_PER_SECOND,
    ADMIN_RATE_PER_SECOND, KEY_BURST_MAX, KEY_BURST_PER_RATE, KEY_RATE_PER_SECOND_MAX,
    MERCHANT_RATE_PER_SECOND, PLATFORM_RATE_PER_SECOND,
};
use crate::error::ApiError;

/// Characters of a key after its `hk_` prefix: 32 alphanumerics, about 190 bits.
const KEY_CHARS: usize = 32;

/// Hex digits of a key's public id after `key_`: 80 bits, so that two keys never share one.
const KEY_ID_HEX: usize = 20;

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

    /// The role's name in the API (`admin`, `platform`, `merchant`).
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Platform => "platform",
            Role::Merchant(_) => "merchant",
        }
    }
}

/// A key's rate limit: requests per second on average, and requests at once above that (the
/// bucket's size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

impl Rate {
    /// `per_second`, with a burst of [`KEY_BURST_PER_RATE`] seconds of it.
    pub fn per_second(per_second: u32) -> Rate {
        Rate { per_second, burst: per_second.saturating_mul(KEY_BURST_PER_RATE).min(KEY_BURST_MAX) }
    }

    /// What a key of `role` gets when it was given no rate of its own.
    pub fn of_role(role: Role) -> Rate {
        Rate::per_second(match role {
            Role::Admin => ADMIN_RATE_PER_SECOND,
            Role::Platform => PLATFORM_RATE_PER_SECOND,
            Role::Merchant(_) => MERCHANT_RATE_PER_SECOND,
        })
    }

    /// Whether both numbers are in range; the error says which is not.
    pub fn validate(self) -> Result<Rate, (&'static str, String)> {
        if self.per_second == 0 || self.per_second > KEY_RATE_PER_SECOND_MAX {
            let says = format!("rate_per_second is 1 to {KEY_RATE_PER_SECOND_MAX}");
            return Err(("rate_per_second", says));
        }
        if self.burst == 0 || self.burst > KEY_BURST_MAX {
            return Err(("burst", format!("burst is 1 to {KEY_BURST_MAX}")));
        }
        Ok(self)
    }

    fn quota(self) -> Quota {
        let nonzero = |n: u32| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        Quota::per_second(nonzero(self.per_second)).allow_burst(nonzero(self.burst))
    }
}

/// Whether a key is accepted now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyStatus {
    Active,
    Expired,
    Revoked,
}

impl KeyStatus {
    pub fn name(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Expired => "expired",
            KeyStatus::Revoked => "revoked",
        }
    }
}

/// What the store keeps of a key (never the key itself). Times are seconds since the Unix
/// epoch, read from the server's clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    pub role: Role,
    /// `None` for a key stored before records had it.
    pub created_at: Option<u64>,
    /// The key is refused from then on.
    pub expires_at: Option<u64>,
    /// Its own limit; `None`: the server's default for its role.
    pub rate: Option<Rate>,
    /// The key is refused from then on, for good.
    pub revoked_at: Option<u64>,
}

impl KeyRecord {
    pub fn new(role: Role, now: u64) -> KeyRecord {
        KeyRecord { role, created_at: Some(now), expires_at: None, rate: None, revoked_at: None }
    }

    pub fn status(&self, now: u64) -> KeyStatus {
        if self.revoked_at.is_some() {
            KeyStatus::Revoked
        } else if self.expires_at.is_some_and(|at| at <= now) {
            KeyStatus::Expired
        } else {
            KeyStatus::Active
        }
    }

    /// The record as a line of the key file and a grant of a cluster's log carry it.
    pub fn encode(&self) -> String {
        let mut out = self.role.encode();
        let mut word = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                out.push_str(&format!(" {name}={value}"));
            }
        };
        word("created", self.created_at.map(|t| t.to_string()));
        word("expires", self.expires_at.map(|t| t.to_string()));
        word("rate", self.rate.map(|r| format!("{}/{}", r.per_second, r.burst)));
        word("revoked", self.revoked_at.map(|t| t.to_string()));
        out
    }

    /// A record as [`KeyRecord::encode`] writes it, or a role alone (earlier versions). A word
    /// this version does not know makes the whole record unreadable: a key is not accepted on
    /// a record half understood.
    pub fn decode(text: &str) -> Option<KeyRecord> {
        let mut words = text.split(' ');
        let mut record = KeyRecord {
            role: Role::decode(words.next()?)?,
            created_at: None,
            expires_at: None,
            rate: None,
            revoked_at: None,
        };
        for word in words {
            let (name, value) = word.split_once('=')?;
            let number = || crate::wire::parse_decimal::<u64>(value);
            match name {
                "created" => record.created_at = Some(number()?),
                "expires" => record.expires_at = Some(number()?),
                "revoked" => record.revoked_at = Some(number()?),
                "rate" => {
                    let (per_second, burst) = value.split_once('/')?;
                    let rate = Rate {
                        per_second: crate::wire::parse_decimal(per_second)?,
                        burst: crate::wire::parse_decimal(burst)?,
                    };
                    record.rate = Some(rate.validate().ok()?);
                }
                _ => return None,
            }
        }
        Some(record)
    }

    /// This record with what `newer` says of the same key: its role and rate (set when the key
    /// is made), the earlier of the two expiries and revocations (neither is ever taken back),
    /// the earlier creation. Merging is commutative for everything but the role, so records
    /// applied out of order (an old checkpoint after a newer key file) lose nothing.
    pub fn merge(&self, newer: &KeyRecord) -> KeyRecord {
        fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        }
        KeyRecord {
            role: newer.role,
            created_at: earliest(self.created_at, newer.created_at),
            expires_at: earliest(self.expires_at, newer.expires_at),
            rate: newer.rate.or(self.rate),
            revoked_at: earliest(self.revoked_at, newer.revoked_at),
        }
    }
}

/// The caller of a request: its role, and the hash of its key (which scopes idempotency keys).
#[derive(Clone, Copy, Debug)]
pub struct Caller {
    pub role: Role,
    pub key_hash: [u8; 32],
}

impl Caller {
    /// The public id of the caller's key, for logs.
    pub fn key_id(&self) -> String {
        key_id(&self.key_hash)
    }
}

/// A key as the store knows it, for listing.
#[derive(Clone, Debug)]
pub struct KeyView {
    pub id: String,
    pub hash: [u8; 32],
    pub record: KeyRecord,
    /// The limit it is held to: its own, or the server's default for its role.
    pub rate: Rate,
    /// When this server last authenticated it since it started (not kept across restarts).
    pub last_used_at: Option<u64>,
}

/// A key in memory: its record, its limiter and when it was last used.
struct Entry {
    record: KeyRecord,
    rate: Rate,
    limiter: Arc<DefaultDirectRateLimiter>,
    /// Seconds since the epoch of the last request it authenticated; 0 for none yet.
    last_used_at: Arc<AtomicU64>,
}

impl Entry {
    fn new(record: KeyRecord, rate_default: Option<Rate>) -> Entry {
        let rate = effective_rate(&record, rate_default);
        Entry {
            record,
            rate,
            limiter: Arc::new(DefaultDirectRateLimiter::direct(rate.quota())),
            last_used_at: Arc::new(AtomicU64::new(0)),
        }
    }

    /// This entry with `record`: the limiter's state and the last use are kept while the rate
    /// stays the same.
    fn with(&self, record: KeyRecord, rate_default: Option<Rate>) -> Entry {
        let rate = effective_rate(&record, rate_default);
        let limiter = if rate == self.rate {
            self.limiter.clone()
        } else {
            Arc::new(DefaultDirectRateLimiter::direct(rate.quota()))
        };
        Entry { record, rate, limiter, last_used_at: self.last_used_at.clone() }
    }
}

fn effective_rate(record: &KeyRecord, rate_default: Option<Rate>) -> Rate {
    record.rate.or(rate_default).unwrap_or_else(|| Rate::of_role(record.role))
}

pub struct KeyStore {
    path: PathBuf,
    file: Box<dyn KeyFile>,
    keys: RwLock<HashMap<[u8; 32], Entry>>,
    /// The rate of keys given none of their own, instead of their role's (`serve`'s flag).
    rate_default: Option<Rate>,
    /// Failed authentications by client address (an IPv6 address by its /64).
    failures: DefaultKeyedRateLimiter<IpAddr>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore").field("path", &self.path).finish_non_exhaustive()
    }
}

pub(crate) fn hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The public id of the key whose SHA-256 is `hash`: `key_` and 20 hex digits of the SHA-256
/// of a label and `hash` (so not a part of the stored hash itself).
pub fn key_id(hash: &[u8; 32]) -> String {
    let mut digest = Sha256::new();
    digest.update(b"huifu api key id\0");
    digest.update(hash);
    let hex = hex(&digest.finalize()[..KEY_ID_HEX / 2]);
    format!("key_{hex}")
}

/// Whether `text` is written as [`key_id`] writes ids.
pub fn is_key_id(text: &str) -> bool {
    text.strip_prefix("key_").is_some_and(|hex| {
        hex.len() == KEY_ID_HEX
            && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Seconds since the Unix epoch, by the server's clock.
pub fn now_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
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

tokio::task_local! {
    /// The address of the client of the request being served, when it came over a socket.
    static CLIENT_ADDRESS: IpAddr;
}

/// The middleware that makes the client's address known to [`KeyStore::authenticate`], for
/// the limit on failed authentications. A request that did not come over a socket (a test's
/// `oneshot`) has none and is not held to it.
pub async fn client_address(request: Request, next: Next) -> Response {
    match request.extensions().get::<ConnectInfo<SocketAddr>>() {
        Some(&ConnectInfo(address)) => CLIENT_ADDRESS.scope(address.ip(), next.run(request)).await,
        None => next.run(request).await,
    }
}

/// The limiter's key of a client address: an IPv6 client is one /64 (what one host or
/// network is given), else it could take a new address for every request.
fn address_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
        },
    }
}

/// Whole seconds until a refused request may come again (`Retry-After`), at least 1.
fn retry_after_seconds(not_until: &NotUntil<<DefaultClock as Clock>::Instant>) -> u64 {
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    wait.as_millis().div_ceil(1_000).max(1).try_into().unwrap_or(u64::MAX)
}

impl KeyStore {
    /// The data folder the keys are kept in (other stores of the API live there too).
    pub fn folder(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// Loads the key records of a data folder (none if the file does not exist yet).
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
        let mut keys: HashMap<[u8; 32], Entry> = HashMap::new();
        for (n, line) in bytes[..whole].split(|&b| b == b'\n').enumerate() {
            match std::str::from_utf8(line).ok().and_then(parse_line) {
                Some((h, record)) => {
                    let merged = match keys.get(&h) {
                        Some(known) => known.record.merge(&record),
                        None => record,
                    };
                    keys.insert(h, Entry::new(merged, None));
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
        let failures = Quota::per_second(
            NonZeroU32::new(ADDRESS_AUTH_FAILURES_PER_SECOND).expect("a rate above zero"),
        )
        .allow_burst(NonZeroU32::new(ADDRESS_AUTH_FAILURES_BURST).expect("a burst above zero"));
        Ok(KeyStore {
            path,
            file: Box::new(file),
            keys: RwLock::new(keys),
            rate_default: None,
            failures: DefaultKeyedRateLimiter::keyed(failures),
        })
    }

    /// Holds every key given no rate of its own to `rate`, instead of its role's default.
    pub fn set_rate_default(&mut self, rate: Option<Rate>) {
        self.rate_default = rate;
        let keys = self.keys.get_mut().expect("lock");
        for entry in keys.values_mut() {
            *entry = entry.with(entry.record.clone(), rate);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.read().expect("lock").is_empty()
    }

    /// Registers `key` (given by the operator: `HUIFU_ADMIN_KEY` or a key file) with `role`,
    /// durably. A key that was revoked or has expired stays so: giving it again at every start
    /// does not bring it back.
    pub fn add(&self, key: &str, role: Role) -> io::Result<()> {
        let h = hash(key);
        let now = now_seconds();
        let known = self.record(&h);
        if let Some(known) = &known {
            let status = known.status(now);
            if status != KeyStatus::Active {
                tracing::warn!(
                    key_id = %key_id(&h),
                    status = status.name(),
                    "the key given at start was {}: it is not accepted",
                    status.name()
                );
                return Ok(());
            }
            if known.role == role {
                return Ok(());
            }
        }
        self.put(h, &KeyRecord::new(role, now))?;
        tracing::info!(key_id = %key_id(&h), role = role.name(), "API key registered at start");
        Ok(())
    }

    /// Creates a new random key with `role`; the key itself is returned and never stored.
    pub fn create(&self, role: Role) -> io::Result<String> {
        let key = new_key();
        self.put(hash(&key), &KeyRecord::new(role, now_seconds()))?;
        Ok(key)
    }

    /// Merges `record` into what the store knows of the key whose SHA-256 is `h`, durably
    /// (nothing is written when it changes nothing), and returns the merged record.
    pub fn put(&self, h: [u8; 32], record: &KeyRecord) -> io::Result<KeyRecord> {
        let merged = match self.record(&h) {
            Some(known) => {
                let merged = known.merge(record);
                if merged == known {
                    return Ok(merged);
                }
                merged
            }
            None => record.clone(),
        };
        self.file.append(line(&h, &merged).as_bytes())?;
        let mut keys = self.keys.write().expect("lock");
        // Merged again under the write lock: another record of this key may have come since.
        let merged = match keys.get(&h) {
            Some(entry) => {
                let merged = entry.record.merge(&merged);
                let updated = entry.with(merged.clone(), self.rate_default);
                keys.insert(h, updated);
                merged
            }
            None => {
                keys.insert(h, Entry::new(merged.clone(), self.rate_default));
                merged
            }
        };
        Ok(merged)
    }

    /// Takes a key record from a cluster's replicated log (or the snapshot a node installs):
    /// merged into this node's keys, and written to its key file when it changes them, so that
    /// a node that restarts refuses a revoked key before it has replayed the log. A record
    /// this server cannot read is skipped with a warning; one that cannot be written is kept
    /// in memory (the log has it).
    pub fn accept(&self, h: [u8; 32], record: &str) {
        let Some(record) = KeyRecord::decode(record) else {
            tracing::warn!(record, "skipping a replicated API key record this server cannot read");
            return;
        };
        if let Err(error) = self.put(h, &record) {
            tracing::warn!(%error, key_id = %key_id(&h), "cannot write a replicated API key record");
            let mut keys = self.keys.write().expect("lock");
            let merged = keys.get(&h).map_or(record.clone(), |e| e.record.merge(&record));
            let entry = match keys.get(&h) {
                Some(entry) => entry.with(merged, self.rate_default),
                None => Entry::new(merged, self.rate_default),
            };
            keys.insert(h, entry);
        }
    }

    /// What the store knows of the key whose SHA-256 is `h`.
    pub fn record(&self, h: &[u8; 32]) -> Option<KeyRecord> {
        self.keys.read().expect("lock").get(h).map(|e| e.record.clone())
    }

    /// The key whose SHA-256 is `h`, as a listing shows it.
    pub fn view(&self, h: &[u8; 32]) -> Option<KeyView> {
        self.keys.read().expect("lock").get(h).map(|entry| view(h, entry))
    }

    /// The key whose public id is `id`. (A scan: keys are few, and looked up by id only by
    /// an admin managing them.)
    pub fn find(&self, id: &str) -> Option<KeyView> {
        self.keys
            .read()
            .expect("lock")
            .iter()
            .find(|(h, _)| key_id(h) == id)
            .map(|(h, entry)| view(h, entry))
    }

    /// Up to `limit` keys by id, from the first after `after`.
    pub fn list(&self, after: Option<&str>, limit: usize) -> Vec<KeyView> {
        let keys = self.keys.read().expect("lock");
        let mut ids: Vec<(String, &[u8; 32])> = keys.keys().map(|h| (key_id(h), h)).collect();
        ids.sort_unstable();
        ids.into_iter()
            .filter(|(id, _)| after.is_none_or(|after| id.as_str() > after))
            .take(limit)
            .filter_map(|(_, h)| keys.get(h).map(|entry| view(h, entry)))
            .collect()
    }

    /// Admin keys accepted at `now`, other than the key whose SHA-256 is `but`.
    pub fn other_active_admins(&self, but: &[u8; 32], now: u64) -> usize {
        let keys = self.keys.read().expect("lock");
        keys.iter()
            .filter(|(h, e)| {
                *h != but
                    && e.record.role == Role::Admin
                    && e.record.status(now) == KeyStatus::Active
            })
            .count()
    }

    /// The caller of a request, from its `Authorization: Bearer` header. A key that is
    /// unknown, revoked or expired counts against the client's address; a caller above its
    /// key's rate, or an address above its failures, gets 429 with `Retry-After`.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let key = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let Some(key) = key else { return Err(self.failed(ApiError::unauthenticated())) };
        let key_hash = hash(key.trim());
        let now = now_seconds();
        let refused = {
            let keys = self.keys.read().expect("lock");
            match keys.get(&key_hash) {
                None => ApiError::unauthenticated(),
                Some(entry) => match entry.record.status(now) {
                    KeyStatus::Revoked => ApiError::key_revoked(),
                    KeyStatus::Expired => ApiError::key_expired(),
                    KeyStatus::Active => {
                        if let Err(not_until) = entry.limiter.check() {
                            return Err(ApiError::rate_limited(
                                "too many requests for this API key; slow down",
                                retry_after_seconds(&not_until),
                            ));
                        }
                        // Written only when it changes: one key's requests from every thread
                        // would otherwise all write the same cache line.
                        if entry.last_used_at.load(Ordering::Relaxed) != now {
                            entry.last_used_at.store(now, Ordering::Relaxed);
                        }
                        return Ok(Caller { role: entry.record.role, key_hash });
                    }
                },
            }
        };
        Err(self.failed(refused))
    }

    /// `error`, or 429 once the client's address is above its rate of failed authentications.
    fn failed(&self, error: ApiError) -> ApiError {
        let Ok(address) = CLIENT_ADDRESS.try_with(|a| *a) else { return error };
        let address = address_key(address);
        if self.failures.len() >= ADDRESSES_TRACKED_MAX {
            // Addresses whose limiter is full again are forgotten; if that is not enough, the
            // failures of addresses not tracked yet are refused until some are.
            self.failures.retain_recent();
            self.failures.shrink_to_fit();
            if self.failures.len() >= ADDRESSES_TRACKED_MAX {
                return ApiError::rate_limited("too many requests without a valid API key", 1);
            }
        }
        match self.failures.check_key(&address) {
            Ok(()) => error,
            Err(not_until) => ApiError::rate_limited(
                "too many requests without a valid API key from this address",
                retry_after_seconds(&not_until),
            ),
        }
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
}

fn view(h: &[u8; 32], entry: &Entry) -> KeyView {
    let last = entry.last_used_at.load(Ordering::Relaxed);
    KeyView {
        id: key_id(h),
        hash: *h,
        record: entry.record.clone(),
        rate: entry.rate,
        last_used_at: (last > 0).then_some(last),
    }
}

/// The key file's name in the data folder.
const KEY_FILE: &str = "api_keys";

/// The check of a line's content: the first 4 bytes of its SHA-256, in hex.
fn check(content: &str) -> String {
    hex(&Sha256::digest(content.as_bytes())[..4])
}

fn line(hash: &[u8; 32], record: &KeyRecord) -> String {
    let content = format!("{}\t{}", hex(hash), record.encode());
    let check = check(&content);
    format!("{content}\t{check}\n")
}

/// A line without its newline; `None` if it is not whole or its check fails.
fn parse_line(line: &str) -> Option<([u8; 32], KeyRecord)> {
    let (content, stated) = match line.rsplit_once('\t') {
        // Lines of earlier versions have two fields and no check.
        Some((content, stated)) if content.contains('\t') => (content, Some(stated)),
        _ => (line, None),
    };
    if stated.is_some_and(|stated| stated != check(content)) {
        return None;
    }
    let (h, record) = content.split_once('\t')?;
    Some((unhex(h)?, KeyRecord::decode(record)?))
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
        store.record(&hash(key)).map(|record| record.role)
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

    /// The admin key given at every start (`HUIFU_ADMIN_KEY`) once revoked stays revoked: the
    /// store remembers it, and giving the key again does not bring it back.
    #[test]
    fn a_revoked_key_given_again_at_start_stays_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let bootstrap = "an-admin-key-from-the-environment";
        let store = KeyStore::open(dir.path()).unwrap();
        store.add(bootstrap, Role::Admin).unwrap();
        let h = hash(bootstrap);
        let record = store.record(&h).unwrap();
        store.put(h, &KeyRecord { revoked_at: Some(now_seconds()), ..record }).unwrap();
        for _ in 0..2 {
            let store = KeyStore::open(dir.path()).unwrap();
            store.add(bootstrap, Role::Admin).unwrap();
            let mut headers = HeaderMap::new();
            headers.insert("authorization", format!("Bearer {bootstrap}").parse().unwrap());
            assert_eq!(store.authenticate(&headers).unwrap_err().code, "api_key_revoked");
            assert_eq!(store.record(&h).unwrap().status(now_seconds()), KeyStatus::Revoked);
        }
    }

    /// Records merge the same whatever their order (a cluster node gets them from its key file,
    /// its checkpoint and its log): a revocation or an expiry is never undone by an older
    /// record arriving later.
    #[test]
    fn records_merge_to_the_same_in_any_order() {
        let made = KeyRecord::new(Role::Platform, 100);
        let rotated = KeyRecord { expires_at: Some(500), ..made.clone() };
        let revoked = KeyRecord { revoked_at: Some(300), ..made.clone() };
        let orders = [
            [&made, &rotated, &revoked],
            [&revoked, &made, &rotated],
            [&rotated, &revoked, &made],
            [&revoked, &rotated, &made],
        ];
        for order in orders {
            let merged = order[1..].iter().fold(order[0].clone(), |a, b| a.merge(b));
            assert_eq!((merged.expires_at, merged.revoked_at), (Some(500), Some(300)), "{order:?}");
            assert_eq!(KeyRecord::decode(&merged.encode()), Some(merged));
        }
        assert_eq!(rotated.status(499), KeyStatus::Active);
        assert_eq!(rotated.status(500), KeyStatus::Expired);
        assert_eq!(
            KeyRecord::decode("admin"),
            Some(KeyRecord { created_at: None, ..KeyRecord::new(Role::Admin, 0) })
        );
    }

    #[test]
    fn key_ids_are_stable_and_read_strictly() {
        let id = key_id(&hash("hk_a"));
        assert_eq!(id, key_id(&hash("hk_a")));
        assert_ne!(id, key_id(&hash("hk_b")));
        assert!(is_key_id(&id), "{id}");
        for bad in [
            "key_",
            "key_0123456789ABCDEF0123",
            "key_0123456789abcdef012",
            "kez_0123456789abcdef0123",
        ] {
            assert!(!is_key_id(bad), "{bad}");
        }
        // An IPv6 client is counted by its /64, an IPv4-mapped one as IPv4.
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key("2001:db8:1:3::1".parse().unwrap()));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(address_key(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn lines_of_earlier_versions_are_read_and_a_line_failing_its_check_is_not() {
        let h = hash("hk_a");
        let role = |role| KeyRecord { created_at: None, ..KeyRecord::new(role, 0) };
        assert_eq!(parse_line(&format!("{}\tplatform", hex(&h))), Some((h, role(Role::Platform))));
        let old = format!("{}\tmerchant:12", hex(&h));
        let old = format!("{old}\t{}", check(&old));
        assert_eq!(parse_line(&old), Some((h, role(Role::Merchant(12)))));
        let record = KeyRecord {
            expires_at: Some(1_700_000_100),
            rate: Some(Rate { per_second: 5, burst: 9 }),
            revoked_at: Some(1_700_000_050),
            ..KeyRecord::new(Role::Merchant(12), 1_700_000_000)
        };
        let good = line(&h, &record);
        assert_eq!(parse_line(good.trim_end()), Some((h, record)));
        let bad = good.trim_end().replace("merchant:12", "merchant:13");
        assert_eq!(parse_line(&bad), None);
        // A word this version does not know: the record is not half read.
        let future = format!("{}\tadmin created=1 scope=all", hex(&h));
        assert_eq!(parse_line(&format!("{future}\t{}", check(&future))), None);
    }
}
