//! The engine: one writer thread applies commands in order, journals them, group-commits.

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use huifu_journal::{FileStorage, Journal, JournalError, JournalOptions, ReplayError, Storage};
use huifu_journal::{SnapshotReader, SnapshotWriter};

use crate::failure::Failure;
use crate::stats::EngineStats;

use crate::constants::{
    CHECKPOINT_INTERVAL_BYTES_DEFAULT, GROUP_EVENTS_MAX, GROUP_REQUESTS_MAX, QUEUE_REQUESTS_MAX,
    TICK_INTERVAL_MS,
};
use crate::machine::{DecodeError, Machine};

/// Where time comes from: the engine is the edge that reads the clock, so tests can drive it.
pub trait Clock: Send + 'static {
    /// Nanoseconds since the Unix epoch.
    fn now_ns(&self) -> u64;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ns(&self) -> u64 {
        let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
    }
}

#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Holds `journal/`, the checkpoints (`checkpoint-<seq>.snap`) and the lock file.
    pub data_dir: PathBuf,
    /// When false, nothing is fsynced: a crash can lose acknowledged work. Benchmarks only.
    pub fsync: bool,
    /// Write a checkpoint once this many journal bytes were written since the last one.
    pub checkpoint_interval_bytes: u64,
    /// Size at which the journal starts a new segment.
    pub segment_size_max: u64,
    /// Bound on the history the machine keeps in memory (see `Machine::open_history`); the rest
    /// goes to the history store in `history/`. `None`: everything stays in memory.
    pub memory_max: Option<usize>,
    /// Whether the engine journals its commands (the default). `false` when the commands come
    /// from a log that made them durable before they reach the engine (a replicated log): then
    /// there is no journal, nothing is replayed at open (the log hands the engine what follows
    /// its checkpoint), the clock makes no commands of its own (`Machine::tick`: the log's
    /// leader proposes them), a reply goes out as soon as its command is applied, and
    /// checkpoints are named for the machine's own log position (`Machine::position`).
    pub journal: bool,
}

