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
    /// The enriched partition the window was counted from, and the last offset read
    /// from it when the window closed: records up to it had been seen.
    pub read_through: Option<(i32, i64)>,
}

/// Of an average record, what a later owner of its partition needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emitted {
    pub key: String,
    pub start: i64,
    /// See [`Average::read_through`] (absent in records of older hosts).
    pub read_through: Option<(i32, i64)>,
}

impl Average<'_> {
    /// The record, keyed by (key, window start): a re-emission after a restart
    /// replaces the same row downstream.
    pub fn output(&self, key_field: &str) -> Output {
        let start = timefmt::datetime(self.start);
        let mut payload = serde_json::json!({
            key_field: self.key,
            "window_start": start,
            "window_end": timefmt::datetime(self.end),
            "average_events": self.average,
            "event_count": self.count,
        });
        if let Some((partition, offset)) = self.read_through {
            payload["enriched_partition"] = partition.into();
            payload["enriched_read_through"] = offset.into();
        }
        Output {
            destination: Destination::Averages,
            key: format_compact!("{}|{}", self.key, start),
            payload: payload.to_string().into_bytes(),
        }
    }
}

/// Of an average record: its key, window start and read-through position, or `None`
/// if it is not one.
pub fn emitted(payload: &[u8], key_field: &str) -> Option<Emitted> {
    let record: Json = serde_json::from_slice(payload).ok()?;
    let key = match &record[key_field] {
        Json::String(s) => s.clone(),
        Json::Number(n) => n.to_string(),
        _ => return None,
    };
    let start = record["window_start"].as_str().and_then(timefmt::parse)?;
    let partition = record["enriched_partition"]
        .as_i64()
        .and_then(|p| i32::try_from(p).ok());
    let read_through = partition.zip(record["enriched_read_through"].as_i64());
    Some(Emitted {
        key,
        start,
        read_through,
    })
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
            read_through: Some((2, 41)),
        };
        let out = a.output("country");
        assert_eq!(out.key, "JP|2023-11-14 22:14:00");
        let v: Json = serde_json::from_slice(&out.payload).unwrap();
        assert_eq!(v["country"], "JP");
        assert_eq!(v["event_count"], 10);
        assert_eq!(
            emitted(&out.payload, "country"),
            Some(Emitted {
                key: "JP".into(),
                start: 1_700_000_040,
                read_through: Some((2, 41)),
            })
        );
        // An older host's record: no position.
        let old = br#"{"country":"JP","window_start":"2023-11-14 22:14:00"}"#;
        assert_eq!(emitted(old, "country").unwrap().read_through, None);
        assert_eq!(emitted(&out.payload, "device_id"), None);
    }
}
