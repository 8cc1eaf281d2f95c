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
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Camt053 => "camt053",
            Format::Csv => "csv",
        }
    }

    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "camt053" => Some(Format::Camt053),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Camt053 => "xml",
            Format::Csv => "csv",
        }
    }

    /// The format a file's content looks like: XML starts with `<` (after a byte-order mark or
    /// white space).
    pub fn sniff(bytes: &[u8]) -> Format {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'<') => Format::Camt053,
            _ => Format::Csv,
        }
    }
}

/// Parses a statement file in `format`, checking its size first.
pub fn parse(format: Format, bytes: &[u8]) -> Result<crate::Statement, ImportError> {
    use crate::constants::STATEMENT_BYTES_MAX;
    if bytes.len() > STATEMENT_BYTES_MAX {
        return Err(ImportError::TooLarge { size: bytes.len(), max: STATEMENT_BYTES_MAX });
    }
    match format {
        Format::Camt053 => crate::camt053::parse(bytes),
        Format::Csv => crate::csv_layout::parse(bytes),
    }
}
