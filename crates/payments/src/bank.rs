//! Bank channels as seen from huifu: a request goes out, an answer comes back later (or never).
//!
//! `BankGateway` is what a real bank adapter implements. `SimulatedBank` is a seeded stand-in
//! with configurable latency, failures and timeouts, for tests and the simulator. Like the rest
//! of this crate it reads no clock: `now` is passed in.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// What huifu asks of a bank.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum BankRequestKind {
    /// Take money from the user's bank account into the wallet.
    TopUp,
    /// Pay money from the wallet out to the user's bank account.
    Withdrawal,
    /// Charge the user's bank account for an order (authorised, waiting for capture).
    Payment,
    /// Pay a merchant.
    Payout,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BankRequest {
    pub kind: BankRequestKind,
    /// The operation's id (a payout's ledger id for payouts).
    pub reference: u128,
    pub amount: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum BankAnswer {
    Confirmed,
    Failed,
}

/// A bank channel. A request that is never answered times out: the hold's own timeout in the
/// ledger then gives the money back, so no answer is needed for safety.
pub trait BankGateway {
    fn send(&mut self, request: BankRequest, now: u64);
    /// Appends to `out` the answers that arrived by `now`, oldest first.
    fn poll(&mut self, now: u64, out: &mut Vec<(BankRequest, BankAnswer)>);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimulatedBankConfig {
    pub latency_ns_min: u64,
    pub latency_ns_max: u64,
    /// Requests answered `Failed`, per million.
    pub failures_per_million: u32,
    /// Requests never answered, per million.
    pub timeouts_per_million: u32,
    pub seed: u64,
}

impl Default for SimulatedBankConfig {
    fn default() -> Self {
        SimulatedBankConfig {
            latency_ns_min: 1_000_000,
            latency_ns_max: 50_000_000,
            failures_per_million: 20_000,
            timeouts_per_million: 2_000,
            seed: 1,
        }
    }
}

/// A seeded bank: the same requests at the same times get the same answers at the same times.
#[derive(Debug)]
pub struct SimulatedBank {
    config: SimulatedBankConfig,
    state: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64, BankRequest, BankAnswer)>>,
}

impl SimulatedBank {
    pub fn new(config: SimulatedBankConfig) -> SimulatedBank {
        assert!(config.latency_ns_min <= config.latency_ns_max);
        // Never a zero state: xorshift would stay at zero.
        let state = config.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        SimulatedBank { config, state, seq: 0, queue: BinaryHeap::new() }
    }

    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    /// Requests sent but not answered yet (timed-out ones are never queued).
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }
}

impl BankGateway for SimulatedBank {
    fn send(&mut self, request: BankRequest, now: u64) {
        let roll = u32::try_from(self.next() % 1_000_000).expect("below a million");
        if roll < self.config.timeouts_per_million {
            return;
        }
        let answer = if roll < self.config.timeouts_per_million + self.config.failures_per_million {
            BankAnswer::Failed
        } else {
            BankAnswer::Confirmed
        };
        let spread = self.config.latency_ns_max - self.config.latency_ns_min;
        let latency =
            self.config.latency_ns_min + if spread == 0 { 0 } else { self.next() % (spread + 1) };
        self.seq += 1;
        self.queue.push(Reverse((now.saturating_add(latency), self.seq, request, answer)));
    }

    fn poll(&mut self, now: u64, out: &mut Vec<(BankRequest, BankAnswer)>) {
        while let Some(Reverse((due, _, request, answer))) = self.queue.peek().copied() {
            if due > now {
                break;
            }
            self.queue.pop();
            out.push((request, answer));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seed: u64) -> Vec<(BankRequest, BankAnswer)> {
        let config = SimulatedBankConfig { seed, ..SimulatedBankConfig::default() };
        let mut bank = SimulatedBank::new(config);
        for i in 0..10_000u128 {
            let request = BankRequest { kind: BankRequestKind::TopUp, reference: i, amount: 1 };
            bank.send(request, u64::try_from(i).unwrap() * 1_000);
        }
        let mut out = Vec::new();
        bank.poll(u64::MAX, &mut out);
        out
    }

    #[test]
    fn the_same_seed_gives_the_same_answers() {
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn failures_and_timeouts_come_at_the_configured_rates() {
        let answers = run(3);
        let failed = answers.iter().filter(|(_, a)| *a == BankAnswer::Failed).count();
        let lost = 10_000 - answers.len();
        // 2% failures and 0.2% timeouts of 10,000, within a generous margin.
        assert!((120..=300).contains(&failed), "{failed} failures");
        assert!((5..=45).contains(&lost), "{lost} timeouts");
    }

    #[test]
    fn answers_wait_for_their_latency() {
        let mut bank = SimulatedBank::new(SimulatedBankConfig {
            latency_ns_min: 100,
            latency_ns_max: 100,
            failures_per_million: 0,
            timeouts_per_million: 0,
            seed: 1,
        });
        let request = BankRequest { kind: BankRequestKind::Payout, reference: 9, amount: 5 };
        bank.send(request, 1_000);
        let mut out = Vec::new();
        bank.poll(1_099, &mut out);
        assert!(out.is_empty());
        bank.poll(1_100, &mut out);
        assert_eq!(out, vec![(request, BankAnswer::Confirmed)]);
    }
}