impl EngineOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> EngineOptions {
        EngineOptions {
            data_dir: data_dir.into(),
            fsync: true,
            checkpoint_interval_bytes: CHECKPOINT_INTERVAL_BYTES_DEFAULT,
            segment_size_max: huifu_journal::constants::SEGMENT_SIZE_DEFAULT,
            memory_max: None,
            journal: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("{0}")]
    Decode(#[from] DecodeError),
    /// The I/O error is part of the message, not a separate cause, so it is printed once.
    #[error("{what} {path}: {cause}")]
    Io { what: &'static str, path: PathBuf, cause: std::io::Error },
    #[error("history store {path} failed while replaying journal record {seq}: {cause}")]
    History { path: PathBuf, seq: u64, cause: std::io::Error },
    #[error("data folder {0} is in use by another huifu process")]
    Locked(PathBuf),
    /// The queue is full and the caller asked not to wait (`try_submit`): nothing was queued.
    #[error("the engine is busy: its queue is full")]
    Busy,
    /// The writer thread stopped on this failure; nothing more is applied.
    #[error("the engine stopped: {0}")]
    Failed(Arc<Failure>),
    #[error("the engine has stopped")]
    Stopped,
}

fn io_error(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> EngineError {
    let path = path.to_path_buf();
    move |cause| EngineError::Io { what, path, cause }
}

/// What recovery found when the engine opened.
#[derive(Clone, Copy, Debug, Default)]
pub struct Recovery {
    /// The checkpoint covered journal records below this sequence number (1 when none).
    pub checkpoint_seq: u64,
    /// Journal records applied after the checkpoint.
    pub records_replayed: u64,
    /// Bytes of a torn tail cut from the journal.
    pub truncated_bytes: u64,
    pub duration: Duration,
}

type Reply<T> = Box<dyn FnOnce(Result<T, EngineError>) + Send>;

/// A read run on the writer thread; what it returns is called once the group is durable.
type Read<M> = Box<dyn FnOnce(Result<&M, EngineError>) -> Release + Send>;
/// Sends a read's result; called after the sync.
type Release = Box<dyn FnOnce() + Send>;

enum Request<M: Machine> {
    Command(M::Command, Reply<M::Outcome>),
    Query(M::Query, Reply<M::Answer>),
    Read(Read<M>),
    Checkpoint(Reply<()>),
    /// Replaces the state (an engine without a journal only; see `Engine::replace`).
    Replace(Box<M>, Reply<()>),
}

/// A running engine. Cloning the handle is cheap; the writer stops when `shutdown` is called or
/// every handle is dropped.
pub struct Engine<M: Machine> {
    sender: SyncSender<Request<M>>,
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
}

struct Shared {
    stopped: AtomicBool,
    /// Why the writer stopped, when it stopped on a failure (set before `stopped`, and before
    /// any reply of the failed group is failed, so whoever sees a failed reply sees why).
    failure: OnceLock<Arc<Failure>>,
    stats: EngineStats,
}

impl Shared {
    /// Records why the writer stopped (the first failure wins), then marks it stopped.
    fn fail(&self, failure: Failure) {
        let failure = Arc::new(failure);
        let _ = self.failure.set(failure.clone());
        self.stopped.store(true, Ordering::Release);
        // Logged last: whatever happens to the log, the failure is recorded.
        tracing::error!(%failure, "the engine stops");
    }

    /// What a request gets once the writer has stopped.
    fn stopped_error(&self) -> EngineError {
        match self.failure.get() {
            Some(failure) => EngineError::Failed(failure.clone()),
            None => EngineError::Stopped,
        }
    }
}

/// What `send` does when the queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WhenFull {
    /// Wait for room: back-pressure, for in-process callers on threads of their own.
    Wait,
    /// Refuse at once with `EngineError::Busy`: for callers that must not block a thread that
    /// serves others, such as an async runtime's.
    Refuse,
}

impl<M: Machine + Default> Engine<M> {
    /// Opens the data folder (creating it), recovers the state from checkpoint and journal, and
    /// starts the writer thread.
    pub fn open(options: EngineOptions) -> Result<(Engine<M>, Recovery), EngineError> {
        Engine::open_with_clock(options, SystemClock)
    }

    pub fn open_with_clock(
        options: EngineOptions,
        clock: impl Clock,
    ) -> Result<(Engine<M>, Recovery), EngineError> {
        Engine::open_with(options, clock, FileStorage)
    }

    /// Opens the engine over any [`Storage`] for its journal and checkpoints (the history store,
    /// when there is one, is on the real file system).
    pub fn open_with<S: Storage + Clone>(
        options: EngineOptions,
        clock: impl Clock,
        storage: S,
    ) -> Result<(Engine<M>, Recovery), EngineError> {
        let started = Instant::now();
        let dir = options.data_dir.clone();
        storage.create_dir_all(&dir).map_err(io_error("cannot create", &dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = match storage.lock(&lock_path).map_err(io_error("cannot open", &lock_path))? {
            Some(lock) => lock,
            None => return Err(EngineError::Locked(dir)),
        };

        let checkpoints = Checkpoints::list(&storage, &dir)?;
        let (mut machine, checkpoint_seq) = checkpoints.load::<M, S>(&storage)?;

        let history_dir = dir.join("history");
        machine
            .open_history(&history_dir, options.memory_max)
            .map_err(io_error("cannot open history store", &history_dir))?;

        let (journal, records_replayed, truncated_bytes) = if options.journal {
            let mut journal_options = JournalOptions::new(dir.join("journal"));
            journal_options.fsync = options.fsync;
            journal_options.segment_size_max = options.segment_size_max;
            journal_options.seq_min = checkpoint_seq;
            let (mut journal, recovered) = Journal::open_with(storage.clone(), journal_options)?;
            let replayed = replay(&mut journal, checkpoint_seq, &mut machine, &history_dir)?;
            (Some(journal), replayed, recovered.truncated_bytes)
        } else {
            (None, 0, 0)
        };
        let recovery = Recovery {
            checkpoint_seq,
            records_replayed,
            truncated_bytes,
            duration: started.elapsed(),
        };
        if recovery.truncated_bytes > 0 {
            // Said aloud: a cut is normal after a crash, and an operator comparing what clients
            // were told with what is there should know where the log was cut.
            tracing::warn!(
                bytes = recovery.truncated_bytes,
                next_seq = checkpoint_seq + records_replayed,
                "cut the torn last group commit off the journal: it was never acknowledged"
            );
        }
        tracing::info!(?recovery, "recovered");

        let (sender, receiver) = mpsc::sync_channel(QUEUE_REQUESTS_MAX);
        let shared = Arc::new(Shared {
            stopped: AtomicBool::new(false),
            failure: OnceLock::new(),
            stats: EngineStats::default(),
        });
        let writer = Writer {
            machine,
            journal,
            storage,
            clock,
            receiver,
            checkpoints,
            journal_dir: dir.join("journal"),
            history_dir,
            checkpoint_interval_bytes: options.checkpoint_interval_bytes,
            journal_bytes_at_checkpoint: 0,
            shared: shared.clone(),
            _lock: lock,
        };
        let writer = std::thread::Builder::new()
            .name("huifu-writer".into())
            .spawn(move || writer.run())
            .map_err(io_error("cannot start writer thread in", &dir))?;
        Ok((Engine { sender, shared, writer: Some(writer) }, recovery))
    }
}

impl<M: Machine> Engine<M> {
    fn send(
        &self,
        request: Request<M>,
        when_full: WhenFull,
    ) -> Result<(), (Request<M>, EngineError)> {
        if self.shared.stopped.load(Ordering::Acquire) {
            return Err((request, self.shared.stopped_error()));
        }
        match self.sender.try_send(request) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(request)) => match when_full {
                WhenFull::Wait => {
                    self.sender.send(request).map_err(|e| (e.0, self.shared.stopped_error()))
                }
                WhenFull::Refuse => Err((request, EngineError::Busy)),
            },
            Err(TrySendError::Disconnected(request)) => Err((request, self.shared.stopped_error())),
        }
    }

    /// Submits a command; `reply` is called on the writer thread once its outcome is durable.
    /// A full queue blocks the caller until there is room (back-pressure).
    pub fn submit(
        &self,
        command: M::Command,
        reply: impl FnOnce(Result<M::Outcome, EngineError>) + Send + 'static,
    ) {
        self.submit_command(command, Box::new(reply), WhenFull::Wait);
    }

    /// Like `submit`, but never blocks: when the queue is full, `reply` gets
    /// `EngineError::Busy` at once, on the caller's thread, and nothing is applied.
    pub fn try_submit(
        &self,
        command: M::Command,
        reply: impl FnOnce(Result<M::Outcome, EngineError>) + Send + 'static,
    ) {
        self.submit_command(command, Box::new(reply), WhenFull::Refuse);
    }

    fn submit_command(&self, command: M::Command, reply: Reply<M::Outcome>, when_full: WhenFull) {
        if let Err((request, error)) = self.send(Request::Command(command, reply), when_full) {
            fail_request(request, error);
        }
    }

    /// Submits a query; `reply` is called once every command before it is durable.
    pub fn submit_query(
        &self,
        query: M::Query,
        reply: impl FnOnce(Result<M::Answer, EngineError>) + Send + 'static,
    ) {
        if let Err((request, error)) =
            self.send(Request::Query(query, Box::new(reply)), WhenFull::Wait)
        {
            fail_request(request, error);
        }
    }

    /// Runs `f` on the state (on the writer thread, in order with the commands); `reply` gets
    /// its result once every command before it is durable. A full queue blocks the caller.
    pub fn submit_read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&M) -> R + Send + 'static,
        reply: impl FnOnce(Result<R, EngineError>) + Send + 'static,
    ) {
        self.submit_read_when_full(f, reply, WhenFull::Wait);
    }

