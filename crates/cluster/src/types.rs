//! What the Raft log holds and what applying it answers: one entry per group commit.

use std::io::Cursor;

use huifu_payments::command::codec;
use huifu_payments::{Op, Outcome};
use serde::{Deserialize, Serialize};

openraft::declare_raft_types!(
    /// The cluster's Raft types: a log entry carries a group of operations, nodes are known by
    /// their replication address, snapshots are checkpoint files read into memory.
    pub TypeConfig:
        D = Group,
        R = Applied,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<u64>;
pub type Vote = openraft::Vote<u64>;
pub type Membership = openraft::StoredMembership<u64, openraft::BasicNode>;
pub type StorageError = openraft::StorageError<u64>;

/// A group of operations as the leader proposed it: the leader's clock when it did, and the
/// operations in the journal's encoding, each after its length (a little-endian `u32`). Every
/// node applies the group with the same clock reading, so with the same timestamps. A group
/// may also grant API keys, so that a key made on one node works on all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub now: u64,
    #[serde(with = "serde_bytes")]
    pub ops: Vec<u8>,
    pub keys: Vec<KeyGrant>,
}

/// An API key's record carried through the log: the SHA-256 of the key (the key itself is
/// never stored) and its record as the server writes it: its role as the API names it
/// (`admin`, `platform`, `merchant:<id>`), alone in earlier versions, then its creation,
/// expiry, rate and revocation. A later record of the same key changes it (a rotation's
/// expiry, a revocation), so a key changed through the log is changed on every node. The
/// cluster keeps the last record of each key and does not read it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyGrant {
    pub hash: [u8; 32],
    pub record: String,
}

impl Group {
    /// A group that carries the records of `keys` and applies no operation.
    pub fn grant(now: u64, keys: Vec<KeyGrant>) -> Group {
        Group { now, ops: Vec::new(), keys }
    }

    pub fn new(now: u64, ops: &[Op]) -> Group {
        let mut bytes = Vec::new();
        let mut op_bytes = Vec::new();
        for op in ops {
            op_bytes.clear();
            codec::encode(op, &mut op_bytes);
            let len = u32::try_from(op_bytes.len()).expect("an operation under 4 GiB");
            bytes.extend_from_slice(&len.to_le_bytes());
            bytes.extend_from_slice(&op_bytes);
        }
        Group { now, ops: bytes, keys: Vec::new() }
    }

    /// The operations, in order.
    pub fn decode(&self) -> Result<Vec<Op>, String> {
        let mut ops = Vec::new();
        let mut rest = &self.ops[..];
        while !rest.is_empty() {
            let (len, after) =
                rest.split_first_chunk::<4>().ok_or("a group's operation length is cut short")?;
            let len = u32::from_le_bytes(*len) as usize;
            if after.len() < len {
                return Err(format!("a group's operation of {len} bytes is cut short"));
            }
            let (op, after) = after.split_at(len);
            ops.push(codec::decode(op)?);
            rest = after;
        }
        Ok(ops)
    }
}

/// What applying one log entry answered: for a group, each operation's outcome, in order
/// (only the node that applied it reads them, so they are not sent anywhere).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    #[serde(skip)]
    pub outcomes: Vec<Outcome>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_decodes_to_its_operations() {
        let ops = vec![
            Op::CreateUser { id: 1, currency: 156 },
            Op::Batch(vec![Op::Capture { id: 7 }, Op::Expire]),
            Op::CreateChannel { id: 2, currency: 978 },
        ];
        let group = Group::new(42, &ops);
        assert_eq!(group.decode().unwrap(), ops);
        assert_eq!(Group::new(1, &[]).decode().unwrap(), vec![]);
        let mut cut = group.clone();
        cut.ops.pop();
        assert!(cut.decode().is_err());
    }
}
