//! One node of a cluster: its engine (applying the committed log), its Raft instance, the
//! replication listener, and the proposer that turns the operations clients send into log
//! entries, one group of operations an entry.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use huifu_engine::{Engine, EngineError, EngineOptions, EngineStats, Failure, Histogram};
use huifu_payments::{Op, Outcome, PaymentsMachine};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, Config, ServerState, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinHandle;

use crate::config::ClusterConfig;
use crate::constants::{
    APPEND_ENTRIES_MAX, CATCH_UP_WAIT_MS, ELECTION_TIMEOUT_MAX_MS, ELECTION_TIMEOUT_MIN_MS,
    FORGETFUL_NODE_QUIET_MS, GROUP_OPS_MAX, HEARTBEAT_INTERVAL_MS, LEADER_QUORUM_STALE_MS,
    PROPOSALS_IN_FLIGHT_MAX, PROPOSAL_QUEUE_MAX, SNAPSHOT_EVERY_ENTRIES, SNAPSHOT_TIMEOUT_MS,
    STATUS_TIMEOUT_MS, TICK_MS,
};
use crate::elect::{self, Heard};
use crate::log::LogStore;
use crate::machine::Replicated;
use crate::network::{self, Network, Raft};
use crate::store::{KeyHook, StateStore};
use crate::types::{Group, KeyGrant};

/// Why an operation or a read did not go through.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ClusterError {
    /// Writes and linearizable reads go to the leader; this node is not it.
    #[error("this node is not the leader (the leader is {leader:?})")]
    NotLeader { leader: Option<u64> },
    /// A membership change that cannot be made as asked (another is under way, the node
    /// is a member at another address, the membership would be empty).
    #[error("{0}")]
    Membership(String),
    /// A node being added has not caught up with the log yet; asking again goes on.
    #[error("node {id} is catching up: it has the log up to {matched:?} of {target}")]
    CatchingUp { id: u64, matched: Option<u64>, target: u64 },
    /// Raft failed or the node is stopping.
    #[error("replication failed: {0}")]
    Replication(String),
    #[error("the engine failed: {0}")]
    Engine(String),
}

impl From<EngineError> for ClusterError {
    fn from(e: EngineError) -> ClusterError {
        ClusterError::Engine(e.to_string())
    }
}

/// What an operator sees of a node (`GET /v1/cluster`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub id: u64,
    /// `leader`, `follower`, `candidate`, `learner` or `stopped`.
    pub role: String,
    pub leader: Option<u64>,
    pub term: u64,
    /// Index of the last entry known committed, and of the last applied.
    pub commit: Option<u64>,
    pub applied: Option<u64>,
    /// The state's digest at `applied`, in hex.
    pub digest: String,
    /// Where the node serves HTTP (as its cluster file says).
    pub http: Option<String>,
}

struct Proposal {
    op: Op,
    reply: oneshot::Sender<Result<Outcome, ClusterError>>,
}

/// What the replication listener answers for besides Raft: this node's own status.
#[derive(Clone)]
pub(crate) struct Local {
    pub(crate) id: u64,
    /// This node's HTTP address.
    http: SocketAddr,
    pub(crate) raft: Raft,
    engine: Arc<Engine<Replicated>>,
    pub(crate) log: LogStore,
    /// When a leader was last heard from.
    pub(crate) heard: Heard,
    /// Connections to the other nodes.
    pub(crate) network: Network,
}

impl Local {
    /// This node's view: role, leader, term, commit and applied positions, digest.
    pub(crate) async fn status(&self) -> Result<NodeStatus, ClusterError> {
        let metrics = self.raft.metrics().borrow().clone();
        let engine = self.engine.clone();
        let (applied, digest) =
            tokio::task::spawn_blocking(move || engine.read(|r| (r.applied, r.digest_hex())))
                .await
                .map_err(|e| ClusterError::Engine(e.to_string()))??;
        Ok(NodeStatus {
            id: self.id,
            role: role(metrics.state).into(),
            leader: metrics.current_leader,
            term: metrics.current_term,
            commit: self.log.committed().map(|id| id.index),
            applied: applied.map(|id| id.index),
            digest,
            http: Some(self.http.to_string()),
        })
    }
}

