//! Every input of the checkpoint decoders' fuzz corpora (the ledger machine's, the payments
//! machine's and the checkpoint file's), run as the fuzz targets run them (see the README's
//! Fuzzing section).

#[path = "../../../fuzz/src/corpus.rs"]
mod corpus;
#[path = "../../../fuzz/src/snapshot.rs"]
mod snapshot;

#[test]
fn snapshot_ledger_corpus() {
    corpus::for_each("snapshot_ledger", snapshot::ledger);
}

#[test]
fn snapshot_payments_corpus() {
    corpus::for_each("snapshot_payments", snapshot::payments);
}

#[test]
fn snapshot_file_corpus() {
    corpus::for_each("snapshot_file", snapshot::file);
}
