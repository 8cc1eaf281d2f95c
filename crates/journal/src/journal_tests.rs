use std::convert::Infallible;
use std::fs;
use std::io::Write;

use super::*;
use crate::constants::{RECORD_HEADER_SIZE, SEGMENT_HEADER_SIZE};
use crate::faulty::FaultyStorage;

fn options(dir: &Path) -> JournalOptions {
    JournalOptions::new(dir)
}

fn small_segments(dir: &Path, segment_size_max: u64) -> JournalOptions {
    JournalOptions { segment_size_max, ..JournalOptions::new(dir) }
}

fn body(seq: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| u8::try_from((seq.wrapping_mul(31) + to_u64(i)) % 256).unwrap()).collect()
}

fn replay_all<S: Storage>(journal: &mut Journal<S>, from_seq: u64) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let count = journal
        .replay(from_seq, |seq, body| {
            out.push((seq, body.to_vec()));
            Ok::<(), Infallible>(())
        })
        .unwrap();
    assert_eq!(count, to_u64(out.len()));
    out
}

/// Appends `count` records of `len` bytes, one sync per `per_sync`.
fn fill<S: Storage>(
    journal: &mut Journal<S>,
    count: u64,
    len: usize,
    per_sync: u64,
) -> Vec<(u64, Vec<u8>)> {
    let mut written = Vec::new();
    for i in 0..count {
        let seq = journal.next_seq();
        let b = body(seq, len);
        assert_eq!(journal.append(&b).unwrap(), seq);
        written.push((seq, b));
        if (i + 1) % per_sync == 0 {
            journal.sync().unwrap();
        }
    }
    journal.sync().unwrap();
    written
}

fn segment_paths(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    paths.sort();
    paths
}

fn expect_corrupt(result: Result<(Journal, Recovered), JournalError>) -> (PathBuf, u64, String) {
    match result {
        Err(JournalError::Corrupt { segment, offset, reason }) => (segment, offset, reason),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

fn framed(len: usize) -> u64 {
    to_u64(RECORD_HEADER_SIZE + len)
}

/// The salt of the segment file `bytes`.
fn salt_of(bytes: &[u8]) -> u64 {
    SegmentHeader::decode(bytes).unwrap().salt
}

#[test]
fn segment_names_sort_numerically() {
    assert_eq!(segment_file_name(1), "journal-00000000000000000001.log");
    assert!(segment_file_name(9) < segment_file_name(10));
    assert_eq!(parse_segment_file_name(Path::new(&segment_file_name(u64::MAX))), Some(u64::MAX));
    assert_eq!(parse_segment_file_name(Path::new("journal-1.log")), None);
    assert_eq!(parse_segment_file_name(Path::new("other.log")), None);
}

#[test]
fn append_sync_reopen_replay_roundtrip() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, recovered) = Journal::open(options(dir.path())).unwrap();
    assert_eq!(recovered, Recovered { records: 0, truncated_bytes: 0, next_seq: 1 });
    let mut written = fill(&mut journal, 50, 1000, 7);
    // Empty and one large body too.
    for b in [Vec::new(), body(0, 1 << 20)] {
        let seq = journal.append(&b).unwrap();
        written.push((seq, b));
    }
    journal.sync().unwrap();
    assert_eq!(journal.next_seq(), 53);
    assert_eq!(replay_all(&mut journal, 1), written);
    let size = journal.size_bytes();
    assert_eq!(size, HEADER_LEN + written.iter().map(|(_, b)| framed(b.len())).sum::<u64>());
    drop(journal);

    let (mut journal, recovered) = Journal::open(options(dir.path())).unwrap();
    assert_eq!(recovered, Recovered { records: 52, truncated_bytes: 0, next_seq: 53 });
    assert_eq!(journal.size_bytes(), size);
    assert_eq!(replay_all(&mut journal, 1), written);

    // Appending after reopen continues the same segment and numbering.
    assert_eq!(journal.append(b"more").unwrap(), 53);
    journal.sync().unwrap();
    assert_eq!(journal.segment_count(), 1);
    drop(journal);
    let (mut journal, _) = Journal::open(options(dir.path())).unwrap();
    assert_eq!(replay_all(&mut journal, 53), vec![(53, b"more".to_vec())]);
}

