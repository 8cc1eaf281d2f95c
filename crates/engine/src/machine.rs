//! What the engine runs: any deterministic state machine whose commands can be journaled.

use std::io::{self, Read, Write};

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
