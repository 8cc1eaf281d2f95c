//! The checkpoint decoders: `Machine::read_snapshot` of the ledger machine and of the payments
//! machine over arbitrary bytes, and a checkpoint file read the way the engine reads one. They
//! must return, never panic; a state that was read writes a snapshot that reads back to it.

use std::io::Read;
use std::path::{Path, PathBuf};

use huifu_engine::{LedgerMachine, Machine};
use huifu_journal::{FileStorage, SnapshotReader};
use huifu_payments::PaymentsMachine;

/// Reads `data` as a snapshot of `M`; a state read is written, read back and written again to
/// the same bytes.
fn read_write<M: Machine>(data: &[u8]) {
    let Ok(machine) = M::read_snapshot(&mut &data[..]) else {
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
    read_write::<LedgerMachine>(data);
}

pub fn payments(data: &[u8]) {
    read_write::<PaymentsMachine>(data);
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
/// footer's check over the whole body first, then the next seq and the payments machine.
pub fn file(data: &[u8]) {
    let path = checkpoint_path();
    std::fs::write(&path, data).expect("write the checkpoint file");
    read_file(&path);
    let _ = std::fs::remove_file(&path);
}

fn read_file(path: &Path) {
    let Ok(Some(mut reader)) = SnapshotReader::open_verified(&FileStorage, path) else {
        return;
    };
    let mut seq = [0u8; 8];
    if reader.read_exact(&mut seq).is_err() {
        return;
    }
    if <PaymentsMachine as Machine>::read_snapshot(&mut reader).is_ok() {
        let _ = reader.finish();
    }
}
