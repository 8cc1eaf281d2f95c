//! Small helpers shared by the commands.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// Logs go to stderr; `RUST_LOG` picks the level (default: warnings and errors). A log line
/// that cannot be written (stderr on a full disk) is dropped: reporting that with `eprintln!`,
/// as the subscriber would by default, panics on the same full disk, in whichever thread logged.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false)
        .init();
}

/// The API key given, else `HUIFU_ADMIN_KEY`.
pub fn api_key(given: Option<&String>) -> anyhow::Result<String> {
    given
        .cloned()
        .or_else(|| std::env::var("HUIFU_ADMIN_KEY").ok())
        .filter(|k| !k.trim().is_empty())
        .context("--server needs --api-key (or HUIFU_ADMIN_KEY)")
}

/// The data folder to use: the one given, or a fresh temporary one removed on drop.
pub enum DataDir {
    Given(PathBuf),
    Temporary(tempfile::TempDir),
}

impl DataDir {
    pub fn new(given: Option<PathBuf>) -> std::io::Result<DataDir> {
        Ok(match given {
            Some(path) => DataDir::Given(path),
            None => DataDir::Temporary(tempfile::Builder::new().prefix("huifu-").tempdir()?),
        })
    }

    pub fn path(&self) -> &std::path::Path {
        match self {
            DataDir::Given(path) => path,
            DataDir::Temporary(dir) => dir.path(),
        }
    }
}

/// The memory bound of the benchmarks: none unless asked, so that they measure one engine
/// configuration at a time.
#[derive(clap::Args, Clone, Copy, Debug, Default)]
pub struct MemoryArgs {
    /// Keep at most about this many ledger transfers in memory (plus a chunk of a quarter of
    /// that, and those still pending); older ones go to the history store on disk. Default: all
    /// in memory.
    #[arg(long = "memory-transfers-max", value_name = "N")]
    pub transfers_max: Option<usize>,
}

/// The default memory bound of `serve` and `simulate`, in ledger transfers: about a million
/// payments' worth (each makes three to five), so the default simulated day keeps nearly all of
/// it in memory, while the tables of a long run stop growing (a simulated day of 3 M payments
/// peaked at 1.6 GiB resident; the store's filters still grow with the history).
pub const MEMORY_TRANSFERS_MAX_DEFAULT: usize = 4_000_000;

/// The memory bound of the commands that open an engine on a folder that may keep growing or
/// hold a long journal (`serve`, `simulate`, `audit`, `export`, `reconcile`): on by default. A
/// stopped folder is recovered by replaying its journal since the last checkpoint, and with the
/// bound that replay moves old transfers and records out as it goes. A folder of
/// `huifu simulate --payments 1000000 --users 100000 --memory-transfers-max 200000
/// --no-reconcile --data-dir D`: `/usr/bin/time -v huifu audit --data-dir D` peaked at 1.27 GB
/// resident with `--memory-transfers-max all` (most of the journal held in memory), 270 MB with
/// `--memory-transfers-max 200000`.
#[derive(clap::Args, Clone, Copy, Debug)]
pub struct BoundedMemoryArgs {
    /// Keep at most about this many ledger transfers in memory (plus a chunk of a quarter of
    /// that, and those still pending), and a quarter of that of each payment table; older ones
    /// go to the history store on disk. `all`: no bound, everything in memory.
    #[arg(
        long = "memory-transfers-max",
        value_name = "N|all",
        default_value_t = TransfersMax(Some(MEMORY_TRANSFERS_MAX_DEFAULT)),
        value_parser = parse_transfers_max,
    )]
    pub transfers_max: TransfersMax,
}

impl Default for BoundedMemoryArgs {
    fn default() -> Self {
        BoundedMemoryArgs { transfers_max: TransfersMax(Some(MEMORY_TRANSFERS_MAX_DEFAULT)) }
    }
}

impl BoundedMemoryArgs {
    /// Engine options for `data_dir` with this bound.
    pub fn engine_options(&self, data_dir: &std::path::Path) -> huifu_engine::EngineOptions {
        let mut options = huifu_engine::EngineOptions::new(data_dir);
        options.memory_max = self.transfers_max.0;
        options
    }
}

/// A bound on the ledger transfers in memory; `None`: no bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransfersMax(pub Option<usize>);

impl std::fmt::Display for TransfersMax {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n}"),
            None => f.write_str("all"),
        }
    }
}

