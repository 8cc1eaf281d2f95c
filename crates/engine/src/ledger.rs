//! The ledger as an engine machine: its commands, queries and their journal encoding.

use std::io::{self, Read, Write};
use std::path::Path;

use huifu_ledger::codec;
use huifu_ledger::constants::{BATCH_EVENTS_MAX, EXPIRE_EVENTS_MAX, QUERY_LIMIT_MAX};
use huifu_ledger::{
    Account, AccountFilter, ColdTransfer, CreateAccountResult, CreateTransferResult, StateMachine,
    Totals, Transfer,
};
use huifu_store::HistoryStore;

use crate::machine::{DecodeError, Machine};

/// A change to the ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LedgerCommand {
    CreateAccounts(Vec<Account>),
    CreateTransfers(Vec<Transfer>),
    /// Expire pending transfers whose timeout has passed (issued by the engine's clock).
    ExpirePending,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LedgerOutcome {
    Accounts(Vec<CreateAccountResult>),
    Transfers(Vec<CreateTransferResult>),
    Expired(usize),
}

/// A read of the ledger.
#[derive(Clone, Debug)]
pub enum LedgerQuery {
    LookupAccounts(Vec<u128>),
    LookupTransfers(Vec<u128>),
    AccountTransfers(AccountFilter),
    Totals,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LedgerAnswer {
    Accounts(Vec<Account>),
    Transfers(Vec<Transfer>),
    Totals(Totals),
}

/// The ledger state machine, run by the engine.
#[derive(Debug, Default)]
pub struct LedgerMachine {
    pub ledger: StateMachine,
    history: Option<History>,
}

/// Where transfers go once more than `held_max` are in memory.
#[derive(Debug)]
struct History {
    store: HistoryStore,
    held_max: usize,
    /// Scratch space, kept to avoid allocating per batch.
    ids: Vec<u128>,
    timestamps: Vec<u64>,
    cold: Vec<ColdTransfer>,
}

impl LedgerMachine {
    pub fn new(ledger: StateMachine) -> LedgerMachine {
        LedgerMachine { ledger, history: None }
    }

    /// A transfer, in memory or in the history store.
    pub fn lookup_transfer(&self, id: u128) -> io::Result<Option<Transfer>> {
        if let Some(t) = self.ledger.lookup_transfer(id) {
            return Ok(Some(*t));
        }
        let Some(history) = &self.history else { return Ok(None) };
        let cold = history.store.transfer(id, self.ledger.horizon()).map_err(io::Error::other)?;
        Ok(cold.map(|c| c.transfer))
    }

    /// An account's transfers per `filter`: the history store's part and the part in memory.
    pub fn account_transfers(&self, filter: &AccountFilter) -> io::Result<Vec<Transfer>> {
        let mut held = Vec::new();
        self.ledger.get_account_transfers(filter, &mut held);
        let Some(history) = &self.history else { return Ok(held) };
        let limit = filter.limit.min(QUERY_LIMIT_MAX) as usize;
        let horizon = self.ledger.horizon();
        let store = &history.store;
        if filter.reversed {
            // Newest first: memory, then the store.
            let mut out = held;
            store.account_transfers(filter, horizon, limit, &mut out).map_err(io::Error::other)?;
            Ok(out)
        } else {
            let mut out = Vec::new();
            store.account_transfers(filter, horizon, limit, &mut out).map_err(io::Error::other)?;
            let room = limit - out.len();
            out.extend(held.into_iter().take(room));
            Ok(out)
        }
    }

    /// Bytes the history store takes on disk (zero without one).
    pub fn history_disk_bytes(&self) -> io::Result<u64> {
        match &self.history {
            None => Ok(0),
            Some(h) => h.store.disk_bytes().map_err(io::Error::other),
        }
    }
}

const TAG_ACCOUNTS: u8 = 1;
const TAG_TRANSFERS: u8 = 2;
const TAG_EXPIRE: u8 = 3;

impl Machine for LedgerMachine {
    type Command = LedgerCommand;
    type Outcome = LedgerOutcome;
    type Query = LedgerQuery;
    type Answer = LedgerAnswer;

    fn events(&self, command: &LedgerCommand) -> usize {
        match command {
            LedgerCommand::CreateAccounts(a) => a.len(),
            LedgerCommand::CreateTransfers(t) => t.len(),
            LedgerCommand::ExpirePending => EXPIRE_EVENTS_MAX,
        }
    }

    fn timestamp_min(&self, events: usize) -> u64 {
        self.ledger.timestamp_min(events)
    }

    fn apply(&mut self, timestamp: u64, command: &LedgerCommand) -> LedgerOutcome {
        match command {
            LedgerCommand::CreateAccounts(events) => {
                let mut results = Vec::new();
                self.ledger.create_accounts(timestamp, events, &mut results);
                LedgerOutcome::Accounts(results)
            }
            LedgerCommand::CreateTransfers(events) => {
                let mut results = Vec::new();
                self.ledger.create_transfers(timestamp, events, &mut results);
                LedgerOutcome::Transfers(results)
            }
            LedgerCommand::ExpirePending => {
                LedgerOutcome::Expired(self.ledger.expire_pending_transfers(timestamp))
            }
        }
    }