#[test]
fn unsynced_appends_are_not_replayed_or_written() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _) = Journal::open(options(dir.path())).unwrap();
    fill(&mut journal, 3, 10, 1);
    journal.append(b"pending").unwrap();
    assert_eq!(journal.next_seq(), 5);
    assert_eq!(replay_all(&mut journal, 1).len(), 3);
    drop(journal);
    let (_, recovered) = Journal::open(options(dir.path())).unwrap();
    assert_eq!(recovered.next_seq, 4);
}

#[test]
fn rotation_across_segments_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let max = HEADER_LEN + 1000;
    let (mut journal, _) = Journal::open(small_segments(dir.path(), max)).unwrap();
    // 100-byte bodies are 124 bytes framed: 8 fit in a segment of 1,000 bytes and a header.
    let mut written = fill(&mut journal, 40, 100, 3);
    // An oversized record goes alone into its own segment.
    let seq = journal.append(&body(99, 5000)).unwrap();
    written.push((seq, body(99, 5000)));
    written.extend(fill(&mut journal, 2, 100, 2));

    let paths = segment_paths(dir.path());
    assert_eq!(paths.len(), journal.segment_count());
    assert_eq!(paths.len(), 7, "{paths:?}");
    assert_eq!(paths[0].file_name().unwrap(), "journal-00000000000000000001.log");
    assert_eq!(paths[1].file_name().unwrap(), "journal-00000000000000000009.log");
    for path in &paths[..5] {
        assert_eq!(fs::metadata(path).unwrap().len(), HEADER_LEN + 8 * framed(100));
    }
    assert_eq!(paths[5].file_name().unwrap(), segment_file_name(41).as_str());
    assert_eq!(fs::metadata(&paths[5]).unwrap().len(), HEADER_LEN + framed(5000));
    for path in &paths {
        assert!(fs::metadata(path).unwrap().len() <= max || path == &paths[5]);
    }

    assert_eq!(replay_all(&mut journal, 1), written);
    drop(journal);
    let (mut journal, recovered) = Journal::open(small_segments(dir.path(), max)).unwrap();
    assert_eq!(recovered.records, 43);
    assert_eq!(replay_all(&mut journal, 1), written);
}

#[test]
fn group_split_across_rotation_is_replayed_whole() {
    let dir = tempfile::tempdir().unwrap();
    let max = HEADER_LEN + 10 * framed(50);
    let (mut journal, _) = Journal::open(small_segments(dir.path(), max)).unwrap();
    // One sync of 25 records spans three segments.
    let written = fill(&mut journal, 25, 50, 1000);
    assert_eq!(journal.segment_count(), 3);
    drop(journal);
    let (mut journal, _) = Journal::open(small_segments(dir.path(), max)).unwrap();
    assert_eq!(replay_all(&mut journal, 1), written);
}

#[test]
fn replay_from_seq_skips_earlier() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _) = Journal::open(small_segments(dir.path(), 500)).unwrap();
    let written = fill(&mut journal, 30, 60, 4);
    assert!(journal.segment_count() > 3);
    for from in [1, 2, 6, 7, 17, 30] {
        let got = replay_all(&mut journal, from);
        assert_eq!(got, written[usize::try_from(from - 1).unwrap()..], "from {from}");
    }
    assert!(replay_all(&mut journal, 31).is_empty());
    assert!(matches!(
        journal.replay(32, |_, _| Ok::<(), Infallible>(())),
        Err(ReplayError::Journal(JournalError::SeqUnavailable { .. }))
    ));
    // The callback's own error stops replay and names the seq.
    let result = journal.replay(5, |seq, _| if seq == 8 { Err("stop") } else { Ok(()) });
    assert!(matches!(result, Err(ReplayError::Callback { seq: 8, error: "stop" })));
}