    /// Like `submit_read`, but never blocks: when the queue is full, `reply` gets
    /// `EngineError::Busy` at once and `f` does not run.
    pub fn try_submit_read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&M) -> R + Send + 'static,
        reply: impl FnOnce(Result<R, EngineError>) + Send + 'static,
    ) {
        self.submit_read_when_full(f, reply, WhenFull::Refuse);
    }

    fn submit_read_when_full<R: Send + 'static>(
        &self,
        f: impl FnOnce(&M) -> R + Send + 'static,
        reply: impl FnOnce(Result<R, EngineError>) + Send + 'static,
        when_full: WhenFull,
    ) {
        let read: Read<M> = Box::new(move |machine| match machine {
            Ok(machine) => {
                let result = f(machine);
                Box::new(move || reply(Ok(result)))
            }
            Err(error) => {
                reply(Err(error));
                Box::new(|| {})
            }
        });
        if let Err((request, error)) = self.send(Request::Read(read), when_full) {
            fail_request(request, error);
        }
    }

    /// Runs `f` on the state and waits for its result (after every earlier command is durable).
    pub fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&M) -> R + Send + 'static,
    ) -> Result<R, EngineError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit_read(f, move |r| {
            let _ = tx.send(r);
        });
        rx.recv().unwrap_or(Err(EngineError::Stopped))
    }

    /// Applies a command and waits until it is durable.
    pub fn execute(&self, command: M::Command) -> Result<M::Outcome, EngineError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(command, move |r| {
            let _ = tx.send(r);
        });
        rx.recv().unwrap_or(Err(EngineError::Stopped))
    }

    /// Answers a query (after every earlier command is durable).
    pub fn query(&self, query: M::Query) -> Result<M::Answer, EngineError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit_query(query, move |r| {
            let _ = tx.send(r);
        });
        rx.recv().unwrap_or(Err(EngineError::Stopped))
    }

    /// The writer thread's counters: journal write-and-fsync time and commands per group.
    pub fn stats(&self) -> &EngineStats {
        &self.shared.stats
    }

    /// Why the writer thread stopped, when it stopped on a failure (a journal write or fsync,
    /// the history store, a panic); `None` while it runs and after a clean shutdown.
    pub fn failure(&self) -> Option<&Failure> {
        self.shared.failure.get().map(|failure| &**failure)
    }

    /// Whether the writer thread has stopped (on a failure, or after every handle was dropped):
    /// nothing submitted now is applied.
    pub fn is_stopped(&self) -> bool {
        self.shared.stopped.load(Ordering::Acquire)
    }

    /// Replaces the whole state with `machine`, then writes a checkpoint of it: a replica that
    /// installs a snapshot of another node's state. Only for an engine whose commands come from
    /// an outside log (`EngineOptions::journal` false); a journaling engine refuses it, since
    /// its journal could not replay onto the new state.
    pub fn replace(&self, machine: M) -> Result<(), EngineError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let reply: Reply<()> = Box::new(move |r| {
            let _ = tx.send(r);
        });
        let request = Request::Replace(Box::new(machine), reply);
        if let Err((request, error)) = self.send(request, WhenFull::Wait) {
            fail_request(request, error);
        }
        rx.recv().unwrap_or(Err(EngineError::Stopped))?;
        self.checkpoint()
    }

    /// Writes a checkpoint now and drops the journal segments it covers.
    pub fn checkpoint(&self) -> Result<(), EngineError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let reply: Reply<()> = Box::new(move |r| {
            let _ = tx.send(r);
        });
        if let Err((request, error)) = self.send(Request::Checkpoint(reply), WhenFull::Wait) {
            fail_request(request, error);
        }
        rx.recv().unwrap_or(Err(EngineError::Stopped))
    }

    /// Finishes every queued request, then stops the writer thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(writer) = self.writer.take() {
            // Dropping the last sender ends the writer's loop once the queue is drained.
            let (dead, _) = mpsc::sync_channel(1);
            drop(std::mem::replace(&mut self.sender, dead));
            let _ = writer.join();
        }
    }
}

