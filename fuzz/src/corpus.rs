//! The corpus of a fuzz target, for the tests that run each of its inputs as a regression test.

use std::path::Path;

/// Calls `f` with every input in `fuzz/corpus/<target>`; returns how many there were.
pub fn for_each(target: &str, f: impl Fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .collect();
    paths.sort();
    for path in &paths {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // Shown with the panic of the input that fails.
        eprintln!("fuzz input {}", path.display());
        f(&data);
    }
    assert!(!paths.is_empty(), "{} is empty", dir.display());
    paths.len()
}
