//! The huifu benchmarks, as a library: what `huifu bench ledger|payments|http` measure. The
//! binary parses their flags and prints what they return.
//!
//! - ledger.rs: durable ledger transfers per second through the engine, in batches, then a
//!   restart that must find them again;
//! - payments.rs: durable wallet payments per second through the payment engine, checked against
//!   the ledger at the end;
//! - ledger_net.rs: the same over the network, against `huifu serve` processes it starts (one
//!   alone, or the nodes of a cluster);
//! - http.rs: a load generator of wallet payments over the HTTP API, against a running server or
//!   a `huifu serve` it starts;
//! - measure.rs: what the three read of the process and the disk (peak memory, CPU time, disk
//!   use) and their latency histograms.
//!
//! ```no_run
//! use huifu_bench::payments::{PaymentsBench, PaymentsOptions};
//! let options = PaymentsOptions {
//!     payments: 100_000,
//!     clients: 4,
//!     batch: 256,
//!     users: 10_000,
//!     merchants: 500,
//!     riders: 1_000,
//!     fsync: true,
//!     seed: 42,
//!     memory_transfers_max: None,
//! };
//! let mut bench = PaymentsBench::open(options, std::path::Path::new("/tmp/bench"))?;
//! bench.set_up()?;
//! let run = bench.run(&())?;
//! println!("{} payments in {:.3} s", run.tally.payments, run.seconds);
//! # Ok::<(), anyhow::Error>(())
//! ```

pub mod events;
pub mod http;
pub mod ledger;
pub mod ledger_net;
pub mod measure;
pub mod payments;

/// What a benchmark tells as it goes, for a progress bar.
pub trait Progress: Send + Sync {
    /// The timed part begins (what came before was setting up).
    fn start(&self) {}
    /// `n` more transfers or payments done.
    fn advance(&self, n: u64);
    /// The timed part is over; what follows is checking.
    fn finish(&self) {}
}

/// No progress shown.
impl Progress for () {
    fn advance(&self, _n: u64) {}
}