/// Counters and latencies of replication, for `/metrics`.
pub struct ClusterStats {
    /// Microseconds from proposing a group to its outcomes (a majority has it durable and it
    /// is applied here).
    pub proposal_us: Histogram,
    /// Terms this node saw begin: each is an election somewhere in the cluster.
    pub elections: AtomicU64,
    /// Times the leader this node knows of changed (to another node or to none).
    pub leader_changes: AtomicU64,
}

/// Bounds of the proposal latency histogram, in microseconds.
const PROPOSAL_US_BOUNDS: &[u64] =
    &[250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000];

/// The whole cluster as one node sees it (`GET /v1/cluster`).
#[derive(Clone, Debug, Serialize)]
pub struct ClusterView {
    pub leader: Option<u64>,
    pub term: u64,
    /// Every node of the membership, in id order; one that did not answer has the role
    /// `unreachable`.
    pub nodes: Vec<NodeStatus>,
}

/// A running node.
pub struct Node {
    pub id: u64,
    local: Local,
    config: ClusterConfig,
    /// HTTP addresses of members the cluster file does not name (added since), as they told.
    http: std::sync::Mutex<BTreeMap<u64, SocketAddr>>,
    proposals: mpsc::Sender<Proposal>,
    stats: Arc<ClusterStats>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

fn role(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "stopped",
    }
}