impl<M: Machine> Drop for Engine<M> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Checkpoints are `checkpoint-<seq, 20 digits>.snap`, holding the state after every journal
/// record below `seq`. The newest two are kept, and the journal from the older one's `seq`:
/// one damaged checkpoint then costs a longer replay from the one before, not the folder.
pub(crate) const CHECKPOINT_PREFIX: &str = "checkpoint-";
pub(crate) const CHECKPOINT_SUFFIX: &str = ".snap";
/// The file whose lock says a process owns the data folder.
pub(crate) const LOCK_FILE: &str = "LOCK";
/// Checkpoints kept: the newest, and the one a restart falls back to if the newest is damaged.
const CHECKPOINTS_KEPT: usize = 2;

/// The checkpoints of a data folder, oldest first.
#[derive(Debug)]
struct Checkpoints {
    dir: PathBuf,
    /// (seq, path).
    files: Vec<(u64, PathBuf)>,
}

/// The seq a checkpoint's file name says it covers, if `name` is a checkpoint's.
fn checkpoint_seq(name: &str) -> Option<u64> {
    name.strip_prefix(CHECKPOINT_PREFIX)
        .and_then(|n| n.strip_suffix(CHECKPOINT_SUFFIX))
        .filter(|digits| digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|digits| digits.parse::<u64>().ok())
}

