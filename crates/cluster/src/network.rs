//! Replication traffic between nodes: Raft's messages over TCP, each a frame (a little-endian
//! `u32` length, then the message in bincode), one request and its answer at a time on a
//! connection. A node listens on its `peer` address; it reaches each other node through
//! connections it keeps for the next message, a new one after any failure.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::constants::{CONNECT_TIMEOUT_MS, FRAME_BYTES_MAX, IDLE_CONNECTIONS_MAX};
use crate::elect::{self, Standing};
use crate::node::{Local, NodeStatus};
use crate::types::TypeConfig;

pub type Raft = openraft::Raft<TypeConfig>;

/// A message from one node to another.
#[derive(Serialize, Deserialize)]
enum Request {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<u64>),
    Snapshot(InstallSnapshotRequest<TypeConfig>),
    /// The node's status, for an operator's view of the cluster.
    Status,
    /// The node's standing, for one that thinks of standing for election.
    Standing,
}

/// Its answer.
#[derive(Serialize, Deserialize)]
enum Response {
    Append(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    Snapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    Status(Result<NodeStatus, String>),
    Standing(Standing),
}

async fn write_frame<T: Serialize>(stream: &mut TcpStream, message: &T) -> io::Result<()> {
    let bytes = bincode::serialize(message).map_err(io::Error::other)?;
    let len = u32::try_from(bytes.len())
        .ok()
        .filter(|&len| len <= FRAME_BYTES_MAX)
        .ok_or_else(|| io::Error::other(format!("a message of {} bytes", bytes.len())))?;
    let mut frame = Vec::with_capacity(4 + bytes.len());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&bytes);
    stream.write_all(&frame).await
}

async fn send(stream: &mut TcpStream, request: &Request) -> io::Result<Response> {
    write_frame(stream, request).await?;
    read_frame(stream).await
}

async fn read_frame<T: DeserializeOwned>(stream: &mut TcpStream) -> io::Result<T> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len);
    if len > FRAME_BYTES_MAX {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("a frame of {len} bytes")));
    }
    let mut bytes = vec![0u8; len as usize];
    stream.read_exact(&mut bytes).await?;
    bincode::deserialize(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Serves the other nodes' messages on `listener` until the task is dropped, which drops its
/// connections too: a stopped node's connections must not keep answering for it.
pub(crate) async fn serve(listener: TcpListener, local: Local) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                connections.spawn(answer(stream, local.clone()));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Answers the messages of one connection, one after another, until it closes.
async fn answer(mut stream: TcpStream, local: Local) {
    let _ = stream.set_nodelay(true);
    let raft = &local.raft;
    while let Ok(request) = read_frame::<Request>(&mut stream).await {
        let response = match request {
            Request::Status => Response::Status(local.status().await.map_err(|e| e.to_string())),
            Request::Append(rpc) => {
                let answer = raft.append_entries(rpc).await;
                if matches!(&answer, Ok(a) if !matches!(a, AppendEntriesResponse::HigherVote(_))) {
                    local.heard.now();
                }
                Response::Append(answer)
            }
            Request::Vote(rpc) => Response::Vote(raft.vote(rpc).await),
            Request::Snapshot(rpc) => {
                let answer = raft.install_snapshot(rpc).await;
                if answer.is_ok() {
                    local.heard.now();
                }
                Response::Snapshot(answer)
            }
            Request::Standing => {
                Response::Standing(elect::standing(local.id, raft, &local.log, &local.heard))
            }
        };
        if write_frame(&mut stream, &response).await.is_err() {
            break;
        }
    }
}

/// Asks the node listening for replication on `addr` for its status.
pub(crate) async fn ask_status(network: &Network, addr: &str) -> io::Result<NodeStatus> {
    match network.peer(0, addr).exchange(&Request::Status).await? {
        Response::Status(status) => status.map_err(io::Error::other),
        _ => Err(io::Error::other("an answer of the wrong kind")),
    }
}

/// Asks the node listening for replication on `addr` for its standing.
pub(crate) async fn ask_standing(network: &Network, addr: &str) -> io::Result<Standing> {
    match network.peer(0, addr).exchange(&Request::Standing).await? {
        Response::Standing(standing) => Ok(standing),
        _ => Err(io::Error::other("an answer of the wrong kind")),
    }
}

/// Makes the connections to the other nodes, from this node's `peer` IP address, and keeps
/// those left idle for the next message. openraft makes a client for each leadership check (one
/// per linearizable read): each opened a connection of its own, and under reads the closed
/// ones ran the machine out of ports in a minute.
#[derive(Clone)]
pub struct Network {
    source: Option<IpAddr>,
    idle: Arc<Mutex<HashMap<String, Vec<TcpStream>>>>,
}

impl Network {
    /// Connections leave from `source` (any address, when `None`).
    pub fn new(source: Option<IpAddr>) -> Network {
        Network { source, idle: Arc::default() }
    }

    fn peer(&self, target: u64, addr: &str) -> Peer {
        Peer { target, addr: addr.to_owned(), network: self.clone(), stream: None }
    }

    fn take(&self, addr: &str) -> Option<TcpStream> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).get_mut(addr)?.pop()
    }

    fn give(&self, addr: &str, stream: TcpStream) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let streams = idle.entry(addr.to_owned()).or_default();
        if streams.len() < IDLE_CONNECTIONS_MAX {
            streams.push(stream);
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Peer {
        self.peer(target, &node.addr)
    }
}