#[test]
fn remove_segments_before_deletes_only_covered_segments() {
    let dir = tempfile::tempdir().unwrap();
    let segment = HEADER_LEN + 4 * framed(100);
    let opts = small_segments(dir.path(), segment);
    let (mut journal, _) = Journal::open(opts.clone()).unwrap();
    let written = fill(&mut journal, 18, 100, 1);
    // Segments start at 1, 5, 9, 13, 17.
    assert_eq!(journal.segment_count(), 5);
    let total = journal.size_bytes();

    // Seq 8 is still needed, so segment 5..=8 stays.
    assert_eq!(journal.remove_segments_before(8).unwrap(), segment);
    assert_eq!(journal.first_seq(), 5);
    assert_eq!(segment_paths(dir.path()).len(), 4);
    assert_eq!(journal.remove_segments_before(9).unwrap(), segment);
    assert_eq!(journal.first_seq(), 9);
    // Never the current segment, even when everything is covered.
    assert_eq!(journal.remove_segments_before(1000).unwrap(), 2 * segment);
    assert_eq!(journal.segment_count(), 1);
    assert_eq!(journal.size_bytes(), total - 4 * segment);
    assert_eq!(replay_all(&mut journal, 17), written[16..]);
    drop(journal);

    let (mut journal, recovered) = Journal::open(opts).unwrap();
    assert_eq!(recovered.records, 2);
    assert_eq!(recovered.next_seq, 19);
    assert_eq!(replay_all(&mut journal, 17), written[16..]);
    assert!(matches!(
        journal.replay(3, |_, _| Ok::<(), Infallible>(())),
        Err(ReplayError::Journal(JournalError::SeqUnavailable { first_seq: 17, .. }))
    ));
}

#[test]
fn torn_tail_is_truncated_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _) = Journal::open(options(dir.path())).unwrap();
    let written = fill(&mut journal, 5, 200, 1);
    drop(journal);
    let path = segment_paths(dir.path()).pop().unwrap();
    let full = fs::metadata(&path).unwrap().len();

    // Cut the last record short by a few bytes.
    fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(full - 3).unwrap();
    let (mut journal, recovered) = Journal::open(options(dir.path())).unwrap();
    assert_eq!(recovered, Recovered { records: 4, truncated_bytes: framed(200) - 3, next_seq: 5 });
    assert_eq!(fs::metadata(&path).unwrap().len(), HEADER_LEN + 4 * framed(200));
    assert_eq!(journal.append(b"replacement").unwrap(), 5);
    journal.sync().unwrap();
    drop(journal);

    // Garbage after the last valid record.
    fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"\x00\xffHFJ1 not a record at all")
        .unwrap();
    let (mut journal, recovered) = Journal::open(options(dir.path())).unwrap();
    assert_eq!(recovered.records, 5);
    assert_eq!(recovered.truncated_bytes, 26);
    let mut expected = written[..4].to_vec();
    expected.push((5, b"replacement".to_vec()));
    assert_eq!(replay_all(&mut journal, 1), expected);
    assert_eq!(journal.append(b"next").unwrap(), 6);
    journal.sync().unwrap();
}

#[test]
fn torn_tail_in_last_segment_only_keeps_earlier_segments() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small_segments(dir.path(), HEADER_LEN + 2 * framed(100));
    let (mut journal, _) = Journal::open(opts.clone()).unwrap();
    let written = fill(&mut journal, 5, 100, 1);
    drop(journal);
    // The last segment holds only record 5; tearing it empties the segment.
    let last = segment_paths(dir.path()).pop().unwrap();
    assert_eq!(last.file_name().unwrap(), segment_file_name(5).as_str());
    fs::OpenOptions::new().write(true).open(&last).unwrap().set_len(HEADER_LEN + 10).unwrap();
    let (mut journal, recovered) = Journal::open(opts).unwrap();
    assert_eq!((recovered.records, recovered.next_seq), (4, 5));
    assert!(!last.exists(), "empty segment is removed");
    assert_eq!(replay_all(&mut journal, 1), written[..4]);
    assert_eq!(journal.append(b"x").unwrap(), 5);
    journal.sync().unwrap();
    assert!(last.exists());
}

