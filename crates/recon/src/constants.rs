//! Every limit of reconciliation, in one place.

/// The largest statement file accepted, in bytes. camt and MT940 files are read as a stream
/// through a buffer, so this bounds disk and time, not memory; a CSV file is held whole while it
/// is parsed. A camt.053 entry takes about 400 bytes, so 2 GiB holds `STATEMENT_LINES_MAX`
/// lines. The HTTP API takes smaller files: its body limit applies first.
pub const STATEMENT_BYTES_MAX: usize = 2 * 1024 * 1024 * 1024;

/// The buffer a statement file on disk is parsed and hashed through, and then copied into the
/// store through, in bytes: with the parser's own buffers, the memory an import takes whatever
/// the file's size (a CSV file apart, held whole). Larger buffers save read and write calls.
pub const IMPORT_BUFFER_BYTES: usize = 64 * 1024;

/// The most lines (entries, and transactions of batch entries; CSV records) in one file: about
/// 150 bytes of memory each once parsed (300 MiB at the limit), and the matcher's work grows
/// with them (hash lookups, linear).
pub const STATEMENT_LINES_MAX: usize = 2_000_000;

/// The camt versions read (`camt.05N.001.NN`): .02, the first in use, to .13, the newest
/// published (2023). The elements read are the same in all of them but for `Sts`.
pub const CAMT_VERSION_MIN: u32 = 2;
pub const CAMT_VERSION_MAX: u32 = 13;

/// The longest line of an MT940 file, in bytes. SWIFT lines are at most 65 characters; some
/// exports put a whole `:86:` on one line. Bounds the reader's buffer.
pub const MT940_LINE_BYTES_MAX: usize = 4 * 1024;

/// The longest MT940 field of several lines (`:86:`, `:61:` with its supplementary details),
/// in bytes: the field is held whole until it ends (SWIFT allows 6 lines of 65 characters).
pub const MT940_INFO_BYTES_MAX: usize = 16 * 1024;

/// The longest CSV layout file, in bytes: it is small (a column name each), held whole.
pub const CSV_LAYOUT_BYTES_MAX: usize = 64 * 1024;

/// The most lines a CSV layout skips before its header: exports put a title, the account and
/// the period there, a few lines.
pub const CSV_LAYOUT_SKIP_ROWS_MAX: u32 = 100;

/// The most statements in one file: each is routed to a channel and stored once per channel.
pub const STATEMENTS_PER_FILE_MAX: usize = 1_000;

/// The longest reference, bank reference, statement id or account id kept, in bytes. ISO 20022
/// caps these fields at 35 characters (`Max35Text`); longer text is refused, not cut.
pub const TEXT_LEN_MAX: usize = 35;

/// How many days a bank's booking date may differ from the ledger's date of the same movement
/// and still match, by default. A bank books after its cut-off the next business day.
pub const DATE_WINDOW_DAYS_DEFAULT: u32 = 2;

/// The widest date window allowed: a wider one lets amount-and-date matching pair movements that
/// have nothing to do with each other, and widens the ledger read of every run.
pub const DATE_WINDOW_DAYS_MAX: u32 = 31;

/// The most statements kept per channel; a run reads all of them, so this bounds a run's work.
pub const STATEMENTS_PER_CHANNEL_MAX: usize = 1_000;

/// The longest name of who resolved an exception, and of the reason, in bytes.
pub const RESOLUTION_TEXT_LEN_MAX: usize = 500;

/// The most entries of the channel's clearing account read from the ledger per query page
/// (the ledger's own maximum).
pub const LEDGER_PAGE_MAX: u32 = huifu_ledger::constants::QUERY_LIMIT_MAX;

const _: () = assert!(DATE_WINDOW_DAYS_DEFAULT <= DATE_WINDOW_DAYS_MAX);
const _: () = assert!(STATEMENT_LINES_MAX <= u32::MAX as usize);
const _: () = assert!(CAMT_VERSION_MIN <= CAMT_VERSION_MAX);
const _: () = assert!(STATEMENTS_PER_FILE_MAX <= STATEMENTS_PER_CHANNEL_MAX);
const _: () = assert!(MT940_LINE_BYTES_MAX <= MT940_INFO_BYTES_MAX);
const _: () = assert!(IMPORT_BUFFER_BYTES <= STATEMENT_BYTES_MAX);
