//! What each fuzz target runs. The crates' tests include these files too (with corpus.rs), to run
//! every input of the corpora as a regression test.

pub mod journal_replay;
pub mod recon;
pub mod snapshot;
pub mod store_records;
