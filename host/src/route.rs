//! Stage 4: outcomes → output records. Accepted events go to `enriched_events` (keyed by
//! country, so one country's events share a partition and its windows one instance);
//! everything rejected goes to `dlq` with the original bytes and why.

use std::sync::Arc;

use serde::Serialize;

use crate::event::{Event, Extra};
use crate::schema::{Schema, HOST_FIELDS};
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

/// Where accepted events go: their JSON layout comes from the schema, their key is
/// the window key (so one key's events share a partition, and its windows one instance).
#[derive(Debug, Clone)]
pub struct Enricher {
    schema: Arc<Schema>,
    key: usize,
}

impl Enricher {
    /// `key` is the index of a required schema field.
    pub fn new(schema: Arc<Schema>, key: usize) -> Self {
        Self { schema, key }
    }

    /// An accepted event as JSON: fields outside the schema (as the producer wrote them,
    /// or as plugins set them), the schema's fields (absent ones as null), where it came
    /// from, and `extra`: the fields outside the schema again, as one JSON text, so a
    /// table can keep them in one column without knowing their names.
    pub fn output(&self, event: &Event, source: &SourceRecord, processed_by: &str) -> Output {
        let json = EnrichedJson {
            schema: &self.schema,
            event,
            source,
            processed_by,
        };
        let key = event
            .get(self.key)
            .map(|v| v.to_text().into_owned())
            .unwrap_or_default();
        Output {
            destination: Destination::Enriched,
            key,
            // Serialising strings, numbers and valid raw JSON cannot fail.
            payload: serde_json::to_vec(&json).unwrap_or_default(),
        }
    }
}

/// Written straight to bytes (no intermediate `Map`: this runs once per event).
struct EnrichedJson<'a> {
    schema: &'a Schema,
    event: &'a Event,
    source: &'a SourceRecord,
    processed_by: &'a str,
}

/// The fields outside the schema that go to the output: every one but the names the
/// host writes itself (and schema names, which a plugin of an older contract may have
/// set as attributes: the schema's value wins).
fn outside<'e>(schema: &'e Schema, event: &'e Event) -> impl Iterator<Item = (&'e str, &'e Extra)> {
    event
        .extra
        .iter()
        .filter(|(k, _)| !HOST_FIELDS.contains(&k.as_str()) && schema.index(k).is_none())
        .map(|(k, v)| (k.as_str(), v))
}

struct ExtraJson<'a>(&'a Schema, &'a Event);

impl Serialize for ExtraJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        for (k, v) in outside(self.0, self.1) {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl Serialize for Extra {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Extra::Json(raw) => raw.serialize(serializer),
            Extra::Set(value) => value.serialize(serializer),
        }
    }
}

impl Serialize for EnrichedJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeMap};
        let e = self.event;
        let mut map = serializer.serialize_map(None)?;
        for (k, v) in outside(self.schema, e) {
            map.serialize_entry(k, v)?;
        }
        for (field, value) in self.schema.fields().iter().zip(&e.fields) {
            map.serialize_entry(&field.name, value)?;
        }
        map.serialize_entry("source_partition", &self.source.partition)?;
        map.serialize_entry("source_offset", &self.source.offset)?;
        map.serialize_entry("processed_by", self.processed_by)?;
        let extra = serde_json::to_string(&ExtraJson(self.schema, e)).map_err(S::Error::custom)?;
        map.serialize_entry("extra", &extra)?;
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
    use crate::event::Value as Typed;
    use serde_json::Value;

    fn source(payload: &[u8]) -> SourceRecord {
        SourceRecord {
            partition: 2,
            offset: 41,
            timestamp_ms: 1_700_000_000_123,
            payload: payload.to_vec(),
        }
    }

    fn event() -> Event {
        let mut e = Event {
            fields: vec![
                Some(Typed::Text("page_view".into())),
                Some(Typed::Integer(7)),
                Some(Typed::Text("/page/1".into())),
                Some(Typed::Text("b".into())),
                Some(Typed::Integer(1_700_000_000)),
                Some(Typed::Text("DE".into())),
                None,
            ],
            extra: Vec::new(),
        };
        e.set_extra("page_id", Typed::Text("1".into()));
        e
    }

    fn enricher() -> Enricher {
        let schema = Schema::brief();
        let key = schema.index("country").unwrap();
        Enricher::new(Arc::new(schema), key)
    }

    fn raw(json: &str) -> Extra {
        Extra::Json(serde_json::value::RawValue::from_string(json.into()).unwrap())
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
        let mut e = event();
        e.extra.insert(0, ("campaign".into(), raw(r#""spring""#)));
        e.extra.insert(1, ("source_offset".into(), raw("999")));
        let out = enricher().output(&e, &source(b"{}"), "quality@0.1.0");
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
        let extra: Value = serde_json::from_str(v["extra"].as_str().unwrap()).unwrap();
        assert_eq!(
            extra,
            serde_json::json!({"campaign": "spring", "page_id": "1"})
        );
    }

    #[test]
    fn enriched_writes_every_name_once_and_input_json_as_it_came() {
        let mut e = event();
        e.extra.push(("campaign".into(), raw(r#""from-input""#)));
        e.extra.push(("nested".into(), raw(r#"{"a": [1, 2]}"#)));
        e.set_extra("page_id", Typed::Text("2".into()));
        e.set_extra("campaign", Typed::Text("from-plugin".into()));
        let out = enricher().output(&e, &source(b"{}"), "p@1");
        let text = String::from_utf8(out.payload.clone()).unwrap();
        for name in ["page_id", "campaign", "country", "nested"] {
            assert_eq!(
                text.matches(&format!("\"{name}\":")).count(),
                1,
                "{name} in {text}"
            );
        }
        assert!(text.contains(r#""nested":{"a": [1, 2]}"#), "{text}");
        let v: Value = serde_json::from_slice(&out.payload).unwrap();
        assert_eq!(v["page_id"], "2", "the last value set wins");
        assert_eq!(
            v["campaign"], "from-plugin",
            "a plugin's value wins over an input field"
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
