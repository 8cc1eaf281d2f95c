//! The state every node of a cluster applies the committed log to: the payment machine, with
//! where in the log it is, the cluster's membership, and a running digest that two nodes at
//! the same log position must agree on.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::{self, Read, Write};

use bincode::Options;
use huifu_engine::{DecodeError, Machine};
use huifu_payments::PaymentsMachine;
use openraft::EntryPayload;
use sha2::{Digest, Sha256};

use crate::types::{Applied, Entry, LogId, Membership};

/// The first bytes of a replicated checkpoint's body, after the engine's position.
const SNAPSHOT_MAGIC: &[u8; 8] = b"HFCLUS02";

/// Largest encoded position and membership a checkpoint may hold before the machine's state.
const SNAPSHOT_META_BYTES_MAX: u64 = 1 << 20;

/// The payment machine as a cluster node runs it.
#[derive(Debug, Default)]
pub struct Replicated {
    pub machine: PaymentsMachine,
    /// The last log entry applied (`None` before the first).
    pub applied: Option<LogId>,
    /// The membership of the last membership entry applied.
    pub membership: Membership,
    /// SHA-256 over the digest before, each entry's position and payload, and the ledger's
    /// totals and counts after it: equal on two nodes at the same position unless their logs
    /// or their states diverged.
    pub digest: [u8; 32],
    /// The API keys carried through the log: the last record of each, by the key's SHA-256.
    pub keys: BTreeMap<[u8; 32], String>,
}

impl Replicated {
    /// The digest in hex, as operators see it.
    pub fn digest_hex(&self) -> String {
        self.digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn apply_entry(&mut self, entry: &Entry) -> Applied {
        let mut hash = Sha256::new();
        hash.update(self.digest);
        hash.update(entry.log_id.leader_id.term.to_le_bytes());
        hash.update(entry.log_id.index.to_le_bytes());
        let mut applied = Applied::default();
        match &entry.payload {
            EntryPayload::Blank => hash.update([0]),
            EntryPayload::Normal(group) => {
                hash.update([1]);
                hash.update(group.now.to_le_bytes());
                hash.update(&group.ops);
                // Only this cluster's leaders write groups: one that does not decode is a log
                // that cannot be trusted, and the writer stops on it.
                let ops = group.decode().expect("a committed group decodes");
                for op in &ops {
                    let events = self.machine.events(op);
                    let timestamp = group.now.max(self.machine.ledger().timestamp_min(events));
                    applied.outcomes.push(self.machine.apply(timestamp, op));
                }
                for grant in &group.keys {
                    hash.update(grant.hash);
                    hash.update((grant.record.len() as u64).to_le_bytes());
                    hash.update(grant.record.as_bytes());
                    self.keys.insert(grant.hash, grant.record.clone());
                }
            }
            EntryPayload::Membership(membership) => {
                hash.update([2]);
                hash.update(format!("{membership:?}").as_bytes());
                self.membership = Membership::new(Some(entry.log_id), membership.clone());
            }
        }
        let ledger = self.machine.ledger();
        let totals = ledger.totals();
        for sum in [
            totals.debits_pending,
            totals.debits_posted,
            totals.credits_pending,
            totals.credits_posted,
        ] {
            hash.update(sum.to_le_bytes());
        }
        hash.update((ledger.accounts().len() as u64).to_le_bytes());
        hash.update((ledger.transfers().len() as u64).to_le_bytes());
        self.digest = hash.finalize().into();
        self.applied = Some(entry.log_id);
        applied
    }
}

fn meta_options() -> impl Options {
    bincode::DefaultOptions::new().with_fixint_encoding().with_limit(SNAPSHOT_META_BYTES_MAX)
}

impl Machine for Replicated {
    /// Committed log entries, in log order.
    type Command = Vec<Entry>;
    /// What each entry answered.
    type Outcome = Vec<Applied>;
    type Query = Infallible;
    type Answer = Infallible;

    fn events(&self, entries: &Vec<Entry>) -> usize {
        entries.len().max(1)
    }

    /// Unused: each group carries its leader's clock (see `apply`).
    fn timestamp_min(&self, _events: usize) -> u64 {
        0
    }

