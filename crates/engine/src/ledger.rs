//! The ledger as an engine machine: its commands, queries and their journal encoding.

use std::io::{self, Read, Write};

use huifu_ledger::codec;
use huifu_ledger::constants::{BATCH_EVENTS_MAX, EXPIRE_EVENTS_MAX};
use huifu_ledger::{
    Account, AccountFilter, CreateAccountResult, CreateTransferResult, StateMachine, Totals,
    Transfer,
};

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
            LedgerQuery::LookupTransfers(ids) => LedgerAnswer::Transfers(
                ids.iter().filter_map(|id| self.ledger.lookup_transfer(*id)).copied().collect(),
            ),
            LedgerQuery::AccountTransfers(filter) => {
                let mut out = Vec::new();
                self.ledger.get_account_transfers(&filter, &mut out);
                LedgerAnswer::Transfers(out)
            }
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

    fn write_snapshot(&self, w: &mut dyn Write) -> io::Result<()> {
        self.ledger.write_snapshot(&mut &mut *w)
    }

    fn read_snapshot(r: &mut dyn Read) -> io::Result<LedgerMachine> {
        Ok(LedgerMachine { ledger: StateMachine::read_snapshot(&mut &mut *r)? })
    }
}
