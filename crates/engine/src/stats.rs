//! What the writer thread counts for operators (`Engine::stats`): the time of each group
//! commit's journal write and fsync, and the commands in each group, as cumulative histograms
//! that any thread reads without stopping the writer.

use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the journal write-and-fsync buckets, in microseconds.
pub const SYNC_BUCKETS_US: [u64; 12] =
    [50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000];

/// Upper bounds of the commands-per-group buckets.
pub const GROUP_BUCKETS: [u64; 11] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1_024];

/// Counts of values at or below each bound (and above the last), and their sum.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [u64],
    /// One per bound, then one for the values above the last.
    counts: Vec<AtomicU64>,
    sum: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [u64]) -> Histogram {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]));
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    pub fn record(&self, value: u64) {
        let i = self.bounds.partition_point(|&b| b < value);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// Each bound (`None`: above the last) with the count of values at or below it, as
    /// Prometheus histograms give them.
    pub fn cumulative(&self) -> Vec<(Option<u64>, u64)> {
        let mut total = 0;
        let bounds = self.bounds.iter().map(|&b| Some(b)).chain([None]);
        bounds
            .zip(&self.counts)
            .map(|(bound, count)| {
                total += count.load(Ordering::Relaxed);
                (bound, total)
            })
            .collect()
    }

    pub fn sum(&self) -> u64 {
        self.sum.load(Ordering::Relaxed)
    }
}

/// The writer thread's counters.
#[derive(Debug)]
pub struct EngineStats {
    /// Microseconds of each group commit's journal write and fsync.
    pub sync_us: Histogram,
    /// Commands in each group commit that had any.
    pub group_commands: Histogram,
}

impl Default for EngineStats {
    fn default() -> EngineStats {
        EngineStats {
            sync_us: Histogram::new(&SYNC_BUCKETS_US),
            group_commands: Histogram::new(&GROUP_BUCKETS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_fall_in_the_first_bucket_whose_bound_they_do_not_pass() {
        let h = Histogram::new(&[1, 10]);
        for v in [0, 1, 2, 10, 11, 1_000] {
            h.record(v);
        }
        assert_eq!(h.cumulative(), [(Some(1), 2), (Some(10), 4), (None, 6)]);
        assert_eq!(h.sum(), 1_024);
    }
}