    fn apply(&mut self, _timestamp: u64, entries: &Vec<Entry>) -> Vec<Applied> {
        entries.iter().map(|entry| self.apply_entry(entry)).collect()
    }

    fn query(&self, query: Infallible) -> Infallible {
        query
    }

    /// Never: the leader proposes the expiries (see `crate::node`).
    fn tick(&self, _now: u64) -> Option<Vec<Entry>> {
        None
    }

    fn encode(entries: &Vec<Entry>, out: &mut Vec<u8>) {
        bincode::serialize_into(out, entries).expect("entries encode into memory");
    }

    fn decode(bytes: &[u8]) -> Result<Vec<Entry>, DecodeError> {
        bincode::deserialize(bytes).map_err(|e| DecodeError(e.to_string()))
    }

    /// Entries applied, counting from the log's index 0: checkpoints are named for it.
    fn position(&self) -> Option<u64> {
        self.applied.map(|id| id.index + 1)
    }

    fn write_snapshot(&self, w: &mut dyn Write) -> io::Result<()> {
        w.write_all(SNAPSHOT_MAGIC)?;
        meta_options()
            .serialize_into(&mut *w, &(self.applied, &self.membership, self.digest, &self.keys))
            .map_err(io::Error::other)?;
        self.machine.write_snapshot(w)
    }

    fn read_snapshot(r: &mut dyn Read) -> io::Result<Replicated> {
        let (applied, membership, digest, keys) = read_meta(r)?;
        let machine = PaymentsMachine::read_snapshot(r)?;
        Ok(Replicated { machine, applied, membership, digest, keys })
    }
}

/// A replicated state's position, membership, digest and API keys: the start of its snapshot.
pub(crate) type Meta = (Option<LogId>, Membership, [u8; 32], BTreeMap<[u8; 32], String>);

/// Reads the start of a snapshot `Replicated::write_snapshot` wrote, up to the machine's state.
pub(crate) fn read_meta(r: &mut dyn Read) -> io::Result<Meta> {
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)?;
    if &magic != SNAPSHOT_MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a cluster node's checkpoint (a single node's data folder?)",
        ));
    }
    meta_options().deserialize_from(r).map_err(|e| {
        io::Error::new(io::ErrorKind::InvalidData, format!("checkpoint position: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Group;
    use huifu_payments::Op;
    use openraft::{CommittedLeaderId, Entry as RaftEntry};

    fn entry(index: u64, payload: EntryPayload<crate::types::TypeConfig>) -> Entry {
        RaftEntry { log_id: LogId::new(CommittedLeaderId::new(1, 1), index), payload }
    }

    #[test]
    fn groups_apply_alike_on_every_node_and_a_snapshot_keeps_the_position_and_digest() {
        let ops =
            [Op::CreateChannel { id: 1, currency: 156 }, Op::CreateUser { id: 2, currency: 156 }];
        let entries = vec![
            entry(1, EntryPayload::Blank),
            entry(2, EntryPayload::Normal(Group::new(1_700_000_000_000_000_000, &ops))),
        ];
        let (mut a, mut b) = (Replicated::default(), Replicated::default());
        let applied = a.apply(0, &entries);
        assert_eq!(applied[1].outcomes.len(), 2);
        assert!(applied[1].outcomes.iter().all(|o| o.is_ok()));
        b.apply(u64::MAX, &entries[..1].to_vec());
        assert_ne!(a.digest, b.digest);
        b.apply(7, &entries[1..].to_vec());
        assert_eq!(
            (a.digest, a.applied),
            (b.digest, b.applied),
            "the engine's clock plays no part"
        );

        let mut bytes = Vec::new();
        a.write_snapshot(&mut bytes).unwrap();
        let back = Replicated::read_snapshot(&mut &bytes[..]).unwrap();
        assert_eq!((back.applied, back.digest), (a.applied, a.digest));
        assert_eq!(back.position(), Some(3));
        let mut again = Vec::new();
        back.write_snapshot(&mut again).unwrap();
        assert_eq!(again, bytes);

        let mut single = Vec::new();
        PaymentsMachine::new().write_snapshot(&mut single).unwrap();
        assert!(Replicated::read_snapshot(&mut &single[..]).is_err());
    }
}
