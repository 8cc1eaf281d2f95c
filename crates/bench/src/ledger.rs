//! Durable ledger transfers per second through the engine (`huifu bench ledger`, the counterpart
//! of TigerBeetle's `benchmark`): random transfers between accounts, in batches from several
//! clients; then every batch's first transfer looked up, and again after a checkpoint and a
//! restart.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use huifu_engine::{
    Engine, EngineOptions, LedgerAnswer, LedgerCommand, LedgerMachine, LedgerOutcome, LedgerQuery,
};
use huifu_ledger::constants::BATCH_EVENTS_MAX;
use huifu_ledger::{Account, CreateAccountResult, CreateTransferResult, Totals, Transfer};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::measure::{self, duration_us};
use crate::Progress;

/// The one ledger of the benchmark.
const LEDGER: u32 = 1;

/// What to run.
#[derive(Clone, Debug)]
pub struct LedgerOptions {
    /// Accounts created before the run.
    pub accounts: u64,
    /// Transfers submitted.
    pub transfers: u64,
    /// Transfers per batch (at most `BATCH_EVENTS_MAX`).
    pub batch: usize,
    /// Clients sending batches back to back, each waiting for its reply.
    pub clients: usize,
    /// `false`: no fsync, the engine without the disk.
    pub fsync: bool,
    /// Seed of the random accounts, amounts and ids.
    pub seed: u64,
    /// The engine's memory bound in ledger transfers; `None`: all in memory.
    pub memory_transfers_max: Option<usize>,
}

/// What a run measured and found.
pub struct LedgerRun {
    /// From the first batch to the last reply.
    pub seconds: f64,
    /// Batch latencies, submit to durable reply, in microseconds.
    pub latencies: Histogram<u64>,
    /// Transfers that were not created.
    pub failed: u64,
    /// Transfers looked up (the first of each batch).
    pub sampled: usize,
    /// Of those, found after the run.
    pub found: usize,
    /// Of those, found after the checkpoint and the restart.
    pub found_after_restart: usize,
    pub totals: Totals,
    pub rss_bytes_max: u64,
    pub disk_bytes: u64,
    pub checkpoint_seconds: f64,
    pub restart_seconds: f64,
    /// Journal records replayed by the restart.
    pub records_replayed: u64,
}

impl LedgerRun {
    /// Every transfer created, every sampled one found before and after the restart, and the
    /// ledger balanced.
    pub fn ok(&self) -> bool {
        self.failed == 0
            && self.found == self.sampled
            && self.found_after_restart == self.sampled
            && self.totals.is_balanced()
    }
}

/// Checks the options.
pub fn check(options: &LedgerOptions) -> anyhow::Result<()> {
    if options.batch == 0 || options.batch > BATCH_EVENTS_MAX {
        bail!("--batch must be between 1 and {BATCH_EVENTS_MAX}, not {}", options.batch);
    }
    if options.accounts < 2 {
        bail!("--accounts must be at least 2");
    }
    if options.clients == 0 {
        bail!("--clients must be at least 1");
    }
    Ok(())
}

