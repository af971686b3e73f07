//! A decoded event: one typed slot per schema field, plus the fields outside the
//! schema, which are kept (and can be read and set by plugins) without being typed.

use std::borrow::Cow;

use compact_str::CompactString;
use serde_json::value::RawValue;

/// A typed value of a schema field, or one a plugin set.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Inline up to 24 bytes.
    Text(CompactString),
    /// Schema types `integer` and `timestamp`.
    Integer(i64),
    Float(f64),
    Boolean(bool),
}

impl Value {
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s.as_str()),
            _ => None,
        }
    }

    pub fn as_integer(&self) -> Option<i64> {
        match self {
            Value::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// The value as text: strings as they are, others as their JSON text.
    pub fn to_text(&self) -> Cow<'_, str> {
        match self {
            Value::Text(s) => Cow::Borrowed(s.as_str()),
            Value::Integer(i) => Cow::Owned(i.to_string()),
            Value::Float(f) => Cow::Owned(json_float(*f)),
            Value::Boolean(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        }
    }
}

/// A float as JSON writes it (`1.0`, not `1`), or `null` for what JSON cannot hold.
fn json_float(f: f64) -> String {
    serde_json::Number::from_f64(f)
        .map(|n| n.to_string())
        .unwrap_or_else(|| "null".into())
}

impl serde::Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Text(s) => serializer.serialize_str(s),
            Value::Integer(i) => serializer.serialize_i64(*i),
            Value::Float(f) if f.is_finite() => serializer.serialize_f64(*f),
            Value::Float(_) => serializer.serialize_unit(),
            Value::Boolean(b) => serializer.serialize_bool(*b),
        }
    }
}

/// A field outside the schema.
#[derive(Debug, Clone)]
pub enum Extra {
    /// As the producer sent it: valid JSON text, written back unchanged.
    Json(Box<RawValue>),
    /// Set by a plugin.
    Set(Value),
}

impl Extra {
    /// The value as a plugin reads a field outside the schema: a JSON string as its
    /// contents, any other value as its JSON text. `None` for JSON `null`.
    pub fn text(&self) -> Option<Cow<'_, str>> {
        match self {
            Extra::Json(raw) => {
                let raw = raw.get();
                if raw == "null" {
                    None
                } else if raw.starts_with('"') {
                    // A string RawValue always parses as a string.
                    serde_json::from_str::<Cow<'_, str>>(raw).ok()
                } else {
                    Some(Cow::Borrowed(raw))
                }
            }
            Extra::Set(value) => Some(value.to_text()),
        }
    }
}

impl PartialEq for Extra {
    /// Raw JSON compares by its text.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Extra::Json(a), Extra::Json(b)) => a.get() == b.get(),
            (Extra::Set(a), Extra::Set(b)) => a == b,
            _ => false,
        }
    }
}

/// One event, as decoded by the schema (and changed by plugins).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Event {
    /// One slot per schema field, in schema order; `None` when absent (or null).
    pub fields: Vec<Option<Value>>,
    /// Fields outside the schema, in the order they came (then as plugins added them),
    /// each name once.
    pub extra: Vec<(CompactString, Extra)>,
}

impl Event {
    /// The value of schema field `index`.
    pub fn get(&self, index: usize) -> Option<&Value> {
        self.fields.get(index).and_then(Option::as_ref)
    }

    /// A field outside the schema, by name.
    pub fn extra(&self, name: &str) -> Option<&Extra> {
        self.extra.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Set schema field `index` (the caller checked the type).
    pub fn set(&mut self, index: usize, value: Value) {
        if let Some(slot) = self.fields.get_mut(index) {
            *slot = Some(value);
        }
    }

    /// Set schema field `index` to text, reusing its buffer when it holds text already.
    pub fn set_text(&mut self, index: usize, text: &str) {
        if let Some(slot) = self.fields.get_mut(index) {
            match slot {
                Some(Value::Text(old)) => {
                    old.clear();
                    old.push_str(text);
                }
                _ => *slot = Some(Value::Text(text.into())),
            }
        }
    }

    /// Set a field outside the schema, replacing an earlier value of that name. The
    /// caller makes sure `name` is not a schema field.
    pub fn set_extra(&mut self, name: &str, value: Value) {
        match self.extra.iter_mut().find(|(n, _)| n == name) {
            Some((_, slot)) => *slot = Extra::Set(value),
            None => self.extra.push((name.into(), Extra::Set(value))),
        }
    }
}
