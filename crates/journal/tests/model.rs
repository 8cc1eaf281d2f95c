//! Model test: random appends, syncs, injected I/O failures, crashes and
//! restarts over `FaultyStorage`, checked against a list of what was appended
//! and what was acknowledged.

use std::convert::Infallible;
use std::path::Path;

use huifu_journal::faulty::FaultyStorage;
use huifu_journal::{Journal, JournalError, JournalOptions};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append {
        len: usize,
        fill: u8,
    },
    Sync,
    /// From now on only this many writes/syncs succeed.
    FailAfter(u64),
    /// Power loss, then reopen.
    Crash,
    /// Process restart without power loss, then reopen.
    Restart,
    /// Sync, then remove the last `back` records (a replica's log cut where a new leader's
    /// entries differ).
    TruncateBack(u64),
    /// Read at most `max` durable records from `back` before the end.
    ReadBack {
        back: u64,
        max: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0usize..200, any::<u8>()).prop_map(|(len, fill)| Op::Append { len, fill }),
        // Now and then a record larger than a segment.
        1 => (300usize..700, any::<u8>()).prop_map(|(len, fill)| Op::Append { len, fill }),
        4 => Just(Op::Sync),
        1 => (0u64..4).prop_map(Op::FailAfter),
        2 => Just(Op::Crash),
        1 => Just(Op::Restart),
        1 => (0u64..12).prop_map(Op::TruncateBack),
        2 => (0u64..150, 1u64..200).prop_map(|(back, max)| Op::ReadBack { back, max }),
    ]
}

fn body(seq: u64, len: usize, fill: u8) -> Vec<u8> {
    // Mix in the seq so a record replayed in the wrong place cannot pass.
    let seq_bytes = seq.to_le_bytes();
    (0..len).map(|i| fill ^ seq_bytes[i % 8]).collect()
}

struct Model {
    storage: FaultyStorage,
    options: JournalOptions,
    journal: Option<Journal<FaultyStorage>>,
    /// Body of every record that may exist, index = seq - 1.
    appended: Vec<Vec<u8>>,
    /// Records 1..=durable must survive anything.
    durable: usize,
    poisoned: bool,
}

impl Model {
    fn reopen(&mut self) {
        self.journal = None;
        self.storage.set_fail_after(None);
        let (mut journal, recovered) =
            Journal::open_with(self.storage.clone(), self.options.clone())
                .expect("recovery must succeed");
        let mut replayed = Vec::new();
        journal
            .replay(1, |seq, body| {
                replayed.push((seq, body.to_vec()));
                Ok::<(), Infallible>(())
            })
            .expect("replay after recovery");

        let count = replayed.len();
        assert_eq!(recovered.records, u64::try_from(count).unwrap());
        assert_eq!(recovered.next_seq, u64::try_from(count).unwrap() + 1);
        assert!(
            count >= self.durable,
            "lost acknowledged records: kept {count} of {}",
            self.durable
        );
        assert!(
            count <= self.appended.len(),
            "invented records: {count} > {}",
            self.appended.len()
        );
        for (i, (seq, body)) in replayed.iter().enumerate() {
            assert_eq!(*seq, u64::try_from(i).unwrap() + 1, "sequence not contiguous from 1");
            assert_eq!(body, &self.appended[i], "body of seq {seq} differs");
        }
        // Whatever survived is synced by open and becomes the new baseline.
        self.appended.truncate(count);
        self.durable = count;
        self.poisoned = false;
        self.journal = Some(journal);
    }

    fn apply(&mut self, op: &Op) {
        let journal = self.journal.as_mut().expect("open journal");
        match *op {
            Op::Append { len, fill } => {
                let seq = journal.next_seq();
                let b = body(seq, len, fill);
                match journal.append(&b) {
                    Ok(got) => {
                        assert!(!self.poisoned, "append accepted after a failed sync");
                        assert_eq!(got, seq);
                        assert_eq!(got, u64::try_from(self.appended.len()).unwrap() + 1);
                        self.appended.push(b);
                    }
                    Err(JournalError::Poisoned { .. }) => assert!(self.poisoned),
                    Err(e) => panic!("unexpected append error: {e}"),
                }
            }
            Op::Sync => match journal.sync() {
                Ok(()) => {
                    assert!(!self.poisoned, "sync succeeded after a failed sync");
                    self.durable = self.appended.len();
                }
                Err(_) => self.poisoned = true,
            },
            Op::FailAfter(n) => self.storage.set_fail_after(Some(n)),
            Op::Crash => {
                self.journal = None;
                self.storage.crash();
                self.reopen();
            }
            Op::Restart => self.reopen(),
            Op::TruncateBack(back) => {
                if journal.sync().is_err() {
                    self.poisoned = true;
                    return;
                }
                self.durable = self.appended.len();
                let end = u64::try_from(self.appended.len()).unwrap() + 1;
                let from = end.saturating_sub(back).max(1);
                let kept = usize::try_from(from - 1).unwrap();
                // Asked to go: no longer owed to anyone, but they may survive a failure.
                self.durable = self.durable.min(kept);
                match journal.truncate_from(from) {
                    Ok(removed) => {
                        assert_eq!(removed, end - from);
                        assert_eq!(journal.next_seq(), from);
                        self.appended.truncate(kept);
                    }
                    Err(_) => self.poisoned = true,
                }
            }
            Op::ReadBack { back, max } => {
                if self.poisoned {
                    return;
                }
                let end = u64::try_from(self.durable).unwrap() + 1;
                let from = end.saturating_sub(back).max(1);
                let mut seen = Vec::new();
                let count = journal
                    .read(from, |seq, body| {
                        seen.push((seq, body.to_vec()));
                        u64::try_from(seen.len()).unwrap() < max
                    })
                    .expect("read of durable records");
                assert_eq!(count, u64::try_from(seen.len()).unwrap());
                assert_eq!(count, max.min(end - from), "read from {from} of {end}");
                for (i, (seq, body)) in seen.iter().enumerate() {
                    assert_eq!(*seq, from + u64::try_from(i).unwrap());
                    assert_eq!(body, &self.appended[usize::try_from(seq - 1).unwrap()]);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn recovery_keeps_exactly_an_acknowledged_prefix(
        seed in any::<u64>(),
        segment_size_max in 100u64..2000,
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let storage = FaultyStorage::new(seed);
        let options = JournalOptions {
            segment_size_max,
            ..JournalOptions::new(Path::new("/journal"))
        };
        let mut model = Model {
            storage,
            options,
            journal: None,
            appended: Vec::new(),
            durable: 0,
            poisoned: false,
        };
        model.reopen();
        for op in &ops {
            model.apply(op);
        }
        // Every run ends with a crash, the harshest check.
        model.apply(&Op::Crash);
    }
}