#[test]
fn mid_log_corruption_in_last_segment_is_error() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _) = Journal::open(options(dir.path())).unwrap();
    fill(&mut journal, 6, 100, 2);
    drop(journal);
    let path = segment_paths(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&path).unwrap();
    // A body byte of record 2 (offset of record 2 is one framed record in).
    let record_offset = HEADER_LEN + framed(100);
    bytes[usize::try_from(record_offset).unwrap() + RECORD_HEADER_SIZE + 50] ^= 0x04;
    fs::write(&path, &bytes).unwrap();

    let (segment, offset, reason) = expect_corrupt(Journal::open(options(dir.path())));
    assert_eq!(segment, path);
    assert_eq!(offset, record_offset);
    assert!(reason.contains("checksum"), "{reason}");
    assert!(reason.contains("seq 3 (of the group commit from seq 3)"), "{reason}");
    assert!(reason.contains("acknowledged records are damaged"), "{reason}");
    // Nothing was truncated.
    assert_eq!(fs::read(&path).unwrap(), bytes);
}

#[test]
fn corrupt_header_mid_log_is_error() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _) = Journal::open(options(dir.path())).unwrap();
    fill(&mut journal, 3, 100, 1);
    drop(journal);
    let path = segment_paths(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&path).unwrap();
    // Inflate the length of record 1 so it swallows its successors.
    bytes[SEGMENT_HEADER_SIZE + 5] = 0x10;
    fs::write(&path, &bytes).unwrap();
    let (segment, offset, _) = expect_corrupt(Journal::open(options(dir.path())));
    assert_eq!((segment, offset), (path, HEADER_LEN));
}

#[test]
fn corruption_in_earlier_segment_is_error() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small_segments(dir.path(), HEADER_LEN + 3 * framed(100));
    let (mut journal, _) = Journal::open(opts.clone()).unwrap();
    fill(&mut journal, 9, 100, 1);
    drop(journal);
    let paths = segment_paths(dir.path());
    assert_eq!(paths.len(), 3);
    // Even the very last record of a non-last segment is committed data.
    let mut bytes = fs::read(&paths[1]).unwrap();
    let last_record = HEADER_LEN + 2 * framed(100);
    let len = bytes.len();
    bytes[len - 1] ^= 0x80;
    fs::write(&paths[1], &bytes).unwrap();

    let (segment, offset, reason) = expect_corrupt(Journal::open(opts));
    assert_eq!(segment, paths[1]);
    assert_eq!(offset, last_record);
    assert!(reason.contains("not the last"), "{reason}");
}

#[test]
fn missing_middle_segment_is_error() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small_segments(dir.path(), HEADER_LEN + 2 * framed(10));
    let (mut journal, _) = Journal::open(opts.clone()).unwrap();
    fill(&mut journal, 6, 10, 1);
    drop(journal);
    let paths = segment_paths(dir.path());
    fs::remove_file(&paths[1]).unwrap();
    let (segment, offset, reason) = expect_corrupt(Journal::open(opts));
    assert_eq!((segment, offset), (paths[2].clone(), 0));
    assert!(reason.contains("previous segment"), "{reason}");
}

#[test]
fn sequence_regression_is_error() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _) = Journal::open(options(dir.path())).unwrap();
    fill(&mut journal, 2, 10, 1);
    drop(journal);
    // A validly framed record with a repeated seq, followed by a valid one.
    let path = segment_paths(dir.path()).pop().unwrap();
    let salt = salt_of(&fs::read(&path).unwrap());
    let mut extra = Vec::new();
    record::encode(&mut extra, salt, 2, 0, b"dup");
    record::encode(&mut extra, salt, 3, 0, b"ok");
    fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(&extra).unwrap();
    let (segment, offset, reason) = expect_corrupt(Journal::open(options(dir.path())));
    assert_eq!((segment, offset), (path, HEADER_LEN + 2 * framed(10)));
    assert!(reason.contains("expected 3"), "{reason}");
}

#[test]
fn body_too_large_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _) = Journal::open(options(dir.path())).unwrap();
    let max = usize::try_from(RECORD_BODY_SIZE_MAX).unwrap();
    let big = vec![0u8; max + 1];
    assert!(matches!(
        journal.append(&big),
        Err(JournalError::BodyTooLarge { len, .. }) if len == max + 1
    ));
    // Rejection consumes no sequence number and does not poison.
    assert_eq!(journal.next_seq(), 1);
    assert_eq!(journal.append(&big[..max]).unwrap(), 1);
    journal.sync().unwrap();
}

