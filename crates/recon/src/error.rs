//! Why a statement file was refused.

/// A statement that cannot be imported. Nothing of a refused file is kept.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("the file is {size} bytes, more than the {max} allowed")]
    TooLarge { size: usize, max: usize },
    #[error("the statement has more than {max} lines")]
    TooManyLines { max: usize },
    /// `at` names the place: `line 7` (CSV), or the line and the element path (camt.053), e.g.
    /// `line 31, Document/BkToCstmrStmt/Stmt/Ntry[3]/Amt`.
    #[error("{at}: {message}")]
    Invalid { at: String, message: String },
    /// The statement id was imported before with different content: a corrected statement
    /// needs a new id.
    #[error("statement `{id}` was already imported with different content")]
    Conflict { id: String },
    #[error("statement currency {statement} is not the channel's currency {channel}")]
    CurrencyMismatch { statement: String, channel: String },
    /// No statement of the file is of a channel: none names a channel's bank account, and no
    /// channel was given for a file of one statement.
    #[error("no statement of the file is of a channel: {unrouted}")]
    Unrouted { unrouted: String },
}

impl ImportError {
    pub fn invalid(at: impl Into<String>, message: impl Into<String>) -> ImportError {
        ImportError::Invalid { at: at.into(), message: message.into() }
    }
}

/// The file formats a statement can come in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// ISO 20022 camt.053 (bank-to-customer statement), XML.
    Camt053,
    /// huifu's CSV layout (see docs/reconciliation.md).
    Csv,
    /// SWIFT MT940 (customer statement message).
    Mt940,
    /// CSV in a layout of its own, read with its layout file (`csv_map`); never told by name
    /// or content.
    CsvLayout,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Camt053 => "camt053",
            Format::Csv => "csv",
            Format::Mt940 => "mt940",
            Format::CsvLayout => "csv-layout",
        }
    }

    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "camt053" => Some(Format::Camt053),
            "csv" => Some(Format::Csv),
            "mt940" => Some(Format::Mt940),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Camt053 => "xml",
            Format::Csv => "csv",
            Format::Mt940 => "sta",
            Format::CsvLayout => "lcsv",
        }
    }

    /// The format with this stored file's extension.
    pub fn from_extension(extension: &str) -> Option<Format> {
        [Format::Camt053, Format::Csv, Format::Mt940, Format::CsvLayout]
            .into_iter()
            .find(|f| f.extension() == extension)
    }

    /// The format a file's content looks like: XML starts with `<`, MT940 with a SWIFT block
    /// (`{1:`, `{4:`) or a field tag (`:20:`, or a bank's `:940:`) (after a byte-order mark or
    /// white space); anything else is taken for CSV.
    pub fn sniff(bytes: &[u8]) -> Format {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(bytes.len());
        let rest = &bytes[start..];
        match rest.first() {
            Some(b'<') => Format::Camt053,
            Some(b'{') | Some(b':') => Format::Mt940,
            _ => Format::Csv,
        }
    }
}

/// Parses a statement file in `format` that holds one statement, checking its size first.
pub fn parse(format: Format, bytes: &[u8]) -> Result<crate::Statement, ImportError> {
    let mut all = parse_all(format, bytes)?;
    if all.len() != 1 {
        return Err(ImportError::invalid(
            "the file",
            format!("{} statements where one was expected", all.len()),
        ));
    }
    Ok(all.pop().expect("one"))
}

/// Parses every statement of a file in `format`, checking its size first.
pub fn parse_all(format: Format, bytes: &[u8]) -> Result<Vec<crate::Statement>, ImportError> {
    use crate::constants::STATEMENT_BYTES_MAX;
    if bytes.len() > STATEMENT_BYTES_MAX {
        return Err(ImportError::TooLarge { size: bytes.len(), max: STATEMENT_BYTES_MAX });
    }
    read_all(format, bytes)
}

/// Reads every statement of a file in `format` from `input`: camt and MT940 as a stream, CSV
/// whole.
pub fn read_all(
    format: Format,
    mut input: impl std::io::BufRead,
) -> Result<Vec<crate::Statement>, ImportError> {
    match format {
        Format::Camt053 => crate::camt::read(input),
        Format::Mt940 => crate::mt940::read(input),
        Format::CsvLayout => Err(ImportError::invalid(
            "the file",
            "a CSV file in a layout of its own is read with its layout (csv_map)",
        )),
        Format::Csv => {
            let mut bytes = Vec::new();
            let limit = crate::constants::STATEMENT_BYTES_MAX as u64 + 1;
            std::io::Read::read_to_end(&mut std::io::Read::take(&mut input, limit), &mut bytes)
                .map_err(|e| ImportError::invalid("the file", format!("cannot be read: {e}")))?;
            if bytes.len() > crate::constants::STATEMENT_BYTES_MAX {
                return Err(ImportError::TooLarge {
                    size: bytes.len(),
                    max: crate::constants::STATEMENT_BYTES_MAX,
                });
            }
            crate::csv_layout::parse(&bytes).map(|s| vec![s])
        }
    }
}
