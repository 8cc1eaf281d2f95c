//! Writes behind the caller. A put hands its sorted runs to a thread of its own and returns at
//! once, so the engine's writer thread goes on applying operations while the store encodes,
//! compresses and writes them (a few hundred milliseconds for half a million transfers, which
//! used to stall every client that long).
//!
//! At most one write of each kind is in flight: the next put, `persist` and every read by
//! range wait for it first. Point reads do not wait: they look in the write's staged copy
//! first, and a key the write does not hold is read from the store, where the write in flight
//! changes nothing about it. So every read sees the store as if the write had finished.
//!
//! A write that fails is the store's failure for good (`Failed`): the transfers or records it
//! held have already left memory, so a read that went on would answer "not found" for them
//! (and an id could be taken twice), and a later write or `persist` would make durable a store
//! with a hole in it. Every later put, read and persist of the store returns the error; the
//! engine stops, and its journal, which still holds what the write held, rebuilds the store's
//! part on the next start.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;

use crate::StoreError;

/// The first write of a store that failed, and why: shared by every kind of write of one store.
#[derive(Clone, Default)]
pub(crate) struct Failed(Arc<OnceLock<(&'static str, Arc<StoreError>)>>);

/// One kind of write, and the one in flight.
pub(crate) struct Behind<S> {
    slot: Mutex<Option<InFlight<S>>>,
    /// The store's folder, for the error.
    path: PathBuf,
    failed: Failed,
}

struct InFlight<S> {
    staged: Arc<S>,
    what: &'static str,
    handle: JoinHandle<Result<(), StoreError>>,
}

impl<S: Send + Sync + 'static> Behind<S> {
    /// Writes to the store at `path`, failed for good once `failed` is set (by this kind of
    /// write or another of the same store).
    pub(crate) fn new(path: PathBuf, failed: Failed) -> Behind<S> {
        Behind { slot: Mutex::new(None), path, failed }
    }

    fn slot(&self) -> MutexGuard<'_, Option<InFlight<S>>> {
        // The slot is only replaced or taken whole: a panic elsewhere leaves it consistent.
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The error every use of the store returns once a write of it failed.
    pub(crate) fn healthy(&self) -> Result<(), StoreError> {
        match self.failed.0.get() {
            None => Ok(()),
            Some((what, cause)) => {
                Err(StoreError::Failed { path: self.path.clone(), what, cause: Arc::clone(cause) })
            }
        }
    }

    /// Joins a finished (or finishing) write; its error becomes the store's failure.
    fn join(&self, f: InFlight<S>) -> Result<(), StoreError> {
        let outcome = f.handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        if let Err(cause) = outcome {
            // The first failure is the one reported: a later one may follow from it.
            let _ = self.failed.0.set((f.what, Arc::new(cause)));
        }
        self.healthy()
    }

    /// Waits for the write in flight, if any; an error if it or any write of the store before
    /// it failed.
    pub(crate) fn wait(&self) -> Result<(), StoreError> {
        let in_flight = self.slot().take();
        match in_flight {
            None => self.healthy(),
            Some(f) => self.join(f),
        }
    }

    /// Waits for the write in flight, then starts `write` of `staged` (`items` records of
    /// `what`, for the debug log of its duration) on a thread.
    pub(crate) fn start(
        &self,
        what: &'static str,
        items: usize,
        staged: S,
        write: impl FnOnce(&S) -> Result<(), StoreError> + Send + 'static,
    ) -> Result<(), StoreError> {
        self.wait()?;
        let staged = Arc::new(staged);
        let copy = Arc::clone(&staged);
        let handle = std::thread::Builder::new()
            .name("huifu-store-put".into())
            .spawn(move || {
                let started = std::time::Instant::now();
                write(&copy)?;
                let ms = started.elapsed().as_millis() as u64;
                tracing::debug!(what, items, ms, "written to the store");
                Ok(())
            })
            .map_err(StoreError::Thread)?;
        *self.slot() = Some(InFlight { staged, what, handle });
        Ok(())
    }

    /// What the write in flight holds; `None` once it is done (its copy is let go then). An
    /// error if it or any write of the store before it failed.
    pub(crate) fn staged(&self) -> Result<Option<Arc<S>>, StoreError> {
        self.healthy()?;
        let mut slot = self.slot();
        match slot.as_ref() {
            None => Ok(None),
            Some(f) if f.handle.is_finished() => {
                let f = slot.take().expect("checked");
                drop(slot);
                self.join(f)?;
                Ok(None)
            }
            Some(f) => Ok(Some(Arc::clone(&f.staged))),
        }
    }
}

impl<S> Drop for Behind<S> {
    fn drop(&mut self) {
        // A write still running finishes before the store closes. Its error, if any, is lost
        // with the store: nothing unpersisted is relied on (the journal covers it).
        if let Some(f) = self.slot.get_mut().unwrap_or_else(PoisonError::into_inner).take() {
            let _ = f.handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn behind() -> Behind<u32> {
        Behind::new("x".into(), Failed::default())
    }

    fn failing(wait: mpsc::Receiver<()>) -> impl FnOnce(&u32) -> Result<(), StoreError> {
        move |_: &u32| {
            wait.recv().unwrap();
            Err(StoreError::Corrupt { path: "x".into(), what: "test" })
        }
    }

    /// Whether `error` is the store's failure, caused by the write `failing` makes.
    fn failed(error: &StoreError) -> bool {
        matches!(error, StoreError::Failed { what: "test", cause, .. }
            if matches!(**cause, StoreError::Corrupt { what: "test", .. }))
    }

    #[test]
    fn a_write_is_seen_staged_while_in_flight_and_its_error_comes_back_for_good() {
        let behind = behind();
        assert!(behind.staged().unwrap().is_none());
        let (go, wait) = mpsc::channel::<()>();
        behind.start("test", 1, 7, failing(wait)).unwrap();
        assert_eq!(behind.staged().unwrap().as_deref(), Some(&7));
        go.send(()).unwrap();
        assert!(failed(&behind.wait().unwrap_err()));
        // Every later read, wait and write fails the same way, and no write starts.
        assert!(failed(&behind.staged().unwrap_err()));
        assert!(failed(&behind.wait().unwrap_err()));
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&ran);
        let started = behind.start("other", 1, 8, move |_| {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        });
        assert!(failed(&started.unwrap_err()));
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
        let message = behind.wait().unwrap_err().to_string();
        assert!(message.contains("a write of test failed"), "{message}");
        assert!(message.contains("corrupt record: test"), "{message}");
    }

    #[test]
    fn a_finished_write_fails_a_read_and_every_kind_of_write_of_the_store() {
        let shared = Failed::default();
        let behind: Behind<u32> = Behind::new("x".into(), shared.clone());
        let other: Behind<u32> = Behind::new("x".into(), shared);
        let (go, wait) = mpsc::channel::<()>();
        behind.start("test", 1, 8, failing(wait)).unwrap();
        go.send(()).unwrap();
        let error = loop {
            match behind.staged() {
                Ok(Some(_)) => std::thread::yield_now(),
                Ok(None) => panic!("the write's error was lost"),
                Err(error) => break error,
            }
        };
        assert!(failed(&error));
        assert!(failed(&behind.staged().unwrap_err()));
        // The other kind of write of the same store, which never failed itself.
        assert!(failed(&other.staged().unwrap_err()));
        assert!(failed(&other.wait().unwrap_err()));
        assert!(failed(&other.start("other", 1, 9, |_| Ok(())).unwrap_err()));
    }

    #[test]
    fn writes_follow_one_another() {
        let behind = behind();
        // The next write starts only once the one before it has finished: the first is held
        // until a helper lets it go, and the second reports whether the first was done.
        let first_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (go, wait) = mpsc::channel::<()>();
        let done = Arc::clone(&first_done);
        behind
            .start("test", 1, 1, move |_| {
                wait.recv().unwrap();
                done.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            })
            .unwrap();
        let helper = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            go.send(()).unwrap();
        });
        let (seen, saw) = mpsc::channel::<bool>();
        let done = Arc::clone(&first_done);
        behind
            .start("test", 1, 2, move |_| {
                seen.send(done.load(std::sync::atomic::Ordering::SeqCst)).unwrap();
                Ok(())
            })
            .unwrap();
        behind.wait().unwrap();
        assert!(saw.recv().unwrap(), "the second write ran before the first had finished");
        helper.join().unwrap();
    }
}