#[test]
fn sync_failure_poisons_the_journal() {
    let storage = FaultyStorage::new(1);
    let (mut journal, _) = Journal::open_with(storage.clone(), options(Path::new("/j"))).unwrap();
    journal.append(b"a").unwrap();
    journal.sync().unwrap();
    journal.append(b"b").unwrap();
    storage.set_fail_after(Some(1)); // the write succeeds, the fsync fails
    assert!(matches!(journal.sync(), Err(JournalError::Io { op: "fsync", .. })));
    storage.set_fail_after(None);
    assert!(matches!(journal.append(b"c"), Err(JournalError::Poisoned { .. })));
    assert!(matches!(journal.sync(), Err(JournalError::Poisoned { .. })));
    assert!(matches!(journal.remove_segments_before(2), Err(JournalError::Poisoned { .. })));
    assert!(matches!(
        journal.replay(1, |_, _| Ok::<(), Infallible>(())),
        Err(ReplayError::Journal(JournalError::Poisoned { .. }))
    ));
    drop(journal);

    // Reopening re-verifies and may keep the unacknowledged record.
    let (mut journal, recovered) = Journal::open_with(storage, options(Path::new("/j"))).unwrap();
    assert_eq!(recovered.next_seq, 3);
    assert_eq!(journal.append(b"c").unwrap(), 3);
}

#[test]
fn crash_loses_only_unsynced_records() {
    let storage = FaultyStorage::new(2);
    let opts = small_segments(Path::new("/j"), 300);
    let (mut journal, _) = Journal::open_with(storage.clone(), opts.clone()).unwrap();
    let written = fill(&mut journal, 10, 50, 3);
    for i in 0..5 {
        journal.append(&body(100 + i, 50)).unwrap();
    }
    storage.crash();
    drop(journal);
    let (mut journal, recovered) = Journal::open_with(storage, opts).unwrap();
    assert_eq!(recovered.next_seq, 11);
    assert_eq!(replay_all(&mut journal, 1), written);
}

#[test]
fn seq_min_starts_an_empty_journal_and_detects_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions { seq_min: 100, ..options(dir.path()) };
    let (mut journal, recovered) = Journal::open(opts.clone()).unwrap();
    assert_eq!(recovered.next_seq, 100);
    assert_eq!(journal.first_seq(), 100);
    assert!(replay_all(&mut journal, 100).is_empty());
    assert_eq!(journal.append(b"x").unwrap(), 100);
    journal.sync().unwrap();
    drop(journal);
    assert_eq!(segment_paths(dir.path())[0].file_name().unwrap(), segment_file_name(100).as_str());

    // A snapshot older than the journal's end is fine.
    let (mut journal, recovered) = Journal::open(opts).unwrap();
    assert_eq!(recovered.next_seq, 101);
    assert_eq!(replay_all(&mut journal, 100), vec![(100, b"x".to_vec())]);
    drop(journal);

    // One ahead of the journal's end is fine too: nothing to replay.
    let ahead = JournalOptions { seq_min: 101, ..options(dir.path()) };
    assert_eq!(Journal::open(ahead).unwrap().1.next_seq, 101);

    // Further ahead means records between journal and snapshot are missing.
    let behind = JournalOptions { seq_min: 102, ..options(dir.path()) };
    assert!(matches!(
        Journal::open(behind),
        Err(JournalError::BehindSnapshot { next_seq: 101, seq_min: 102, .. })
    ));

    // seq_min 0 still numbers from 1.
    let dir = tempfile::tempdir().unwrap();
    let zero = JournalOptions { seq_min: 0, ..options(dir.path()) };
    assert_eq!(Journal::open(zero).unwrap().1.next_seq, 1);
}

#[test]
fn without_fsync_records_are_still_written() {
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions { fsync: false, ..small_segments(dir.path(), 256) };
    let (mut journal, _) = Journal::open(opts.clone()).unwrap();
    let written = fill(&mut journal, 20, 40, 3);
    drop(journal);
    let (mut journal, _) = Journal::open(opts).unwrap();
    assert_eq!(replay_all(&mut journal, 1), written);
}

