//! The payment machine as run by the engine: journal encoding, ticks, snapshots.

use std::convert::Infallible;
use std::io::{self, Read, Write};
use std::path::Path;

use huifu_engine::{DecodeError, Machine};

use crate::command::{codec, Op, Outcome};
use crate::machine::PaymentsMachine;

impl Machine for PaymentsMachine {
    type Command = Op;
    type Outcome = Outcome;
    /// Reads go through `Engine::read`, with any function of the machine.
    type Query = Infallible;
    type Answer = Infallible;

    fn events(&self, op: &Op) -> usize {
        PaymentsMachine::events(self, op)
    }

    fn timestamp_min(&self, events: usize) -> u64 {
        self.ledger().timestamp_min(events)
    }

    fn apply(&mut self, timestamp: u64, op: &Op) -> Outcome {
        PaymentsMachine::apply(self, timestamp, op)
    }

    fn query(&self, query: Infallible) -> Infallible {
        query
    }

    fn tick(&self, now: u64) -> Option<Op> {
        self.ledger().expiry_due(now).then_some(Op::Expire)
    }

    fn encode(op: &Op, out: &mut Vec<u8>) {
        codec::encode(op, out);
    }

    fn decode(bytes: &[u8]) -> Result<Op, DecodeError> {
        codec::decode(bytes).map_err(DecodeError)
    }

    fn open_history(&mut self, dir: &Path, memory_max: Option<usize>) -> io::Result<()> {
        PaymentsMachine::open_history(self, dir, memory_max)
    }

    fn prefetch(&mut self, op: &Op) -> io::Result<()> {
        PaymentsMachine::prefetch(self, op)
    }

    fn evict(&mut self) -> io::Result<()> {
        PaymentsMachine::evict(self)
    }

    fn persist_history(&self) -> io::Result<()> {
        PaymentsMachine::persist_history(self)
    }

    fn checkpointed(&mut self) {
        PaymentsMachine::checkpointed(self);
    }

    fn checkpoint_wanted(&self) -> bool {
        PaymentsMachine::checkpoint_wanted(self)
    }

    fn write_snapshot(&self, w: &mut dyn Write) -> io::Result<()> {
        crate::snapshot::write(self, w)
    }

    fn read_snapshot(r: &mut dyn Read) -> io::Result<PaymentsMachine> {
        crate::snapshot::read(r)
    }
}
