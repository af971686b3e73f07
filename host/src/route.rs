//! Stage 4: outcomes → output records. Accepted events go to `enriched_events` (keyed by
//! country, so one country's events share a partition and its windows one instance);
//! everything rejected goes to `dlq` with the original bytes and why.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::decode::Event;
use crate::source::SourceRecord;
use crate::timefmt;

/// The largest record value this host produces: librdkafka's `message.max.bytes`
/// default (1,000,000, also set explicitly in [`crate::sink::producer_config`]) less room
/// for the key and the record's framing. A larger record is refused on every attempt,
/// and the batches behind it would wait for it forever.
pub const MAX_OUTPUT_BYTES: usize = 1_000_000 - 4_096;

/// Code for an accepted event whose enriched record would be over [`MAX_OUTPUT_BYTES`].
pub const OUTPUT_TOO_LARGE: &str = "output_too_large";

/// Where an output record goes (topic names come from the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Destination {
    Enriched,
    Dlq,
    Averages,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub destination: Destination,
    pub key: String,
    pub payload: Vec<u8>,
}

/// Which part of the pipeline turned a record away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Decode,
    Plugin,
    /// Turning an accepted event into its output record.
    Route,
    Window,
}

impl Stage {
    /// The name used in DLQ records and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Plugin => "plugin",
            Stage::Route => "route",
            Stage::Window => "window",
        }
    }
}

impl Serialize for Stage {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Field names the host writes itself; input fields of the same name are not copied.
const RESERVED: &[&str] = &[
    "event_type",
    "user_id",
    "page_url",
    "button_id",
    "timestamp",
    "country",
    "device_type",
    "source_partition",
    "source_offset",
    "processed_by",
];

/// An accepted event as JSON: the schema's fields, unknown input fields (kept so that
/// schema evolution upstream loses nothing), plugin attributes, and where it came from.
pub fn enriched(
    event: &Event,
    extra: &Map<String, Value>,
    source: &SourceRecord,
    processed_by: &str,
) -> Output {
    let json = EnrichedJson {
        event,
        extra,
        source,
        processed_by,
    };
    Output {
        destination: Destination::Enriched,
        key: event.country.clone(),
        // Serialising strings, numbers and JSON values cannot fail.
        payload: serde_json::to_vec(&json).unwrap_or_default(),
    }
}

/// Written straight to bytes (no intermediate `Map`: this runs once per event).
/// Precedence for a name that appears twice: our fields, then the last plugin
/// attribute, then the input's unknown field; each name is written once.
struct EnrichedJson<'a> {
    event: &'a Event,
    extra: &'a Map<String, Value>,
    source: &'a SourceRecord,
    processed_by: &'a str,
}

impl Serialize for EnrichedJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let e = self.event;
        let attributes = &e.attributes;
        let mut map = serializer.serialize_map(None)?;
        for (k, v) in self.extra {
            if !RESERVED.contains(&k.as_str()) && !attributes.iter().any(|(a, _)| a == k) {
                map.serialize_entry(k, v)?;
            }
        }
        for (i, (k, v)) in attributes.iter().enumerate() {
            let overridden = attributes[i + 1..].iter().any(|(later, _)| later == k);
            if !RESERVED.contains(&k.as_str()) && !overridden {
                map.serialize_entry(k, v)?;
            }
        }
        map.serialize_entry("event_type", &e.event_type)?;
        map.serialize_entry("user_id", &e.user_id)?;
        map.serialize_entry("page_url", &e.page_url)?;
        map.serialize_entry("button_id", &e.button_id)?;
        map.serialize_entry("timestamp", &e.timestamp)?;
        map.serialize_entry("country", &e.country)?;
        map.serialize_entry("device_type", &e.device_type)?;
        map.serialize_entry("source_partition", &self.source.partition)?;
        map.serialize_entry("source_offset", &self.source.offset)?;
        map.serialize_entry("processed_by", self.processed_by)?;
        map.end()
    }
}