#[test]
fn foreign_files_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("README"), b"hello").unwrap();
    fs::write(dir.path().join("journal-12.log"), b"odd name").unwrap();
    let (mut journal, recovered) = Journal::open(options(dir.path())).unwrap();
    assert_eq!(recovered.records, 0);
    assert_eq!(journal.append(b"a").unwrap(), 1);
}

/// Writes `groups` group commits of `per_group` records of `len` bytes.
fn groups(journal: &mut Journal, count: u64, per_group: u64, len: usize) -> Vec<(u64, Vec<u8>)> {
    fill(journal, count * per_group, len, per_group)
}

#[test]
fn damage_within_the_last_group_is_cut_even_with_its_later_records_intact() {
    // A power cut inside the last group's write kept some of its pages and not others: a
    // record in the middle of the group is zeros, the records after it verify.
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _) = Journal::open(options(dir.path())).unwrap();
    let written = groups(&mut journal, 3, 4, 100);
    drop(journal);
    let path = segment_paths(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&path).unwrap();
    // Record 10 is the second of the last group (9..=12).
    let at = usize::try_from(HEADER_LEN + 9 * framed(100)).unwrap();
    bytes[at..at + usize::try_from(framed(100)).unwrap()].fill(0);
    fs::write(&path, &bytes).unwrap();

    let (mut journal, recovered) = Journal::open(options(dir.path())).unwrap();
    assert_eq!(recovered.next_seq, 10);
    assert_eq!(recovered.truncated_bytes, 3 * framed(100));
    assert_eq!(replay_all(&mut journal, 1), written[..9]);
}

#[test]
fn damage_to_the_first_record_of_the_last_group_is_cut_too() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _) = Journal::open(options(dir.path())).unwrap();
    let written = groups(&mut journal, 2, 3, 50);
    drop(journal);
    let path = segment_paths(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&path).unwrap();
    let at = usize::try_from(HEADER_LEN + 3 * framed(50)).unwrap();
    bytes[at + 3] ^= 0x40; // the magic of record 4
    fs::write(&path, &bytes).unwrap();
    let (mut journal, recovered) = Journal::open(options(dir.path())).unwrap();
    assert_eq!(recovered.next_seq, 4);
    assert_eq!(replay_all(&mut journal, 1), written[..3]);
}

#[test]
fn a_group_split_by_rotation_is_cut_only_in_its_last_segment() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small_segments(dir.path(), HEADER_LEN + 4 * framed(50));
    let (mut journal, _) = Journal::open(opts.clone()).unwrap();
    // Records 1..=2 one group, then 3..=8 one group across two segments.
    let mut written = fill(&mut journal, 2, 50, 2);
    written.extend(fill(&mut journal, 6, 50, 6));
    drop(journal);
    let paths = segment_paths(dir.path());
    assert_eq!(paths.len(), 2);
    let mut bytes = fs::read(&paths[1]).unwrap();
    // Record 5 (first of the second segment) is lost, 6..=8 verify.
    bytes[SEGMENT_HEADER_SIZE..SEGMENT_HEADER_SIZE + 24].fill(0);
    fs::write(&paths[1], &bytes).unwrap();
    let (mut journal, recovered) = Journal::open(opts).unwrap();
    assert_eq!(recovered.next_seq, 5);
    assert_eq!(replay_all(&mut journal, 1), written[..4]);
}

