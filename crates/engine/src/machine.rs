//! What the engine runs: any deterministic state machine whose commands can be journaled.

use std::io::{self, Read, Write};
use std::path::Path;

/// A deterministic state machine driven by the engine.
///
/// `apply` must be a pure function of the state, the timestamp and the command: the journal
/// stores (timestamp, command) pairs and recovery applies them again to rebuild the state.
pub trait Machine: Send + 'static {
    /// A change, written to the journal before its outcome is released.
    type Command: Send + 'static;
    type Outcome: Send + 'static;
    /// A read; not journaled.
    type Query: Send + 'static;
    type Answer: Send + 'static;

    /// How many timestamps the command uses (one per event).
    fn events(&self, command: &Self::Command) -> usize;
    /// The smallest batch timestamp the next command of `events` events may have.
    fn timestamp_min(&self, events: usize) -> u64;
    fn apply(&mut self, timestamp: u64, command: &Self::Command) -> Self::Outcome;
    fn query(&self, query: Self::Query) -> Self::Answer;
    /// Work the machine wants done by the passage of time alone (such as expiring holds),
    /// as a command to journal and apply at `now` (nanoseconds since the Unix epoch).
    fn tick(&self, now: u64) -> Option<Self::Command>;

    fn encode(command: &Self::Command, out: &mut Vec<u8>);
    fn decode(bytes: &[u8]) -> Result<Self::Command, DecodeError>;

    /// Opens what the machine keeps outside memory (its history store) in `dir`, once, before
    /// the journal is replayed. `memory_max` bounds what it keeps in memory (its own unit);
    /// `None` keeps everything in memory unless `dir` already holds a store.
    fn open_history(&mut self, dir: &Path, memory_max: Option<usize>) -> io::Result<()> {
        let _ = (dir, memory_max);
        Ok(())
    }
    /// Loads from the history store what applying `command` may need (prefetch, then execute:
    /// `apply` itself does no I/O).
    fn prefetch(&mut self, command: &Self::Command) -> io::Result<()> {
        let _ = command;
        Ok(())
    }
    /// Moves history out of memory into the store, after a group is durable.
    fn evict(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Makes the history store durable: a checkpoint that no longer holds what was moved out
    /// relies on it.
    fn persist_history(&self) -> io::Result<()> {
        Ok(())
    }

    /// A checkpoint of the whole state was written (after `persist_history` and
    /// `write_snapshot`); the journal before it is gone.
    /// The position in an outside log of the last command applied, when the commands come
    /// from one (`EngineOptions::journal` is false): checkpoints are named for the position
    /// after it. `None` (the default) for a machine run on the engine's own journal.
    fn position(&self) -> Option<u64> {
        None
    }

    fn checkpointed(&mut self) {}

    /// Whether the machine asks for a checkpoint now, whatever the journal's size (checked
    /// after each group).
    fn checkpoint_wanted(&self) -> bool {
        false
    }

    fn write_snapshot(&self, w: &mut dyn Write) -> io::Result<()>;
    fn read_snapshot(r: &mut dyn Read) -> io::Result<Self>
    where
        Self: Sized;
}

/// A journal record that does not decode to a command: the journal's checksum passed, so this is
/// a bug or a journal written by another version.
#[derive(Debug, thiserror::Error)]
#[error("journal record does not decode: {0}")]
pub struct DecodeError(pub String);
