//! The ledger as an engine machine: its commands, queries and their journal encoding.

use std::io::{self, Read, Write};
use std::path::Path;

use huifu_ledger::codec;
use huifu_ledger::constants::{BATCH_EVENTS_MAX, EXPIRE_EVENTS_MAX};
use huifu_ledger::{
    Account, AccountFilter, CreateAccountResult, CreateTransferResult, StateMachine, Totals,
    Transfer,
};
use huifu_store::History;

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

impl LedgerMachine {
    pub fn new(ledger: StateMachine) -> LedgerMachine {
        LedgerMachine { ledger, history: None }
    }

    /// A transfer, in memory or in the history store.
    pub fn lookup_transfer(&self, id: u128) -> io::Result<Option<Transfer>> {
        let cold = huifu_ledger::cold::lookup(&self.ledger, self.history.as_ref(), id)?;
        Ok(cold.map(|c| c.transfer))
    }

    /// An account's transfers per `filter`: the history store's part and the part in memory.
    pub fn account_transfers(&self, filter: &AccountFilter) -> io::Result<Vec<Transfer>> {
        huifu_ledger::cold::account_transfers(&self.ledger, self.history.as_ref(), filter)
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
        // The bare ledger keeps no records of its own in the store.
        self.history =
            History::open(dir, held_max, &mut self.ledger, 0).map_err(io::Error::other)?;
        Ok(())
    }

    fn prefetch(&mut self, command: &LedgerCommand) -> io::Result<()> {
        let Some(history) = &mut self.history else { return Ok(()) };
        history
            .prefetch(&mut self.ledger, |ledger, ids, timestamps| match command {
                LedgerCommand::CreateTransfers(events) => ledger.cold_ids(events, ids),
                LedgerCommand::CreateAccounts(events) => ledger.cold_timestamps(events, timestamps),
                LedgerCommand::ExpirePending => {}
            })
            .map_err(io::Error::other)
    }

    fn evict(&mut self) -> io::Result<()> {
        let Some(history) = &mut self.history else { return Ok(()) };
        history.evict(&mut self.ledger, |_| false).map_err(io::Error::other)
    }

    fn persist_history(&self) -> io::Result<()> {
        self.history.as_ref().map_or(Ok(()), |h| h.persist().map_err(io::Error::other))
    }

    fn write_snapshot(&self, w: &mut dyn Write) -> io::Result<()> {
        self.ledger.write_snapshot(&mut &mut *w)
    }

    fn read_snapshot(r: &mut dyn Read) -> io::Result<LedgerMachine> {
        Ok(LedgerMachine::new(StateMachine::read_snapshot(&mut &mut *r)?))
    }
}
