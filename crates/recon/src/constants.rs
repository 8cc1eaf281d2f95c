//! Every limit of reconciliation, in one place.

/// The largest statement file accepted, in bytes. The whole file is held in memory while it is
/// parsed (with the parsed lines, about twice its size). A camt.053 entry takes about 600 bytes,
/// a CSV record about 130, so a busy channel's day (100,000 movements) fits in either. The HTTP
/// API takes smaller files: its body limit applies first.
pub const STATEMENT_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The most lines (camt.053 `Ntry` entries, CSV records) in one statement: about 100 bytes of
/// memory each once parsed, and the matcher's work grows with them (hash lookups, linear).
pub const STATEMENT_LINES_MAX: usize = 500_000;

/// The longest reference, bank reference, statement id or account id kept, in bytes. ISO 20022
/// caps these fields at 35 characters (`Max35Text`); longer text is refused, not cut.
pub const TEXT_LEN_MAX: usize = 35;

/// How many days a bank's booking date may differ from the ledger's date of the same movement
/// and still match, by default. A bank books after its cut-off the next business day.
pub const DATE_WINDOW_DAYS_DEFAULT: u32 = 2;

/// The widest date window allowed: a wider one lets amount-and-date matching pair movements that
/// have nothing to do with each other, and widens the ledger read of every run.
pub const DATE_WINDOW_DAYS_MAX: u32 = 31;

/// The longest statement period, in days: bounds the ledger read of one run.
pub const PERIOD_DAYS_MAX: i32 = 62;

/// The most statements kept per channel; a run reads all of them, so this bounds a run's work.
pub const STATEMENTS_PER_CHANNEL_MAX: usize = 1_000;

/// The longest name of who resolved an exception, and of the reason, in bytes.
pub const RESOLUTION_TEXT_LEN_MAX: usize = 500;

/// The most entries of the channel's clearing account read from the ledger per query page
/// (the ledger's own maximum).
pub const LEDGER_PAGE_MAX: u32 = huifu_ledger::constants::QUERY_LIMIT_MAX;

const _: () = assert!(DATE_WINDOW_DAYS_DEFAULT <= DATE_WINDOW_DAYS_MAX);
const _: () = assert!(STATEMENT_LINES_MAX <= u32::MAX as usize);