/// The newest checkpoint file in the data folder `dir` and the seq it covers, without touching
/// anything (the writer may be writing the next one meanwhile); whether it verifies is for the
/// reader to check (`SnapshotReader::open_verified`).
pub fn newest_checkpoint(dir: &Path) -> std::io::Result<Option<(u64, PathBuf)>> {
    let names = FileStorage.list(dir)?;
    Ok(names
        .iter()
        .filter_map(|name| Some((checkpoint_seq(name.to_str()?)?, dir.join(name))))
        .max())
}

fn checkpoint_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{CHECKPOINT_PREFIX}{seq:020}{CHECKPOINT_SUFFIX}"))
}

impl Checkpoints {
    fn list<S: Storage>(storage: &S, dir: &Path) -> Result<Checkpoints, EngineError> {
        let names = storage.list(dir).map_err(io_error("cannot list", dir))?;
        let mut files = Vec::new();
        for name in names {
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(CHECKPOINT_PREFIX) && name.ends_with(".tmp") {
                // Cut short by a crash while it was written: never a checkpoint, only space.
                let path = dir.join(name);
                storage.remove(&path).map_err(io_error("cannot remove", &path))?;
                continue;
            }
            if let Some(seq) = checkpoint_seq(name) {
                files.push((seq, dir.join(name)));
            }
        }
        files.sort();
        Ok(Checkpoints { dir: dir.to_path_buf(), files })
    }