/// A dead-letter record: enough to understand the rejection and to replay the input.
#[derive(Debug, Serialize)]
pub struct DlqRecord<'a> {
    pub code: &'a str,
    pub message: &'a str,
    pub stage: Stage,
    /// `host` for decode/window rejections, `name@version` for plugins.
    pub rejected_by: &'a str,
    pub source_topic: &'a str,
    pub source_partition: i32,
    pub source_offset: i64,
    /// Kafka timestamp of the source record, `YYYY-MM-DD hh:mm:ss` UTC.
    pub source_time: String,
    pub dlq_time: String,
    /// The original payload: as is when it is UTF-8, otherwise `escaped` (see raw_encoding).
    pub raw: String,
    /// `utf8`, or `escaped`: non-UTF-8 payloads with bytes as `\xNN` and `\` as `\\`.
    pub raw_encoding: &'static str,
}

pub fn dlq(
    source: &SourceRecord,
    source_topic: &str,
    stage: Stage,
    rejected_by: &str,
    code: &str,
    message: &str,
) -> Output {
    let (raw, raw_encoding) = match std::str::from_utf8(&source.payload) {
        Ok(text) => (text.to_string(), "utf8"),
        Err(_) => (source.payload.escape_ascii().to_string(), "escaped"),
    };
    let mut record = DlqRecord {
        code,
        message,
        stage,
        rejected_by,
        source_topic,
        source_partition: source.partition,
        source_offset: source.offset,
        source_time: timefmt::datetime_ms(source.timestamp_ms),
        dlq_time: timefmt::now(),
        raw,
        raw_encoding,
    };
    let key = format!("{source_topic}/{}/{}", source.partition, source.offset);
    let mut payload = to_json(&record);
    if payload.len() > MAX_OUTPUT_BYTES {
        // Rare (an input near the broker's limit grows when escaped): keep the start of
        // the bytes, say so, and point at the original, which the input topic still has.
        let full = record.raw.len();
        let explained = format!(
            "{message} [raw truncated: it holds the start of the {}-byte original ({} form), which is at {key}]",
            source.payload.len(),
            record.raw_encoding
        );
        record.message = &explained;
        record.raw_encoding = "truncated";
        // Escaping grows the bytes by about payload / raw: cut in proportion.
        let mut keep = full * (MAX_OUTPUT_BYTES - 2_048) / payload.len();
        loop {
            while !record.raw.is_char_boundary(keep) {
                keep -= 1;
            }
            record.raw.truncate(keep);
            payload = to_json(&record);
            if payload.len() <= MAX_OUTPUT_BYTES {
                break;
            }
            // Escaping made the cut too small (quotes, control characters): cut more.
            keep = keep * 9 / 10;
        }
    }
    Output {
        destination: Destination::Dlq,
        // The source position identifies the record: a re-delivery has the same key.
        key,
        payload,
    }
}

