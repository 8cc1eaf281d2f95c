//! Every input of the statement parsers' fuzz corpora, run as the fuzz targets run them (see
//! the README's Fuzzing section).

#[path = "../../../fuzz/src/corpus.rs"]
mod corpus;
#[path = "../../../fuzz/src/recon.rs"]
mod recon;

#[test]
fn recon_camt053_corpus() {
    corpus::for_each("recon_camt053", recon::camt053);
}

#[test]
fn recon_csv_corpus() {
    corpus::for_each("recon_csv", recon::csv);
}

#[test]
fn recon_mt940_corpus() {
    corpus::for_each("recon_mt940", recon::mt940);
}
