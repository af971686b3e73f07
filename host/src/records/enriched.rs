//! The enriched event: an accepted event as JSON on `enriched_events`. Written by the
//! validate stage; the window stage reads back its key and time ([`WindowFields`](crate::stages::window::WindowFields)).

use std::cell::RefCell;
use std::sync::Arc;

use super::json::{self, Key, Object};
use super::{Destination, Output, SourceRecord};
use crate::event::{Event, Extra};
use crate::schema::{Schema, HOST_FIELDS};
use compact_str::CompactString;

/// Where accepted events go: their JSON layout comes from the schema, their key is
/// the window key (so one key's events share a partition, and its windows one instance).
#[derive(Debug, Clone)]
pub struct Enricher {
    key: usize,
    /// The schema's field names as written, in schema order.
    field_keys: Vec<Key>,
    /// [`HOST_FIELDS`] as written, in that order.
    host_keys: [Key; 4],
}

thread_local! {
    /// The `extra` object before it is written as a string: one buffer per thread.
    static EXTRA: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl Enricher {
    /// `key` is the index of a required schema field.
    pub fn new(schema: Arc<Schema>, key: usize) -> Self {
        let field_keys = schema.fields().iter().map(|f| Key::new(&f.name)).collect();
        Self {
            key,
            field_keys,
            host_keys: HOST_FIELDS.map(Key::new),
        }
    }

    /// An accepted event as JSON: fields outside the schema (as the producer wrote them,
    /// or as plugins set them), the schema's fields (absent ones as null), where it came
    /// from, and `extra`: the fields outside the schema again, as one JSON text, so a
    /// table can keep them in one column without knowing their names.
    pub fn output(&self, event: &Event, source: &SourceRecord, processed_by: &str) -> Output {
        let key = event
            .get(self.key)
            .map(|v| CompactString::new(v.to_text()))
            .unwrap_or_default();
        // The input's size plus the host's fields is nearly always enough: one allocation.
        let mut payload = Vec::with_capacity(source.payload.len() + 2 * processed_by.len() + 160);
        self.write(&mut payload, event, source, processed_by);
        Output {
            destination: Destination::Enriched,
            key,
            payload,
        }
    }

    fn write(&self, out: &mut Vec<u8>, event: &Event, source: &SourceRecord, processed_by: &str) {
        EXTRA.with_borrow_mut(|extra| {
            // The fields outside the schema, written once: as `extra`'s text, and (the
            // same entries) at the head of the record.
            extra.clear();
            let mut inner = Object::new(extra);
            for (name, value) in outside(event) {
                write_extra(inner.key(name), value);
            }
            inner.end();
            let mut o = Object::new(out);
            o.entries(&extra[1..extra.len() - 1]);
            for (key, value) in self.field_keys.iter().zip(&event.fields) {
                json::value(o.prepared(key), value.as_ref());
            }
            let [partition, offset, by, extra_key] = &self.host_keys;
            json::integer(o.prepared(partition), source.partition.into());
            json::integer(o.prepared(offset), source.offset);
            json::string(o.prepared(by), processed_by);
            // Written by this module from valid text: always UTF-8.
            json::string(
                o.prepared(extra_key),
                std::str::from_utf8(extra).unwrap_or("{}"),
            );
            o.end();
        });
    }
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

fn write_extra(out: &mut Vec<u8>, value: &Extra) {
    match value {
        Extra::Json(raw) => out.extend_from_slice(raw.get().as_bytes()),
        Extra::Set(value) => json::value(out, Some(value)),
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