    /// The state of the newest checkpoint whose checksum holds (verified before it is parsed),
    /// and the journal seq it covers; an empty machine at seq 1 when there is none. A damaged
    /// one is skipped with a warning: the journal since the one before is kept for that.
    fn load<M: Machine + Default, S: Storage>(&self, storage: &S) -> Result<(M, u64), EngineError> {
        let mut damaged = Vec::new();
        for (seq, path) in self.files.iter().rev() {
            let mut reader = match SnapshotReader::open_verified(storage, path) {
                Ok(Some(reader)) => reader,
                Ok(None) => continue,
                Err(error @ JournalError::Corrupt { .. }) => {
                    tracing::warn!(%error, "checkpoint is damaged; trying the one before");
                    damaged.push(error.to_string());
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            let mut stored = [0u8; 8];
            std::io::Read::read_exact(&mut reader, &mut stored)
                .map_err(io_error("cannot read checkpoint", path))?;
            let stored = u64::from_le_bytes(stored);
            if stored != *seq {
                return Err(EngineError::Io {
                    what: "checkpoint names one journal position and holds another",
                    path: path.clone(),
                    cause: std::io::Error::other(format!("named {seq}, holds {stored}")),
                });
            }
            let machine =
                M::read_snapshot(&mut reader).map_err(io_error("cannot read checkpoint", path))?;
            reader.finish()?;
            return Ok((machine, stored));
        }
        if !damaged.is_empty() {
            // Replaying the whole journal onto an empty state is exact if the journal still
            // starts at its first record; the replay refuses otherwise.
            tracing::warn!(?damaged, "every checkpoint is damaged; replaying the whole journal");
        }
        Ok((M::default(), 1))
    }

    /// The oldest seq a restart may need the journal from: the older kept checkpoint's, or 1.
    fn replay_from(&self) -> u64 {
        if self.files.len() >= CHECKPOINTS_KEPT {
            self.files[self.files.len() - CHECKPOINTS_KEPT].0
        } else {
            1
        }
    }
}

/// A journal record: the batch timestamp, then the encoded command.
fn encode_record<M: Machine>(timestamp: u64, command: &M::Command, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&timestamp.to_le_bytes());
    M::encode(command, out);
}

fn decode_record<M: Machine>(body: &[u8]) -> Result<(u64, M::Command), DecodeError> {
    let (timestamp, command) = body
        .split_first_chunk::<8>()
        .ok_or_else(|| DecodeError(format!("record of {} bytes is too short", body.len())))?;
    Ok((u64::from_le_bytes(*timestamp), M::decode(command)?))
}

/// Applies the journal's records from `from_seq` to `machine`, as they were applied when they
/// were written; returns how many.
fn replay<M: Machine, S: Storage>(
    journal: &mut Journal<S>,
    from_seq: u64,
    machine: &mut M,
    history_dir: &Path,
) -> Result<u64, EngineError> {
    /// Why a record could not be replayed.
    enum Failure {
        Decode(DecodeError),
        History(std::io::Error),
    }
    journal
        .replay(from_seq, |_seq, body| {
            let (timestamp, command) = decode_record::<M>(body).map_err(Failure::Decode)?;
            machine.prefetch(&command).map_err(Failure::History)?;
            machine.apply(timestamp, &command);
            machine.evict().map_err(Failure::History)
        })
        .map_err(|e| match e {
            ReplayError::Journal(e) => EngineError::Journal(e),
            ReplayError::Callback { seq, error: Failure::Decode(error) } => {
                EngineError::Decode(DecodeError(format!("record {seq}: {}", error.0)))
            }
            ReplayError::Callback { seq, error: Failure::History(cause) } => {
                EngineError::History { path: history_dir.to_path_buf(), seq, cause }
            }
        })
}

struct Writer<M: Machine, C: Clock, S: Storage> {
    machine: M,
    /// `None` when the commands come from a log outside the engine (`EngineOptions::journal`).
    journal: Option<Journal<S>>,
    storage: S,
    clock: C,
    receiver: Receiver<Request<M>>,
    checkpoints: Checkpoints,
    journal_dir: PathBuf,
    history_dir: PathBuf,
    checkpoint_interval_bytes: u64,
    journal_bytes_at_checkpoint: u64,
    shared: Arc<Shared>,
    _lock: Box<dyn std::any::Any + Send>,
}

/// A reply waiting for its group to be durable.
enum Pending<M: Machine> {
    Outcome(Reply<M::Outcome>, M::Outcome),
    Answer(Reply<M::Answer>, M::Answer),
    Read(Release),
    Checkpoint(Reply<()>),
}

impl<M: Machine, C: Clock, S: Storage + Clone> Writer<M, C, S> {
    fn run(mut self) {
        let mut group: Vec<Request<M>> = Vec::with_capacity(GROUP_REQUESTS_MAX);
        let mut pending: Vec<Pending<M>> = Vec::with_capacity(GROUP_REQUESTS_MAX);
        // A panic is caught rather than left to end the thread, so that it is recorded as the
        // failure before the replies it strands are failed; the state is not used after it.
        let served = panic::catch_unwind(AssertUnwindSafe(|| self.serve(&mut group, &mut pending)));
        let failure = match served {
            Ok(Ok(())) => {
                self.shared.stopped.store(true, Ordering::Release);
                return;
            }
            Ok(Err(error)) => {
                let mut failure = Failure::of(&error);
                if let EngineError::Journal(_) = error {
                    failure.folder = Some(self.journal_dir.clone());
                }
                failure
            }
            Err(payload) => Failure::panic(payload.as_ref()),
        };
        // Recorded before any reply fails, so that whoever sees a failed reply can ask why.
        self.shared.fail(failure);
        for p in pending.drain(..) {
            p.fail(self.shared.stopped_error());
        }
        for request in group.drain(..) {
            fail_request(request, self.shared.stopped_error());
        }
        while let Ok(request) = self.receiver.try_recv() {
            fail_request(request, self.shared.stopped_error());
        }
    }

