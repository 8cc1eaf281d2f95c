//! A cluster of the real `huifu serve` for fault tests: nodes on loopback, each node's
//! replication port behind a fault proxy that can cut or slow every link from one node to
//! another on its own, and the processes killed, restarted and wiped at will.
//!
//! Node N's `peer` address is 127.0.77.N at a port the proxy listens on; its `peer_listen` is
//! another port of the same address, where the node itself listens, and so is its `http`
//! address (not 127.0.0.1, whose ephemeral ports a busy machine can run out of: a port picked
//! there by binding port 0 then fails with "address in use"). A node's replication
//! connections leave from its `peer` IP address, so the proxy in front of the node they reach
//! tells the link from the connection's source address. Connections from any other address
//! are passed through whatever the faults: a node asking another for its status (for
//! `GET /v1/cluster`) connects from 127.0.0.1, which names no node.
//!
//! Each node logs to `serve.log` in its own folder. On a panic the last lines of every log are
//! printed and the folders kept; `HUIFU_KEEP_CLUSTER=1` keeps them in any case, and
//! `HUIFU_CLUSTER_LOG` sets the nodes' `RUST_LOG`.

// Each test file that uses this module uses a different part of it.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The admin key every node is given (the same file for all).
pub const ADMIN: &str = "cluster-faults-admin-key-0123456789";

/// Replication traffic from one node to another: the connections node `from` opens to node
/// `to`, and the answers that come back on them.
pub type Link = (u64, u64);

/// The loopback address of node `id`'s replication traffic.
fn node_ip(id: u64) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 77, u8::try_from(id).expect("a small node id"))
}

/// A port free on `ip` when asked (the usual race of picking a port then letting it go).
fn free_port(ip: Ipv4Addr) -> u16 {
    TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap().port()
}

/// How long the proxy waits to reach a node before it drops the connection it accepted.
const UPSTREAM_CONNECT_MS: u64 = 500;

/// What the nodes log: `HUIFU_CLUSTER_LOG` (a `RUST_LOG` filter), else warnings and the
/// cluster's and the server's own information.
fn log_filter() -> String {
    std::env::var("HUIFU_CLUSTER_LOG")
        .unwrap_or_else(|_| "warn,huifu_cluster=info,huifu_server=info".into())
}

/// The fault proxy: one listener per node at its `peer` address, forwarding to its
/// `peer_listen`, with faults set per link.
pub struct FaultProxy {
    shared: Arc<ProxyShared>,
    accepters: Vec<JoinHandle<()>>,
}

struct ProxyShared {
    faults: Mutex<Faults>,
    /// The node each replication source address belongs to.
    nodes: HashMap<IpAddr, u64>,
    stop: AtomicBool,
    /// Connections closed by a cut, and connections refused because their link was cut.
    closed: AtomicU64,
    refused: AtomicU64,
}

#[derive(Default)]
struct Faults {
    cut: HashSet<Link>,
    delay: HashMap<Link, Duration>,
    /// Connections being forwarded: their link (none for a source that names no node) and
    /// both sockets, so that a cut can close them.
    open: HashMap<u64, (Option<Link>, TcpStream, TcpStream)>,
    next: u64,
}

impl ProxyShared {
    fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_cut(&self, link: Option<Link>) -> bool {
        link.is_some_and(|l| self.faults().cut.contains(&l))
    }

    fn delay(&self, link: Option<Link>) -> Option<Duration> {
        link.and_then(|l| self.faults().delay.get(&l).copied())
    }

