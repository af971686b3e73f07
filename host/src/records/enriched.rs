//! The enriched event: an accepted event as JSON on `enriched_events`. Written by the
//! validate stage; the window stage reads back its key and time ([`WindowFields`](crate::stages::window::WindowFields)).

use std::sync::Arc;

use serde::Serialize;

use super::{Destination, Output, SourceRecord};
use crate::event::{Event, Extra};
use crate::schema::{Schema, HOST_FIELDS};

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
/// host writes itself. (No schema name is ever among them: the decoder puts those in
/// their slots, and plugins' updates and attributes of them are applied there or
/// refused.)
fn outside(event: &Event) -> impl Iterator<Item = (&str, &Extra)> {
    event
        .extra
        .iter()
        .filter(|(k, _)| !HOST_FIELDS.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v))
}

struct ExtraJson<'a>(&'a Event);

impl Serialize for ExtraJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        for (k, v) in outside(self.0) {
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
        for (k, v) in outside(e) {
            map.serialize_entry(k, v)?;
        }
        for (field, value) in self.schema.fields().iter().zip(&e.fields) {
            map.serialize_entry(&field.name, value)?;
        }
        map.serialize_entry("source_partition", &self.source.partition)?;
        map.serialize_entry("source_offset", &self.source.offset)?;
        map.serialize_entry("processed_by", self.processed_by)?;
        if outside(e).next().is_none() {
            map.serialize_entry("extra", "{}")?;
        } else {
            let extra = serde_json::to_string(&ExtraJson(e)).map_err(S::Error::custom)?;
            map.serialize_entry("extra", &extra)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Value as Typed;
    use crate::records::sample_source as source;
    use serde_json::Value;

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
}
