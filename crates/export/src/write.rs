//! Writing the tables: Parquet through the Arrow writer, CSV through the `csv` crate. The I/O
//! edge of the crate.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, Decimal128Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::constants::{BATCH_ROWS_MAX, DECIMAL_PRECISION};
use crate::error::ExportError;
use crate::rows::{rows, Row};
use crate::table::{Cell, ColumnType, Table};
use crate::time::{rfc3339, TimeRange};
use huifu_payments::PaymentsMachine;

/// The file format of an export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Apache Parquet, Snappy-compressed, with the Arrow schema embedded.
    Parquet,
    /// RFC 4180 CSV with a header line, UTF-8, `\n` line ends; null is an empty field.
    Csv,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Csv => "csv",
        }
    }
}

impl FromStr for Format {
    type Err = ExportError;

    fn from_str(text: &str) -> Result<Format, ExportError> {
        match text.to_ascii_lowercase().as_str() {
            "parquet" => Ok(Format::Parquet),
            "csv" => Ok(Format::Csv),
            _ => Err(ExportError::UnknownFormat(text.to_owned())),
        }
    }
}

/// What to export, and where.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    pub range: TimeRange,
    pub format: Format,
    /// The folder that receives one file per table (created if missing).
    pub out_dir: PathBuf,
    /// Replace files of an earlier export; without it an existing file is an error.
    pub overwrite: bool,
}

/// One file written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub table: Table,
    pub path: PathBuf,
    pub rows: u64,
}

/// Writes every table of `machine` for `options.range`. The files are written under temporary
/// names and renamed once all are complete, so an export that fails (a disk full, an amount too
/// large) leaves no file with a final name behind.
pub fn export(
    machine: &PaymentsMachine,
    options: &ExportOptions,
) -> Result<Vec<Written>, ExportError> {
    let dir = &options.out_dir;
    fs::create_dir_all(dir).map_err(io("create", dir))?;
    let extension = options.format.extension();
    let paths: Vec<PathBuf> =
        Table::ALL.iter().map(|t| dir.join(format!("{}.{extension}", t.name()))).collect();
    if !options.overwrite {
        if let Some(path) = paths.iter().find(|p| p.exists()) {
            return Err(ExportError::Exists(path.clone()));
        }
    }
    let partial = |path: &Path| path.with_extension(format!("{extension}.partial"));
    let mut written = Vec::new();
    for (table, path) in Table::ALL.into_iter().zip(paths) {
        let rows = rows(machine, table, options.range);
        let count = match options.format {
            Format::Parquet => write_parquet(table, rows, &partial(&path)),
            Format::Csv => write_csv(table, rows, &partial(&path)),
        };
        match count {
            Ok(rows) => written.push(Written { table, path, rows }),
            Err(error) => {
                let _ = fs::remove_file(partial(&path));
                for w in &written {
                    let _ = fs::remove_file(partial(&w.path));
                }
                return Err(error);
            }
        }
    }
    for w in &written {
        fs::rename(partial(&w.path), &w.path).map_err(io("rename into", &w.path))?;
    }
    Ok(written)
}

/// Writes the rows of `table` as one Parquet file, a row group per `BATCH_ROWS_MAX` rows.
pub fn write_parquet(
    table: Table,
    rows: impl Iterator<Item = Row>,
    path: &Path,
) -> Result<u64, ExportError> {
    let file = File::create(path).map_err(io("create", path))?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(BATCH_ROWS_MAX))
        .set_created_by(format!("huifu {}", env!("CARGO_PKG_VERSION")))
        .build();
    let parquet = |cause| ExportError::Parquet { path: path.to_path_buf(), cause };
    let mut writer =
        ArrowWriter::try_new(file, table.schema(), Some(properties)).map_err(parquet)?;
    let mut builders = Builders::new(table);
    let mut count = 0;
    for row in rows {
        builders.push(row?);
        count += 1;
        if builders.len() == BATCH_ROWS_MAX {
            writer.write(&builders.finish()?).map_err(parquet)?;
        }
    }
    if builders.len() > 0 {
        writer.write(&builders.finish()?).map_err(parquet)?;
    }
    let file = writer.into_inner().map_err(parquet)?;
    file.sync_all().map_err(io("sync", path))?;
    Ok(count)
}

