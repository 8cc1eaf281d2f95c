//! In-memory apply throughput of the ledger state machine (no journal, no fsync).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use huifu_ledger::{Account, StateMachine, Transfer};

const ACCOUNTS: u64 = 10_000;
const BATCH: usize = 8_190;

fn setup() -> StateMachine {
    let mut sm = StateMachine::new();
    let mut results = Vec::new();
    let accounts: Vec<Account> = (1..=ACCOUNTS)
        .map(|i| Account { id: u128::from(i), ledger: 1, code: 1, ..Account::default() })
        .collect();
    for chunk in accounts.chunks(BATCH) {
        sm.create_accounts(sm.timestamp_min(chunk.len()), chunk, &mut results);
    }
    sm
}

/// Simple transfers between random pairs of 10,000 accounts, in batches of 8,190.
fn apply(c: &mut Criterion) {
    let mut group = c.benchmark_group("ledger");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    group.bench_function("create_transfers_batch_8190", |b| {
        let mut sm = setup();
        let mut next_id: u128 = 1;
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut rand = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut results = Vec::with_capacity(BATCH);
        b.iter_batched(
            || {
                (0..BATCH)
                    .map(|_| {
                        let dr = rand() % ACCOUNTS + 1;
                        let cr = (dr + rand() % (ACCOUNTS - 1)) % ACCOUNTS + 1;
                        next_id += 1;
                        Transfer {
                            id: next_id,
                            debit_account_id: u128::from(dr),
                            credit_account_id: u128::from(cr),
                            amount: u128::from(rand() % 1_000 + 1),
                            ledger: 1,
                            code: 1,
                            ..Transfer::default()
                        }
                    })
                    .collect::<Vec<_>>()
            },
            |batch| {
                sm.create_transfers(sm.timestamp_min(batch.len()), &batch, &mut results);
                assert!(results.iter().all(|r| r.code() == 0));
            },
            criterion::BatchSize::LargeInput,
        );
    });
    group.finish();
}

criterion_group!(benches, apply);
criterion_main!(benches);
