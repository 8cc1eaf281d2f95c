//! Journal recovery and replay over segment files of arbitrary bytes.
//!
//! The input is a byte whose low two bits are how many segments follow less one and whose high
//! six bits are the journal's `seq_min`, then for each segment the byte its name is for (its
//! first seq), then for each segment but the last the length of its contents (two bytes,
//! little-endian, cut to what is left), then the contents one after another (the last segment
//! takes the rest). `Journal::open_with` and `replay` must return, never panic; a journal that
//! opened replays exactly the records it counted and takes a record after them.

use std::convert::Infallible;
use std::path::Path;

use huifu_journal::faulty::FaultyStorage;
use huifu_journal::{segment_file_name, Journal, JournalOptions, Storage, StorageFile};

/// A segment file: the seq it is named for, and its contents.
type Segment<'a> = (u64, &'a [u8]);

/// The `seq_min` and the segments described by `data` (see the module's documentation).
fn segments(data: &[u8]) -> Option<(u64, Vec<Segment<'_>>)> {
    let (&head, mut rest) = data.split_first()?;
    let count = usize::from(head & 0b11) + 1;
    let seq_min = u64::from(head >> 2);
    let (names, after) = rest.split_at_checked(count)?;
    rest = after;
    let mut lens = Vec::with_capacity(count);
    for _ in 1..count {
        let (len, after) = rest.split_first_chunk::<2>()?;
        lens.push(usize::from(u16::from_le_bytes(*len)));
        rest = after;
    }
    let mut segments = Vec::with_capacity(count);
    for (i, &name) in names.iter().enumerate() {
        let len = lens.get(i).copied().unwrap_or(rest.len()).min(rest.len());
        let (contents, after) = rest.split_at(len);
        segments.push((u64::from(name), contents));
        rest = after;
    }
    Some((seq_min, segments))
}

/// Writes `segments` into a fresh in-memory file system, durably.
fn storage(dir: &Path, segments: &[Segment<'_>]) -> FaultyStorage {
    let storage = FaultyStorage::new(0);
    storage.create_dir_all(dir).expect("in memory");
    for &(seq, contents) in segments {
        let mut file = storage.open_append(&dir.join(segment_file_name(seq))).expect("in memory");
        file.write_all(contents).expect("in memory");
        file.sync().expect("in memory");
    }
    storage.sync_dir(dir).expect("in memory");
    storage
}

pub fn run(data: &[u8]) {
    let Some((seq_min, segments)) = segments(data) else {
        return;
    };
    let dir = Path::new("/journal");
    let storage = storage(dir, &segments);
    let mut options = JournalOptions::new(dir);
    options.seq_min = seq_min;
    let Ok((mut journal, recovered)) = Journal::open_with(storage.clone(), options.clone()) else {
        return;
    };
    let mut seen = 0;
    let replayed = journal
        .replay(journal.first_seq(), |seq, _body| {
            assert_eq!(seq, journal_first(recovered) + seen, "replay out of order");
            seen += 1;
            Ok::<(), Infallible>(())
        })
        .expect("a journal that opened replays");
    assert_eq!(replayed, recovered.records, "replay and recovery disagree");

    // What recovery left is a journal: it takes a record, and opens again as it was plus it.
    let seq = journal.append(b"after recovery").expect("append after recovery");
    assert_eq!(seq, recovered.next_seq);
    journal.sync().expect("sync after recovery");
    drop(journal);
    let (mut journal, again) =
        Journal::open_with(storage, options).expect("a recovered journal opens again");
    assert_eq!(again.truncated_bytes, 0, "recovery left a torn tail");
    assert_eq!(again.next_seq, seq + 1);
    let mut last = None;
    journal
        .replay(seq, |seq, body| {
            last = Some((seq, body.to_vec()));
            Ok::<(), Infallible>(())
        })
        .expect("replay of the record appended");
    assert_eq!(last, Some((seq, b"after recovery".to_vec())));
}

/// The seq of the first record `recovered` counted.
fn journal_first(recovered: huifu_journal::Recovered) -> u64 {
    recovered.next_seq - recovered.records
}
