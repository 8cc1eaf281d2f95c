//! Writes the table of currencies (src/currency.rs includes it) from the `iso_currency` crate's
//! ISO 4217 data: every active currency with a minor unit, by numeric code. Superseded codes
//! and the special ones without a minor unit (gold, SDR, testing, "no currency") are left out.

use std::fmt::Write;

use iso_currency::{Currency, IntoEnumIterator};

fn main() {
    let mut rows: Vec<(String, u16, u16)> = Currency::iter()
        .filter(|c| {
            c.is_superseded().is_none() && !c.flags().contains(&iso_currency::Flag::Special)
        })
        .filter_map(|c| c.exponent().map(|e| (c.code().to_owned(), c.numeric(), e)))
        .collect();
    rows.sort_by_key(|r| r.1);
    let mut out = String::from(
        "/// Every known currency: (code, number, decimals of its minor unit), by number.\n",
    );
    out.push_str("pub const CURRENCIES: &[(&str, u32, u32)] = &[\n");
    for (code, number, exponent) in &rows {
        writeln!(out, "    (\"{code}\", {number}, {exponent}),").expect("in memory");
    }
    out.push_str("];\n");
    // The same by code, for `number`: a payment that names its currency looks it up.
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    out.push_str("/// (code, number) of every currency of `CURRENCIES`, by code.\n");
    out.push_str("const BY_CODE: &[(&str, u32)] = &[\n");
    for (code, number, _) in &rows {
        writeln!(out, "    (\"{code}\", {number}),").expect("in memory");
    }
    out.push_str("];\n");
    let path = std::path::Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("currencies.rs");
    std::fs::write(path, out).expect("OUT_DIR is writable");
    println!("cargo::rerun-if-changed=build.rs");
}
