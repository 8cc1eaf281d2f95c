//! Every input of the journal's fuzz corpus, run as the fuzz target runs it (see the README's
//! Fuzzing section).

#[path = "../../../fuzz/src/corpus.rs"]
mod corpus;
#[path = "../../../fuzz/src/journal_replay.rs"]
mod journal_replay;

#[test]
fn journal_replay_corpus() {
    corpus::for_each("journal_replay", journal_replay::run);
}
