//! One node of a cluster: its engine (applying the committed log), its Raft instance, the
//! replication listener, and the proposer that turns the operations clients send into log
//! entries, one group of operations an entry.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use huifu_engine::{Engine, EngineError, EngineOptions};
use huifu_payments::{Op, Outcome, PaymentsMachine};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, Config, ServerState, SnapshotPolicy};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinHandle;

use crate::config::ClusterConfig;
use crate::constants::{
    ELECTION_TIMEOUT_MAX_MS, ELECTION_TIMEOUT_MIN_MS, GROUP_OPS_MAX, HEARTBEAT_INTERVAL_MS,
    PROPOSALS_IN_FLIGHT_MAX, PROPOSAL_QUEUE_MAX, SNAPSHOT_EVERY_ENTRIES, TICK_MS,
};
use crate::log::LogStore;
use crate::machine::Replicated;
use crate::network::{self, Network, Raft};
use crate::store::StateStore;
use crate::types::Group;

/// Why an operation or a read did not go through.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ClusterError {
    /// Writes and linearizable reads go to the leader; this node is not it.
    #[error("this node is not the leader (the leader is {leader:?})")]
    NotLeader { leader: Option<u64> },
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    pub id: u64,
    /// `leader`, `follower`, `candidate` or `learner`.
    pub role: &'static str,
    pub leader: Option<u64>,
    pub term: u64,
    /// Index of the last entry known committed, and of the last applied.
    pub commit: Option<u64>,
    pub applied: Option<u64>,
    /// The state's digest at `applied`, in hex.
    pub digest: String,
}

struct Proposal {
    op: Op,
    reply: oneshot::Sender<Result<Outcome, ClusterError>>,
}

/// A running node.
pub struct Node {
    pub id: u64,
    raft: Raft,
    engine: Arc<Engine<Replicated>>,
    log: LogStore,
    proposals: mpsc::Sender<Proposal>,
    tasks: Vec<JoinHandle<()>>,
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
        fsync: bool,
    ) -> Result<Node, ClusterError> {
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
        let log =
            LogStore::open(dir, fsync).map_err(|e| ClusterError::Replication(e.to_string()))?;
        let raft_config = Config {
            cluster_name: "huifu".into(),
            heartbeat_interval: HEARTBEAT_INTERVAL_MS,
            election_timeout_min: ELECTION_TIMEOUT_MIN_MS,
            election_timeout_max: ELECTION_TIMEOUT_MAX_MS,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY_ENTRIES),
            max_in_snapshot_log_to_keep: SNAPSHOT_EVERY_ENTRIES,
            ..Config::default()
        }
        .validate()
        .map_err(|e| ClusterError::Replication(e.to_string()))?;
        let state = StateStore::new(engine.clone(), dir.to_path_buf());
        let raft = Raft::new(id, Arc::new(raft_config), Network, log.clone(), state)
            .await
            .map_err(|e| ClusterError::Replication(e.to_string()))?;
        let listener = tokio::net::TcpListener::bind(me.peer)
            .await
            .map_err(|e| ClusterError::Replication(format!("cannot listen on {}: {e}", me.peer)))?;
        let mut tasks = vec![tokio::spawn(network::serve(listener, raft.clone()))];
        let initialized =
            raft.is_initialized().await.map_err(|e| ClusterError::Replication(e.to_string()))?;
        if !initialized {
            // Every node of a new cluster proposes the same first membership; the first to
            // be elected makes it the log's first entry, the others find it there.
            let members: BTreeMap<u64, BasicNode> =
                config.nodes.iter().map(|n| (n.id, BasicNode::new(n.peer.to_string()))).collect();
            if let Err(e) = raft.initialize(members).await {
                tracing::info!(error = %e, "cluster already made");
            }
        }
        let (proposals, queue) = mpsc::channel(PROPOSAL_QUEUE_MAX);
        tasks.push(tokio::spawn(propose(raft.clone(), queue)));
        tasks.push(tokio::spawn(expire(raft.clone(), engine.clone(), proposals.clone())));
        Ok(Node { id, raft, engine, log, proposals, tasks })
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

    /// Runs `f` on the state once everything committed before the call is applied here, as
    /// the leader confirms it still leads (a linearizable read). Elsewhere `NotLeader`.
    pub async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&PaymentsMachine) -> R + Send + 'static,
    ) -> Result<R, ClusterError> {
        self.raft.ensure_linearizable().await.map_err(|e| match e {
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
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || engine.read(move |r| f(&r.machine)))
            .await
            .map_err(|e| ClusterError::Engine(e.to_string()))?
            .map_err(ClusterError::from)
    }

    /// This node's view: role, leader, term, commit and applied positions, digest.
    pub async fn status(&self) -> Result<NodeStatus, ClusterError> {
        let metrics = self.raft.metrics().borrow().clone();
        let engine = self.engine.clone();
        let (applied, digest) =
            tokio::task::spawn_blocking(move || engine.read(|r| (r.applied, r.digest_hex())))
                .await
                .map_err(|e| ClusterError::Engine(e.to_string()))??;
        Ok(NodeStatus {
            id: self.id,
            role: role(metrics.state),
            leader: metrics.current_leader,
            term: metrics.current_term,
            commit: self.log.committed().map(|id| id.index),
            applied: applied.map(|id| id.index),
            digest,
        })
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    /// Stops Raft, the listener and the proposer; the engine stops when its last handle goes.
    pub async fn shutdown(self) {
        let _ = self.raft.shutdown().await;
        for task in self.tasks {
            task.abort();
        }
    }
}

/// Takes the operations queued, as many as are there (up to `GROUP_OPS_MAX`), proposes them
/// as one entry, and answers each with its outcome once the entry is applied. Up to
/// `PROPOSALS_IN_FLIGHT_MAX` entries are in flight at once.
async fn propose(raft: Raft, mut queue: mpsc::Receiver<Proposal>) {
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
        let raft = raft.clone();
        tokio::spawn(async move {
            let written = raft.client_write(group).await;
            drop(permit);
            match written {
                Ok(response) => {
                    for (reply, outcome) in replies.into_iter().zip(response.data.outcomes) {
                        let _ = reply.send(Ok(outcome));
                    }
                }
                Err(e) => {
                    let error = match e {
                        RaftError::APIError(ClientWriteError::ForwardToLeader(to)) => {
                            ClusterError::NotLeader { leader: to.leader_id }
                        }
                        e => ClusterError::Replication(e.to_string()),
                    };
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
