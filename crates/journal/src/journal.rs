//! The segmented journal: recovery on open, group commit, replay, and
//! deletion of segments covered by a snapshot.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::constants::{
    READ_INDEX_STRIDE, RECORD_BODY_SIZE_MAX, SEGMENT_FILE_PREFIX, SEGMENT_FILE_SEQ_DIGITS,
    SEGMENT_FILE_SUFFIX, SEGMENT_HEADER_SIZE, SEGMENT_SIZE_DEFAULT, WRITE_BUFFER_RETAIN_MAX,
};
use crate::error::{JournalError, ReplayError};
use crate::record::{self, to_u64, Next, RecordReader, SegmentHeader};
use crate::storage::{FileStorage, Storage, StorageFile};

/// How to open a journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalOptions {
    /// Directory holding the segment files; created if missing.
    pub dir: PathBuf,
    /// Rotate to a new segment file once the current one reaches this size.
    pub segment_size_max: u64,
    /// When false, `sync` writes but does not fsync (benchmarks only).
    pub fsync: bool,
    /// Sequence number to start at when the journal holds no records (the
    /// snapshot's next seq). A journal whose records end before it is an error.
    pub seq_min: u64,
}

impl JournalOptions {
    /// Defaults: 256 MiB segments, fsync on, numbering from 1.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        JournalOptions {
            dir: dir.into(),
            segment_size_max: SEGMENT_SIZE_DEFAULT,
            fsync: true,
            seq_min: 1,
        }
    }
}

/// What `open` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    /// Valid records found across all segments.
    pub records: u64,
    /// Bytes of torn tail cut off the last segment.
    pub truncated_bytes: u64,
    /// Sequence number the next append gets.
    pub next_seq: u64,
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    first_seq: u64,
    /// The salt of its records' checksums, from its header.
    salt: u64,
    /// Bytes handed to the file so far, its header included (all durable
    /// unless a sync is running or has failed).
    len: u64,
    /// The offset of every `READ_INDEX_STRIDE`-th record, from the first.
    index: Vec<u64>,
}

/// The records of one segment, read from a file of storage `S`.
type SegmentRecords<S> = RecordReader<std::io::Take<<S as Storage>::Reader>>;

impl Segment {
    fn new(path: PathBuf, first_seq: u64) -> Segment {
        Segment { path, first_seq, salt: 0, len: 0, index: Vec::new() }
    }

    /// Notes that record `seq` starts at `offset`.
    fn indexed(&mut self, seq: u64, offset: u64) {
        if (seq - self.first_seq).is_multiple_of(READ_INDEX_STRIDE) {
            self.index.push(offset);
        }
    }

    /// A reader of this segment's verified records from the nearest indexed record at or
    /// before `seq`, and that record's seq.
    fn records_from<S: Storage>(
        &self,
        storage: &S,
        seq: u64,
    ) -> Result<(u64, SegmentRecords<S>), JournalError> {
        let (first, offset) = self.read_start(seq);
        let reader = storage
            .open_read(&self.path, offset)
            .map_err(JournalError::io("open for reading", &self.path))?;
        // Bytes past the verified length are not ours to interpret.
        let reader = std::io::Read::take(reader, self.len - offset);
        Ok((first, RecordReader::new(reader, self.salt, offset)))
    }

    /// Where to start reading for record `seq` of this segment: the nearest indexed record at
    /// or before it, as (its seq, its offset).
    fn read_start(&self, seq: u64) -> (u64, u64) {
        let k = (seq - self.first_seq) / READ_INDEX_STRIDE;
        match self.index.get(usize::try_from(k).unwrap_or(usize::MAX)) {
            Some(&offset) => (self.first_seq + k * READ_INDEX_STRIDE, offset),
            None => match self.index.last() {
                Some(&offset) => {
                    let last = to_u64(self.index.len() - 1);
                    (self.first_seq + last * READ_INDEX_STRIDE, offset)
                }
                None => (self.first_seq, HEADER_LEN),
            },
        }
    }
}

/// Bytes of a segment header, as a file length.
const HEADER_LEN: u64 = SEGMENT_HEADER_SIZE as u64;