/// The connection to one other node; given back to the idle ones when dropped whole.
pub struct Peer {
    target: u64,
    addr: String,
    network: Network,
    /// Held only between whole exchanges: one cut short (its future dropped on a timeout)
    /// leaves no stream with an answer still to come.
    stream: Option<TcpStream>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take() {
            self.network.give(&self.addr, stream);
        }
    }
}

impl Peer {
    /// Sends `request` and reads the answer, connecting first when there is no connection;
    /// any failure drops the connection, and `option`'s hard timeout bounds the whole call.
    async fn call(&mut self, request: Request, option: &RPCOption) -> io::Result<Response> {
        let timeout = option.hard_ttl();
        match tokio::time::timeout(timeout, self.exchange(&request)).await {
            Ok(answer) => answer,
            Err(_) => {
                Err(io::Error::new(io::ErrorKind::TimedOut, format!("no answer in {timeout:?}")))
            }
        }
    }

    /// One request and its answer, on this peer's connection, an idle one, or a new one. An
    /// idle connection may have been closed by the other side meanwhile (it restarted): its
    /// failure is tried once more on a new connection.
    async fn exchange(&mut self, request: &Request) -> io::Result<Response> {
        let (mut stream, idle) = match self.stream.take() {
            Some(stream) => (stream, false),
            None => match self.network.take(&self.addr) {
                Some(stream) => (stream, true),
                None => (self.connect().await?, false),
            },
        };
        let mut answer = send(&mut stream, request).await;
        if answer.is_err() && idle {
            stream = self.connect().await?;
            answer = send(&mut stream, request).await;
        }
        if answer.is_ok() {
            self.stream = Some(stream);
        }
        answer
    }

    async fn connect(&self) -> io::Result<TcpStream> {
        let addr: SocketAddr = self.addr.parse().map_err(io::Error::other)?;
        let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        if let Some(source) = self.network.source.filter(|s| s.is_ipv4() == addr.is_ipv4()) {
            socket.bind(SocketAddr::new(source, 0))?;
        }
        let connect = socket.connect(addr);
        let stream = tokio::time::timeout(Duration::from_millis(CONNECT_TIMEOUT_MS), connect)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    fn unreachable<E: std::error::Error>(&self, e: io::Error) -> RPCError<u64, BasicNode, E> {
        tracing::debug!(target = self.target, error = %e, "replication message failed");
        // Unreachable makes openraft back off before it tries again; a connection that opens
        // and is then closed at once (a node stopping, a proxy before a dead node) counts too,
        // or it would be tried again in a tight loop.
        let gone = matches!(
            e.kind(),
            io::ErrorKind::ConnectionRefused
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::UnexpectedEof
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::NotConnected
        );
        if gone {
            RPCError::Unreachable(Unreachable::new(&e))
        } else {
            RPCError::Network(NetworkError::new(&e))
        }
    }
}

impl Peer {
    /// The answer to a call, as openraft wants it: the answer `pick` finds in the response
    /// (a response of another kind is a network error), the other node's error as a remote
    /// one, a failed call as the node being unreachable.
    fn settle<T, E: std::error::Error>(
        &self,
        called: io::Result<Response>,
        pick: impl FnOnce(Response) -> Option<Result<T, E>>,
    ) -> Result<T, RPCError<u64, BasicNode, E>> {
        match called.map(pick) {
            Ok(Some(answer)) => {
                answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(None) => Err(RPCError::Network(NetworkError::new(&io::Error::other(
                "an answer of the wrong kind",
            )))),
            Err(e) => Err(self.unreachable(e)),
        }
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let called = self.call(Request::Append(rpc), &option).await;
        self.settle(called, |r| match r {
            Response::Append(answer) => Some(answer),
            _ => None,
        })
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        let called = self.call(Request::Snapshot(rpc), &option).await;
        self.settle(called, |r| match r {
            Response::Snapshot(answer) => Some(answer),
            _ => None,
        })
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let called = self.call(Request::Vote(rpc), &option).await;
        self.settle(called, |r| match r {
            Response::Vote(answer) => Some(answer),
            _ => None,
        })
    }
}