/// Runs the benchmark on an engine in `data_dir`.
pub fn run(
    options: &LedgerOptions,
    data_dir: &Path,
    progress: &dyn Progress,
) -> anyhow::Result<LedgerRun> {
    check(options)?;
    // The same options for the run and for the restart after it.
    let engine_options = || {
        let mut engine_options = EngineOptions::new(data_dir);
        engine_options.fsync = options.fsync;
        engine_options.memory_max = options.memory_transfers_max;
        engine_options
    };
    let (engine, _) = Engine::<LedgerMachine>::open(engine_options())
        .with_context(|| format!("cannot open engine in {}", data_dir.display()))?;

    // Account ids are 1..=accounts; transfer ids are random so the id index sees real hashing.
    let accounts: Vec<Account> = (1..=options.accounts)
        .map(|i| Account { id: u128::from(i), ledger: LEDGER, code: 1, ..Account::default() })
        .collect();
    for chunk in accounts.chunks(BATCH_EVENTS_MAX) {
        match engine.execute(LedgerCommand::CreateAccounts(chunk.to_vec()))? {
            LedgerOutcome::Accounts(results)
                if results.iter().all(|r| *r == CreateAccountResult::Created) => {}
            other => bail!("account creation failed: {other:?}"),
        }
    }
    drop(accounts);

    let next = AtomicU64::new(0);
    let latencies = Mutex::new(measure::histogram());
    let failures = AtomicU64::new(0);
    let sample_ids = Mutex::new(Vec::new());
    progress.start();
    let started = Instant::now();
    std::thread::scope(|scope| {
        let clients: Vec<_> = (0..options.clients)
            .map(|client| {
                let (engine, next, latencies) = (&engine, &next, &latencies);
                let (failures, sample_ids) = (&failures, &sample_ids);
                let (total, batch, accounts) =
                    (options.transfers, options.batch as u64, options.accounts);
                let seed = options.seed.wrapping_add(client as u64);
                scope.spawn(move || -> anyhow::Result<()> {
                    let mut rng = SmallRng::seed_from_u64(seed);
                    let mut histogram = measure::histogram();
                    loop {
                        let start = next.fetch_add(batch, Ordering::Relaxed);
                        if start >= total {
                            break;
                        }
                        let count = batch.min(total - start);
                        let transfers: Vec<Transfer> =
                            (0..count).map(|_| random_transfer(&mut rng, accounts)).collect();
                        let first_id = transfers[0].id;
                        let sent = Instant::now();
                        let outcome = engine.execute(LedgerCommand::CreateTransfers(transfers))?;
                        histogram.record(duration_us(sent.elapsed())).ok();
                        let LedgerOutcome::Transfers(results) = outcome else {
                            bail!("unexpected outcome {outcome:?}")
                        };
                        let failed =
                            results.iter().filter(|r| **r != CreateTransferResult::Created).count();
                        failures.fetch_add(failed as u64, Ordering::Relaxed);
                        sample_ids.lock().expect("lock").push(first_id);
                        progress.advance(count);
                    }
                    latencies.lock().expect("lock").add(&histogram).ok();
                    Ok(())
                })
            })
            .collect();
        clients.into_iter().try_for_each(|client| client.join().expect("client thread"))
    })?;
    let seconds = started.elapsed().as_secs_f64();
    progress.finish();

    // Every acknowledged transfer must be retrievable: look up the first of each batch.
    let ids = sample_ids.into_inner().expect("lock");
    let found = lookups(&engine, &ids)?;
    let LedgerAnswer::Totals(totals) = engine.query(LedgerQuery::Totals)? else {
        bail!("unexpected answer")
    };
    let disk_bytes = measure::disk_bytes(data_dir);

    // Restart: a checkpoint, then a new engine on the folder; the sampled transfers must be
    // there again.
    let started = Instant::now();
    engine.checkpoint()?;
    let checkpoint_seconds = started.elapsed().as_secs_f64();
    drop(engine);
    let started = Instant::now();
    let (engine, recovery) = Engine::<LedgerMachine>::open(engine_options())?;
    let restart_seconds = started.elapsed().as_secs_f64();
    let found_after_restart = lookups(&engine, &ids)?;
    drop(engine);
    Ok(LedgerRun {
        seconds,
        latencies: latencies.into_inner().expect("lock"),
        failed: failures.into_inner(),
        sampled: ids.len(),
        found,
        found_after_restart,
        totals,
        rss_bytes_max: measure::rss_bytes_max(),
        disk_bytes,
        checkpoint_seconds,
        restart_seconds,
        records_replayed: recovery.records_replayed,
    })
}

/// How many of the transfers `ids` the engine finds.
fn lookups(engine: &Engine<LedgerMachine>, ids: &[u128]) -> anyhow::Result<usize> {
    let mut found = 0;
    for chunk in ids.chunks(BATCH_EVENTS_MAX) {
        if let LedgerAnswer::Transfers(t) =
            engine.query(LedgerQuery::LookupTransfers(chunk.to_vec()))?
        {
            found += t.len();
        }
    }
    Ok(found)
}

pub(crate) fn random_transfer(rng: &mut SmallRng, accounts: u64) -> Transfer {
    let debit = rng.gen_range(1..=accounts);
    let mut credit = rng.gen_range(1..accounts);
    if credit >= debit {
        credit += 1;
    }
    Transfer {
        id: rng.gen_range(1..u128::MAX),
        debit_account_id: u128::from(debit),
        credit_account_id: u128::from(credit),
        amount: rng.gen_range(1..=1_000),
        ledger: LEDGER,
        code: 1,
        ..Transfer::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_transfer_is_found_again_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let options = LedgerOptions {
            accounts: 50,
            transfers: 2_001,
            batch: 100,
            clients: 2,
            fsync: false,
            seed: 3,
            memory_transfers_max: Some(500),
        };
        let run = run(&options, dir.path(), &()).unwrap();
        assert!(run.ok(), "failed {} found {}/{}", run.failed, run.found, run.sampled);
        assert_eq!((run.sampled, run.found_after_restart), (21, 21));
        assert_eq!(run.latencies.len(), 21);
        assert!(matches!(
            check(&LedgerOptions { batch: 0, ..options.clone() }),
            Err(e) if e.to_string().starts_with("--batch must be between 1 and")
        ));
    }
}
