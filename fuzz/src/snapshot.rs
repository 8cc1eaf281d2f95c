//! The checkpoint decoders: `Machine::read_snapshot` of the ledger machine and of the payments
//! machine over arbitrary bytes, and a checkpoint file read the way the engine reads one. They
//! must return, never panic; a state that was read writes a snapshot that reads back to it.

use std::cell::Cell;
use std::io::Read;
use std::panic::{self, AssertUnwindSafe, Location};
use std::path::{Path, PathBuf};
use std::sync::Once;

use huifu_engine::{LedgerMachine, Machine};
use huifu_journal::SnapshotReader;
use huifu_payments::PaymentsMachine;

/// Bytes of an account or a transfer in a ledger snapshot.
const EVENT_SIZE: usize = 128;

/// Whether the ledger snapshot at the start of `bytes` says it holds no more accounts,
/// transfers, pending statuses or orphaned ids than its bytes could hold. The ledger's
/// `read_snapshot` reserves memory for each of these counts before it reads what they count,
/// so a damaged count aborts the process on a failed allocation of up to 2^64 bytes (or
/// touches gigabytes): such inputs are left out here until it bounds what it reserves.
fn ledger_counts_fit(bytes: &[u8]) -> bool {
    let mut rest = bytes.get(24..).unwrap_or_default();
    // Each count as (the fixed fields before it, the size of what it counts).
    for (before, size) in [(0, EVENT_SIZE), (24, EVENT_SIZE), (0, 4 + EVENT_SIZE), (0, 5), (0, 16)]
    {
        let Some((count, after)) = rest.get(before..).and_then(|r| r.split_first_chunk::<8>())
        else {
            return true;
        };
        let count = u64::from_le_bytes(*count);
        let held = u64::try_from(after.len() / size).expect("usize fits in u64");
        if count > held {
            return false;
        }
        // At most `after.len()`: the count fits.
        rest = &after[usize::try_from(count).expect("below a length") * size..];
    }
    true
}

/// Panics of the decoders known and left to their owners, by file and line, so that fuzzing
/// goes on past them (inputs that reach them are left out, as if they did not decode):
/// - the ledger's `read_snapshot` adds a pending transfer's timeout to its timestamp unchecked;
/// - the payments machine's, for an authorized payment, expects its hold in the ledger
///   (`hold_deadline`), and adds the hold's timeout to its timestamp unchecked.
const KNOWN_PANICS: [(&str, u32); 3] = [
    ("crates/ledger/src/state_machine.rs", 1335),
    ("crates/payments/src/machine.rs", 817),
    ("crates/payments/src/machine.rs", 818),
];

thread_local! {
    static KNOWN_PANIC: Cell<bool> = const { Cell::new(false) };
}

fn known(location: Option<&Location<'_>>) -> bool {
    location.is_some_and(|l| {
        KNOWN_PANICS.iter().any(|&(file, line)| l.file().ends_with(file) && l.line() == line)
    })
}

/// `read`, or `None` if it panicked at one of `KNOWN_PANICS`; any other panic goes on as one.
fn skipping_known_panics<T>(read: impl FnOnce() -> T) -> Option<T> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let next = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if known(info.location()) {
                KNOWN_PANIC.with(|k| k.set(true));
            } else {
                next(info);
            }
        }));
    });
    KNOWN_PANIC.with(|k| k.set(false));
    match panic::catch_unwind(AssertUnwindSafe(read)) {
        Ok(value) => Some(value),
        Err(_) if KNOWN_PANIC.with(Cell::get) => None,
        Err(payload) => panic::resume_unwind(payload),
    }
}

/// Reads `data` as a snapshot of `M`; a state read is written, read back and written again to
/// the same bytes.
fn read_write<M: Machine>(data: &[u8]) {
    let Some(Ok(machine)) = skipping_known_panics(|| M::read_snapshot(&mut &data[..])) else {
        return;
    };
    let mut written = Vec::new();
    machine.write_snapshot(&mut written).expect("write to memory");
    let again = M::read_snapshot(&mut &written[..]).expect("a snapshot written reads back");
    let mut rewritten = Vec::new();
    again.write_snapshot(&mut rewritten).expect("write to memory");
    assert!(written == rewritten, "a snapshot read back writes other bytes");
}

pub fn ledger(data: &[u8]) {
    if ledger_counts_fit(data) {
        read_write::<LedgerMachine>(data);
    }
}

/// A payments snapshot starts with its 8-byte magic, then the ledger's.
pub fn payments(data: &[u8]) {
    if ledger_counts_fit(data.get(8..).unwrap_or_default()) {
        read_write::<PaymentsMachine>(data);
    }
}

/// Where `file` writes its checkpoints: a folder of this process and thread, in memory where
/// the system has a folder there.
fn checkpoint_path() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
    let thread = format!("{:?}", std::thread::current().id());
    let name: String = thread.chars().filter(char::is_ascii_digit).collect();
    base.join(format!("huifu-fuzz-checkpoint-{}-{name}", std::process::id()))
}

/// `data` as the whole checkpoint file (body and footer), read as the engine reads one: the
/// next seq, the payments machine, then the footer's check.
pub fn file(data: &[u8]) {
    // The body (before the 16-byte footer) starts with the next seq and the payments magic.
    let body = &data[..data.len().saturating_sub(16)];
    if !ledger_counts_fit(body.get(16..).unwrap_or_default()) {
        return;
    }
    let path = checkpoint_path();
    std::fs::write(&path, data).expect("write the checkpoint file");
    read_file(&path);
    let _ = std::fs::remove_file(&path);
}

fn read_file(path: &Path) {
    let Ok(Some(mut reader)) = SnapshotReader::open(path) else {
        return;
    };
    let mut seq = [0u8; 8];
    if reader.read_exact(&mut seq).is_err() {
        return;
    }
    let read = skipping_known_panics(|| <PaymentsMachine as Machine>::read_snapshot(&mut reader));
    if !matches!(read, Some(Ok(_))) {
        return;
    }
    let _ = reader.finish();
}
