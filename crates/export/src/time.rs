//! The time range of an export: RFC 3339 or nanoseconds since the Unix epoch, as the ledger
//! counts them.

use chrono::{DateTime, SecondsFormat, Utc};
use huifu_ledger::constants::TIMESTAMP_MAX;

use crate::error::ExportError;

/// Rows whose time `t` is in `from_ns <= t < to_ns` (nanoseconds since the Unix epoch): the
/// end is excluded, so consecutive ranges (one per day, say) never share a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeRange {
    pub from_ns: u64,
    pub to_ns: u64,
}

impl TimeRange {
    /// Every timestamp the ledger can give.
    pub const ALL: TimeRange = TimeRange { from_ns: 0, to_ns: u64::MAX };

    /// The range between two optional bounds (the beginning and the end of time when absent),
    /// each RFC 3339 or nanoseconds.
    pub fn parse(from: Option<&str>, to: Option<&str>) -> Result<TimeRange, ExportError> {
        let from_ns = from.map(parse_time).transpose()?.unwrap_or(TimeRange::ALL.from_ns);
        let to_ns = to.map(parse_time).transpose()?.unwrap_or(TimeRange::ALL.to_ns);
        TimeRange::new(from_ns, to_ns)
    }

    /// Refuses a range that ends before it starts or is empty.
    pub fn new(from_ns: u64, to_ns: u64) -> Result<TimeRange, ExportError> {
        if from_ns > to_ns {
            return Err(ExportError::FromAfterTo { from: describe(from_ns), to: describe(to_ns) });
        }
        if from_ns == to_ns {
            return Err(ExportError::EmptyRange(describe(from_ns)));
        }
        Ok(TimeRange { from_ns, to_ns })
    }

    pub fn contains(&self, timestamp_ns: u64) -> bool {
        self.from_ns <= timestamp_ns && timestamp_ns < self.to_ns
    }
}

/// A time as RFC 3339 (any offset, any fraction of a second) or as whole nanoseconds since the
/// Unix epoch.
pub fn parse_time(text: &str) -> Result<u64, ExportError> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let ns: u64 = text.parse().map_err(|_| ExportError::TimeOutOfRange(text.to_owned()))?;
        if ns > TIMESTAMP_MAX {
            return Err(ExportError::TimeOutOfRange(text.to_owned()));
        }
        return Ok(ns);
    }
    let time = DateTime::parse_from_rfc3339(text)
        .map_err(|_| ExportError::InvalidTime(text.to_owned()))?;
    time.timestamp_nanos_opt()
        .and_then(|ns| u64::try_from(ns).ok())
        .ok_or_else(|| ExportError::TimeOutOfRange(text.to_owned()))
}

/// A ledger timestamp as RFC 3339 in UTC with all nine digits of the nanoseconds.
pub fn rfc3339(timestamp_ns: u64) -> String {
    // Ledger timestamps stay below 2^63, so they fit an i64; anything above is shown at the end.
    let ns = i64::try_from(timestamp_ns).unwrap_or(i64::MAX);
    DateTime::<Utc>::from_timestamp_nanos(ns).to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// A bound as both forms, for error messages.
fn describe(timestamp_ns: u64) -> String {
    format!("{} = {timestamp_ns} ns", rfc3339(timestamp_ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_and_nanoseconds_name_the_same_instant() {
        let ns = parse_time("1769846400123456789").unwrap();
        assert_eq!(parse_time("2026-01-31T08:00:00.123456789Z").unwrap(), ns);
        assert_eq!(parse_time("2026-01-31T16:00:00.123456789+08:00").unwrap(), ns);
        assert_eq!(rfc3339(ns), "2026-01-31T08:00:00.123456789Z");
        assert_eq!(parse_time(&rfc3339(ns)).unwrap(), ns);
    }

    #[test]
    fn bad_times_are_refused_with_the_text() {
        for text in ["", "yesterday", "2026-01-31", "2026-13-01T00:00:00Z", "-5", "1.5"] {
            let error = parse_time(text).unwrap_err();
            assert!(matches!(error, ExportError::InvalidTime(_)), "{text}: {error}");
        }
        for text in ["1969-12-31T23:59:59Z", "9223372036854775808", "99999999999999999999"] {
            let error = parse_time(text).unwrap_err();
            assert!(matches!(error, ExportError::TimeOutOfRange(_)), "{text}: {error}");
        }
    }

    #[test]
    fn a_range_must_start_before_it_ends() {
        let error = TimeRange::parse(Some("2026-02-01T00:00:00Z"), Some("2026-01-31T00:00:00Z"))
            .unwrap_err();
        assert!(matches!(error, ExportError::FromAfterTo { .. }));
        assert!(error.to_string().contains("2026-02-01T00:00:00.000000000Z"), "{error}");
        let error = TimeRange::parse(Some("5"), Some("5")).unwrap_err();
        assert!(matches!(error, ExportError::EmptyRange(_)), "{error}");
        let range = TimeRange::parse(Some("5"), Some("7")).unwrap();
        assert_eq!((range.contains(4), range.contains(5), range.contains(7)), (false, true, false));
        assert_eq!(TimeRange::parse(None, None).unwrap(), TimeRange::ALL);
    }
}
