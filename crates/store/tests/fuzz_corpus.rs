//! Every input of the store's fuzz corpus, run as the fuzz target runs it (see the README's
//! Fuzzing section).

#[path = "../../../fuzz/src/corpus.rs"]
mod corpus;
#[path = "../../../fuzz/src/store_records.rs"]
mod store_records;

#[test]
fn store_records_corpus() {
    corpus::for_each("store_records", store_records::run);
}
