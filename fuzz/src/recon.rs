//! The statement parsers over arbitrary bytes: they must return, never panic, and a statement
//! parsed writes a file that parses back to it (but for each line's `number`, which says where
//! the line was in the file it was read from, and for the count of pending entries, which are
//! not written). MT940, which huifu reads but does not write, is read again through a reader of
//! a few bytes at a time (the same statements) and its statements checked for what the parser
//! promises.

use huifu_recon::constants::TEXT_LEN_MAX;
use huifu_recon::{camt, camt053, csv_layout, mt940, Statement};

fn unnumbered(mut statement: Statement) -> Statement {
    for line in &mut statement.lines {
        line.number = 0;
    }
    statement.pending_lines = 0;
    statement
}

pub fn camt053(data: &[u8]) {
    let Ok(statements) = camt::parse_all(data) else {
        return;
    };
    let written = camt053::write_all(&statements, "2026-11-27T06:00:00");
    let again = camt::parse_all(written.as_bytes()).expect("statements written parse");
    let again: Vec<Statement> = again.into_iter().map(unnumbered).collect();
    let before: Vec<Statement> = statements.into_iter().map(unnumbered).collect();
    assert_eq!(again, before, "statements written parse to others");
}

pub fn csv(data: &[u8]) {
    let Ok(statement) = csv_layout::parse(data) else {
        return;
    };
    let written = csv_layout::write(&statement);
    let again = csv_layout::parse(written.as_bytes()).expect("a statement written parses");
    assert_eq!(unnumbered(again), unnumbered(statement), "a statement written parses to another");
}

pub fn mt940(data: &[u8]) {
    let Ok(statements) = mt940::parse_all(data) else {
        return;
    };
    let streamed = mt940::read(std::io::BufReader::with_capacity(7, data))
        .expect("a file read whole reads as a stream");
    assert_eq!(streamed, statements, "the stream reads other statements");
    for s in &statements {
        assert!(!s.id.is_empty() && s.id.len() <= TEXT_LEN_MAX, "statement id {:?}", s.id);
        assert!(!s.account.is_empty() && s.account.len() <= TEXT_LEN_MAX);
        assert!(huifu_recon::statement::currency_code(s.currency).is_some());
        assert!(s.from_day <= s.to_day, "the period ends before it starts");
        assert!(s.opening_minor.is_some() && s.closing_minor.is_some());
        for l in &s.lines {
            assert!((s.from_day..=s.to_day).contains(&l.booking_day), "booked outside the period");
            assert!(l.reference.len() <= TEXT_LEN_MAX && l.bank_reference.len() <= TEXT_LEN_MAX);
            assert!(l.other_references.iter().all(|r| !r.is_empty() && r.len() <= TEXT_LEN_MAX));
            assert!(!l.other_references.contains(&l.reference));
            assert!(!l.reference.is_empty() || l.other_references.is_empty());
        }
    }
}
