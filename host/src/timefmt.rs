//! Timestamps as ClickHouse `DateTime` parses them in JSONEachRow: `YYYY-MM-DD hh:mm:ss`, UTC.

use time::format_description::FormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

const FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");

/// Seconds since the epoch → `YYYY-MM-DD hh:mm:ss`. Out-of-range values clamp to the epoch.
pub fn datetime(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .format(FORMAT)
        .unwrap_or_default()
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

#[cfg(test)]
mod tests {
    #[test]
    fn formats_as_clickhouse_datetime() {
        assert_eq!(super::datetime(0), "1970-01-01 00:00:00");
        assert_eq!(super::datetime(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(super::datetime_ms(1_700_000_000_999), "2023-11-14 22:13:20");
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
