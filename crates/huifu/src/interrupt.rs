//! Ctrl-C (or SIGTERM) during a simulated day. The first stops the clients after the batch
//! each has in flight, so the day ends early and still gets its summary, report and audit.
//! A second one, or any once the day's traffic is over (during the closing audit, say), quits
//! at once with the shell's status for the signal (128 + its number).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};

/// The signals handled, and whether one came.
pub(crate) struct Interrupt {
    requested: Arc<AtomicBool>,
    armed: Arc<AtomicBool>,
}

impl Interrupt {
    /// Installs the handlers for the rest of the process.
    pub(crate) fn install() -> io::Result<Interrupt> {
        let requested = Arc::new(AtomicBool::new(false));
        let armed = Arc::new(AtomicBool::new(false));
        for signal in [SIGINT, SIGTERM] {
            // Run in this order: a signal that comes once armed quits before the rest.
            signal_hook::flag::register_conditional_shutdown(signal, 128 + signal, armed.clone())?;
            signal_hook::flag::register(signal, armed.clone())?;
            signal_hook::flag::register(signal, requested.clone())?;
        }
        Ok(Interrupt { requested, armed })
    }

    /// `install`, or `None` with a warning.
    pub(crate) fn install_or_warn() -> Option<Interrupt> {
        Interrupt::install()
            .inspect_err(|e| eprintln!("Ctrl-C will not end the day early: {e}"))
            .ok()
    }

    /// Whether a signal came.
    pub(crate) fn requested(&self) -> bool {
        self.requested.load(Ordering::Relaxed)
    }

    /// From now on a signal quits at once.
    pub(crate) fn arm(&self) {
        self.armed.store(true, Ordering::Relaxed);
    }
}
