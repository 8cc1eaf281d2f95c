//! What the benchmarks (and the simulator's command) read of this process, another process and
//! the disk, and their latency histograms. Linux only: `/proc` where it is not, 0 or `None`.

use std::path::Path;
use std::time::Duration;

/// Linux reports process CPU time in clock ticks of 1/100 s.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// The peak resident set size of this process (VmHWM), in bytes; 0 where unknown.
pub fn rss_bytes_max() -> u64 {
    proc_status_kb("self", "VmHWM:") * 1024
}

/// The resident set size of this process now (VmRSS), in bytes; 0 where unknown.
pub fn rss_bytes() -> u64 {
    proc_status_kb("self", "VmRSS:") * 1024
}

/// A field counted in kB of `/proc/<pid>/status` (`pid` may be `self`); 0 where unknown.
pub fn proc_status_kb(pid: &str, field: &str) -> u64 {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return 0;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Disk space taken by the files under `path`, in bytes: the blocks allocated, so a file that
/// is preallocated but not yet written (the history store's own journal reserves 64 MiB that
/// way) counts for what it holds, not for its length.
pub fn disk_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_bytes(&e.path()),
            // st_blocks counts 512-byte units whatever the file system's block size.
            Ok(m) => m.blocks().saturating_mul(512),
            Err(_) => 0,
        })
        .sum()
}

/// CPU time (user and system) of process `pid` (`self` for this one) so far, in seconds.
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name in parentheses: state is field 3, utime 14 and stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some((ticks(14)? + ticks(15)?) as f64 / CLOCK_TICKS_PER_SECOND)
}

/// The CPU seconds between two readings, to the clock tick.
pub fn cpu_delta(before: Option<f64>, after: Option<f64>) -> Option<f64> {
    before
        .zip(after)
        .map(|(a, b)| ((b - a) * CLOCK_TICKS_PER_SECOND).round() / CLOCK_TICKS_PER_SECOND)
}

/// A latency histogram in microseconds, from 1 µs to 1 hour.
pub fn histogram() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

/// A duration as whole microseconds, at least 1 (the histograms' lowest value).
pub fn duration_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// A histogram value in microseconds as milliseconds with three decimals.
pub fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}