fn parse_transfers_max(text: &str) -> Result<TransfersMax, String> {
    if text == "all" {
        return Ok(TransfersMax(None));
    }
    match text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(TransfersMax(Some(n))),
        _ => Err(format!("expected a number of transfers above zero or `all`, got `{text}`")),
    }
}

/// An error that is the disk being full, named by the folder on that disk: what an operator
/// must act on comes first in the command's one line of error.
#[derive(Debug, thiserror::Error)]
#[error("the disk holding {} is full: {error:#}", folder.display())]
pub struct DiskFull {
    folder: PathBuf,
    error: anyhow::Error,
}

/// `error`, named by the folder whose disk is full when it is that anywhere in it: the folder
/// of the engine's error, else `fallback` (the folder the command writes in), else none.
pub fn name_full_folder(error: anyhow::Error, fallback: Option<&Path>) -> anyhow::Error {
    use huifu_engine::EngineError;
    let engine_errors = || {
        error.chain().filter_map(|e| {
            e.downcast_ref::<EngineError>().or_else(|| match e.downcast_ref() {
                Some(huifu_server::ServeError::Engine(e)) => Some(e),
                _ => None,
            })
        })
    };
    let full = error.chain().any(huifu_engine::is_storage_full)
        || engine_errors().any(|e| huifu_engine::is_storage_full(e));
    // Named already, here or by an engine that stopped on a full disk (it says so, folder first).
    let named = error.chain().any(|e| e.is::<DiskFull>())
        || engine_errors().any(|e| matches!(e, EngineError::Failed(_)));
    if !full || named {
        return error;
    }
    match engine_errors().find_map(EngineError::folder).or_else(|| fallback.map(Path::to_path_buf))
    {
        Some(folder) => DiskFull { folder, error }.into(),
        None => error.context("the disk is full"),
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use huifu_engine::EngineError;
    use huifu_journal::JournalError;

    use super::*;

    #[test]
    fn the_memory_bound_is_a_positive_number_or_all() {
        assert_eq!(parse_transfers_max("all"), Ok(TransfersMax(None)));
        assert_eq!(parse_transfers_max("400000"), Ok(TransfersMax(Some(400_000))));
        for bad in ["0", "-1", "", "lots", "1e6"] {
            assert!(parse_transfers_max(bad).is_err(), "{bad}");
        }
        assert_eq!(TransfersMax(Some(MEMORY_TRANSFERS_MAX_DEFAULT)).to_string(), "4000000");
    }

    #[test]
    fn a_full_disk_is_named_by_its_folder_on_one_line() {
        let journal = Path::new("/nonexistent/data/journal");
        let full = || {
            let error = EngineError::Journal(JournalError::Io {
                op: "write",
                path: journal.join("journal-00000000000000000001.log"),
                cause: io::Error::from_raw_os_error(28),
            });
            anyhow::Error::from(huifu_server::ServeError::Engine(error))
                .context("cannot open engine in /nonexistent/data")
        };
        let line = format!("{:#}", name_full_folder(full(), Some(Path::new("/elsewhere"))));
        assert!(line.starts_with("the disk holding /nonexistent/data/journal is full: cannot open engine in /nonexistent/data: I/O error while trying to write /nonexistent/data/journal/journal-"), "{line}");
        assert!(line.ends_with("(os error 28)") && !line.contains('\n'), "{line}");
        // Named once, however often it is asked.
        let twice = name_full_folder(name_full_folder(full(), None), None);
        assert_eq!(format!("{twice:#}"), line);

        let disk_full = || anyhow::Error::from(io::Error::from_raw_os_error(28));
        let error = disk_full().context("cannot store the admin key");
        assert_eq!(
            format!("{:#}", name_full_folder(error, Some(Path::new("/srv/data")))),
            "the disk holding /srv/data is full: cannot store the admin key: No space left on device (os error 28)"
        );
        let error = disk_full().context("cannot create data folder");
        assert_eq!(
            format!("{:#}", name_full_folder(error, None)),
            "the disk is full: cannot create data folder: No space left on device (os error 28)"
        );
        // Anything else passes as it is.
        let error = anyhow::Error::from(io::Error::from_raw_os_error(5)).context("cannot read");
        assert_eq!(
            format!("{:#}", name_full_folder(error, Some(Path::new("/srv/data")))),
            "cannot read: Input/output error (os error 5)"
        );
    }
}
