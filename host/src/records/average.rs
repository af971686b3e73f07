//! The window average, both directions: written when a window closes, read back on a
//! takeover to learn which windows were already emitted (the averages topic is the
//! window stage's checkpoint). The key field is named after the window key
//! (`country` in the brief's).

use compact_str::format_compact;
use serde_json::Value as Json;

use super::{Destination, Output};
use crate::timefmt;

/// One closed window of one key.
#[derive(Debug, Clone, PartialEq)]
pub struct Average<'a> {
    pub key: &'a str,
    /// Window start and end, seconds since the epoch.
    pub start: i64,
    pub end: i64,
    /// Events per minute over the window.
    pub average: f64,
    pub count: u64,
}

impl Average<'_> {
    /// The record, keyed by (key, window start): a re-emission after a restart
    /// replaces the same row downstream.
    pub fn output(&self, key_field: &str) -> Output {
        let start = timefmt::datetime(self.start);
        let payload = serde_json::json!({
            key_field: self.key,
            "window_start": start,
            "window_end": timefmt::datetime(self.end),
            "average_events": self.average,
            "event_count": self.count,
        });
        Output {
            destination: Destination::Averages,
            key: format_compact!("{}|{}", self.key, start),
            payload: payload.to_string().into_bytes(),
        }
    }
}

/// Of an average record: its key and window start, or `None` if it is not one.
pub fn emitted(payload: &[u8], key_field: &str) -> Option<(String, i64)> {
    let record: Json = serde_json::from_slice(payload).ok()?;
    let key = match &record[key_field] {
        Json::String(s) => s.clone(),
        Json::Number(n) => n.to_string(),
        _ => return None,
    };
    let start = record["window_start"].as_str().and_then(timefmt::parse)?;
    Some((key, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_and_read_back() {
        let a = Average {
            key: "JP",
            start: 1_700_000_040,
            end: 1_700_000_340,
            average: 2.0,
            count: 10,
        };
        let out = a.output("country");
        assert_eq!(out.key, "JP|2023-11-14 22:14:00");
        let v: Json = serde_json::from_slice(&out.payload).unwrap();
        assert_eq!(v["country"], "JP");
        assert_eq!(v["event_count"], 10);
        assert_eq!(
            emitted(&out.payload, "country"),
            Some(("JP".into(), 1_700_000_040))
        );
        assert_eq!(emitted(&out.payload, "device_id"), None);
    }
}