fn to_json(record: &DlqRecord<'_>) -> Vec<u8> {
    serde_json::to_vec(record).unwrap_or_else(|e| {
        // Serialising plain strings and numbers cannot fail; say so if it ever does.
        format!("{{\"code\":\"internal\",\"message\":\"{e}\"}}").into_bytes()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(payload: &[u8]) -> SourceRecord {
        SourceRecord {
            partition: 2,
            offset: 41,
            timestamp_ms: 1_700_000_000_123,
            payload: payload.to_vec(),
        }
    }

    fn event() -> Event {
        Event {
            event_type: "page_view".into(),
            user_id: 7,
            page_url: "/page/1".into(),
            button_id: "b".into(),
            timestamp: 1_700_000_000,
            country: "DE".into(),
            device_type: None,
            attributes: vec![
                ("page_id".into(), "1".into()),
                ("country".into(), "XX".into()),
            ],
        }
    }

    #[test]
    fn a_dlq_record_over_the_output_limit_keeps_the_start_of_raw_and_says_so() {
        // Near the broker's limit, and quotes double when escaped into JSON.
        let payload = "\"x".repeat(400_000).into_bytes();
        let out = dlq(
            &source(&payload),
            "my_events",
            Stage::Decode,
            "host",
            "malformed_json",
            "m",
        );
        assert!(
            out.payload.len() <= MAX_OUTPUT_BYTES,
            "{}",
            out.payload.len()
        );
        let v: Value = serde_json::from_slice(&out.payload).unwrap();
        assert_eq!(v["raw_encoding"], "truncated");
        let raw = v["raw"].as_str().unwrap();
        assert!(raw.len() > 400_000 && payload.starts_with(raw.as_bytes()));
        let message = v["message"].as_str().unwrap();
        assert!(message.starts_with("m [raw truncated"), "{message}");
        assert!(message.contains("800000-byte original") && message.contains("my_events/2/41"));
        // Below the limit nothing changes.
        let small = dlq(&source(b"{}"), "my_events", Stage::Decode, "host", "c", "m");
        let v: Value = serde_json::from_slice(&small.payload).unwrap();
        assert_eq!(
            (v["raw"].as_str(), v["raw_encoding"].as_str()),
            (Some("{}"), Some("utf8"))
        );
    }

    #[test]
    fn enriched_keeps_unknown_fields_and_never_lets_them_override_ours() {
        let mut extra = Map::new();
        extra.insert("campaign".into(), "spring".into());
        extra.insert("source_offset".into(), 999.into());
        let out = enriched(&event(), &extra, &source(b"{}"), "quality@0.1.0");
        assert_eq!(out.destination, Destination::Enriched);
        assert_eq!(out.key, "DE");
        let v: Value = serde_json::from_slice(&out.payload).unwrap();
        assert_eq!(v["campaign"], "spring");
        assert_eq!(v["page_id"], "1");
        assert_eq!(v["country"], "DE");
        assert_eq!(v["source_offset"], 41);
        assert_eq!(v["source_partition"], 2);
        assert_eq!(v["device_type"], Value::Null);
        assert_eq!(v["processed_by"], "quality@0.1.0");
    }

    #[test]
    fn enriched_writes_every_name_once_with_the_documented_precedence() {
        let mut e = event();
        e.attributes.push(("page_id".into(), "2".into()));
        e.attributes.push(("campaign".into(), "from-plugin".into()));
        let mut extra = Map::new();
        extra.insert("campaign".into(), "from-input".into());
        extra.insert("nested".into(), serde_json::json!({"a": [1, 2]}));
        let out = enriched(&e, &extra, &source(b"{}"), "p@1");
        let text = String::from_utf8(out.payload.clone()).unwrap();
        for name in ["page_id", "campaign", "country", "nested"] {
            assert_eq!(
                text.matches(&format!("\"{name}\":")).count(),
                1,
                "{name} in {text}"
            );
        }
        let v: Value = serde_json::from_slice(&out.payload).unwrap();
        assert_eq!(v["page_id"], "2", "the last attribute wins");
        assert_eq!(
            v["campaign"], "from-plugin",
            "a plugin attribute wins over an input field"
        );
        assert_eq!(v["nested"]["a"][1], 2);
    }

    #[test]
    fn dlq_keeps_utf8_payloads_verbatim() {
        let payload = "{\"country\": \"ZZ\", \"note\": \"é\\u0000\"}".as_bytes();
        let out = dlq(
            &source(payload),
            "my_events",
            Stage::Plugin,
            "quality@0.1.0",
            "invalid_country",
            "no",
        );
        let v: Value = serde_json::from_slice(&out.payload).unwrap();
        assert_eq!(v["raw"].as_str().unwrap().as_bytes(), payload);
        assert_eq!(v["raw_encoding"], "utf8");
        assert_eq!(v["code"], "invalid_country");
        assert_eq!(v["stage"], "plugin");
        assert_eq!(v["rejected_by"], "quality@0.1.0");
        assert_eq!(v["source_topic"], "my_events");
        assert_eq!(v["source_offset"], 41);
        assert_eq!(v["source_time"], "2023-11-14 22:13:20");
        assert_eq!(out.key, "my_events/2/41");
    }

    #[test]
    fn dlq_escapes_non_utf8_losslessly() {
        let payload = [b'a', b'\\', 0xff, 0x00, b'"'];
        let out = dlq(
            &source(&payload),
            "my_events",
            Stage::Decode,
            "host",
            "invalid_utf8",
            "bad",
        );
        let v: Value = serde_json::from_slice(&out.payload).unwrap();
        assert_eq!(v["raw_encoding"], "escaped");
        assert_eq!(v["raw"], "a\\\\\\xff\\x00\\\"");
    }
}