    /// Takes groups off the queue and commits them until every handle is gone (`Ok`) or a
    /// group fails (the error; what it left undone is in `group` and `pending`).
    fn serve(
        &mut self,
        group: &mut Vec<Request<M>>,
        pending: &mut Vec<Pending<M>>,
    ) -> Result<(), EngineError> {
        let mut record = Vec::new();
        let tick = Duration::from_millis(TICK_INTERVAL_MS);
        let mut connected = true;
        while connected {
            match self.receiver.recv_timeout(tick) {
                Ok(request) => group.push(request),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => connected = false,
            }
            // Group commit: take what else is queued, up to the group limits.
            let mut events = group.iter().map(|r| request_events(&self.machine, r)).sum::<usize>();
            while group.len() < GROUP_REQUESTS_MAX && events < GROUP_EVENTS_MAX {
                match self.receiver.try_recv() {
                    Ok(request) => {
                        events += request_events(&self.machine, &request);
                        group.push(request);
                    }
                    Err(_) => break,
                }
            }
            self.commit_group(group, pending, &mut record)?;
            let journaled = self.journal.as_ref().map_or(0, Journal::size_bytes);
            if journaled.saturating_sub(self.journal_bytes_at_checkpoint)
                >= self.checkpoint_interval_bytes
                || self.machine.checkpoint_wanted()
            {
                if let Err(error) = self.checkpoint() {
                    tracing::warn!(%error, "checkpoint failed; will retry later");
                }
            }
        }
        Ok(())
    }