#[test]
fn a_frame_hidden_in_a_record_body_cannot_fake_corruption() {
    // A client's bytes inside a record that ends up torn: a well-formed frame of a far later
    // seq. Without the segment's salt it is noise, so the tear is cut as usual.
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _) = Journal::open(options(dir.path())).unwrap();
    let written = fill(&mut journal, 2, 40, 1);
    let mut crafted = vec![0u8; 8];
    record::encode(&mut crafted, 0, 1_000, 0, b"evil");
    crafted.extend_from_slice(&[0u8; 64]);
    journal.append(&crafted).unwrap();
    journal.sync().unwrap();
    drop(journal);
    let path = segment_paths(dir.path()).pop().unwrap();
    let len = fs::metadata(&path).unwrap().len();
    // Tear the last record's checksum-covered header so the crafted frame is all that is left.
    let mut bytes = fs::read(&path).unwrap();
    let at = usize::try_from(HEADER_LEN + 2 * framed(40)).unwrap();
    bytes[at + 9] ^= 0x01;
    fs::write(&path, &bytes).unwrap();
    let (mut journal, recovered) = Journal::open(options(dir.path())).unwrap();
    assert_eq!(recovered.next_seq, 3);
    assert_eq!(recovered.truncated_bytes, len - HEADER_LEN - 2 * framed(40));
    assert_eq!(replay_all(&mut journal, 1), written);
}

#[test]
fn a_segment_whose_header_never_became_durable_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small_segments(dir.path(), HEADER_LEN + 2 * framed(10));
    let (mut journal, _) = Journal::open(opts.clone()).unwrap();
    let written = fill(&mut journal, 4, 10, 1);
    drop(journal);
    // A crash while creating the segment of seq 5: its header is torn, nothing after it.
    let torn = dir.path().join(segment_file_name(5));
    fs::write(&torn, [0x48, 0x46, 0x4a, 0x53, 0x02, 0x00]).unwrap();
    let (mut journal, recovered) = Journal::open(opts.clone()).unwrap();
    assert_eq!(recovered.next_seq, 5);
    assert!(!torn.exists());
    assert_eq!(replay_all(&mut journal, 1), written);
    drop(journal);
    // A bad header with records after it is corruption, not a torn creation.
    let first = segment_paths(dir.path())[0].clone();
    let mut bytes = fs::read(&first).unwrap();
    bytes[10] ^= 0x01;
    fs::write(&first, &bytes).unwrap();
    let (segment, offset, reason) = expect_corrupt(Journal::open(opts));
    assert_eq!((segment, offset), (first, 0));
    assert!(reason.contains("segment header checksum"), "{reason}");
}

#[test]
fn a_segment_of_the_previous_format_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut old = b"HFJ1".to_vec();
    old.resize(200, 0);
    fs::write(dir.path().join(segment_file_name(1)), &old).unwrap();
    let (_, _, reason) = expect_corrupt(Journal::open(options(dir.path())));
    assert!(reason.contains("journal format 1"), "{reason}");
}

#[test]
fn a_failed_segment_removal_is_tried_again() {
    let storage = FaultyStorage::new(3);
    let opts = small_segments(Path::new("/j"), HEADER_LEN + 2 * framed(10));
    let (mut journal, _) = Journal::open_with(storage.clone(), opts).unwrap();
    fill(&mut journal, 8, 10, 1);
    assert_eq!(journal.segment_count(), 4);
    // The second removal fails: the segment that was not removed stays known.
    let second = PathBuf::from("/j").join(segment_file_name(3));
    storage.remove(&second).unwrap(); // gone behind the journal's back: its removal fails
    assert!(journal.remove_segments_before(7).is_err());
    assert_eq!(journal.first_seq(), 3, "the first segment is gone, the rest are known");
}

/// Reads `max` records from `from_seq` with `Journal::read`.
fn read_some<S: Storage>(
    journal: &mut Journal<S>,
    from_seq: u64,
    max: usize,
) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let count = journal
        .read(from_seq, |seq, body| {
            out.push((seq, body.to_vec()));
            out.len() < max
        })
        .unwrap();
    assert_eq!(count, to_u64(out.len()));
    out
}