    fn query(&self, query: LedgerQuery) -> LedgerAnswer {
        match query {
            LedgerQuery::LookupAccounts(ids) => LedgerAnswer::Accounts(
                ids.iter().filter_map(|id| self.ledger.lookup_account(*id)).copied().collect(),
            ),
            // A store that fails to read is a broken disk: stopping is better than answering
            // "not found" for a transfer that exists.
            LedgerQuery::LookupTransfers(ids) => LedgerAnswer::Transfers(
                ids.iter()
                    .filter_map(|&id| self.lookup_transfer(id).expect("history store read"))
                    .collect(),
            ),
            LedgerQuery::AccountTransfers(filter) => LedgerAnswer::Transfers(
                self.account_transfers(&filter).expect("history store read"),
            ),
            LedgerQuery::Totals => LedgerAnswer::Totals(self.ledger.totals()),
        }
    }

    fn tick(&self, now: u64) -> Option<LedgerCommand> {
        self.ledger.expiry_due(now).then_some(LedgerCommand::ExpirePending)
    }

    fn encode(command: &LedgerCommand, out: &mut Vec<u8>) {
        match command {
            LedgerCommand::CreateAccounts(events) => {
                out.push(TAG_ACCOUNTS);
                codec::encode_accounts(events, out);
            }
            LedgerCommand::CreateTransfers(events) => {
                out.push(TAG_TRANSFERS);
                codec::encode_transfers(events, out);
            }
            LedgerCommand::ExpirePending => out.push(TAG_EXPIRE),
        }
    }

    fn decode(bytes: &[u8]) -> Result<LedgerCommand, DecodeError> {
        let (&tag, body) = bytes.split_first().ok_or_else(|| DecodeError("empty".into()))?;
        let bad_len =
            || DecodeError(format!("{} bytes is not a whole number of events", body.len()));
        let command = match tag {
            TAG_ACCOUNTS => {
                LedgerCommand::CreateAccounts(codec::decode_accounts(body).ok_or_else(bad_len)?)
            }
            TAG_TRANSFERS => {
                LedgerCommand::CreateTransfers(codec::decode_transfers(body).ok_or_else(bad_len)?)
            }
            TAG_EXPIRE if body.is_empty() => LedgerCommand::ExpirePending,
            _ => return Err(DecodeError(format!("unknown command tag {tag}"))),
        };
        if LedgerMachine::default().events(&command) > BATCH_EVENTS_MAX {
            return Err(DecodeError("batch larger than BATCH_EVENTS_MAX".into()));
        }
        Ok(command)
    }

    fn open_history(&mut self, dir: &Path, held_max: Option<usize>) -> io::Result<()> {
        // A state that moved transfers out needs its store even when no bound is set now.
        if held_max.is_none() && self.ledger.horizon() == 0 && !dir.exists() {
            return Ok(());
        }
        if let Some(n) = held_max {
            if self.ledger.transfers_count() == 0 {
                self.ledger.set_chunk_shift(StateMachine::chunk_shift_for(n));
            }
        }
        let store = HistoryStore::open(dir).map_err(io::Error::other)?;
        self.history = Some(History {
            store,
            held_max: held_max.unwrap_or(usize::MAX),
            ids: Vec::new(),
            timestamps: Vec::new(),
            cold: Vec::new(),
        });
        Ok(())
    }

    fn prefetch(&mut self, command: &LedgerCommand) -> io::Result<()> {
        let Some(history) = &mut self.history else { return Ok(()) };
        let horizon = self.ledger.horizon();
        self.ledger.fetched_clear();
        match command {
            LedgerCommand::CreateTransfers(events) => {
                history.ids.clear();
                self.ledger.cold_ids(events, &mut history.ids);
                for &id in &history.ids {
                    if let Some(cold) =
                        history.store.transfer(id, horizon).map_err(io::Error::other)?
                    {
                        self.ledger.fetched_insert(cold);
                    }
                }
            }
            LedgerCommand::CreateAccounts(events) => {
                history.timestamps.clear();
                self.ledger.cold_timestamps(events, &mut history.timestamps);
                for &ts in &history.timestamps {
                    if history.store.has_timestamp(ts, horizon).map_err(io::Error::other)? {
                        self.ledger.fetched_timestamp_insert(ts);
                    }
                }
            }
            LedgerCommand::ExpirePending => {}
        }
        Ok(())
    }

    fn evict(&mut self) -> io::Result<()> {
        let Some(history) = &mut self.history else { return Ok(()) };
        self.ledger.fetched_clear();
        history.cold.clear();
        let evicted = self.ledger.evict(history.held_max, |_| false, &mut history.cold);
        if evicted.total() > 0 {
            let (settled, moved) = history.cold.split_at(evicted.settled);
            history.store.put(moved, settled).map_err(io::Error::other)?;
        }
        Ok(())
    }

    fn persist_history(&self) -> io::Result<()> {
        match &self.history {
            None => Ok(()),
            Some(h) => h.store.persist().map_err(io::Error::other),
        }
    }

    fn write_snapshot(&self, w: &mut dyn Write) -> io::Result<()> {
        self.ledger.write_snapshot(&mut &mut *w)
    }

    fn read_snapshot(r: &mut dyn Read) -> io::Result<LedgerMachine> {
        Ok(LedgerMachine::new(StateMachine::read_snapshot(&mut &mut *r)?))
    }
}
