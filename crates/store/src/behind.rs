//! Writes behind the caller. A put hands its sorted runs to a thread of its own and returns at
//! once, so the engine's writer thread goes on applying operations while the store encodes,
//! compresses and writes them (a few hundred milliseconds for half a million transfers, which
//! used to stall every client that long).
//!
//! At most one write of each kind is in flight: the next put, `persist` and every read by
//! range wait for it first. Point reads do not wait: they look in the write's staged copy
//! first, and a key the write does not hold is read from the store, where the write in flight
//! changes nothing about it. So every read sees the store as if the write had finished.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use crate::StoreError;

/// One kind of write, and the one in flight.
pub(crate) struct Behind<S> {
    slot: Mutex<Option<InFlight<S>>>,
}

struct InFlight<S> {
    staged: Arc<S>,
    handle: JoinHandle<Result<(), StoreError>>,
}

impl<S: Send + Sync + 'static> Behind<S> {
    pub(crate) fn new() -> Behind<S> {
        Behind { slot: Mutex::new(None) }
    }

    fn slot(&self) -> MutexGuard<'_, Option<InFlight<S>>> {
        // The slot is only replaced or taken whole: a panic elsewhere leaves it consistent.
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for the write in flight, if any, and returns its outcome.
    pub(crate) fn wait(&self) -> Result<(), StoreError> {
        let in_flight = self.slot().take();
        match in_flight {
            None => Ok(()),
            Some(f) => f.handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
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
        *self.slot() = Some(InFlight { staged, handle });
        Ok(())
    }

    /// What the write in flight holds; `None` once it is done (its copy is let go then, and
    /// its error, if any, comes back here).
    pub(crate) fn staged(&self) -> Result<Option<Arc<S>>, StoreError> {
        let mut slot = self.slot();
        match slot.as_ref() {
            None => Ok(None),
            Some(f) if f.handle.is_finished() => {
                let f = slot.take().expect("checked");
                drop(slot);
                f.handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
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

    #[test]
    fn a_write_is_seen_staged_while_in_flight_and_its_error_comes_back_once() {
        let behind: Behind<u32> = Behind::new();
        assert!(behind.staged().unwrap().is_none());
        let failing = |wait: mpsc::Receiver<()>| {
            move |_: &u32| {
                wait.recv().unwrap();
                Err(StoreError::Corrupt { path: "x".into(), what: "test" })
            }
        };
        let (go, wait) = mpsc::channel::<()>();
        behind.start("test", 1, 7, failing(wait)).unwrap();
        assert_eq!(behind.staged().unwrap().as_deref(), Some(&7));
        go.send(()).unwrap();
        assert!(matches!(behind.wait(), Err(StoreError::Corrupt { what: "test", .. })));
        assert!(behind.staged().unwrap().is_none());
        assert!(behind.wait().is_ok());
        // A finished write's error comes back from a read too, once.
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
        assert!(matches!(error, StoreError::Corrupt { what: "test", .. }));
        assert!(behind.staged().unwrap().is_none());
        assert!(behind.wait().is_ok());
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
