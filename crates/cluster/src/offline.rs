//! A stopped node's state, for `huifu audit`: its newest checkpoint, then every entry of its
//! log after it, to the log's end (a follower's last entries may not have been committed yet:
//! they are applied too, and the report says up to which index).

use std::path::Path;

use huifu_engine::{Engine, EngineOptions};

use crate::log::LogStore;
use crate::machine::Replicated;
use crate::node::ClusterError;

/// Entries read from the log and applied at a time.
const REPLAY_CHUNK_ENTRIES: u64 = 256;

/// What opening a stopped node found.
pub struct Replayed {
    pub engine: Engine<Replicated>,
    /// The index the checkpoint opened ends at (`None`: no checkpoint, the log from its start).
    pub checkpoint: Option<u64>,
    /// Entries applied after it.
    pub entries: u64,
}

/// Opens the stopped node's folder `dir` and applies its whole log past its newest checkpoint.
pub fn open_stopped(dir: &Path) -> Result<Replayed, ClusterError> {
    let mut options = EngineOptions::new(dir);
    options.journal = false;
    let (engine, _) = Engine::<Replicated>::open(options)?;
    let checkpoint = engine.read(|r| r.applied.map(|id| id.index))?;
    let log = LogStore::open(dir, true).map_err(|e| ClusterError::Replication(e.to_string()))?;
    let mut next = checkpoint.map_or(0, |index| index + 1);
    let mut entries = 0;
    loop {
        let chunk = log
            .read_entries(next, REPLAY_CHUNK_ENTRIES)
            .map_err(|e| ClusterError::Replication(e.to_string()))?;
        let Some(last) = chunk.last() else { break };
        if chunk[0].log_id.index != next {
            return Err(ClusterError::Replication(format!(
                "the log resumes at index {} after the state at {next}: entries are missing",
                chunk[0].log_id.index
            )));
        }
        next = last.log_id.index + 1;
        entries += chunk.len() as u64;
        let (tx, rx) = std::sync::mpsc::channel();
        engine.submit(chunk, move |r| {
            let _ = tx.send(r);
        });
        rx.recv().map_err(|_| ClusterError::Engine("the engine stopped".into()))??;
    }
    Ok(Replayed { engine, checkpoint, entries })
}
