//! The currencies the platform knows, by ISO 4217 code and number (the ledger's `ledger` field).
//! Amounts are integers in each currency's minor unit.

/// Every known currency: (code, number, decimals of its minor unit).
pub const CURRENCIES: &[(&str, u32, u32)] = &[
    ("CNY", 156, 2),
    ("HKD", 344, 2),
    ("JPY", 392, 0),
    ("KRW", 410, 0),
    ("SGD", 702, 2),
    ("THB", 764, 2),
    ("GBP", 826, 2),
    ("USD", 840, 2),
    ("EUR", 978, 2),
];

/// The number of a currency code, if it is one of ours.
pub fn number(code: &str) -> Option<u32> {
    CURRENCIES.iter().find(|(c, _, _)| *c == code).map(|&(_, n, _)| n)
}

/// The code and the minor unit's decimals of a currency number, if it is one of ours.
pub fn by_number(number: u32) -> Option<(&'static str, u32)> {
    CURRENCIES.iter().find(|(_, n, _)| *n == number).map(|&(c, _, e)| (c, e))
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
        assert_eq!(code(999), "999");
    }
}
