//! Replication traffic between nodes: Raft's messages over TCP, each a frame (a little-endian
//! `u32` length, then the message in bincode), one request and its answer at a time on a
//! connection. A node listens on its `peer` address; it reaches each other node through one
//! connection, made again after any failure.

use std::io;
use std::net::{IpAddr, SocketAddr};
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

use crate::constants::{CONNECT_TIMEOUT_MS, FRAME_BYTES_MAX};
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
}

/// Its answer.
#[derive(Serialize, Deserialize)]
enum Response {
    Append(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    Snapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    Status(Result<NodeStatus, String>),
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
            Request::Append(rpc) => Response::Append(raft.append_entries(rpc).await),
            Request::Vote(rpc) => Response::Vote(raft.vote(rpc).await),
            Request::Snapshot(rpc) => Response::Snapshot(raft.install_snapshot(rpc).await),
        };
        if write_frame(&mut stream, &response).await.is_err() {
            break;
        }
    }
}

/// Asks the node listening for replication on `addr` for its status, on a connection of its
/// own from `source`.
pub(crate) async fn ask_status(addr: &str, source: Option<IpAddr>) -> io::Result<NodeStatus> {
    let mut peer = Peer { target: 0, addr: addr.to_owned(), source, stream: None };
    match peer.exchange(&Request::Status).await? {
        Response::Status(status) => status.map_err(io::Error::other),
        _ => Err(io::Error::other("an answer of the wrong kind")),
    }
}

/// Makes the connections to the other nodes, from this node's `peer` IP address.
#[derive(Clone)]
pub struct Network {
    pub source: IpAddr,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Peer {
        Peer { target, addr: node.addr.clone(), source: Some(self.source), stream: None }
    }
}

/// The connection to one other node.
pub struct Peer {
    target: u64,
    addr: String,
    /// The local address connections leave from (any, when `None`).
    source: Option<IpAddr>,
    stream: Option<TcpStream>,
}

impl Peer {
    /// Sends `request` and reads the answer, connecting first when there is no connection;
    /// any failure drops the connection, and `option`'s hard timeout bounds the whole call.
    async fn call(&mut self, request: Request, option: &RPCOption) -> io::Result<Response> {
        let timeout = option.hard_ttl();
        match tokio::time::timeout(timeout, self.exchange(&request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => {
                self.stream = None;
                Err(e)
            }
            Err(_) => {
                self.stream = None;
                Err(io::Error::new(io::ErrorKind::TimedOut, format!("no answer in {timeout:?}")))
            }
        }
    }

    async fn exchange(&mut self, request: &Request) -> io::Result<Response> {
        if self.stream.is_none() {
            let addr: SocketAddr = self.addr.parse().map_err(io::Error::other)?;
            let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
            if let Some(source) = self.source.filter(|s| s.is_ipv4() == addr.is_ipv4()) {
                socket.bind(SocketAddr::new(source, 0))?;
            }
            let connect = socket.connect(addr);
            let stream = tokio::time::timeout(Duration::from_millis(CONNECT_TIMEOUT_MS), connect)
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
        }
        let stream = self.stream.as_mut().expect("connected above");
        write_frame(stream, request).await?;
        read_frame(stream).await
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