    fn close(&self, id: u64) {
        if let Some((_, a, b)) = self.faults().open.remove(&id) {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }
}

impl FaultProxy {
    /// Starts a proxy for each `(node, listener at its peer address, its peer_listen)`.
    fn start(listeners: Vec<(u64, TcpListener, SocketAddr)>) -> FaultProxy {
        let nodes = listeners.iter().map(|(id, _, _)| (IpAddr::V4(node_ip(*id)), *id)).collect();
        let shared = Arc::new(ProxyShared {
            faults: Mutex::new(Faults::default()),
            nodes,
            stop: AtomicBool::new(false),
            closed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        });
        let accepters = listeners
            .into_iter()
            .map(|(to, listener, upstream)| {
                let shared = shared.clone();
                std::thread::spawn(move || accept(shared, listener, to, upstream))
            })
            .collect();
        FaultProxy { shared, accepters }
    }

    /// Cuts `from` → `to`: its connections are closed and new ones closed as they come.
    pub fn cut(&self, from: u64, to: u64) {
        let mut faults = self.shared.faults();
        faults.cut.insert((from, to));
        let doomed: Vec<u64> = faults
            .open
            .iter()
            .filter(|(_, (link, _, _))| *link == Some((from, to)))
            .map(|(id, _)| *id)
            .collect();
        for id in doomed {
            if let Some((_, a, b)) = faults.open.remove(&id) {
                let _ = a.shutdown(Shutdown::Both);
                let _ = b.shutdown(Shutdown::Both);
                self.shared.closed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Slows `from` → `to`: each chunk read on its connections, either way, waits `delay`
    /// before it is forwarded.
    pub fn delay(&self, from: u64, to: u64, delay: Duration) {
        self.shared.faults().delay.insert((from, to), delay);
    }

    /// Undoes every fault of `from` → `to`.
    pub fn heal(&self, from: u64, to: u64) {
        let mut faults = self.shared.faults();
        faults.cut.remove(&(from, to));
        faults.delay.remove(&(from, to));
    }

    /// Cuts every link between a node of `one` and a node of `other`, both ways.
    pub fn split(&self, one: &[u64], other: &[u64]) {
        for &a in one {
            for &b in other {
                self.cut(a, b);
                self.cut(b, a);
            }
        }
    }

    /// Cuts every link to and from `node`.
    pub fn isolate(&self, node: u64) {
        let others: Vec<u64> =
            self.shared.nodes.values().copied().filter(|&id| id != node).collect();
        self.split(&[node], &others);
    }

    /// Undoes every fault.
    pub fn heal_all(&self) {
        let mut faults = self.shared.faults();
        faults.cut.clear();
        faults.delay.clear();
    }

    /// Connections closed by cuts, and connections refused because their link was cut.
    pub fn counts(&self) -> (u64, u64) {
        (self.shared.closed.load(Ordering::Relaxed), self.shared.refused.load(Ordering::Relaxed))
    }

    /// Stops listening and closes every connection.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for accepter in self.accepters.drain(..) {
            let _ = accepter.join();
        }
        let ids: Vec<u64> = self.shared.faults().open.keys().copied().collect();
        for id in ids {
            self.shared.close(id);
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Accepts connections for node `to` until the proxy stops (polling, so that it can stop).
fn accept(shared: Arc<ProxyShared>, listener: TcpListener, to: u64, upstream: SocketAddr) {
    listener.set_nonblocking(true).expect("a non-blocking listener");
    while !shared.stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, source)) => {
                let shared = shared.clone();
                std::thread::spawn(move || forward(shared, stream, source, to, upstream));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Forwards one accepted connection to the node, both ways, while its link is not cut.
fn forward(
    shared: Arc<ProxyShared>,
    client: TcpStream,
    source: SocketAddr,
    to: u64,
    upstream: SocketAddr,
) {
    let link = shared.nodes.get(&source.ip()).map(|&from| (from, to));
    if shared.is_cut(link) {
        shared.refused.fetch_add(1, Ordering::Relaxed);
        return; // dropping the socket closes it
    }
    let timeout = Duration::from_millis(UPSTREAM_CONNECT_MS);
    let Ok(node) = TcpStream::connect_timeout(&upstream, timeout) else { return };
    let _ = client.set_nonblocking(false);
    let _ = client.set_nodelay(true);
    let _ = node.set_nodelay(true);
    let (Ok(client_2), Ok(node_2), Ok(client_3), Ok(node_3)) =
        (client.try_clone(), node.try_clone(), client.try_clone(), node.try_clone())
    else {
        return;
    };
    // Registered under the same lock a cut takes, so that a cut either refuses the
    // connection here or finds it open and closes it.
    let id = {
        let mut faults = shared.faults();
        if link.is_some_and(|l| faults.cut.contains(&l)) {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
        faults.next += 1;
        let id = faults.next;
        faults.open.insert(id, (link, client_3, node_3));
        id
    };
    let back = {
        let shared = shared.clone();
        std::thread::spawn(move || pump(&shared, link, node_2, client_2, id))
    };
    pump(&shared, link, client, node, id);
    let _ = back.join();
}

/// Copies `from` to `to` chunk by chunk, each after the link's delay, until either side
/// closes or the link is cut; then closes the connection both ways.
fn pump(shared: &ProxyShared, link: Option<Link>, mut from: TcpStream, mut to: TcpStream, id: u64) {
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let n = match from.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(delay) = shared.delay(link) {
            std::thread::sleep(delay);
        }
        if shared.is_cut(link) || to.write_all(&chunk[..n]).is_err() {
            break;
        }
    }
    shared.close(id);
}

/// One node: its addresses, its folder and its process when it runs.
pub struct Node {
    pub id: u64,
    pub http: SocketAddr,
    /// Where the others reach it for replication (through the proxy).
    pub peer: SocketAddr,
    /// The node's own folder: its data folder (`data`) and its log (`serve.log`).
    home: PathBuf,
    child: Option<Child>,
    /// Times the node was started.
    pub starts: u32,
}

impl Node {
    pub fn url(&self) -> String {
        format!("http://{}", self.http)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.home.join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.home.join("serve.log")
    }
}

/// A cluster of `huifu serve` processes behind a fault proxy.
pub struct Cluster {
    root: Option<tempfile::TempDir>,
    config: PathBuf,
    /// The cluster file of a spare node: every node, the spares too.
    spare_config: PathBuf,
    key_file: PathBuf,
    /// Every node, members and spares, by index (id − 1).
    pub nodes: Vec<Node>,
    /// The ids of the cluster's members: the first nodes, until a test changes them.
    pub members: Vec<u64>,
    /// How many nodes the cluster was made of; the spares come after.
    founders: u64,
    /// Options every node is started with besides the cluster's own.
    args: Vec<String>,
    pub proxy: FaultProxy,
    /// Whether each node's process runs, by index (id − 1); shared with clients, which send
    /// to nodes that run.
    pub running: Arc<Vec<AtomicBool>>,
}

impl Cluster {
    /// Writes the cluster file and the admin key file for `size` nodes, starts the proxy and
    /// every node.
    pub fn start(size: u64) -> Cluster {
        Cluster::start_with_spares(size, 0)
    }

    /// [`Cluster::start`], with `spares` more nodes (ids after the members') behind the proxy
    /// and not started: each has a cluster file that names it, and joins when started.
    pub fn start_with_spares(size: u64, spares: u64) -> Cluster {
        Cluster::start_with(size, spares, &[])
    }

    /// [`Cluster::start_with_spares`], every node started (and restarted) with `args` too.
    pub fn start_with(size: u64, spares: u64, args: &[&str]) -> Cluster {
        let root = tempfile::tempdir().unwrap();
        let mut text = String::new();
        let mut spare_text = String::new();
        let mut listeners = Vec::new();
        let mut nodes = Vec::new();
        for id in 1..=size + spares {
            let ip = node_ip(id);
            let proxy = TcpListener::bind((ip, 0)).unwrap();
            let peer = proxy.local_addr().unwrap();
            let peer_listen = SocketAddr::from((ip, free_port(ip)));
            let http = SocketAddr::from((ip, free_port(ip)));
            let table = format!(
                "[[node]]\nid = {id}\nhttp = \"{http}\"\npeer = \"{peer}\"\npeer_listen = \"{peer_listen}\"\n\n"
            );
            if id <= size {
                text.push_str(&table);
            }
            spare_text.push_str(&table);
            listeners.push((id, proxy, peer_listen));
            let home = root.path().join(format!("node-{id}"));
            std::fs::create_dir_all(&home).unwrap();
            nodes.push(Node { id, http, peer, home, child: None, starts: 0 });
        }
        let config = root.path().join("cluster.toml");
        std::fs::write(&config, text).unwrap();
        let spare_config = root.path().join("cluster-with-spares.toml");
        std::fs::write(&spare_config, spare_text).unwrap();
        let key_file = root.path().join("admin.key");
        std::fs::write(&key_file, format!("{ADMIN}\n")).unwrap();
        let running = Arc::new((0..size + spares).map(|_| AtomicBool::new(false)).collect());
        let mut cluster = Cluster {
            root: Some(root),
            config,
            spare_config,
            key_file,
            nodes,
            members: (1..=size).collect(),
            founders: size,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            proxy: FaultProxy::start(listeners),
            running,
        };
        for id in 1..=size {
            cluster.start_node(id);
        }
        cluster
    }

    /// The members' ids.
    pub fn ids(&self) -> Vec<u64> {
        self.members.clone()
    }

    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    fn node_mut(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    /// Every node's base URL, by index (id − 1).
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }

    pub fn is_running(&self, id: u64) -> bool {
        self.node(id).child.is_some()
    }

    /// Starts node `id` on its folder (stdout drained, stderr appended to its log). It serves
    /// HTTP once it has opened its folder: at once, or after its quiet time when it has no
    /// vote on disk. A spare starts with `--join`.
    pub fn start_node(&mut self, id: u64) {
        let spare = id > self.founders;
        let config = if spare { self.spare_config.clone() } else { self.config.clone() };
        let join = spare && !self.node(id).data_dir().exists();
        let key_file = self.key_file.clone();
        let args = self.args.clone();
        let node = self.node_mut(id);
        assert!(node.child.is_none(), "node {id} runs already");
        node.starts += 1;
        let mut log =
            std::fs::OpenOptions::new().create(true).append(true).open(node.log_path()).unwrap();
        writeln!(log, "--- start {} of node {id} ---", node.starts).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_huifu"))
            .arg("serve")
            .arg("--data-dir")
            .arg(node.data_dir())
            .arg("--admin-key-file")
            .arg(&key_file)
            // The tests drive the cluster hard with the one admin key: no role's rate limit.
            .args(["--key-rate-per-second", "10000000"])
            .arg("--cluster")
            .arg(&config)
            .args(["--node", &id.to_string()])
            .args(join.then_some("--join"))
            .args(&args)
            .env("RUST_LOG", log_filter())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start huifu serve");
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || for _ in BufReader::new(stdout).lines() {});
        node.child = Some(child);
        self.running[(id - 1) as usize].store(true, Ordering::Relaxed);
    }

    /// SIGKILL, then waits for the process to be gone.
    pub fn kill(&mut self, id: u64) {
        self.running[(id - 1) as usize].store(false, Ordering::Relaxed);
        if let Some(mut child) = self.node_mut(id).child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGKILL, then a start on the same folder.
    pub fn restart(&mut self, id: u64) {
        self.kill(id);
        self.start_node(id);
    }

    /// SIGKILL, the node's data folder removed, and a start with an empty one.
    pub fn wipe(&mut self, id: u64) {
        self.kill(id);
        let data = self.node(id).data_dir();
        if data.exists() {
            std::fs::remove_dir_all(&data).unwrap();
        }
        self.start_node(id);
    }

    /// SIGTERM, then waits (at most `within`) for the process to end; SIGKILL if it does not.
    pub fn terminate(&mut self, id: u64, within: Duration) -> Result<ExitStatus, String> {
        self.running[(id - 1) as usize].store(false, Ordering::Relaxed);
        let Some(mut child) = self.node_mut(id).child.take() else {
            return Err(format!("node {id} does not run"));
        };
        let sent = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        if !sent.is_ok_and(|s| s.success()) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("node {id}: cannot send SIGTERM"));
        }
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("node {id} did not stop within {within:?} of SIGTERM"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Node `id`'s `GET /v1/cluster`, or `None` when it does not answer 200.
    pub fn view(&self, id: u64) -> Option<Value> {
        if !self.is_running(id) {
            return None;
        }
        let (status, view) = request(
            &agent(Duration::from_secs(3)),
            "GET",
            &format!("{}/v1/cluster", self.node(id).url()),
            None,
            &[],
        )
        .ok()?;
        (status == 200).then_some(view)
    }

    /// The leader, once a majority of the running nodes name the same one at the same term
    /// and it says so itself (an isolated old leader may still believe it leads, at an
    /// older term). Panics after `within`.
    pub fn leader(&self, within: Duration) -> u64 {
        let started = Instant::now();
        loop {
            let views: Vec<(u64, Value)> =
                self.ids().into_iter().filter_map(|id| Some((id, self.view(id)?))).collect();
            if let Some(leader) = agreed_leader(&views, self.members.len()) {
                return leader;
            }
            if started.elapsed() > within {
                panic!("no leader within {within:?}: {}", describe(&views));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every node runs and follows one leader, and each has applied at least
    /// what the leader had committed when the wait began (so a node that was down or cut
    /// off has caught up). Returns the leader. Panics after `within`.
    pub fn wait_ready(&self, within: Duration) -> u64 {
        let started = Instant::now();
        let mut target: Option<u64> = None;
        loop {
            let views: Vec<(u64, Value)> =
                self.ids().into_iter().filter_map(|id| Some((id, self.view(id)?))).collect();
            if let Some(leader) = agreed_leader(&views, self.members.len()) {
                let view = &views.iter().find(|(id, _)| *id == leader).unwrap().1;
                let nodes = view["nodes"].as_array().cloned().unwrap_or_default();
                let commit =
                    nodes.iter().find(|n| n["id"] == leader).and_then(|n| n["commit"].as_u64());
                if target.is_none() {
                    target = commit;
                }
                let all_running = self.ids().iter().all(|&id| self.is_running(id));
                let caught_up = nodes.len() == self.members.len()
                    && nodes.iter().all(|n| {
                        matches!(n["role"].as_str(), Some("leader" | "follower"))
                            && n["applied"].as_u64() >= target
                    });
                if all_running && caught_up && target.is_some() {
                    return leader;
                }
            }
            if started.elapsed() > within {
                panic!("the cluster was not ready within {within:?}: {}", describe(&views));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (at most `within`) until every node reports the same `applied` with the same
    /// digest, in the leader's view and in each node's own; returns the leader's view.
    pub fn wait_converged(&self, within: Duration) -> Value {
        let started = Instant::now();
        loop {
            let views: Vec<(u64, Value)> =
                self.ids().into_iter().filter_map(|id| Some((id, self.view(id)?))).collect();
            if let Some(leader) = agreed_leader(&views, self.members.len()) {
                // Each node's own status, as each view has it, and as the leader sees all.
                let own: Vec<Value> = views
                    .iter()
                    .filter_map(|(id, v)| {
                        v["nodes"].as_array()?.iter().find(|n| n["id"] == *id).cloned()
                    })
                    .collect();
                let leader_view = &views.iter().find(|(id, _)| *id == leader).unwrap().1;
                let seen = leader_view["nodes"].as_array().cloned().unwrap_or_default();
                let same = |nodes: &[Value]| {
                    nodes.len() == self.members.len()
                        && nodes[0]["applied"].is_u64()
                        && nodes[0]["digest"].as_str().is_some_and(|d| !d.is_empty())
                        && nodes.iter().all(|n| {
                            n["applied"] == nodes[0]["applied"] && n["digest"] == nodes[0]["digest"]
                        })
                };
                if same(&own) && same(&seen) {
                    return leader_view.clone();
                }
            }
            if started.elapsed() > within {
                panic!("the nodes did not converge within {within:?}: {}", describe(&views));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last `lines` lines of node `id`'s log.
    pub fn log_tail(&self, id: u64, lines: usize) -> String {
        let text = std::fs::read_to_string(self.node(id).log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Lines of node `id`'s log that contain `needle`.
    pub fn log_lines(&self, id: u64, needle: &str) -> Vec<String> {
        let text = std::fs::read_to_string(self.node(id).log_path()).unwrap_or_default();
        text.lines().filter(|l| l.contains(needle)).map(str::to_owned).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let all: Vec<u64> = self.nodes.iter().map(|n| n.id).collect();
        for id in all {
            self.kill(id);
        }
        self.proxy.stop();
        let keep = std::env::var_os("HUIFU_KEEP_CLUSTER").is_some();
        if std::thread::panicking() {
            for node in &self.nodes {
                eprintln!(
                    "--- node {} log (last 60 lines) ---\n{}",
                    node.id,
                    self.log_tail(node.id, 60)
                );
            }
        }
        if std::thread::panicking() || keep {
            if let Some(root) = self.root.take() {
                eprintln!("the cluster's folders are kept in {}", root.keep().display());
            }
        }
    }
}

/// The leader that a majority of the cluster's `size` nodes name at the highest term any
/// names one, and that names itself.
fn agreed_leader(views: &[(u64, Value)], size: usize) -> Option<u64> {
    let claims: Vec<(u64, u64)> = views
        .iter()
        .filter_map(|(_, v)| Some((v["term"].as_u64()?, v["leader"].as_u64()?)))
        .collect();
    let &(term, leader) = claims.iter().max()?;
    let backers = claims.iter().filter(|c| **c == (term, leader)).count();
    let itself = views.iter().any(|(id, v)| *id == leader && v["leader"] == leader);
    (backers > size / 2 && itself).then_some(leader)
}

/// The views in short: per node, its leader and term, and each member's role and applied.
fn describe(views: &[(u64, Value)]) -> String {
    views
        .iter()
        .map(|(id, v)| {
            let nodes: Vec<String> = v["nodes"]
                .as_array()
                .map(|n| {
                    n.iter()
                        .map(|n| format!("{}:{}@{}", n["id"], n["role"], n["applied"]))
                        .collect()
                })
                .unwrap_or_default();
            format!("node {id}: leader {} term {} [{}]", v["leader"], v["term"], nodes.join(" "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// An HTTP agent whose calls give up after `timeout` (connecting after at most 500 ms).
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_millis(500).min(timeout))
        .timeout(timeout)
        .build()
}

/// One call with the admin key and the extra `headers`; the status and the JSON body (or
/// `{"text": ...}`), or why no answer came.
pub fn request(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Result<(u16, Value), String> {
    let mut req = agent.request(method, url).set("Authorization", &format!("Bearer {ADMIN}"));
    for (name, value) in headers {
        req = req.set(name, value);
    }
    let result = match body {
        Some(text) => req.set("Content-Type", "application/json").send_string(text),
        None => req.call(),
    };
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e.to_string()),
    };
    let status = response.status();
    let text = response.into_string().map_err(|e| e.to_string())?;
    let value = serde_json::from_str(&text).unwrap_or_else(|_| json!({ "text": text }));
    Ok((status, value))
}

/// Runs `huifu audit` on a stopped node's folder: whether it passed, and what it printed.
pub fn audit(dir: &Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_huifu"))
        .args(["audit", "--data-dir"])
        .arg(dir)
        .output()
        .expect("run huifu audit");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}
