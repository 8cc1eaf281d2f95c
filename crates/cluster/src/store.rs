//! The state machine side of Raft: committed entries go to the engine's writer thread, which
//! applies them to the node's `Replicated` state; the engine's checkpoints are the snapshots.

use std::io::{self, Cursor, Read};
use std::path::PathBuf;
use std::sync::Arc;

use huifu_engine::{newest_checkpoint, Engine, EngineError};
use huifu_journal::{FileStorage, SnapshotReader};
use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{AnyError, BasicNode, EntryPayload, RaftSnapshotBuilder, StorageIOError};

use crate::machine::{read_meta, Replicated};
use crate::types::{Applied, Entry, KeyGrant, LogId, Membership, StorageError, TypeConfig};
use huifu_engine::Machine;

/// Told of each API key the log grants, and of every key of an installed snapshot.
pub type KeyHook = Arc<dyn Fn(&KeyGrant) + Send + Sync>;

/// The engine a node applies the log to, its data folder (where its checkpoints are), and who
/// is told of the keys granted.
#[derive(Clone)]
pub struct StateStore {
    engine: Arc<Engine<Replicated>>,
    dir: PathBuf,
    on_key: Option<KeyHook>,
}

fn sm_error(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_state_machine(AnyError::new(&e)).into()
}

fn snapshot_error(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_snapshot(None, AnyError::new(&e)).into()
}

/// Runs a blocking engine call off the async runtime's threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f).await.map_err(sm_error)?.map_err(sm_error)
}

impl StateStore {
    pub fn new(
        engine: Arc<Engine<Replicated>>,
        dir: PathBuf,
        on_key: Option<KeyHook>,
    ) -> StateStore {
        StateStore { engine, dir, on_key }
    }

    fn tell(&self, grants: impl IntoIterator<Item = KeyGrant>) {
        if let Some(on_key) = &self.on_key {
            grants.into_iter().for_each(|grant| on_key(&grant));
        }
    }

    /// The newest checkpoint as a snapshot: its state's bytes, and the position and membership
    /// read from their start.
    fn current_snapshot(&self) -> io::Result<Option<Snapshot<TypeConfig>>> {
        let Some((seq, path)) = newest_checkpoint(&self.dir)? else { return Ok(None) };
        let Some(mut reader) =
            SnapshotReader::open_verified(&FileStorage, &path).map_err(io::Error::other)?
        else {
            return Ok(None);
        };
        let mut position = [0u8; 8];
        reader.read_exact(&mut position)?;
        let mut data = Vec::new();
        reader.read_to_end(&mut data)?;
        let (last_log_id, last_membership, ..) = read_meta(&mut &data[..])?;
        let meta = SnapshotMeta { last_log_id, last_membership, snapshot_id: format!("{seq}") };
        Ok(Some(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) }))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let engine = self.engine.clone();
        blocking(move || engine.checkpoint()).await?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.current_snapshot())
            .await
            .map_err(snapshot_error)?
            .map_err(snapshot_error)?
            .ok_or_else(|| snapshot_error(io::Error::other("no checkpoint after one was written")))
    }
}

impl RaftStateMachine<TypeConfig> for StateStore {
    type SnapshotBuilder = StateStore;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, Membership), StorageError> {
        let engine = self.engine.clone();
        blocking(move || engine.read(|r| (r.applied, r.membership.clone()))).await
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let grants: Vec<KeyGrant> = entries
            .iter()
            .filter_map(|entry| match &entry.payload {
                EntryPayload::Normal(group) => Some(group.keys.iter().cloned()),
                _ => None,
            })
            .flatten()
            .collect();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let engine = self.engine.clone();
        // `submit` waits for room in a full queue: off the runtime's threads.
        tokio::task::spawn_blocking(move || {
            engine.submit(entries, move |r| {
                let _ = tx.send(r);
            })
        })
        .await
        .map_err(sm_error)?;
        let applied = rx.await.map_err(sm_error)?.map_err(sm_error)?;
        self.tell(grants);
        Ok(applied)
    }

    async fn get_snapshot_builder(&mut self) -> StateStore {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let state = Replicated::read_snapshot(&mut &data[..]).map_err(snapshot_error)?;
        if state.applied != meta.last_log_id {
            return Err(snapshot_error(io::Error::other(format!(
                "a snapshot said to end at {:?} holds a state at {:?}",
                meta.last_log_id, state.applied
            ))));
        }
        let grants: Vec<KeyGrant> = state
            .keys
            .iter()
            .map(|(hash, record)| KeyGrant { hash: *hash, record: record.clone() })
            .collect();
        let engine = self.engine.clone();
        blocking(move || engine.replace(state)).await?;
        self.tell(grants);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.current_snapshot())
            .await
            .map_err(snapshot_error)?
            .map_err(snapshot_error)
    }
}
