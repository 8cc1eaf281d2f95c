//! The payment machine as the engine runs it: journal encoding, ticks, snapshots, and its
//! history in the fjall store (`FjallHistory`, the engine's implementation of the domain's
//! `HistoryStore`).

use std::convert::Infallible;
use std::io::{self, Read, Write};
use std::path::Path;

use huifu_ledger::{AccountFilter, ColdTransfer, ColdTransfers, StateMachine, Transfer};
use huifu_payments::command::{codec, Op, Outcome};
use huifu_payments::store::{HistoryStore, ListEntry, Needs, Record, RECORD_TABLES};
use huifu_payments::PaymentsMachine;
use huifu_store::{History, RecordStore};

use crate::machine::{DecodeError, Machine};

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
        PaymentsMachine::open_history(self, memory_max, |ledger, moved| {
            Ok(FjallHistory::open(dir, memory_max, ledger, moved)?
                .map(|history| Box::new(history) as Box<dyn HistoryStore>))
        })
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
        PaymentsMachine::write_snapshot(self, w)
    }

    fn read_snapshot(r: &mut dyn Read) -> io::Result<PaymentsMachine> {
        PaymentsMachine::read_snapshot(r)
    }
}

/// The payment machine's history in the fjall store: the ledger's transfers (`History`) and
/// the payment records and lists beside them, in the same database.
#[derive(Debug)]
pub struct FjallHistory {
    history: History,
    records: RecordStore,
}

impl FjallHistory {
    /// Opens the store in `dir` when asked to (`memory_max`) or when the state depends on one
    /// (see `History::open`); `None` when neither.
    pub fn open(
        dir: &Path,
        memory_max: Option<usize>,
        ledger: &mut StateMachine,
        records_moved: u64,
    ) -> io::Result<Option<FjallHistory>> {
        let Some(history) =
            History::open(dir, memory_max, ledger, records_moved).map_err(io::Error::other)?
        else {
            return Ok(None);
        };
        let records =
            RecordStore::open(history.store(), &RECORD_TABLES).map_err(io::Error::other)?;
        Ok(Some(FjallHistory { history, records }))
    }
}

impl ColdTransfers for FjallHistory {
    fn transfer(&self, id: u128, horizon: u64) -> io::Result<Option<ColdTransfer>> {
        self.history.transfer(id, horizon)
    }

    fn account_transfers(
        &self,
        filter: &AccountFilter,
        horizon: u64,
        limit: usize,
        out: &mut Vec<Transfer>,
    ) -> io::Result<()> {
        self.history.account_transfers(filter, horizon, limit, out)
    }

    fn scan(&self, horizon: u64, f: &mut dyn FnMut(ColdTransfer)) -> io::Result<()> {
        self.history.scan(horizon, f)
    }
}

impl HistoryStore for FjallHistory {
    fn prefetch(&mut self, ledger: &mut StateMachine, needs: &mut Needs<'_>) -> io::Result<()> {
        self.history.prefetch(ledger, needs).map_err(io::Error::other)
    }

    fn evict(
        &mut self,
        ledger: &mut StateMachine,
        keep: &dyn Fn(&Transfer) -> bool,
    ) -> io::Result<()> {
        self.history.evict(ledger, keep).map_err(io::Error::other)
    }

    fn persist(&self) -> io::Result<()> {
        self.history.persist().map_err(io::Error::other)
    }

    fn get(&self, table: u8, key: &[u8], horizon: u64) -> io::Result<Option<Vec<u8>>> {
        self.records.get(table, key, horizon).map_err(io::Error::other)
    }

    fn put(&self, records: &[Record<'_>], entries: &[(ListEntry, u64)]) -> io::Result<()> {
        let records: Vec<huifu_store::Record<'_>> = records
            .iter()
            .map(|r| huifu_store::Record {
                table: r.table,
                key: r.key,
                as_of: r.as_of,
                payload: r.payload,
            })
            .collect();
        let entries: Vec<(huifu_store::ListEntry, u64)> = entries
            .iter()
            .map(|&(e, as_of)| {
                let entry = huifu_store::ListEntry {
                    list: e.list,
                    owner: e.owner,
                    timestamp: e.timestamp,
                    id: e.id,
                };
                (entry, as_of)
            })
            .collect();
        self.records.put(&records, &entries).map_err(io::Error::other)
    }

    fn scan_records(
        &self,
        table: u8,
        horizon: u64,
        f: &mut dyn FnMut(&[u8], &[u8]),
    ) -> io::Result<()> {
        self.records.scan(table, horizon, f).map_err(io::Error::other)
    }

    fn list(
        &self,
        list: u8,
        owner: u64,
        before: Option<(u64, u64)>,
        horizon: u64,
        limit: usize,
        out: &mut Vec<(u64, u64)>,
    ) -> io::Result<()> {
        self.records.list(list, owner, before, horizon, limit, out).map_err(io::Error::other)
    }
}
