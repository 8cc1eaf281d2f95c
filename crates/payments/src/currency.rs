//! The currencies the platform knows, by ISO 4217 code and number (the ledger's `ledger` field).
//! Amounts are integers in each currency's minor unit.

/// Every known currency: (code, number).
pub const CURRENCIES: &[(&str, u32)] = &[
    ("CNY", 156),
    ("HKD", 344),
    ("JPY", 392),
    ("KRW", 410),
    ("SGD", 702),
    ("THB", 764),
    ("GBP", 826),
    ("USD", 840),
    ("EUR", 978),
];

/// The number of a currency code, if it is one of ours.
pub fn number(code: &str) -> Option<u32> {
    CURRENCIES.iter().find(|(c, _)| *c == code).map(|(_, n)| *n)
}

/// The code of a currency number, or the number itself when it is not one of ours (a ledger an
/// operator created through the ledger endpoints).
pub fn code(number: u32) -> String {
    CURRENCIES
        .iter()
        .find(|(_, n)| *n == number)
        .map_or_else(|| number.to_string(), |(code, _)| (*code).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_numbers_map_both_ways() {
        for &(c, n) in CURRENCIES {
            assert_eq!(number(c), Some(n));
            assert_eq!(code(n), c);
        }
        assert_eq!(number("XXX"), None);
        assert_eq!(code(999), "999");
    }
}