impl Node {
    /// Opens the node's data folder `dir` (its checkpoints and its log), starts Raft, listens
    /// for the other nodes on this node's `peer` address, and makes the cluster of `config`
    /// when no node has made it yet.
    pub async fn start(
        dir: &Path,
        config: &ClusterConfig,
        id: u64,
        options: NodeOptions,
    ) -> Result<Node, ClusterError> {
        let NodeOptions { fsync, on_key, join } = options;
        let me = config
            .node(id)
            .ok_or_else(|| {
                ClusterError::Replication(format!("node {id} is not in the cluster file"))
            })?
            .clone();
        let mut options = EngineOptions::new(dir);
        options.journal = false;
        options.fsync = fsync;
        let (engine, _) = Engine::<Replicated>::open(options)?;
        let engine = Arc::new(engine);
        if let Some(on_key) = &on_key {
            // The keys of the checkpoint opened; the log after it is applied anew.
            let keys = engine.read(|r| r.keys.clone())?;
            for (hash, record) in keys {
                on_key(&KeyGrant { hash, record });
            }
        }
        let log =
            LogStore::open(dir, fsync).map_err(|e| ClusterError::Replication(e.to_string()))?;
        let raft_config = Config {
            cluster_name: "huifu".into(),
            heartbeat_interval: HEARTBEAT_INTERVAL_MS,
            election_timeout_min: ELECTION_TIMEOUT_MIN_MS,
            election_timeout_max: ELECTION_TIMEOUT_MAX_MS,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY_ENTRIES),
            max_in_snapshot_log_to_keep: SNAPSHOT_EVERY_ENTRIES,
            max_payload_entries: APPEND_ENTRIES_MAX,
            ..Config::default()
        }
        .validate()
        .map_err(|e| ClusterError::Replication(e.to_string()))?;
        if log.never_voted() {
            // A node whose folder was wiped has forgotten whom it voted for: were it to vote
            // again in an election it already voted in, two leaders could win one term. It
            // keeps out of elections until any election it may have voted in is over.
            tokio::time::sleep(Duration::from_millis(FORGETFUL_NODE_QUIET_MS)).await;
        }
        let state = StateStore::new(engine.clone(), dir.to_path_buf(), on_key);
        let network = Network::new(Some(me.peer.ip()));
        let raft = Raft::new(id, Arc::new(raft_config), network.clone(), log.clone(), state)
            .await
            .map_err(|e| ClusterError::Replication(e.to_string()))?;
        let listener = tokio::net::TcpListener::bind(me.peer_listen).await.map_err(|e| {
            ClusterError::Replication(format!("cannot listen on {}: {e}", me.peer_listen))
        })?;
        let heard = Heard::new();
        let local = Local {
            id,
            http: me.http,
            raft: raft.clone(),
            engine: engine.clone(),
            log,
            heard,
            network,
        };
        let stats = Arc::new(ClusterStats {
            proposal_us: Histogram::new(PROPOSAL_US_BOUNDS),
            elections: AtomicU64::new(0),
            leader_changes: AtomicU64::new(0),
        });
        let mut tasks = vec![
            tokio::spawn(network::serve(listener, local.clone())),
            tokio::spawn(watch(raft.clone(), stats.clone())),
            tokio::spawn(elect::run(
                id,
                raft.clone(),
                local.log.clone(),
                local.heard.clone(),
                local.network.clone(),
            )),
        ];
        let initialized =
            raft.is_initialized().await.map_err(|e| ClusterError::Replication(e.to_string()))?;
        if !initialized && !join {
            // Every node of a new cluster proposes the same first membership; the first to
            // be elected makes it the log's first entry, the others find it there.
            let members: BTreeMap<u64, BasicNode> =
                config.nodes.iter().map(|n| (n.id, BasicNode::new(n.peer.to_string()))).collect();
            if let Err(e) = raft.initialize(members).await {
                tracing::info!(error = %e, "cluster already made");
            }
        }
        let (proposals, queue) = mpsc::channel(PROPOSAL_QUEUE_MAX);
        tasks.push(tokio::spawn(propose(raft.clone(), queue, stats.clone())));
        tasks.push(tokio::spawn(expire(raft, engine, proposals.clone())));
        let tasks = std::sync::Mutex::new(tasks);
        let http = std::sync::Mutex::new(BTreeMap::new());
        Ok(Node { id, local, config: config.clone(), http, proposals, stats, tasks })
    }

    /// Applies `op` through the log: on the leader, once a majority has it durable and it is
    /// applied here. Elsewhere `NotLeader`.
    pub async fn execute(&self, op: Op) -> Result<Outcome, ClusterError> {
        let (reply, answer) = oneshot::channel();
        self.proposals
            .send(Proposal { op, reply })
            .await
            .map_err(|_| ClusterError::Replication("the node is stopping".into()))?;
        answer.await.map_err(|_| ClusterError::Replication("the node is stopping".into()))?
    }

    /// Carries API key records through the log, in one entry (a new key, a revocation, a
    /// rotation's two records): once it returns, every node that applied the entry holds
    /// them, this one included. On the leader only, like `execute`.
    pub async fn grant_keys(&self, grants: Vec<KeyGrant>) -> Result<(), ClusterError> {
        let group = Group::grant(now_ns(), grants);
        self.local.raft.client_write(group).await.map(drop).map_err(write_error)
    }

    /// Runs `f` on the state once everything committed before the call is applied here, as
    /// the leader confirms it still leads (a linearizable read). Elsewhere `NotLeader`.
    pub async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&PaymentsMachine) -> R + Send + 'static,
    ) -> Result<R, ClusterError> {
        self.local.raft.ensure_linearizable().await.map_err(|e| match e {
            RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(to)) => {
                ClusterError::NotLeader { leader: to.leader_id }
            }
            e => ClusterError::Replication(e.to_string()),
        })?;
        self.read_local(f).await
    }

    /// Runs `f` on the state as applied here, however far behind the leader that is.
    pub async fn read_local<R: Send + 'static>(
        &self,
        f: impl FnOnce(&PaymentsMachine) -> R + Send + 'static,
    ) -> Result<R, ClusterError> {
        let engine = self.local.engine.clone();
        tokio::task::spawn_blocking(move || engine.read(move |r| f(&r.machine)))
            .await
            .map_err(|e| ClusterError::Engine(e.to_string()))?
            .map_err(ClusterError::from)
    }

    /// This node's view: role, leader, term, commit and applied positions, digest.
    pub async fn status(&self) -> Result<NodeStatus, ClusterError> {
        self.local.status().await
    }

    /// Every node's status: this one's, and each other member's asked over the replication
    /// connection (at most [`STATUS_TIMEOUT_MS`] each, all at once).
    pub async fn cluster(&self) -> Result<ClusterView, ClusterError> {
        let me = self.local.status().await?;
        let metrics = self.local.raft.metrics().borrow().clone();
        let members: Vec<(u64, String)> = metrics
            .membership_config
            .membership()
            .nodes()
            .map(|(id, node)| (*id, node.addr.clone()))
            .collect();
        let network = &self.local.network;
        let asked = members.into_iter().map(|(id, addr)| {
            let me = me.clone();
            async move {
                if id == me.id {
                    return me;
                }
                let timeout = Duration::from_millis(STATUS_TIMEOUT_MS);
                match tokio::time::timeout(timeout, network::ask_status(network, &addr)).await {
                    Ok(Ok(status)) => status,
                    _ => NodeStatus::unreachable(id),
                }
            }
        });
        let nodes = futures_util::future::join_all(asked).await;
        Ok(ClusterView { leader: me.leader, term: me.term, nodes })
    }

    /// Takes a snapshot of the state as applied now and drops the log before it, as the
    /// node does by itself every [`SNAPSHOT_EVERY_ENTRIES`] entries: a node that needs what
    /// was dropped gets the snapshot instead. Returns the index the snapshot ends at.
    pub async fn compact(&self) -> Result<Option<u64>, ClusterError> {
        let raft = &self.local.raft;
        let Some(applied) = self.local.status().await?.applied else { return Ok(None) };
        raft.trigger().snapshot().await.map_err(|e| ClusterError::Replication(e.to_string()))?;
        let mut metrics = raft.metrics();
        let made = metrics.wait_for(|m| m.snapshot.is_some_and(|s| s.index >= applied));
        match tokio::time::timeout(Duration::from_millis(SNAPSHOT_TIMEOUT_MS), made).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return Err(ClusterError::Replication("the node stopped".into())),
            Err(_) => return Err(ClusterError::Replication("no snapshot in time".into())),
        }
        raft.trigger()
            .purge_log(applied)
            .await
            .map_err(|e| ClusterError::Replication(e.to_string()))?;
        Ok(Some(applied))
    }

    /// The leader this node knows of. A leader that has not heard from a majority for
    /// [`LEADER_QUORUM_STALE_MS`] knows of none: it is cut off, and another may lead already.
    pub fn leader(&self) -> Option<u64> {
        let metrics = self.local.raft.metrics();
        let metrics = metrics.borrow();
        let cut_off = metrics.state == ServerState::Leader
            && metrics.millis_since_quorum_ack.is_some_and(|ms| ms > LEADER_QUORUM_STALE_MS);
        if cut_off {
            None
        } else {
            metrics.current_leader
        }
    }

    /// Whether this node leads now (as far as it knows).
    pub fn is_leader(&self) -> bool {
        self.leader() == Some(self.id)
    }

    /// The HTTP address of member `id`: from the cluster file, or for a member added since,
    /// as it answers over its replication connection (then kept).
    pub async fn http_of(&self, id: u64) -> Option<SocketAddr> {
        if let Some(node) = self.config.node(id) {
            return Some(node.http);
        }
        if let Some(http) = self.http.lock().expect("lock").get(&id) {
            return Some(*http);
        }
        let addr = self.member_addr(id)?;
        let timeout = Duration::from_millis(STATUS_TIMEOUT_MS);
        let asked = network::ask_status(&self.local.network, &addr);
        let status = tokio::time::timeout(timeout, asked).await;
        let http: SocketAddr = status.ok()?.ok()?.http?.parse().ok()?;
        self.http.lock().expect("lock").insert(id, http);
        Some(http)
    }

    /// The replication address of member `id`, as the membership has it.
    fn member_addr(&self, id: u64) -> Option<String> {
        let metrics = self.local.raft.metrics();
        let metrics = metrics.borrow();
        metrics.membership_config.membership().get_node(&id).map(|n| n.addr.clone())
    }

    /// Adds node `id`, which replicates at `peer` and serves HTTP at `http`, to the cluster:
    /// a learner until it has the log, then a voter. The node must have been started with
    /// `join` (so that it waits to be added rather than make a cluster of its own). Waits at
    /// most [`CATCH_UP_WAIT_MS`] for it to catch up, then says how far it is (`CatchingUp`;
    /// the learner stays, and asking again goes on). Adding a voter again does nothing. On the
    /// leader only.
    pub async fn add_node(
        &self,
        id: u64,
        peer: SocketAddr,
        http: SocketAddr,
    ) -> Result<(), ClusterError> {
        let raft = &self.local.raft;
        let membership = raft.metrics().borrow().membership_config.membership().clone();
        if let Some(node) = membership.get_node(&id) {
            if node.addr != peer.to_string() {
                return Err(ClusterError::Membership(format!(
                    "node {id} is a member already, at {}",
                    node.addr
                )));
            }
        }
        self.http.lock().expect("lock").insert(id, http);
        if membership.voter_ids().any(|v| v == id) {
            return Ok(());
        }
        if membership.get_node(&id).is_none() {
            raft.add_learner(id, BasicNode::new(peer.to_string()), false)
                .await
                .map_err(membership_error)?;
        }
        // A voter only once it has the log as it stood now, so that it does not hold up the
        // commits of the membership it joins.
        let target = raft.metrics().borrow().last_log_index.unwrap_or(0);
        let mut metrics = raft.metrics();
        let caught_up = metrics.wait_for(|m| {
            let matched = m.replication.as_ref().and_then(|r| r.get(&id).cloned().flatten());
            matched.is_some_and(|matched| matched.index >= target)
        });
        match tokio::time::timeout(Duration::from_millis(CATCH_UP_WAIT_MS), caught_up).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return Err(ClusterError::Replication("the node stopped".into())),
            Err(_) => {
                let metrics = raft.metrics().borrow().clone();
                let matched = metrics
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(&id).cloned().flatten())
                    .map(|m| m.index);
                return Err(ClusterError::CatchingUp { id, matched, target });
            }
        }
        raft.change_membership(ChangeMembers::AddVoterIds([id].into()), false)
            .await
            .map_err(membership_error)?;
        Ok(())
    }

    /// Removes node `id` from the cluster (a dead one, before or after its replacement is
    /// added). Removing a node that is not a member does nothing. On the leader only.
    pub async fn remove_node(&self, id: u64) -> Result<(), ClusterError> {
        let raft = &self.local.raft;
        let membership = raft.metrics().borrow().membership_config.membership().clone();
        if membership.get_node(&id).is_none() {
            return Ok(());
        }
        if membership.voter_ids().all(|v| v == id) {
            return Err(ClusterError::Membership("the last voter cannot be removed".into()));
        }
        let change = if membership.voter_ids().any(|v| v == id) {
            ChangeMembers::RemoveVoters([id].into())
        } else {
            ChangeMembers::RemoveNodes([id].into())
        };
        raft.change_membership(change, false).await.map_err(membership_error)?;
        Ok(())
    }

    /// The last entry applied here and the last this node knows committed (on a follower,
    /// as of the leader's last message): how far behind a read served here may be.
    pub fn positions(&self) -> (Option<u64>, Option<u64>) {
        let applied = self.local.raft.metrics().borrow().last_applied.map(|id| id.index);
        (applied, self.local.log.committed().map(|id| id.index))
    }

    /// On the leader, each other member's lag: entries in the leader's log it does not have
    /// yet. Empty elsewhere.
    pub fn replication_lag(&self) -> Vec<(u64, u64)> {
        let metrics = self.local.raft.metrics().borrow().clone();
        let last = metrics.last_log_index.map_or(0, |i| i + 1);
        let Some(replication) = metrics.replication else { return Vec::new() };
        replication
            .iter()
            .filter(|(id, _)| **id != self.id)
            .map(|(id, matched)| (*id, last - matched.map_or(0, |m| m.index + 1)))
            .collect()
    }

    pub fn stats(&self) -> &ClusterStats {
        &self.stats
    }

    /// The engine's counters (its group commits are the applied entries).
    pub fn engine_stats(&self) -> &EngineStats {
        self.local.engine.stats()
    }

    /// Why the engine stopped, when it stopped on a failure: the node then cannot apply
    /// what is committed and must be restarted.
    pub fn failure(&self) -> Option<&Failure> {
        self.local.engine.failure()
    }

    /// Stops Raft, the listener and the proposer; the engine stops when its last handle goes.
    pub async fn shutdown(&self) {
        let _ = self.local.raft.shutdown().await;
        for task in self.tasks.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            task.abort();
        }
    }
}

