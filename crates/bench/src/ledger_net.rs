//! Ledger transfers per second over the network (`huifu bench ledger --nodes N`), the
//! counterpart of TigerBeetle's `benchmark` against a cluster: the benchmark starts `huifu
//! serve` processes on loopback (one alone, or N nodes of a cluster that replicates every
//! batch to a majority, fsynced, before it answers), creates the accounts, and sends batches
//! of transfers as JSON over HTTP to the leader from several clients. At the end: the first
//! transfer of every batch is looked up, and every node must have applied the same log with
//! the same state digest.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use huifu_ledger::constants::BATCH_EVENTS_MAX;
use huifu_ledger::Transfer;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::http::{listening_url, random_key, Conn, Endpoint};
use crate::ledger::random_transfer;
use crate::measure::{self, cpu_delta, cpu_seconds, duration_us};
use crate::Progress;

/// Most nodes the benchmark starts.
pub const NODES_MAX: usize = 9;
/// How long the benchmark waits for the servers to listen and a cluster to elect a leader.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long it waits, after the run, for every node to have applied the whole log.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a batch answered 503 (no leader for a moment) is sent again, and the pause between.
const RETRY_TIMEOUT: Duration = Duration::from_secs(30);
const RETRY_PAUSE_MS: u64 = 50;

/// What to run.
#[derive(Clone, Debug)]
pub struct NetLedgerOptions {
    /// `huifu serve` processes: 1 runs alone, more form a cluster.
    pub nodes: usize,
    pub accounts: u64,
    pub transfers: u64,
    /// Transfers per batch (at most `BATCH_EVENTS_MAX`).
    pub batch: usize,
    /// Clients, each with its own connection, sending batches back to back.
    pub clients: usize,
    pub seed: u64,
}

/// What a run measured and found.
pub struct NetLedgerRun {
    /// From the first batch to the last reply.
    pub seconds: f64,
    /// Batch latencies, request to reply, in microseconds.
    pub latencies: Histogram<u64>,
    /// Transfers whose result was not `created`.
    pub failed: u64,
    /// Batches sent again after a 503 (a cluster between leaders).
    pub retries: u64,
    pub sampled: usize,
    pub found: usize,
    /// Every node's id, last applied index and state digest, once they all applied the same.
    pub nodes: Vec<(u64, u64, String)>,
    pub client_cpu_seconds: Option<f64>,
    /// All servers' CPU time over the run.
    pub server_cpu_seconds: Option<f64>,
}

impl NetLedgerRun {
    /// Every transfer created and every sampled one found; on a cluster, every node at the
    /// same index with the same digest.
    pub fn ok(&self) -> bool {
        let agree = self.nodes.windows(2).all(|w| (w[0].1, &w[0].2) == (w[1].1, &w[1].2));
        self.failed == 0 && self.found == self.sampled && agree
    }
}

/// The servers of a run: processes on temporary folders, killed on drop.
struct Servers {
    children: Vec<Child>,
    /// Each node's id and URL.
    urls: Vec<(u64, String)>,
    key: String,
    _dir: tempfile::TempDir,
}

