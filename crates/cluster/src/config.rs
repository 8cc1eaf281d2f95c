//! `cluster.toml`: the nodes of a cluster, one `[[node]]` table each.
//!
//! ```toml
//! [[node]]
//! id = 1
//! http = "127.0.0.1:7071"   # where the node serves the API
//! peer = "127.0.0.1:7171"   # where it takes replication traffic
//! ```
//!
//! Every node is given the same file; `--node N` says which one this is.
//!
//! A node may also have `peer_listen`, the address it takes replication traffic on when that
//! is not `peer` (the others still reach it at `peer`: through a proxy, a NAT, or a fault
//! proxy in tests). A node's own replication connections leave from its `peer` IP address.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

use crate::constants::NODES_MAX;

/// The nodes of a cluster, in the order the file lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    pub nodes: Vec<NodeConfig>,
}

/// One node: its id (1, 2, 3 ...), its HTTP address and its replication address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    pub id: u64,
    pub http: SocketAddr,
    pub peer: SocketAddr,
    /// Where the node listens for replication traffic: `peer` unless the file says otherwise.
    pub peer_listen: SocketAddr,
}

/// Why a cluster file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {cause}")]
    Read { path: String, cause: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    node: Vec<NodeEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeEntry {
    id: u64,
    http: String,
    peer: String,
    peer_listen: Option<String>,
}

impl ClusterConfig {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<ClusterConfig, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|cause| ConfigError::Read { path: shown.clone(), cause })?;
        ClusterConfig::parse(&text).map_err(|message| ConfigError::Invalid { path: shown, message })
    }

    /// Parses and checks the text of a cluster file: at least one node and at most
    /// `NODES_MAX`, ids from 1 and each once, addresses that parse and are each used once.
    pub fn parse(text: &str) -> Result<ClusterConfig, String> {
        let file: File = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        if file.node.is_empty() {
            return Err("no [[node]] table: a cluster needs at least one node".into());
        }
        if file.node.len() > NODES_MAX {
            return Err(format!("{} nodes: at most {NODES_MAX}", file.node.len()));
        }
        let mut ids = BTreeSet::new();
        let mut addresses = BTreeSet::new();
        let mut nodes = Vec::with_capacity(file.node.len());
        for entry in file.node {
            if entry.id == 0 {
                return Err("node id 0: ids start at 1".into());
            }
            if !ids.insert(entry.id) {
                return Err(format!("node id {} appears twice", entry.id));
            }
            let address = |what: &str, text: &str| {
                text.parse::<SocketAddr>().map_err(|_| {
                    format!(
                        "node {}: {what} {text:?} is not an address such as 127.0.0.1:7071",
                        entry.id
                    )
                })
            };
            let http = address("http", &entry.http)?;
            let peer = address("peer", &entry.peer)?;
            let peer_listen = match &entry.peer_listen {
                Some(text) => address("peer_listen", text)?,
                None => peer,
            };
            let mut own = vec![http, peer];
            if peer_listen != peer {
                own.push(peer_listen);
            }
            for a in own {
                if !addresses.insert(a) {
                    return Err(format!("node {}: address {a} is used twice", entry.id));
                }
            }
            nodes.push(NodeConfig { id: entry.id, http, peer, peer_listen });
        }
        Ok(ClusterConfig { nodes })
    }

    /// The node with id `id`.
    pub fn node(&self, id: u64) -> Option<&NodeConfig> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Every node's id.
    pub fn ids(&self) -> BTreeSet<u64> {
        self.nodes.iter().map(|n| n.id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREE: &str = r#"
        [[node]]
        id = 1
        http = "127.0.0.1:7071"
        peer = "127.0.0.1:7171"
        [[node]]
        id = 2
        http = "127.0.0.1:7072"
        peer = "127.0.0.1:7172"
        [[node]]
        id = 3
        http = "127.0.0.1:7073"
        peer = "127.0.0.1:7173"
    "#;

    #[test]
    fn a_three_node_file_parses() {
        let config = ClusterConfig::parse(THREE).unwrap();
        assert_eq!(config.ids(), BTreeSet::from([1, 2, 3]));
        let two = config.node(2).unwrap();
        assert_eq!((two.http.port(), two.peer.port()), (7072, 7172));
        assert_eq!(two.peer_listen, two.peer);
        assert!(config.node(4).is_none());
        let proxied = THREE.replace(
            "peer = \"127.0.0.1:7172\"",
            "peer = \"127.0.0.2:7172\"\npeer_listen = \"127.0.0.1:7272\"",
        );
        let two = ClusterConfig::parse(&proxied).unwrap().node(2).unwrap().clone();
        assert_eq!((two.peer.to_string(), two.peer_listen.port()), ("127.0.0.2:7172".into(), 7272));
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let refused = |text: &str, says: &str| {
            let message = ClusterConfig::parse(text).unwrap_err();
            assert!(message.contains(says), "{message:?} should say {says:?}");
        };
        refused("", "at least one node");
        refused(&THREE.replace("id = 3", "id = 2"), "node id 2 appears twice");
        refused(&THREE.replace("id = 3", "id = 0"), "ids start at 1");
        refused(&THREE.replace("127.0.0.1:7173", "localhost"), "is not an address");
        refused(&THREE.replace("127.0.0.1:7173", "127.0.0.1:7072"), "used twice");
        refused(&THREE.replace("peer = \"127.0.0.1:7173\"", ""), "peer");
        refused(&format!("{THREE}\nhttp_port = 1"), "http_port");
    }
}