impl NodeStatus {
    fn unreachable(id: u64) -> NodeStatus {
        NodeStatus {
            id,
            role: "unreachable".into(),
            leader: None,
            term: 0,
            commit: None,
            applied: None,
            digest: String::new(),
            http: None,
        }
    }
}

fn write_error(e: RaftError<u64, ClientWriteError<u64, BasicNode>>) -> ClusterError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(to)) => {
            ClusterError::NotLeader { leader: to.leader_id }
        }
        e => ClusterError::Replication(e.to_string()),
    }
}

fn membership_error(e: RaftError<u64, ClientWriteError<u64, BasicNode>>) -> ClusterError {
    match e {
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            ClusterError::Membership(e.to_string())
        }
        e => write_error(e),
    }
}

/// How a node runs.
#[derive(Clone)]
pub struct NodeOptions {
    /// fsync each log append (off only in tests and benchmarks that say so).
    pub fsync: bool,
    /// Told of every API key granted through the log (and of those in the state at start).
    pub on_key: Option<KeyHook>,
    /// A new node joining a running cluster: it waits to be added (`Node::add_node` on the
    /// leader) instead of making the cluster of its file.
    pub join: bool,
}

impl Default for NodeOptions {
    fn default() -> NodeOptions {
        NodeOptions { fsync: true, on_key: None, join: false }
    }
}

