//! Replication of the huifu engine over Raft (openraft): the log entries are the engine's
//! group commits, the log is the node's journal, checkpoints are the snapshots, and every node
//! applies the committed groups to the same deterministic machine ([`Replicated`]).

// openraft's storage traits return its `StorageError` (over 200 bytes) by value; the helpers
// beside them return the same.
#![allow(clippy::result_large_err)]

pub mod config;
pub mod constants;
mod elect;
mod log;
mod machine;
pub mod network;
mod node;
pub mod offline;
mod store;
pub mod types;

pub use config::{ClusterConfig, ConfigError, NodeConfig};
pub use log::LogStore;
pub use machine::Replicated;
pub use node::{ClusterError, ClusterStats, ClusterView, Node, NodeOptions, NodeStatus};
pub use store::{KeyHook, StateStore};
pub use types::KeyGrant;
