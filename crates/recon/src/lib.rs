//! Reconciliation of bank statements against huifu's ledger.
//!
//! Money that moves through a bank channel exists twice: in the ledger, on the channel's
//! clearing account, and on the bank's statement. This crate reads statements (ISO 20022
//! camt.053/.054/.052, SWIFT MT940, CSV layouts), takes the clearing account's movements from
//! the payments machine, and matches the two: by the reference the bank echoes, then by amount
//! and date.
//! Every line and every movement ends matched, unmatched (bank or ledger side), with an amount
//! mismatch, or as a duplicate. The matcher is pure; `store` is the one module that touches
//! files. `generate` is the simulated bank's side: statements with injected discrepancies.
//!
//! ```
//! use huifu_recon::{camt053, matcher, Direction, Entry, MatchConfig, State};
//!
//! let xml = r#"<Document><BkToCstmrStmt><Stmt><Id>S1</Id>
//!   <FrToDt><FrDtTm>2026-11-26T00:00:00Z</FrDtTm><ToDtTm>2026-11-26T23:59:59Z</ToDtTm></FrToDt>
//!   <Acct><Id><Othr><Id>CLEARING-1</Id></Othr></Id><Ccy>CNY</Ccy></Acct>
//!   <Ntry><Amt Ccy="CNY">12.50</Amt><CdtDbtInd>CRDT</CdtDbtInd><BookgDt><Dt>2026-11-26</Dt></BookgDt>
//!     <NtryDtls><TxDtls><Refs><EndToEndId>top_7</EndToEndId></Refs></TxDtls></NtryDtls></Ntry>
//! </Stmt></BkToCstmrStmt></Document>"#;
//! let statement = camt053::parse(xml.as_bytes()).unwrap();
//! let day = statement.from_day;
//! let entry = Entry { transfer_id: 1, direction: Direction::Credit, amount_minor: 1_250,
//!     timestamp_ns: 0, day, reference: "top_7".into(), batch: String::new() };
//! let items = matcher::reconcile(&[statement], &[entry], &MatchConfig::default());
//! assert_eq!(items.len(), 1);
//! assert_eq!(items[0].state, State::Matched);
//! ```

pub mod camt;
pub mod camt053;
pub mod constants;
pub mod csv_layout;
pub mod csv_map;
pub mod entries;
mod error;
pub mod generate;
pub mod matcher;
pub mod mt940;
pub mod report;
pub mod run;
pub mod statement;
pub mod store;

pub use entries::{channel_entries, Entry};
pub use error::{parse, parse_all, read_all, Format, ImportError};
pub use matcher::{reconcile, Item, MatchConfig, Rule, State};
pub use report::{report, Exception, Report, Resolution, Tally};
pub use run::Run;
pub use statement::{Day, Direction, Line, Statement};
pub use store::{Imported, Store, StoreError, Stored, Unrouted};
