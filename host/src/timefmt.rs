//! Timestamps as ClickHouse `DateTime` parses them in JSONEachRow: `YYYY-MM-DD hh:mm:ss`, UTC.

use std::cell::RefCell;

use time::format_description::FormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

const FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");

thread_local! {
    /// The last two seconds formatted on this thread, the older first: a DLQ record
    /// has two times (its source record's and its own), and the records of one batch
    /// nearly always share both.
    static RECENT: RefCell<[(i64, String); 2]> =
        const { RefCell::new([(i64::MIN, String::new()), (i64::MIN, String::new())]) };
}

/// Seconds since the epoch → `YYYY-MM-DD hh:mm:ss`. Out-of-range values clamp to the epoch.
pub fn datetime(secs: i64) -> String {
    RECENT.with_borrow_mut(|recent| {
        if let Some((_, text)) = recent.iter().find(|(s, _)| *s == secs) {
            return text.clone();
        }
        let text = OffsetDateTime::from_unix_timestamp(secs)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
            .format(FORMAT)
            .unwrap_or_default();
        recent.swap(0, 1);
        recent[1] = (secs, text.clone());
        text
    })
}

pub fn datetime_ms(ms: i64) -> String {
    datetime(ms.div_euclid(1000))
}

/// `YYYY-MM-DD hh:mm:ss` (UTC) → seconds since the epoch; the inverse of [`datetime`].
pub fn parse(s: &str) -> Option<i64> {
    PrimitiveDateTime::parse(s, FORMAT)
        .ok()
        .map(|dt| dt.assume_utc().unix_timestamp())
}

pub fn now() -> String {
    datetime(OffsetDateTime::now_utc().unix_timestamp())
}

/// Where a stage reads the time, in seconds since the epoch: [`wall_clock`], or in tests
/// any other function.
pub type Clock = fn() -> i64;

/// The host's wall clock, in seconds since the epoch.
pub fn wall_clock() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_as_clickhouse_datetime() {
        assert_eq!(super::datetime(0), "1970-01-01 00:00:00");
        assert_eq!(super::datetime(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(super::datetime_ms(1_700_000_000_999), "2023-11-14 22:13:20");
        // Alternating and new seconds, through the cache of recent ones.
        for secs in [0, 1_700_000_000, 0, 1_700_000_001, 1_700_000_000, 0] {
            let expected = time::OffsetDateTime::from_unix_timestamp(secs)
                .unwrap()
                .format(super::FORMAT)
                .unwrap();
            assert_eq!(super::datetime(secs), expected);
        }
    }

    #[test]
    fn parse_is_the_inverse_of_datetime() {
        assert_eq!(
            super::parse(&super::datetime(1_700_000_040)),
            Some(1_700_000_040)
        );
        assert_eq!(super::parse("garbage"), None);
    }
}