/// Append-only log of opaque records, split into segment files. See the crate
/// documentation for the on-disk format and durability contract.
pub struct Journal<S: Storage = FileStorage> {
    storage: S,
    options: JournalOptions,
    /// Ordered by `first_seq`; the last one is the one being appended to.
    segments: Vec<Segment>,
    /// Append handle of the last segment, if any.
    current: Option<S::File>,
    /// Framed records appended since the last sync (one group commit).
    buffer: Vec<u8>,
    pending_records: u64,
    /// The salt the records in `buffer` are framed with: the current segment's,
    /// and that of every segment this journal starts.
    salt: u64,
    next_seq: u64,
    poisoned: bool,
}

impl<S: Storage> fmt::Debug for Journal<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.options.dir)
            .field("segments", &self.segments.len())
            .field("next_seq", &self.next_seq)
            .field("pending_records", &self.pending_records)
            .field("poisoned", &self.poisoned)
            .finish()
    }
}

/// File name of the segment whose first record has sequence number `seq`.
pub fn segment_file_name(seq: u64) -> String {
    format!(
        "{SEGMENT_FILE_PREFIX}{seq:0width$}{SEGMENT_FILE_SUFFIX}",
        width = SEGMENT_FILE_SEQ_DIGITS
    )
}

fn parse_segment_file_name(name: &Path) -> Option<u64> {
    let digits =
        name.to_str()?.strip_prefix(SEGMENT_FILE_PREFIX)?.strip_suffix(SEGMENT_FILE_SUFFIX)?;
    if digits.len() != SEGMENT_FILE_SEQ_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl Journal<FileStorage> {
    /// Opens (creating the directory if missing) and verifies every record of
    /// every segment. A torn or corrupt record at the very tail of the last
    /// segment, with nothing valid after it, is truncated away with a warning;
    /// any other damage is [`JournalError::Corrupt`].
    pub fn open(options: JournalOptions) -> Result<(Journal, Recovered), JournalError> {
        Journal::open_with(FileStorage, options)
    }
}

impl<S: Storage> Journal<S> {
    /// Same as [`Journal::open`], over any [`Storage`].
    pub fn open_with(
        storage: S,
        options: JournalOptions,
    ) -> Result<(Journal<S>, Recovered), JournalError> {
        let dir = options.dir.clone();
        storage.create_dir_all(&dir).map_err(JournalError::io("create directory", &dir))?;
        let mut segments = list_segments(&storage, &dir)?;
        if let Some(last) = segments.last() {
            if torn_creation(&storage, last)? {
                // Its header was never fsynced, so no record was ever written after it.
                tracing::warn!(segment = %last.path.display(), "removing a segment whose creation was cut short");
                storage
                    .remove(&last.path)
                    .map_err(JournalError::io("remove torn segment", &last.path))?;
                segments.pop();
            }
        }

        let mut records = 0;
        let mut truncated_bytes = 0;
        let mut expected: Option<u64> = None;
        let last_index = segments.len().checked_sub(1);
        for (index, segment) in segments.iter_mut().enumerate() {
            let seq = *expected.get_or_insert(segment.first_seq);
            if segment.first_seq != seq {
                return Err(JournalError::corrupt(
                    &segment.path,
                    0,
                    format!(
                        "segment is named for seq {} but the previous segment ends before seq {seq}",
                        segment.first_seq
                    ),
                ));
            }
            let scan = scan_segment(&storage, segment, Some(index) == last_index)?;
            records += scan.records;
            truncated_bytes += scan.truncated_bytes;
            expected = Some(seq + scan.records);
        }

        // Only the last segment can hold records that were written but never
        // synced (e.g. the process died after a failed fsync). They are about
        // to be replayed and acted upon, so make them durable first. Likewise
        // its directory entry may never have been synced.
        let mut current = None;
        let mut salt = storage.entropy();
        if let Some(last) = segments.last() {
            if last.len == HEADER_LEN {
                // Carries no data; the next sync recreates it under the right name.
                storage
                    .remove(&last.path)
                    .map_err(JournalError::io("remove empty segment", &last.path))?;
                segments.pop();
            } else {
                let mut file = storage
                    .open_append(&last.path)
                    .map_err(JournalError::io("open for append", &last.path))?;
                let len = file.size().map_err(JournalError::io("stat", &last.path))?;
                if len != last.len {
                    return Err(JournalError::corrupt(
                        &last.path,
                        last.len,
                        format!("file is {len} bytes after recovery verified {} bytes", last.len),
                    ));
                }
                if options.fsync {
                    file.sync().map_err(JournalError::io("fsync", &last.path))?;
                }
                salt = last.salt;
                current = Some(file);
            }
        }
        if options.fsync {
            storage.sync_dir(&dir).map_err(JournalError::io("fsync directory", &dir))?;
        }

        let next_seq = match expected {
            Some(next) if records > 0 => {
                if next < options.seq_min {
                    return Err(JournalError::BehindSnapshot {
                        dir,
                        next_seq: next,
                        seq_min: options.seq_min,
                    });
                }
                next
            }
            _ => options.seq_min.max(1),
        };

        let journal = Journal {
            storage,
            options,
            segments,
            current,
            buffer: Vec::new(),
            pending_records: 0,
            salt,
            next_seq,
            poisoned: false,
        };
        Ok((journal, Recovered { records, truncated_bytes, next_seq }))
    }

    /// Calls `f(seq, body)` for every durable record with `seq >= from_seq`,
    /// in order, streaming one segment at a time. Records appended but not yet
    /// synced are not included. Returns the number of records passed to `f`.
    /// Asking for records already removed, or beyond the end, is an error.
    pub fn replay<E>(
        &mut self,
        from_seq: u64,
        mut f: impl FnMut(u64, &[u8]) -> Result<(), E>,
    ) -> Result<u64, ReplayError<E>> {
        let replayed = self.scan_from(from_seq, |seq, body| f(seq, body).map(|()| true))?;
        // The segment list and the files must agree on where the log ends.
        assert_eq!(from_seq + replayed, self.next_seq - self.pending_records, "replay ended early");
        Ok(replayed)
    }

    /// Calls `f(seq, body)` for the durable records from `from_seq` on, in order, until `f`
    /// returns `false` or the records end; returns how many it was called with. It starts
    /// reading near `from_seq` (see `READ_INDEX_STRIDE`), for a reader that asks for a few
    /// records at a time anywhere in the log, such as a replica catching up. Asking for records
    /// already removed, or beyond the end, is an error.
    pub fn read(
        &mut self,
        from_seq: u64,
        mut f: impl FnMut(u64, &[u8]) -> bool,
    ) -> Result<u64, JournalError> {
        self.scan_from(from_seq, |seq, body| Ok::<_, std::convert::Infallible>(f(seq, body)))
            .map_err(|e| match e {
                ReplayError::Journal(e) => e,
                ReplayError::Callback { error, .. } => match error {},
            })
    }

    /// Verifies and hands `f` the durable records from `from_seq` on until it answers
    /// `Ok(false)`, starting at the nearest indexed record of the segment that holds `from_seq`.
    fn scan_from<E>(
        &mut self,
        from_seq: u64,
        mut f: impl FnMut(u64, &[u8]) -> Result<bool, E>,
    ) -> Result<u64, ReplayError<E>> {
        // After a failed sync the tracked segment lengths may include bytes
        // of unknown fate; only a reopen knows what is really there.
        self.check_not_poisoned()?;
        let durable_next = self.next_seq - self.pending_records;
        let first_seq = self.first_seq();
        if from_seq < first_seq || from_seq > durable_next {
            return Err(self.unavailable(from_seq, durable_next).into());
        }
        // Skip segments whose successor starts at or before from_seq: all of
        // their records are older than requested.
        let start =
            self.segments.windows(2).take_while(|pair| pair[1].first_seq <= from_seq).count();
        let mut handed = 0;
        for segment in &self.segments[start..] {
            let (mut expected, mut records) =
                segment.records_from(&self.storage, from_seq.max(segment.first_seq))?;
            loop {
                let at = records.offset;
                match records.next().map_err(JournalError::io("read", &segment.path))? {
                    Next::End => break,
                    Next::Bad(reason) => {
                        return Err(JournalError::corrupt(&segment.path, at, reason).into());
                    }
                    Next::Record(h) if h.seq != expected => {
                        return Err(JournalError::corrupt(
                            &segment.path,
                            at,
                            format!("record has seq {}, expected {expected}", h.seq),
                        )
                        .into());
                    }
                    Next::Record(h) => {
                        expected += 1;
                        if h.seq >= from_seq {
                            handed += 1;
                            let go_on = f(h.seq, &records.body)
                                .map_err(|error| ReplayError::Callback { seq: h.seq, error })?;
                            if !go_on {
                                return Ok(handed);
                            }
                        }
                    }
                }
            }
            if records.offset != segment.len {
                return Err(JournalError::corrupt(
                    &segment.path,
                    records.offset,
                    format!("segment ended early, expected {} bytes", segment.len),
                )
                .into());
            }
        }
        Ok(handed)
    }

    /// Removes every record from `from_seq` on, durably, before anything is appended after
    /// them: a replicated log whose uncommitted tail a new leader replaces. Later segments go
    /// first, newest first, then the one holding `from_seq` is cut (or removed, when it starts
    /// there), so a crash at any point leaves a log without gaps. Only durable records can be
    /// removed: call it after `sync`. Returns how many records were removed; a `from_seq` at
    /// or past the end removes none.
    pub fn truncate_from(&mut self, from_seq: u64) -> Result<u64, JournalError> {
        self.check_not_poisoned()?;
        assert_eq!(self.pending_records, 0, "truncate_from with records not yet synced");
        let first_seq = self.first_seq();
        if from_seq >= self.next_seq {
            return Ok(0);
        }
        if from_seq < first_seq {
            return Err(self.unavailable(from_seq, self.next_seq));
        }
        let removed = self.next_seq - from_seq;
        if let Err(e) = self.cut_from(from_seq) {
            // Which files are gone and how long the cut one is are no longer known.
            self.poisoned = true;
            return Err(e);
        }
        self.next_seq = from_seq;
        Ok(removed)
    }

    /// Makes an empty journal go on at `seq` (a replica that installed a snapshot past the end
    /// of its log): the next record appended gets `seq`. Refused when records are held.
    pub fn start_at(&mut self, seq: u64) -> Result<(), JournalError> {
        self.check_not_poisoned()?;
        if !self.segments.is_empty() || self.pending_records > 0 || seq == 0 {
            return Err(self.unavailable(seq, self.next_seq));
        }
        self.next_seq = seq;
        Ok(())
    }

    fn cut_from(&mut self, from_seq: u64) -> Result<(), JournalError> {
        self.current = None;
        while self.segments.last().is_some_and(|s| s.first_seq >= from_seq) {
            let path = &self.segments.last().expect("checked").path;
            self.storage.remove(path).map_err(JournalError::io("remove segment", path))?;
            self.segments.pop();
        }
        if self.options.fsync {
            self.storage
                .sync_dir(&self.options.dir)
                .map_err(JournalError::io("fsync directory", &self.options.dir))?;
        }
        let Some(segment) = self.segments.last_mut() else {
            return Ok(());
        };
        let (mut seq, mut records) = segment.records_from(&self.storage, from_seq)?;
        let mut offset = records.offset;
        while seq < from_seq {
            match records.next().map_err(JournalError::io("read", &segment.path))? {
                Next::Record(h) if h.seq == seq => seq += 1,
                _ => {
                    return Err(JournalError::corrupt(
                        &segment.path,
                        records.offset,
                        format!("record {seq} expected while cutting the log from {from_seq}"),
                    ))
                }
            }
            offset = records.offset;
        }
        // Durable at once (`Storage::truncate`).
        self.storage
            .truncate(&segment.path, offset)
            .map_err(JournalError::io("truncate", &segment.path))?;
        segment.len = offset;
        let kept = (from_seq - segment.first_seq).div_ceil(READ_INDEX_STRIDE);
        segment.index.truncate(usize::try_from(kept).unwrap_or(usize::MAX));
        self.salt = segment.salt;
        self.current = Some(
            self.storage
                .open_append(&segment.path)
                .map_err(JournalError::io("open for append", &segment.path))?,
        );
        Ok(())
    }

    /// Appends one record to the in-memory write buffer and returns its
    /// sequence number. Nothing reaches the disk until [`Journal::sync`].
    pub fn append(&mut self, body: &[u8]) -> Result<u64, JournalError> {
        self.check_not_poisoned()?;
        if u32::try_from(body.len()).map_or(true, |len| len > RECORD_BODY_SIZE_MAX) {
            return Err(JournalError::BodyTooLarge { len: body.len(), max: RECORD_BODY_SIZE_MAX });
        }
        let seq = self.next_seq;
        // A group commit is bounded far below 2^32 records by the write buffer's size.
        let group_index = u32::try_from(self.pending_records).expect("group of under 2^32 records");
        record::encode(&mut self.buffer, self.salt, seq, group_index, body);
        self.next_seq = seq.checked_add(1).expect("sequence numbers exhausted");
        self.pending_records += 1;
        Ok(seq)
    }

    /// Group commit: writes everything appended since the last sync with one
    /// write per segment touched, then one fsync per segment touched (plus the
    /// directory when a segment was created). Only after this returns `Ok` are
    /// the appended records durable. After an error the journal is poisoned
    /// and refuses all further writes.
    pub fn sync(&mut self) -> Result<(), JournalError> {
        self.check_not_poisoned()?;
        if self.buffer.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.write_pending() {
            self.poisoned = true;
            return Err(e);
        }
        self.buffer.clear();
        if self.buffer.capacity() > WRITE_BUFFER_RETAIN_MAX {
            self.buffer.shrink_to(WRITE_BUFFER_RETAIN_MAX);
        }
        self.pending_records = 0;
        Ok(())
    }

    fn write_pending(&mut self) -> Result<(), JournalError> {
        let max = self.options.segment_size_max;
        let mut seq = self.next_seq - self.pending_records;
        let mut start = 0;
        let mut unsynced = false;
        let mut created = false;
        while start < self.buffer.len() {
            let first_len = to_u64(record::framed_len_at(&self.buffer, start));
            let rotate = match (&self.current, self.segments.last()) {
                (Some(_), Some(last)) => last.len > HEADER_LEN && last.len + first_len > max,
                _ => true,
            };
            if rotate {
                if unsynced {
                    // The old segment must be durable before records that
                    // follow it can be, or a crash could leave a gap.
                    self.sync_current()?;
                }
                self.start_segment(seq)?;
                created = true;
            }
            let segment = self.segments.last_mut().expect("a current segment");
            let file = self.current.as_mut().expect("a current segment");

            // Take whole records while they fit; the first always goes in,
            // so an oversized record sits alone in its own segment.
            let mut end = start + record::framed_len_at(&self.buffer, start);
            let mut count = 1;
            while end < self.buffer.len() {
                let len = record::framed_len_at(&self.buffer, end);
                if segment.len + to_u64(end - start + len) > max {
                    break;
                }
                end += len;
                count += 1;
            }
            file.write_all(&self.buffer[start..end])
                .map_err(JournalError::io("write", &segment.path))?;
            let mut at = start;
            for record_seq in seq..seq + count {
                segment.indexed(record_seq, segment.len + to_u64(at - start));
                at += record::framed_len_at(&self.buffer, at);
            }
            segment.len += to_u64(end - start);
            unsynced = true;
            seq += count;
            start = end;
        }
        assert_eq!(start, self.buffer.len());
        assert_eq!(seq, self.next_seq, "write buffer out of step with seq numbers");
        if unsynced {
            self.sync_current()?;
        }
        if created && self.options.fsync {
            self.storage
                .sync_dir(&self.options.dir)
                .map_err(JournalError::io("fsync directory", &self.options.dir))?;
        }
        Ok(())
    }

    fn sync_current(&mut self) -> Result<(), JournalError> {
        if !self.options.fsync {
            return Ok(());
        }
        let path = &self.segments.last().expect("a current segment").path;
        self.current
            .as_mut()
            .expect("a current segment")
            .sync()
            .map_err(JournalError::io("fsync", path))
    }

    /// Creates the segment whose first record is `first_seq`, its header durable before any
    /// record is written after it: a record on disk never lacks the salt to check it.
    fn start_segment(&mut self, first_seq: u64) -> Result<(), JournalError> {
        let path = self.options.dir.join(segment_file_name(first_seq));
        let mut file =
            self.storage.create(&path).map_err(JournalError::io("create segment", &path))?;
        let header = SegmentHeader { first_seq, salt: self.salt };
        file.write_all(&header.encode()).map_err(JournalError::io("write", &path))?;
        if self.options.fsync {
            file.sync().map_err(JournalError::io("fsync", &path))?;
        }
        self.current = Some(file);
        let mut segment = Segment::new(path, first_seq);
        segment.salt = self.salt;
        segment.len = HEADER_LEN;
        self.segments.push(segment);
        Ok(())
    }

    /// Sequence number the next append will get. Sequence numbers start at 1
    /// (or `seq_min`) and have no gaps.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Oldest sequence number still held, or `next_seq` when there is none.
    pub fn first_seq(&self) -> u64 {
        self.segments.first().map_or(self.next_seq - self.pending_records, |s| s.first_seq)
    }

    /// Call only once a snapshot covering every record below `seq` is durable:
    /// deletes whole segments all of whose records are below `seq`, never the
    /// current segment. Returns the bytes freed.
    pub fn remove_segments_before(&mut self, seq: u64) -> Result<u64, JournalError> {
        self.check_not_poisoned()?;
        let removable =
            self.segments.windows(2).take_while(|pair| pair[1].first_seq <= seq).count();
        let mut freed = 0;
        // Oldest first, so an interrupted removal still leaves a contiguous log; a segment
        // leaves the list only once its file is gone, so one that failed is tried again.
        for _ in 0..removable {
            let path = &self.segments[0].path;
            self.storage.remove(path).map_err(JournalError::io("remove segment", path))?;
            freed += self.segments.remove(0).len;
        }
        if removable > 0 && self.options.fsync {
            self.storage
                .sync_dir(&self.options.dir)
                .map_err(JournalError::io("fsync directory", &self.options.dir))?;
        }
        Ok(freed)
    }

    /// Total bytes of all segment files.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// The directory this journal lives in.
    pub fn dir(&self) -> &Path {
        &self.options.dir
    }

    /// The error of asking for `from_seq` where the journal holds `first_seq()..next_seq`.
    fn unavailable(&self, from_seq: u64, next_seq: u64) -> JournalError {
        JournalError::SeqUnavailable {
            dir: self.options.dir.clone(),
            from_seq,
            first_seq: self.first_seq(),
            next_seq,
        }
    }

    fn check_not_poisoned(&self) -> Result<(), JournalError> {
        if self.poisoned {
            Err(JournalError::Poisoned { dir: self.options.dir.clone() })
        } else {
            Ok(())
        }
    }
}

fn list_segments<S: Storage>(storage: &S, dir: &Path) -> Result<Vec<Segment>, JournalError> {
    let names = storage.list(dir).map_err(JournalError::io("list", dir))?;
    let mut segments = Vec::new();
    for name in names {
        match parse_segment_file_name(&name) {
            Some(0) => {
                return Err(JournalError::corrupt(
                    dir.join(&name),
                    0,
                    "segment named for seq 0; sequence numbers start at 1",
                ))
            }
            Some(first_seq) => segments.push(Segment::new(dir.join(name), first_seq)),
            None => {
                let looks_like_segment =
                    name.to_str().is_some_and(|n| n.starts_with(SEGMENT_FILE_PREFIX));
                if looks_like_segment {
                    tracing::warn!(file = %dir.join(&name).display(), "ignoring file with malformed segment name");
                }
            }
        }
    }
    segments.sort_by_key(|s| s.first_seq);
    Ok(segments)
}

/// Whether `segment` (the last) is one whose creation a crash cut short: a header that does
/// not verify, and nothing after it. The header is fsynced before any record is written, so
/// such a file never held a record.
fn torn_creation<S: Storage>(storage: &S, segment: &Segment) -> Result<bool, JournalError> {
    let path = &segment.path;
    let len = storage.file_len(path).map_err(JournalError::io("stat", path))?;
    if len > HEADER_LEN {
        return Ok(false);
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut storage.open_read(path, 0).map_err(JournalError::io("open for reading", path))?,
        &mut bytes,
    )
    .map_err(JournalError::io("read", path))?;
    Ok(SegmentHeader::decode(&bytes).is_err())
}

struct Scan {
    records: u64,
    truncated_bytes: u64,
}

/// Verifies one segment and sets its `len` to the verified length, cutting a
/// torn tail off the last segment.
fn scan_segment<S: Storage>(
    storage: &S,
    segment: &mut Segment,
    is_last: bool,
) -> Result<Scan, JournalError> {
    let path = &segment.path.clone();
    let mut reader =
        storage.open_read(path, 0).map_err(JournalError::io("open for reading", path))?;
    let mut header = [0u8; SEGMENT_HEADER_SIZE];
    let got =
        record::read_full(&mut reader, &mut header).map_err(JournalError::io("read", path))?;
    let header = SegmentHeader::decode(&header[..got])
        .map_err(|reason| JournalError::corrupt(path, 0, reason))?;
    if header.first_seq != segment.first_seq {
        return Err(JournalError::corrupt(
            path,
            0,
            format!(
                "segment header says seq {}, its name seq {}",
                header.first_seq, segment.first_seq
            ),
        ));
    }
    segment.salt = header.salt;
    let mut records = RecordReader::new(reader, header.salt, HEADER_LEN);
    let mut expected = segment.first_seq;
    loop {
        let offset = records.offset;
        match records.next().map_err(JournalError::io("read", path))? {
            Next::End => break,
            Next::Record(h) if h.seq != expected => {
                return Err(JournalError::corrupt(
                    path,
                    offset,
                    format!("record has seq {}, expected {expected}", h.seq),
                ));
            }
            Next::Record(_) => {
                segment.indexed(expected, offset);
                expected += 1;
            }
            Next::Bad(reason) if !is_last => {
                return Err(JournalError::corrupt(
                    path,
                    offset,
                    format!("{reason} (in a segment that is not the last)"),
                ));
            }
            Next::Bad(reason) => {
                let truncated_bytes =
                    truncate_torn_group(storage, path, offset, expected, header.salt, &reason)?;
                segment.len = offset;
                return Ok(Scan { records: expected - segment.first_seq, truncated_bytes });
            }
        }
    }
    segment.len = records.offset;
    Ok(Scan { records: expected - segment.first_seq, truncated_bytes: 0 })
}

/// Cuts the last segment at `offset`, where record `seq` should start but does not verify, if
/// the damage lies within the last group commit written: no group after it can have been
/// written (each group is fsynced before the next is), so the group was never acknowledged.
/// A crash inside a group's write can keep any subset of its pages (a volatile disk cache,
/// `data=writeback`), so records of that same group may still verify after the damage. A
/// record of a later group after the damage, though, means a group that was acknowledged is
/// damaged: that is corruption, never cut. The remainder is loaded whole: it is at most one
/// segment, and this path runs only after a crash.
fn truncate_torn_group<S: Storage>(
    storage: &S,
    path: &Path,
    offset: u64,
    seq: u64,
    salt: u64,
    reason: &str,
) -> Result<u64, JournalError> {
    let mut rest = Vec::new();
    std::io::Read::read_to_end(
        &mut storage.open_read(path, offset).map_err(JournalError::io("open for reading", path))?,
        &mut rest,
    )
    .map_err(JournalError::io("read", path))?;
    let found = record::valid_records(&rest, salt);
    for &(at, header) in &found {
        // The group of record `seq` starts at or before it; a record of that group has a
        // later seq and names a first record at or before `seq`.
        let same_group = header.seq >= seq && header.group_first_seq().is_some_and(|g| g <= seq);
        if !same_group {
            return Err(JournalError::corrupt(
                path,
                offset,
                format!(
                    "{reason}, yet record seq {} (of the group commit from seq {}) verifies at \
                     offset {}: a group written after the damaged one, so acknowledged records \
                     are damaged",
                    header.seq,
                    header.group_first_seq().map_or_else(|| "?".into(), |g| g.to_string()),
                    offset + to_u64(at)
                ),
            ));
        }
    }
    let truncated = to_u64(rest.len());
    tracing::warn!(
        segment = %path.display(),
        offset,
        seq,
        bytes = truncated,
        later_records_of_the_group = found.len(),
        reason,
        "cutting the torn last group commit off the journal (never acknowledged)"
    );
    storage.truncate(path, offset).map_err(JournalError::io("truncate", path))?;
    Ok(truncated)
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