/// Writes the rows of `table` as one CSV file with a header line.
pub fn write_csv(
    table: Table,
    rows: impl Iterator<Item = Row>,
    path: &Path,
) -> Result<u64, ExportError> {
    let file = File::create(path).map_err(io("create", path))?;
    let csv = |cause| ExportError::Csv { path: path.to_path_buf(), cause };
    let mut writer = csv::Writer::from_writer(BufWriter::new(file));
    writer.write_record(table.columns().iter().map(|c| c.name)).map_err(csv)?;
    let mut count = 0;
    let mut fields: Vec<String> = Vec::new();
    for row in rows {
        fields.clear();
        fields.extend(row?.into_iter().map(|cell| match cell {
            Cell::Null => String::new(),
            Cell::Text(text) => text,
            Cell::Int(n) => n.to_string(),
            Cell::Time(ns) => rfc3339(ns),
            Cell::Decimal(n) => n.to_string(),
        }));
        writer.write_record(&fields).map_err(csv)?;
        count += 1;
    }
    let mut file = writer.into_inner().map_err(|e| csv(e.into_error().into()))?;
    file.flush().map_err(io("write", path))?;
    file.into_inner()
        .map_err(|e| io("write", path)(e.into_error()))?
        .sync_all()
        .map_err(io("sync", path))?;
    Ok(count)
}

/// One Arrow builder per column.
struct Builders {
    table: Table,
    columns: Vec<Builder>,
}

enum Builder {
    Text(StringBuilder),
    Int(Int64Builder),
    Time(TimestampMicrosecondBuilder),
    Decimal(Decimal128Builder),
}

impl Builders {
    fn new(table: Table) -> Builders {
        let columns = table
            .columns()
            .iter()
            .map(|c| match c.kind {
                ColumnType::Text => Builder::Text(StringBuilder::new()),
                ColumnType::Int => Builder::Int(Int64Builder::new()),
                ColumnType::Time => {
                    Builder::Time(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
                }
                ColumnType::Decimal => Builder::Decimal(
                    Decimal128Builder::new()
                        .with_precision_and_scale(DECIMAL_PRECISION, 0)
                        .expect("a valid precision"),
                ),
            })
            .collect();
        Builders { table, columns }
    }

    fn len(&self) -> usize {
        self.columns.first().map_or(0, |b| match b {
            Builder::Text(b) => b.len(),
            Builder::Int(b) => b.len(),
            Builder::Time(b) => b.len(),
            Builder::Decimal(b) => b.len(),
        })
    }

    fn push(&mut self, row: Vec<Cell>) {
        assert_eq!(
            row.len(),
            self.columns.len(),
            "a row of {} has every column",
            self.table.name()
        );
        for (builder, cell) in self.columns.iter_mut().zip(row) {
            match (builder, cell) {
                (Builder::Text(b), Cell::Text(text)) => b.append_value(text),
                (Builder::Text(b), Cell::Null) => b.append_null(),
                (Builder::Int(b), Cell::Int(n)) => b.append_value(n),
                (Builder::Int(b), Cell::Null) => b.append_null(),
                // Microseconds: the finest unit every Parquet reader takes as a timestamp.
                (Builder::Time(b), Cell::Time(ns)) => b.append_value(
                    i64::try_from(ns / 1_000).expect("a ledger timestamp is below 2^63"),
                ),
                (Builder::Time(b), Cell::Null) => b.append_null(),
                (Builder::Decimal(b), Cell::Decimal(n)) => b.append_value(
                    i128::try_from(n).expect("checked against DECIMAL_MAX by the row"),
                ),
                (Builder::Decimal(b), Cell::Null) => b.append_null(),
                (_, cell) => {
                    unreachable!("{}: {cell:?} in a column of another type", self.table.name())
                }
            }
        }
    }

    /// The rows pushed so far as one batch; the builders start again empty.
    fn finish(&mut self) -> Result<RecordBatch, ExportError> {
        let arrays: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|b| -> ArrayRef {
                match b {
                    Builder::Text(b) => Arc::new(b.finish()),
                    Builder::Int(b) => Arc::new(b.finish()),
                    Builder::Time(b) => Arc::new(b.finish()),
                    Builder::Decimal(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        let table = self.table.name();
        RecordBatch::try_new(self.table.schema(), arrays)
            .map_err(|cause| ExportError::Arrow { table, cause })
    }
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ExportError {
    let path = path.to_path_buf();
    move |cause| ExportError::Io { what, path, cause }
}