/// Counts the terms and leaders this node sees come and go.
async fn watch(raft: Raft, stats: Arc<ClusterStats>) {
    let mut metrics = raft.metrics();
    let (mut term, mut leader) = {
        let m = metrics.borrow();
        (m.current_term, m.current_leader)
    };
    while metrics.changed().await.is_ok() {
        let m = metrics.borrow().clone();
        if m.current_term > term {
            stats.elections.fetch_add(m.current_term - term, Ordering::Relaxed);
            term = m.current_term;
        }
        if m.current_leader != leader {
            stats.leader_changes.fetch_add(1, Ordering::Relaxed);
            leader = m.current_leader;
        }
    }
}

/// Takes the operations queued, as many as are there (up to `GROUP_OPS_MAX`), proposes them
/// as one entry, and answers each with its outcome once the entry is applied. Up to
/// `PROPOSALS_IN_FLIGHT_MAX` entries are in flight at once.
async fn propose(raft: Raft, mut queue: mpsc::Receiver<Proposal>, stats: Arc<ClusterStats>) {
    let in_flight = Arc::new(Semaphore::new(PROPOSALS_IN_FLIGHT_MAX));
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < GROUP_OPS_MAX {
            match queue.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let Ok(permit) = in_flight.clone().acquire_owned().await else { return };
        let (ops, replies): (Vec<Op>, Vec<_>) = batch.into_iter().map(|p| (p.op, p.reply)).unzip();
        let group = Group::new(now_ns(), &ops);
        let (raft, stats) = (raft.clone(), stats.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let written = raft.client_write(group).await;
            drop(permit);
            stats.proposal_us.record(started.elapsed().as_micros() as u64);
            match written {
                Ok(response) => {
                    for (reply, outcome) in replies.into_iter().zip(response.data.outcomes) {
                        let _ = reply.send(Ok(outcome));
                    }
                }
                Err(e) => {
                    let error = write_error(e);
                    for reply in replies {
                        let _ = reply.send(Err(error.clone()));
                    }
                }
            }
        });
    }
}

/// On the leader, proposes an expiry whenever a pending transfer's timeout has passed (the
/// clock is the leader's; the other nodes apply the entry like any other).
async fn expire(raft: Raft, engine: Arc<Engine<Replicated>>, proposals: mpsc::Sender<Proposal>) {
    let mut tick = tokio::time::interval(Duration::from_millis(TICK_MS));
    loop {
        tick.tick().await;
        if raft.metrics().borrow().state != ServerState::Leader {
            continue;
        }
        let engine = engine.clone();
        let now = now_ns();
        let due = tokio::task::spawn_blocking(move || {
            engine.read(move |r| r.machine.ledger().expiry_due(now)).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if due {
            let (reply, answer) = oneshot::channel();
            if proposals.send(Proposal { op: Op::Expire, reply }).await.is_err() {
                return;
            }
            let _ = answer.await;
        }
    }
}
