//! The currencies the platform knows: every active ISO 4217 currency, by code and number (the
//! ledger's `ledger` field).
//! Amounts are integers in each currency's minor unit.

// `CURRENCIES`: every active ISO 4217 currency with its minor unit (0 to 4 decimals), written
// by build.rs from the `iso_currency` crate's table. The ledger number of a currency is its ISO
// numeric code, so no number ever changes meaning.
include!(concat!(env!("OUT_DIR"), "/currencies.rs"));

/// The number of a currency code, if it is one of ours.
pub fn number(code: &str) -> Option<u32> {
    let i = BY_CODE.binary_search_by_key(&code, |&(c, _)| c).ok()?;
    Some(BY_CODE[i].1)
}

/// The code and the minor unit's decimals of a currency number, if it is one of ours. (Every
/// reply that carries an amount asks: the table is sorted by number.)
pub fn by_number(number: u32) -> Option<(&'static str, u32)> {
    let i = CURRENCIES.binary_search_by_key(&number, |&(_, n, _)| n).ok()?;
    let (c, _, e) = CURRENCIES[i];
    Some((c, e))
}

/// The code of a currency number, or the number itself when it is not one of ours (a ledger an
/// operator created through the ledger endpoints).
pub fn code(number: u32) -> String {
    by_number(number).map_or_else(|| number.to_string(), |(code, _)| code.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_numbers_map_both_ways() {
        for &(c, n, e) in CURRENCIES {
            assert_eq!(number(c), Some(n));
            assert_eq!(code(n), c);
            assert_eq!(by_number(n), Some((c, e)));
        }
        assert_eq!(number("XXX"), None);
        // Codes and numbers that were ours before the whole table keep their numbers.
        for (c, n, e) in [("CNY", 156, 2), ("JPY", 392, 0), ("KRW", 410, 0), ("USD", 840, 2)] {
            assert_eq!((number(c), by_number(n)), (Some(n), Some((c, e))));
        }
        for (c, n, e) in [("CHF", 756, 2), ("SEK", 752, 2), ("BHD", 48, 3), ("KWD", 414, 3)] {
            assert_eq!((number(c), by_number(n)), (Some(n), Some((c, e))));
        }
        assert!(CURRENCIES.len() > 150, "{}", CURRENCIES.len());
        assert!(CURRENCIES.windows(2).all(|w| w[0].1 < w[1].1), "sorted by number, no repeats");
        assert!(BY_CODE.windows(2).all(|w| w[0].0 < w[1].0), "sorted by code, no repeats");
        assert_eq!(BY_CODE.len(), CURRENCIES.len());
        assert_eq!(number("XAU"), None, "no minor unit");
        assert_eq!(code(999), "999");
    }
}
