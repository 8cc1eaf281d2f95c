//! In-memory apply throughput of the ledger state machine (no journal, no fsync).
//!
//! Five cases, all simple transfers between random pairs of accounts in batches of 8,190
//! (10,000 accounts unless said): sequential ids on a ledger that starts empty; random ids on a
//! ledger that starts empty; the same between a million accounts (a simulated day's wallets),
//! whose rows and index are far larger than any cache; random ids on a ledger that already
//! holds 10 million transfers (the size of `huifu bench ledger`), where the id index is far
//! larger than any cache; and random ids on a ledger bounded to 2 million transfers in memory
//! (the simulator's day), evicting the oldest after each batch.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use huifu_ledger::{Account, StateMachine, Transfer};

const ACCOUNTS: u64 = 10_000;
/// Accounts of the `_1m_accounts` case (a simulated day's million wallets).
const MANY_ACCOUNTS: u64 = 1_000_000;
const BATCH: usize = 8_190;
/// Transfers already in the ledger for the `_after_10m` case.
const PRELOADED: usize = 10_000_000;
/// Transfers the ledger keeps for the `_at_2m` case.
const HELD_MAX: usize = 2_000_000;

fn setup() -> StateMachine {
    setup_with(ACCOUNTS)
}

fn setup_with(n: u64) -> StateMachine {
    let mut sm = StateMachine::new();
    let mut results = Vec::new();
    let accounts: Vec<Account> = (1..=n)
        .map(|i| Account { id: u128::from(i), ledger: 1, code: 1, ..Account::default() })
        .collect();
    for chunk in accounts.chunks(BATCH) {
        sm.create_accounts(sm.timestamp_min(chunk.len()), chunk, &mut results);
    }
    sm
}

/// Makes batches of simple transfers between random accounts, with sequential or random ids.
struct Batches {
    x: u64,
    next_id: u128,
    random_ids: bool,
    accounts: u64,
}

impl Batches {
    fn new(random_ids: bool) -> Batches {
        Batches { x: 0x9E37_79B9_7F4A_7C15, next_id: 1, random_ids, accounts: ACCOUNTS }
    }

    fn rand(&mut self) -> u64 {
        // xorshift64
        self.x ^= self.x << 13;
        self.x ^= self.x >> 7;
        self.x ^= self.x << 17;
        self.x
    }

    fn batch(&mut self) -> Vec<Transfer> {
        (0..BATCH)
            .map(|_| {
                let dr = self.rand() % self.accounts + 1;
                let cr = (dr + self.rand() % (self.accounts - 1)) % self.accounts + 1;
                let id = if self.random_ids {
                    // Never 0 or u128::MAX: the top half is below u64::MAX.
                    (u128::from(self.rand() >> 1) << 64) | u128::from(self.rand())
                } else {
                    self.next_id += 1;
                    self.next_id
                };
                Transfer {
                    id,
                    debit_account_id: u128::from(dr),
                    credit_account_id: u128::from(cr),
                    amount: u128::from(self.rand() % 1_000 + 1),
                    ledger: 1,
                    code: 1,
                    ..Transfer::default()
                }
            })
            .collect()
    }
}

fn apply_batch(
    sm: &mut StateMachine,
    batch: &[Transfer],
    results: &mut Vec<huifu_ledger::CreateTransferResult>,
) {
    sm.create_transfers(sm.timestamp_min(batch.len()), batch, results);
    assert!(results.iter().all(|r| r.code() == 0));
}

fn apply(c: &mut Criterion) {
    let mut group = c.benchmark_group("ledger");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    for (name, random_ids) in
        [("create_transfers_batch_8190", false), ("create_transfers_batch_8190_random_ids", true)]
    {
        group.bench_function(name, |b| {
            let mut sm = setup();
            let mut batches = Batches::new(random_ids);
            let mut results = Vec::with_capacity(BATCH);
            b.iter_batched(
                || batches.batch(),
                |batch| apply_batch(&mut sm, &batch, &mut results),
                BatchSize::LargeInput,
            );
        });
    }
    group.bench_function("create_transfers_batch_8190_1m_accounts", |b| {
        let mut sm = setup_with(MANY_ACCOUNTS);
        let mut batches = Batches { accounts: MANY_ACCOUNTS, ..Batches::new(true) };
        let mut results = Vec::with_capacity(BATCH);
        b.iter_batched(
            || batches.batch(),
            |batch| apply_batch(&mut sm, &batch, &mut results),
            BatchSize::LargeInput,
        );
    });
    group.finish();

    // Criterion calls the routine once per sample (and repeatedly while warming up): the cases
    // above start every sample from a ledger with accounts only. These two load their ledger
    // once, on first use, and keep it.
    let mut group = c.benchmark_group("ledger");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(10);
    group.warm_up_time(std::time::Duration::from_secs(1));
    group.measurement_time(std::time::Duration::from_secs(4));

    // Its batches find 10 to about 15 million transfers in the ledger.
    let mut preloaded: Option<(StateMachine, Batches)> = None;
    group.bench_function("create_transfers_batch_8190_after_10m", |b| {
        let mut results = Vec::with_capacity(BATCH);
        let (sm, batches) = preloaded.get_or_insert_with(|| loaded(PRELOADED));
        b.iter_batched(
            || batches.batch(),
            |batch| apply_batch(sm, &batch, &mut results),
            BatchSize::LargeInput,
        );
    });

    // The bounded ledger of a long run: each batch applied is followed by `evict` down to
    // `HELD_MAX` transfers (what the history store would be given is dropped here), so each
    // batch's transfers leave the id index some batches later, in arrival order, from slots
    // all over it.
    let mut bounded: Option<(StateMachine, Batches)> = None;
    group.bench_function("create_transfers_and_evict_batch_8190_at_2m", |b| {
        let mut results = Vec::with_capacity(BATCH);
        let mut out = Vec::new();
        let (sm, batches) = bounded.get_or_insert_with(|| loaded(HELD_MAX));
        b.iter_batched(
            || batches.batch(),
            |batch| {
                apply_batch(sm, &batch, &mut results);
                out.clear();
                sm.evict(HELD_MAX, |_| false, &mut out);
            },
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

/// A ledger of `ACCOUNTS` accounts holding about `transfers` transfers with random ids, and
/// the batches that made them, to make the next ones.
fn loaded(transfers: usize) -> (StateMachine, Batches) {
    let mut sm = setup();
    let mut batches = Batches::new(true);
    let mut results = Vec::with_capacity(BATCH);
    for _ in 0..transfers.div_ceil(BATCH) {
        let batch = batches.batch();
        apply_batch(&mut sm, &batch, &mut results);
    }
    (sm, batches)
}

criterion_group!(benches, apply);
criterion_main!(benches);