    /// Applies the group in order, writes it with one fsync, then releases the replies.
    fn commit_group(
        &mut self,
        group: &mut Vec<Request<M>>,
        pending: &mut Vec<Pending<M>>,
        record: &mut Vec<u8>,
    ) -> Result<(), EngineError> {
        let now = self.clock.now_ns();
        if self.journal.is_some() {
            if let Some(command) = self.machine.tick(now) {
                self.apply(now, &command, record)?;
            }
        }
        let mut checkpoint_requested = false;
        let mut commands = 0;
        // Taken one by one, and on a failure what is left (the failing request included) goes
        // back into `group`: a request dropped here would drop its reply unsent before the
        // failure is recorded, and its client would hear "stopped" instead of why.
        let mut requests = std::mem::take(group).into_iter();
        while let Some(request) = requests.next() {
            match request {
                Request::Command(command, reply) => match self.apply(now, &command, record) {
                    Ok(outcome) => {
                        pending.push(Pending::Outcome(reply, outcome));
                        commands += 1;
                    }
                    Err(error) => {
                        group.push(Request::Command(command, reply));
                        group.extend(requests);
                        return Err(error);
                    }
                },
                Request::Query(query, reply) => {
                    pending.push(Pending::Answer(reply, self.machine.query(query)));
                }
                Request::Read(read) => pending.push(Pending::Read(read(Ok(&self.machine)))),
                Request::Replace(machine, reply) => {
                    if self.journal.is_some() {
                        let unsupported = std::io::Error::from(std::io::ErrorKind::Unsupported);
                        let what = "a journaling engine cannot replace its state";
                        reply(Err(io_error(what, &self.journal_dir)(unsupported)));
                    } else {
                        let mut machine = *machine;
                        match machine.open_history(&self.history_dir, None) {
                            Ok(()) => {
                                self.machine = machine;
                                reply(Ok(()));
                            }
                            Err(cause) => reply(Err(io_error(
                                "cannot open history store",
                                &self.history_dir,
                            )(cause))),
                        }
                    }
                }
                Request::Checkpoint(reply) => {
                    checkpoint_requested = true;
                    pending.push(Pending::Checkpoint(reply));
                }
            }
        }
        let started = Instant::now();
        if let Some(journal) = &mut self.journal {
            journal.sync()?;
        }
        if commands > 0 {
            let stats = &self.shared.stats;
            stats.sync_us.record(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
            stats.group_commands.record(commands);
        }
        let checkpoint_result = if checkpoint_requested { Some(self.checkpoint()) } else { None };
        for p in pending.drain(..) {
            match p {
                Pending::Outcome(reply, outcome) => reply(Ok(outcome)),
                Pending::Answer(reply, answer) => reply(Ok(answer)),
                Pending::Read(release) => release(),
                Pending::Checkpoint(reply) => reply(match &checkpoint_result {
                    Some(Ok(())) => Ok(()),
                    Some(Err(e)) => Err(EngineError::Io {
                        what: "checkpoint failed",
                        path: self.checkpoints.dir.clone(),
                        cause: std::io::Error::other(e.to_string()),
                    }),
                    None => unreachable!("checkpoint requested"),
                }),
            }
        }
        // After the replies: moving history out is off the latency path.
        self.machine.evict().map_err(io_error("history store failed", &self.history_dir))?;
        Ok(())
    }

    fn apply(
        &mut self,
        now: u64,
        command: &M::Command,
        record: &mut Vec<u8>,
    ) -> Result<M::Outcome, EngineError> {
        let timestamp = now.max(self.machine.timestamp_min(self.machine.events(command)));
        self.machine
            .prefetch(command)
            .map_err(io_error("history store failed", &self.history_dir))?;
        if let Some(journal) = &mut self.journal {
            encode_record::<M>(timestamp, command, record);
            journal.append(record)?;
        }
        Ok(self.machine.apply(timestamp, command))
    }

    /// Snapshot of the state after every record so far, read back and verified; then the
    /// checkpoints and journal segments that no restart can need any more are dropped.
    fn checkpoint(&mut self) -> Result<(), EngineError> {
        let started = Instant::now();
        // What the snapshot no longer holds must be durable in the store before the journal
        // segments that could rebuild it are dropped.
        self.machine
            .persist_history()
            .map_err(io_error("cannot persist history store", &self.history_dir))?;
        let seq = match &self.journal {
            Some(journal) => journal.next_seq(),
            None => self.machine.position().map_or(1, |applied| applied + 1),
        };
        if self.checkpoints.files.last().is_some_and(|(last, _)| *last == seq) {
            return Ok(()); // nothing was written since
        }
        let path = checkpoint_path(&self.checkpoints.dir, seq);
        let mut writer = SnapshotWriter::create_with(self.storage.clone(), &path)?;
        std::io::Write::write_all(&mut writer, &seq.to_le_bytes())
            .map_err(io_error("cannot write checkpoint", &path))?;
        self.machine
            .write_snapshot(&mut writer)
            .map_err(io_error("cannot write checkpoint", &path))?;
        let bytes = writer.finish()?;
        // Read it back before anything older goes: the bytes on disk, not the ones meant. One
        // that does not verify is removed, so no restart tries it first.
        match SnapshotReader::open_verified(&self.storage, &path) {
            Ok(Some(reader)) => drop(reader),
            Ok(None) => {
                return Err(EngineError::Io {
                    what: "checkpoint vanished after it was written",
                    path,
                    cause: std::io::Error::from(std::io::ErrorKind::NotFound),
                })
            }
            Err(error) => {
                let _ = self.storage.remove(&path);
                return Err(error.into());
            }
        }
        self.checkpoints.files.push((seq, path));
        self.machine.checkpointed();
        let kept = self.checkpoints.files.len().saturating_sub(CHECKPOINTS_KEPT);
        let mut removed = false;
        for _ in 0..kept {
            let old = &self.checkpoints.files[0].1;
            self.storage.remove(old).map_err(io_error("cannot remove checkpoint", old))?;
            self.checkpoints.files.remove(0);
            removed = true;
        }
        if removed {
            let dir = &self.checkpoints.dir;
            self.storage.sync_dir(dir).map_err(io_error("cannot fsync directory", dir))?;
        }
        let mut freed = 0;
        if let Some(journal) = &mut self.journal {
            freed = journal.remove_segments_before(self.checkpoints.replay_from())?;
            self.journal_bytes_at_checkpoint = journal.size_bytes();
        }
        tracing::info!(seq, bytes, freed, ms = started.elapsed().as_millis() as u64, "checkpoint");
        Ok(())
    }
}

fn request_events<M: Machine>(machine: &M, request: &Request<M>) -> usize {
    match request {
        Request::Command(command, _) => machine.events(command),
        Request::Query(..) | Request::Read(_) | Request::Checkpoint(_) | Request::Replace(..) => 1,
    }
}

fn fail_request<M: Machine>(request: Request<M>, error: EngineError) {
    match request {
        Request::Command(_, reply) => reply(Err(error)),
        Request::Query(_, reply) => reply(Err(error)),
        Request::Read(read) => drop(read(Err(error))),
        Request::Checkpoint(reply) => reply(Err(error)),
        Request::Replace(_, reply) => reply(Err(error)),
    }
}

impl<M: Machine> Pending<M> {
    fn fail(self, error: EngineError) {
        match self {
            Pending::Outcome(reply, _) => reply(Err(error)),
            Pending::Answer(reply, _) => reply(Err(error)),
            // The read already ran on state that will not become durable: drop its result.
            Pending::Read(_) => {}
            Pending::Checkpoint(reply) => reply(Err(error)),
        }
    }
}