#[test]
fn read_starts_anywhere_and_stops_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    // Segments of a few hundred records each, so reads cross indexed records and segments.
    let (mut journal, _) = Journal::open(small_segments(dir.path(), 16 << 10)).unwrap();
    let written = fill(&mut journal, 1_000, 40, 7);
    assert!(journal.segment_count() > 2);
    for from in [1, 2, 63, 64, 65, 128, 300, 777, 999, 1_000] {
        let i = usize::try_from(from - 1).unwrap();
        assert_eq!(read_some(&mut journal, from, 10), written[i..(i + 10).min(1_000)], "{from}");
    }
    assert_eq!(read_some(&mut journal, 1, usize::MAX), written);
    assert!(read_some(&mut journal, 1_001, 5).is_empty());
    assert!(matches!(journal.read(1_002, |_, _| true), Err(JournalError::SeqUnavailable { .. })));
    // The same after a reopen, whose scan built the index.
    drop(journal);
    let (mut journal, _) = Journal::open(small_segments(dir.path(), 16 << 10)).unwrap();
    assert_eq!(read_some(&mut journal, 700, 100), written[699..799]);
}

#[test]
fn truncate_from_removes_the_tail_for_good_and_appends_continue_there() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small_segments(dir.path(), 16 << 10);
    let (mut journal, _) = Journal::open(opts.clone()).unwrap();
    let mut written = fill(&mut journal, 1_000, 40, 5);
    let starts: Vec<u64> = journal.segments.iter().map(|s| s.first_seq).collect();
    assert!(starts.len() > 3);

    // Inside a segment, with later segments.
    assert_eq!(journal.truncate_from(500).unwrap(), 501);
    written.truncate(499);
    assert_eq!(journal.next_seq(), 500);
    assert_eq!(replay_all(&mut journal, 1), written);
    written.extend(fill(&mut journal, 30, 40, 4));
    assert_eq!(replay_all(&mut journal, 1), written);

    // Exactly at a segment's first record: that segment goes whole.
    let start = journal.segments[1].first_seq;
    journal.truncate_from(start).unwrap();
    written.truncate(usize::try_from(start - 1).unwrap());
    assert_eq!(journal.segment_count(), 1);
    written.extend(fill(&mut journal, 3, 40, 1));

    // Nothing past the end; nothing before the start.
    assert_eq!(journal.truncate_from(journal.next_seq()).unwrap(), 0);
    drop(journal);
    let (mut journal, recovered) = Journal::open(opts.clone()).unwrap();
    assert_eq!(recovered.next_seq, to_u64(written.len()) + 1);
    assert_eq!(replay_all(&mut journal, 1), written);

    // Everything.
    journal.truncate_from(1).unwrap();
    assert_eq!((journal.segment_count(), journal.next_seq()), (0, 1));
    let again = fill(&mut journal, 10, 40, 3);
    drop(journal);
    let (mut journal, _) = Journal::open(opts).unwrap();
    assert_eq!(replay_all(&mut journal, 1), again);
}

#[test]
fn truncated_records_stay_gone_after_a_power_cut() {
    let storage = FaultyStorage::new(3);
    let opts = small_segments(Path::new("/j"), 4 << 10);
    for cut_at in [7u64, 40, 120] {
        let (mut journal, _) = Journal::open_with(storage.clone(), opts.clone()).unwrap();
        journal.truncate_from(1).unwrap();
        let mut written = fill(&mut journal, 150, 40, 9);
        journal.truncate_from(cut_at).unwrap();
        written.truncate(usize::try_from(cut_at - 1).unwrap());
        // Unsynced records written over the cut place, then the power goes.
        for i in 0..3 {
            journal.append(&body(cut_at + i, 17)).unwrap();
        }
        drop(journal);
        storage.crash();
        let (mut journal, _) = Journal::open_with(storage.clone(), opts.clone()).unwrap();
        assert_eq!(replay_all(&mut journal, 1), written, "cut at {cut_at}");
    }
}

#[test]
fn an_empty_journal_starts_where_it_is_told_and_reopens_there() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _) = Journal::open(options(dir.path())).unwrap();
    fill(&mut journal, 5, 10, 5);
    assert!(journal.start_at(100).is_err(), "records are held");
    journal.truncate_from(1).unwrap();
    journal.start_at(100).unwrap();
    let written = fill(&mut journal, 3, 10, 3);
    assert_eq!(written[0].0, 100);
    drop(journal);
    let (mut journal, recovered) =
        Journal::open(JournalOptions { seq_min: 100, ..options(dir.path()) }).unwrap();
    assert_eq!(recovered.next_seq, 103);
    assert_eq!(replay_all(&mut journal, 100), written);
}