impl Drop for Servers {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A free port below the ephemeral range (32768 and up): one the kernel hands out could be
/// taken by some connection's local end before the server listens on it.
fn free_port() -> anyhow::Result<u16> {
    let mut rng = rand::thread_rng();
    for _ in 0..1_000 {
        let port = rng.gen_range(20_000..32_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port between 20000 and 32000")
}

impl Servers {
    /// Starts `nodes` servers of `exe` and waits until each listens.
    fn start(exe: &Path, nodes: usize) -> anyhow::Result<Servers> {
        let dir = tempfile::Builder::new()
            .prefix("huifu-bench-ledger-")
            .tempdir()
            .context("cannot create a folder for the servers")?;
        let key = random_key();
        let key_file = dir.path().join("admin-key");
        std::fs::write(&key_file, &key).context("cannot write the admin key file")?;
        let cluster_file = dir.path().join("cluster.toml");
        if nodes > 1 {
            let mut text = String::new();
            for id in 1..=nodes {
                let (http, peer) = (free_port()?, free_port()?);
                let _ = writeln!(
                    text,
                    "[[node]]\nid = {id}\nhttp = \"127.0.0.1:{http}\"\npeer = \"127.0.0.1:{peer}\""
                );
            }
            std::fs::write(&cluster_file, text).context("cannot write cluster.toml")?;
        }
        let mut servers = Servers { children: Vec::new(), urls: Vec::new(), key, _dir: dir };
        for id in 1..=nodes as u64 {
            let data: PathBuf = servers._dir.path().join(format!("node-{id}"));
            let mut command = Command::new(exe);
            command
                .arg("serve")
                .arg("--data-dir")
                .arg(&data)
                .arg("--admin-key-file")
                .arg(&key_file)
                // The run's one key carries all of its load: no rate limit of a role's default.
                .arg("--key-rate-per-second")
                .arg(huifu_server::constants::KEY_RATE_PER_SECOND_MAX.to_string());
            if nodes > 1 {
                command.arg("--cluster").arg(&cluster_file).arg("--node").arg(id.to_string());
            } else {
                // In memory like a cluster node, so that the two compare.
                command.args(["--listen", "127.0.0.1:0", "--memory-transfers-max", "all"]);
            }
            std::fs::create_dir_all(&data)?;
            let log = std::fs::File::create(data.with_extension("log"))?;
            let mut child = command
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(log)
                .spawn()
                .with_context(|| format!("cannot start {} serve", exe.display()))?;
            let listening = listening_url(&mut child);
            servers.children.push(child);
            let Some(url) = listening? else {
                // The folder goes with the run: what the node said is in the error.
                let log = std::fs::read_to_string(data.with_extension("log")).unwrap_or_default();
                bail!("node {id} stopped before listening: {}", log.trim());
            };
            servers.urls.push((id, url));
        }
        Ok(servers)
    }

    fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    fn cpu_seconds(&self) -> Option<f64> {
        self.pids().iter().map(|pid| cpu_seconds(&pid.to_string())).sum()
    }

    async fn conn(&self, url: &str) -> anyhow::Result<Conn> {
        Conn::open(Arc::new(Endpoint::parse(url, &self.key)?)).await
    }

    /// The URL of the leader, once there is one (the one server when it runs alone).
    async fn leader(&self) -> anyhow::Result<String> {
        if self.urls.len() == 1 {
            return Ok(self.urls[0].1.clone());
        }
        let started = Instant::now();
        let mut conn = self.conn(&self.urls[0].1).await?;
        loop {
            let (status, body) = conn.get("/v1/cluster").await?;
            if status == 200 {
                let view: Value = serde_json::from_slice(body)?;
                let leader = view["leader"].as_u64();
                if let Some((_, url)) = self.urls.iter().find(|(id, _)| Some(*id) == leader) {
                    return Ok(url.clone());
                }
            }
            if started.elapsed() > START_TIMEOUT {
                bail!("no leader within {} s", START_TIMEOUT.as_secs());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every node's id, applied index and digest, once all have applied the same index.
    async fn agreed(&self) -> anyhow::Result<Vec<(u64, u64, String)>> {
        if self.urls.len() == 1 {
            return Ok(Vec::new());
        }
        let started = Instant::now();
        let mut conn = self.conn(&self.urls[0].1).await?;
        loop {
            let (status, body) = conn.get("/v1/cluster").await?;
            let view: Value =
                if status == 200 { serde_json::from_slice(body)? } else { Value::Null };
            let nodes: Vec<(u64, u64, String)> = view["nodes"]
                .as_array()
                .map(|nodes| {
                    nodes
                        .iter()
                        .map(|n| {
                            let id = n["id"].as_u64().unwrap_or(0);
                            let applied = n["applied"].as_u64().unwrap_or(0);
                            (id, applied, n["digest"].as_str().unwrap_or("").to_owned())
                        })
                        .collect()
                })
                .unwrap_or_default();
            let same = nodes.len() == self.urls.len() && nodes.windows(2).all(|w| w[0].1 == w[1].1);
            if same || started.elapsed() > CATCH_UP_TIMEOUT {
                return Ok(nodes);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A batch of transfers as the API takes it: JSON, the integers as decimal strings.
fn transfers_json(transfers: &[Transfer], out: &mut Vec<u8>) {
    let mut text = String::with_capacity(transfers.len() * 160);
    text.push('[');
    for (i, t) in transfers.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        let _ = write!(
            text,
            r#"{{"id":"{}","debit_account_id":"{}","credit_account_id":"{}","amount":"{}","ledger":{},"code":{}}}"#,
            t.id, t.debit_account_id, t.credit_account_id, t.amount, t.ledger, t.code
        );
    }
    text.push(']');
    out.clear();
    out.extend_from_slice(text.as_bytes());
}

/// How many results of a create reply say `created`.
fn created(reply: &[u8]) -> usize {
    let needle = br#""result":"created""#;
    reply.windows(needle.len()).filter(|w| w == needle).count()
}

/// Starts the servers of `exe`, runs the benchmark, stops them.
pub fn run(
    exe: &Path,
    options: &NetLedgerOptions,
    progress: Arc<dyn Progress>,
) -> anyhow::Result<NetLedgerRun> {
    if options.nodes == 0 || options.nodes > NODES_MAX {
        bail!("--nodes is 1 to {NODES_MAX}");
    }
    if options.batch == 0 || options.batch > BATCH_EVENTS_MAX {
        bail!("--batch is 1 to {BATCH_EVENTS_MAX}");
    }
    if options.clients == 0 || options.accounts < 2 {
        bail!("at least one client and two accounts");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.clients.clamp(1, 2))
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let servers = Servers::start(exe, options.nodes)?;
    runtime.block_on(drive(&servers, options, progress))
}

async fn drive(
    servers: &Servers,
    options: &NetLedgerOptions,
    progress: Arc<dyn Progress>,
) -> anyhow::Result<NetLedgerRun> {
    let leader = servers.leader().await?;
    let mut conn = servers.conn(&leader).await?;
    for first in (1..=options.accounts).step_by(BATCH_EVENTS_MAX) {
        let last = (first + BATCH_EVENTS_MAX as u64 - 1).min(options.accounts);
        let mut body = String::from("[");
        for id in first..=last {
            let comma = if id > first { "," } else { "" };
            let _ = write!(body, r#"{comma}{{"id":"{id}","ledger":1,"code":1}}"#);
        }
        body.push(']');
        let (status, reply) = conn.post("/v1/ledger/accounts", body.as_bytes()).await?;
        if status != 200 || created(reply) != (last - first + 1) as usize {
            bail!("account creation failed: {status} {}", String::from_utf8_lossy(reply));
        }
    }

    let next = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let retries = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(measure::histogram()));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let client_cpu = cpu_seconds("self");
    let server_cpu = servers.cpu_seconds();
    progress.start();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..options.clients {
        let mut conn = servers.conn(&leader).await?;
        let (next, failures, retries) = (next.clone(), failures.clone(), retries.clone());
        let (latencies, samples) = (latencies.clone(), samples.clone());
        let (total, batch, accounts) = (options.transfers, options.batch as u64, options.accounts);
        let seed = options.seed.wrapping_add(client as u64);
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(seed);
            let mut histogram = measure::histogram();
            let mut body = Vec::new();
            loop {
                let start = next.fetch_add(batch, Ordering::Relaxed);
                if start >= total {
                    break;
                }
                let count = batch.min(total - start);
                let transfers: Vec<Transfer> =
                    (0..count).map(|_| random_transfer(&mut rng, accounts)).collect();
                transfers_json(&transfers, &mut body);
                let sent = Instant::now();
                // A cluster between leaders answers 503: the same batch again (the same ids:
                // a transfer applied before is answered `exists`, counted as failed).
                let made = loop {
                    let (status, reply) = conn.post("/v1/ledger/transfers", &body).await?;
                    match status {
                        200 => break created(reply) as u64,
                        503 if sent.elapsed() < RETRY_TIMEOUT => {
                            retries.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(RETRY_PAUSE_MS)).await;
                        }
                        _ => bail!("a batch got {status}: {}", String::from_utf8_lossy(reply)),
                    }
                };
                histogram.record(duration_us(sent.elapsed())).ok();
                let failed = count - made;
                failures.fetch_add(failed, Ordering::Relaxed);
                samples.lock().expect("lock").push(transfers[0].id);
                progress.advance(count);
            }
            latencies.lock().expect("lock").add(&histogram).ok();
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await.context("a client panicked")??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let client_cpu_seconds = cpu_delta(client_cpu, cpu_seconds("self"));
    let server_cpu_seconds = cpu_delta(server_cpu, servers.cpu_seconds());
    progress.finish();

    let ids = std::mem::take(&mut *samples.lock().expect("lock"));
    let mut found = 0;
    for chunk in ids.chunks(BATCH_EVENTS_MAX) {
        let body: Vec<String> = chunk.iter().map(|id| format!("\"{id}\"")).collect();
        let body = format!(r#"{{"ids":[{}]}}"#, body.join(","));
        let (status, reply) = conn.post("/v1/ledger/transfers/lookup", body.as_bytes()).await?;
        if status != 200 {
            bail!("lookup failed: {status} {}", String::from_utf8_lossy(reply));
        }
        let transfers: Value = serde_json::from_slice(reply)?;
        found += transfers.as_array().map_or(0, Vec::len);
    }
    let nodes = servers.agreed().await?;
    let latencies = latencies.lock().expect("lock").clone();
    Ok(NetLedgerRun {
        seconds,
        latencies,
        failed: failures.load(Ordering::Relaxed),
        retries: retries.load(Ordering::Relaxed),
        sampled: ids.len(),
        found,
        nodes,
        client_cpu_seconds,
        server_cpu_seconds,
    })
}
