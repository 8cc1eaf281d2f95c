//! The statement parsers over arbitrary bytes: they must return, never panic, and a statement
//! parsed writes a file that parses back to it (but for each line's `number`, which says where
//! the line was in the file it was read from).

use huifu_recon::{camt053, csv_layout, Statement};

fn unnumbered(mut statement: Statement) -> Statement {
    for line in &mut statement.lines {
        line.number = 0;
    }
    statement
}

pub fn camt053(data: &[u8]) {
    let Ok(statement) = camt053::parse(data) else {
        return;
    };
    let written = camt053::write(&statement, "2026-11-27T06:00:00");
    let again = camt053::parse(written.as_bytes()).expect("a statement written parses");
    assert_eq!(unnumbered(again), unnumbered(statement), "a statement written parses to another");
}

pub fn csv(data: &[u8]) {
    let Ok(statement) = csv_layout::parse(data) else {
        return;
    };
    let written = csv_layout::write(&statement);
    let again = csv_layout::parse(written.as_bytes()).expect("a statement written parses");
    assert_eq!(unnumbered(again), unnumbered(statement), "a statement written parses to another");
}
