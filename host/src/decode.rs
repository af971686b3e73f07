//! Stage 2: raw Kafka payload → [`Event`] typed by the [`Schema`], or a [`DecodeError`]
//! with its own DLQ code.
//!
//! The host checks shape and types (is it JSON, is every required field there, is it
//! the right type and in the range the rest of the pipeline can store); plugins judge
//! values. Fields outside the schema are kept as the producer wrote them and written
//! back to `enriched_events`, so a producer that adds a field loses nothing.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use compact_str::CompactString;
use serde::de::{
    self, Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::value::RawValue;
use serde_json::Value as Json;

use crate::event::{Event, Extra, Value};
use crate::records::dlq::HostCode;
use crate::records::json::first_special;
use crate::schema::{FieldType, Schema};

/// Largest string field accepted. Longer values are almost always a producer bug
/// (or an attack) and would bloat every downstream table.
pub const MAX_FIELD_BYTES: usize = 2048;

/// ClickHouse `DateTime` is a UInt32 of seconds: anything outside cannot be stored.
pub const MAX_TIMESTAMP: i64 = u32::MAX as i64;

/// Default of `pipeline.max_fields`: top-level members a payload may have. An event of
/// the brief's schema has 7; a producer adding its own fields stays in the tens. A
/// thousand leaves that room many times over and still bounds what one record costs
/// the plugins and the enriched record.
pub const DEFAULT_MAX_FIELDS: usize = 1000;

/// Why a payload is not an event. Each variant has its own DLQ code ([`DecodeError::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty message (no bytes, or only whitespace)")]
    Empty,
    #[error("message is {size} bytes, larger than the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("payload is not valid UTF-8: {0}")]
    InvalidUtf8(String),
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("expected a JSON object, found {0}")]
    NotAnObject(&'static str),
    #[error("the object has {count} fields, more than the limit of {limit}")]
    TooManyFields { count: usize, limit: usize },
    #[error("field `{0}` appears more than once")]
    DuplicateField(String),
    #[error("required field `{0}` is missing")]
    MissingField(String),
    #[error("required field `{0}` is null")]
    NullField(String),
    #[error("field `{field}` must be {expected}, found {found}")]
    WrongType {
        field: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("field `{field}` is out of range: {detail}")]
    OutOfRange { field: String, detail: String },
    #[error("field `{field}` is {size} bytes, longer than the limit of {MAX_FIELD_BYTES}")]
    FieldTooLong { field: String, size: usize },
}

impl DecodeError {
    /// Stable, machine-readable code written to the DLQ.
    pub fn code(&self) -> HostCode {
        match self {
            DecodeError::Empty => HostCode::EmptyMessage,
            DecodeError::TooLarge { .. } => HostCode::MessageTooLarge,
            DecodeError::InvalidUtf8(_) => HostCode::InvalidUtf8,
            DecodeError::MalformedJson(_) => HostCode::MalformedJson,
            DecodeError::NotAnObject(_) => HostCode::NotAnObject,
            DecodeError::TooManyFields { .. } => HostCode::TooManyFields,
            DecodeError::DuplicateField(_) => HostCode::DuplicateField,
            DecodeError::MissingField(_) => HostCode::MissingField,
            DecodeError::NullField(_) => HostCode::NullField,
            DecodeError::WrongType { .. } => HostCode::WrongType,
            DecodeError::OutOfRange { .. } => HostCode::OutOfRange,
            DecodeError::FieldTooLong { .. } => HostCode::FieldTooLong,
        }
    }
}

/// Decodes payloads by one schema.
#[derive(Debug, Clone)]
pub struct Decoder {
    schema: Arc<Schema>,
    max_message_bytes: usize,
    max_fields: usize,
}

impl Decoder {
    /// With [`DEFAULT_MAX_FIELDS`] ([`Decoder::with_max_fields`] sets another).
    pub fn new(schema: Arc<Schema>, max_message_bytes: usize) -> Self {
        Self {
            schema,
            max_message_bytes,
            max_fields: DEFAULT_MAX_FIELDS,
        }
    }

    /// Payloads with more top-level members than `max_fields` are `too_many_fields`.
    pub fn with_max_fields(mut self, max_fields: usize) -> Self {
        self.max_fields = max_fields;
        self
    }

    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// Decode one payload. Never panics, whatever the bytes.
    pub fn decode(&self, payload: &[u8]) -> Result<Event, DecodeError> {
        if payload.len() > self.max_message_bytes {
            return Err(DecodeError::TooLarge {
                size: payload.len(),
                limit: self.max_message_bytes,
            });
        }
        if payload.iter().all(u8::is_ascii_whitespace) {
            return Err(DecodeError::Empty);
        }
        let text =
            std::str::from_utf8(payload).map_err(|e| DecodeError::InvalidUtf8(e.to_string()))?;
        if let Some(event) = decode_fast(&self.schema, text, self.max_fields) {
            return Ok(event);
        }
        decode_checked(&self.schema, text, self.max_fields)
    }
}

/// The common case, in one pass over the bytes and without an intermediate tree: a
/// flat object of at most `max_fields` members, every field of the right type, no
/// repeated key. Anything else (`None`)
/// takes [`decode_checked`], which accepts the same inputs and says precisely what is
/// wrong with the others; `fast_and_checked_paths_agree` tests that they agree.
///
/// Plain strings, numbers and literals are read here; what needs more of JSON (a
/// string with escapes, a value outside the schema) is read by serde_json from where
/// the scan stands.
fn decode_fast(schema: &Schema, text: &str, max_fields: usize) -> Option<Event> {
    let mut s = Scanner { text, at: 0 };
    // Not `vec![None; n]`: that clones a `None` per slot (~170 instructions an event).
    let mut fields: Vec<Option<Value>> =
        std::iter::repeat_with(|| None).take(schema.len()).collect();
    // Which fields were seen, as bits: no allocation per event for up to 128 fields
    // (a larger schema takes the checked path for repeated keys).
    let mut seen: u128 = 0;
    let mut extra: Vec<(CompactString, Extra)> = Vec::new();
    let mut next = 0;
    s.expect(b'{')?;
    if s.peek()? == b'}' {
        s.at += 1;
    } else {
        loop {
            let key = s.string()?;
            s.expect(b':')?;
            s.skip_whitespace();
            // A producer writes its keys in one order: the field after the last one
            // found is tried first.
            let i = match schema.fields().get(next) {
                Some(field) if field.name == *key => Some(next),
                _ => schema.index(&key),
            };
            if let Some(i) = i {
                next = i + 1;
                let bit = 1u128.checked_shl(i as u32).unwrap_or(0);
                if bit == 0 || seen & bit != 0 {
                    return None;
                }
                seen |= bit;
                s.typed(schema.field(i).ty, &mut fields[i])?;
            } else {
                // Members so far, counted here only (off the path of the schema's
                // own fields): stop at the first one over the bound.
                if seen.count_ones() as usize + extra.len() >= max_fields {
                    return None;
                }
                let raw = s.with_serde::<&RawValue>()?;
                if unreadable(raw).is_some() {
                    return None;
                }
                extra.push((key.into(), Extra::Json(raw.to_owned())));
            }
            match s.peek()? {
                b',' => s.at += 1,
                b'}' => {
                    s.at += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    s.skip_whitespace();
    if seen.count_ones() as usize + extra.len() > max_fields {
        return None;
    }
    if extra.len() > 1 && repeats(extra.iter().map(|(k, _)| k.as_str())) {
        return None;
    }
    let complete = s.at == text.len()
        && schema
            .fields()
            .iter()
            .zip(&fields)
            .all(|(f, v)| !f.required || v.is_some());
    complete.then_some(Event { fields, extra })
}

/// Whether both paths read `text` alike: the fast path takes only what the checked
/// path accepts, and reads it the same. For the agreement tests and the fuzzer.
#[doc(hidden)]
pub fn paths_agree(schema: &Schema, text: &str) -> bool {
    paths_agree_with(schema, text, DEFAULT_MAX_FIELDS)
}

/// [`paths_agree`] with another bound on top-level members.
#[doc(hidden)]
pub fn paths_agree_with(schema: &Schema, text: &str, max_fields: usize) -> bool {
    let checked = decode_checked(schema, text, max_fields);
    match decode_fast(schema, text, max_fields) {
        Some(fast) => checked.as_ref() == Ok(&fast),
        None => checked.is_err(),
    }
}

/// Whether a key comes twice: compared pairwise while there are a few (no allocation),
/// hashed beyond, so that many keys cost time linear in their bytes.
fn repeats<'k>(keys: impl ExactSizeIterator<Item = &'k str> + Clone) -> bool {
    const PAIRWISE: usize = 8;
    let n = keys.len();
    if n <= PAIRWISE {
        return keys
            .clone()
            .enumerate()
            .any(|(i, k)| keys.clone().take(i).any(|earlier| earlier == k));
    }
    let mut seen = HashSet::with_capacity(n);
    !keys.into_iter().all(|k| seen.insert(k))
}

/// A position in the text of one payload, for [`decode_fast`]. Every method returns
/// `None` for anything it does not take, and that sends the payload to the checked path.
struct Scanner<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scanner<'a> {
    fn skip_whitespace(&mut self) {
        let bytes = self.text.as_bytes();
        while bytes
            .get(self.at)
            .is_some_and(|b| matches!(b, b' ' | b'\n' | b'\t' | b'\r'))
        {
            self.at += 1;
        }
    }

    /// The next byte that is not whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.text.as_bytes().get(self.at).copied()
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// A string, borrowed from the text unless it has escapes. Inlined: a value
    /// returned through memory here cost more than the scan (store-forwarding stalls).
    #[inline(always)]
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.expect(b'"')?;
        let rest = &self.text.as_bytes()[self.at..];
        let end = first_special(rest)?;
        if rest[end] != b'"' {
            return self.escaped();
        }
        let s = &self.text[self.at..self.at + end];
        self.at += end + 1;
        Some(Cow::Borrowed(s))
    }

    /// The string that starts before `at`, which has escapes (or is not valid).
    #[cold]
    #[inline(never)]
    fn escaped(&mut self) -> Option<Cow<'a, str>> {
        self.at -= 1;
        self.with_serde::<String>().map(Cow::Owned)
    }

    /// A number as JSON writes it, and whether it is an integer (no fraction, no
    /// exponent). The byte after it is left to the caller.
    fn number(&mut self) -> Option<(&'a str, bool)> {
        let bytes = self.text.as_bytes();
        let start = self.at;
        let digits = |at: &mut usize| {
            let from = *at;
            while bytes.get(*at).is_some_and(u8::is_ascii_digit) {
                *at += 1;
            }
            (*at > from).then_some(())
        };
        let mut at = start + usize::from(bytes.get(start) == Some(&b'-'));
        match bytes.get(at)? {
            b'0' => at += 1,
            b'1'..=b'9' => digits(&mut at)?,
            _ => return None,
        }
        let mut integer = true;
        if bytes.get(at) == Some(&b'.') {
            at += 1;
            digits(&mut at)?;
            integer = false;
        }
        if matches!(bytes.get(at), Some(b'e' | b'E')) {
            at += 1;
            at += usize::from(matches!(bytes.get(at), Some(b'+' | b'-')));
            digits(&mut at)?;
            integer = false;
        }
        self.at = at;
        Some((&self.text[start..at], integer))
    }

    /// `literal` if the text continues with it.
    fn literal(&mut self, literal: &str) -> bool {
        let found = self.text[self.at..].starts_with(literal);
        if found {
            self.at += literal.len();
        }
        found
    }

    /// A schema field's value, into its slot (left empty for `null`).
    #[inline(always)]
    fn typed(&mut self, ty: FieldType, slot: &mut Option<Value>) -> Option<()> {
        if self.literal("null") {
            return Some(());
        }
        match ty {
            FieldType::String => {
                let s = self.string()?;
                if s.len() > MAX_FIELD_BYTES {
                    return None;
                }
                let text = match s {
                    Cow::Borrowed(s) => CompactString::new(s),
                    Cow::Owned(s) => CompactString::from(s),
                };
                *slot = Some(Value::Text(text));
            }
            FieldType::Integer | FieldType::Timestamp => {
                let (number, integer) = self.number()?;
                // serde_json reads `-0` as a float, so the checked path refuses it.
                if !integer || number == "-0" {
                    return None;
                }
                let n: i64 = number.parse().ok()?;
                if ty == FieldType::Timestamp && !(0..=MAX_TIMESTAMP).contains(&n) {
                    return None;
                }
                *slot = Some(Value::Integer(n));
            }
            FieldType::Float => {
                let x: f64 = self.number()?.0.parse().ok()?;
                *slot = Some(Value::Float(x.is_finite().then_some(x)?));
            }
            FieldType::Boolean if self.literal("true") => *slot = Some(Value::Boolean(true)),
            FieldType::Boolean if self.literal("false") => *slot = Some(Value::Boolean(false)),
            FieldType::Boolean => return None,
        }
        Some(())
    }

    /// One value read by serde_json from here on.
    fn with_serde<T: Deserialize<'a>>(&mut self) -> Option<T> {
        let mut values = serde_json::Deserializer::from_str(&self.text[self.at..]).into_iter();
        let value = values.next()?.ok()?;
        self.at += values.byte_offset();
        Some(value)
    }
}

/// Field by field, with a precise error for the first problem.
/// Time linear in the size of `text`: each member is read once, keys are hashed.
fn decode_checked(schema: &Schema, text: &str, max_fields: usize) -> Result<Event, DecodeError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let top = TopLevelSeed { max_fields }
        .deserialize(&mut de)
        .and_then(|top| de.end().map(|()| top))
        .map_err(|e| DecodeError::MalformedJson(e.to_string()))?;
    let members = match top {
        TopLevel::Object(members) => members,
        TopLevel::TooMany(count) => {
            return Err(DecodeError::TooManyFields {
                count,
                limit: max_fields,
            })
        }
        TopLevel::Other(kind) => return Err(DecodeError::NotAnObject(kind)),
    };
    // Each key once, in order: the first that was seen before is the duplicate.
    let mut by_key: HashMap<&str, usize> = HashMap::with_capacity(members.len());
    for (i, (key, _)) in members.iter().enumerate() {
        if by_key.insert(key.as_str(), i).is_some() {
            return Err(DecodeError::DuplicateField(key.clone()));
        }
    }
    let member_of: Vec<Option<usize>> = schema
        .fields()
        .iter()
        .map(|f| by_key.get(f.name.as_str()).copied())
        .collect();
    drop(by_key);
    let mut members: Vec<Option<(String, Box<RawValue>)>> = members.into_iter().map(Some).collect();
    let mut fields = Vec::with_capacity(schema.len());
    for (field, at) in schema.fields().iter().zip(member_of) {
        let raw = at.and_then(|i| members[i].take());
        let json = match raw {
            // A raw value is skipped over, not read: a lone surrogate (`"\ud83d"`) is
            // found only here.
            Some((_, raw)) => serde_json::from_str(raw.get())
                .map_err(|e| DecodeError::MalformedJson(format!("field `{}`: {e}", field.name)))?,
            None if field.required => return Err(DecodeError::MissingField(field.name.clone())),
            None => Json::Null,
        };
        if json.is_null() {
            if field.required {
                return Err(DecodeError::NullField(field.name.clone()));
            }
            fields.push(None);
            continue;
        }
        fields.push(Some(typed(&field.name, field.ty, field.required, json)?));
    }
    let mut extra = Vec::new();
    for (k, raw) in members.into_iter().flatten() {
        if let Some(e) = unreadable(&raw) {
            return Err(DecodeError::MalformedJson(e.to_string()));
        }
        extra.push((k.into(), Extra::Json(raw)));
    }
    Ok(Event { fields, extra })
}

/// A raw value is skipped over, not read: nesting past serde_json's recursion limit
/// and a lone surrogate (`"\ud83d"`) would pass. Read arrays, objects and strings with
/// escapes once more, as the rest of the input was, so that such a payload is
/// `malformed_json` and nothing downstream meets it.
fn unreadable(raw: &RawValue) -> Option<serde_json::Error> {
    let text = raw.get();
    if text.starts_with(['[', '{']) || (text.starts_with('"') && text.contains('\\')) {
        return serde_json::from_str::<Walk>(text).err();
    }
    None
}

/// A JSON value read through and thrown away: strings and keys decoded (a lone
/// surrogate is an error), nesting held to serde_json's recursion limit, as reading it
/// into a [`Json`] would, but nothing kept: a wide object costs time linear in its text,
/// not a map insertion per key.
struct Walk;

impl<'de> Deserialize<'de> for Walk {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(WalkVisitor)
    }
}

struct WalkVisitor;

impl<'de> Visitor<'de> for WalkVisitor {
    type Value = Walk;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Walk, E> {
        Ok(Walk)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Walk, E> {
        Ok(Walk)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Walk, E> {
        Ok(Walk)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Walk, E> {
        Ok(Walk)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Walk, E> {
        Ok(Walk)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Walk, E> {
        Ok(Walk)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Walk, A::Error> {
        while access.next_element::<Walk>()?.is_some() {}
        Ok(Walk)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Walk, A::Error> {
        while access.next_entry::<Walk, Walk>()?.is_some() {}
        Ok(Walk)
    }
}

/// A non-null JSON value as a field of type `ty`.
fn typed(field: &str, ty: FieldType, required: bool, json: Json) -> Result<Value, DecodeError> {
    let wrong = |expected_required: &'static str, expected_optional: &'static str, found: &Json| {
        DecodeError::WrongType {
            field: field.to_string(),
            expected: if required {
                expected_required
            } else {
                expected_optional
            },
            found: json_kind(found),
        }
    };
    match ty {
        FieldType::String => match json {
            Json::String(s) if s.len() > MAX_FIELD_BYTES => Err(DecodeError::FieldTooLong {
                field: field.to_string(),
                size: s.len(),
            }),
            Json::String(s) => Ok(Value::Text(s.into())),
            other => Err(wrong("a string", "a string or null", &other)),
        },
        FieldType::Boolean => match json {
            Json::Bool(b) => Ok(Value::Boolean(b)),
            other => Err(wrong("a boolean", "a boolean or null", &other)),
        },
        FieldType::Float => match &json {
            Json::Number(n) => n
                .as_f64()
                .map(Value::Float)
                .ok_or_else(|| wrong("a number", "a number or null", &json)),
            other => Err(wrong("a number", "a number or null", other)),
        },
        FieldType::Integer => integer(field, required, &json).map(Value::Integer),
        FieldType::Timestamp => {
            let ts = integer(field, required, &json)?;
            if (0..=MAX_TIMESTAMP).contains(&ts) {
                return Ok(Value::Integer(ts));
            }
            let hint = if ts > MAX_TIMESTAMP && ts / 1000 <= MAX_TIMESTAMP {
                " (looks like milliseconds; the schema says seconds)"
            } else {
                ""
            };
            Err(DecodeError::OutOfRange {
                field: field.to_string(),
                detail: format!("{ts} is outside 0..={MAX_TIMESTAMP} epoch seconds{hint}"),
            })
        }
    }
}

fn integer(field: &str, required: bool, value: &Json) -> Result<i64, DecodeError> {
    let expected = if required {
        "an integer"
    } else {
        "an integer or null"
    };
    let Json::Number(n) = value else {
        return Err(DecodeError::WrongType {
            field: field.to_string(),
            expected,
            found: json_kind(value),
        });
    };
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    // Whole numbers beyond 64 bits arrive as u64 or, past u64, as f64.
    let beyond = n.is_u64()
        || n.as_f64()
            .is_some_and(|f| f.fract() == 0.0 && f.abs() >= 9.2e18);
    if beyond {
        return Err(DecodeError::OutOfRange {
            field: field.to_string(),
            detail: format!("{n} does not fit a signed 64-bit integer"),
        });
    }
    Err(DecodeError::WrongType {
        field: field.to_string(),
        expected,
        found: "a fractional number",
    })
}

fn json_kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// The top-level JSON value, with object members kept as a list so that duplicate
/// keys can be reported (serde_json's `Map` silently keeps the last one).
enum TopLevel {
    Object(Vec<(String, Box<RawValue>)>),
    /// An object with this many members, more than the limit: only counted.
    TooMany(usize),
    Other(&'static str),
}

/// Reads a [`TopLevel`], keeping at most `max_fields` members.
struct TopLevelSeed {
    max_fields: usize,
}

impl<'de> DeserializeSeed<'de> for TopLevelSeed {
    type Value = TopLevel;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<TopLevel, D::Error> {
        deserializer.deserialize_any(TopLevelVisitor {
            max_fields: self.max_fields,
        })
    }
}

struct TopLevelVisitor {
    max_fields: usize,
}

impl<'de> Visitor<'de> for TopLevelVisitor {
    type Value = TopLevel;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<TopLevel, A::Error> {
        let mut fields = Vec::with_capacity(8);
        while let Some(key) = access.next_key::<String>()? {
            if fields.len() == self.max_fields {
                // Over the limit: read through the rest (it must still be JSON), keep
                // nothing.
                access.next_value::<IgnoredAny>()?;
                let mut count = fields.len() + 1;
                while access.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {
                    count += 1;
                }
                return Ok(TopLevel::TooMany(count));
            }
            fields.push((key, access.next_value::<Box<RawValue>>()?));
        }
        Ok(TopLevel::Object(fields))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<TopLevel, A::Error> {
        while access.next_element::<IgnoredAny>()?.is_some() {}
        Ok(TopLevel::Other("an array"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<TopLevel, E> {
        Ok(TopLevel::Other("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other("a number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other("a number"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<TopLevel, E> {
        Ok(TopLevel::Other("a string"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<TopLevel, E> {
        Ok(TopLevel::Other("null"))
    }
}

/// The worst shapes of a payload, shared with the benchmark.
#[cfg(test)]
#[allow(dead_code)]
#[path = "../tests/hostile/mod.rs"]
mod hostile;

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 1 << 20;

    fn decode(payload: &[u8], limit: usize) -> Result<Event, DecodeError> {
        Decoder::new(Arc::new(Schema::brief()), limit).decode(payload)
    }

    fn ok(json: &str) -> Event {
        decode(json.as_bytes(), LIMIT).unwrap()
    }

    fn code(payload: &[u8]) -> &'static str {
        decode(payload, LIMIT).unwrap_err().code().as_str()
    }

    fn text<'e>(e: &'e Event, name: &str) -> Option<&'e str> {
        let i = Schema::brief().index(name).unwrap();
        e.get(i).and_then(Value::as_text)
    }

    fn integer(e: &Event, name: &str) -> Option<i64> {
        let i = Schema::brief().index(name).unwrap();
        e.get(i).and_then(Value::as_integer)
    }

    const OLD: &str = r#"{"event_type": "page_view", "user_id": 42, "page_url": "/page/7", "button_id": "b-1", "timestamp": 1700000000, "country": "US"}"#;

    #[test]
    fn decodes_old_schema_without_device_type() {
        let d = ok(OLD);
        assert_eq!(text(&d, "event_type"), Some("page_view"));
        assert_eq!(integer(&d, "user_id"), Some(42));
        assert_eq!(text(&d, "page_url"), Some("/page/7"));
        assert_eq!(text(&d, "button_id"), Some("b-1"));
        assert_eq!(integer(&d, "timestamp"), Some(1_700_000_000));
        assert_eq!(text(&d, "country"), Some("US"));
        assert_eq!(text(&d, "device_type"), None);
        assert!(d.extra.is_empty());
    }

    #[test]
    fn decodes_new_schema_and_null_device_type() {
        let new = OLD.replace('}', r#", "device_type": "mobile"}"#);
        assert_eq!(text(&ok(&new), "device_type"), Some("mobile"));
        let null = OLD.replace('}', r#", "device_type": null}"#);
        assert_eq!(text(&ok(&null), "device_type"), None);
    }

    #[test]
    fn keeps_unknown_fields_for_the_output() {
        let d = ok(&OLD.replace('}', r#", "session": {"id": 3}, "ab": "x"}"#));
        assert_eq!(d.extra.len(), 2);
        assert_eq!(d.extra("ab").and_then(Extra::text).as_deref(), Some("x"));
        // Kept as the producer wrote it.
        match d.extra("session") {
            Some(Extra::Json(raw)) => assert_eq!(raw.get(), r#"{"id": 3}"#),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn negative_user_id_is_a_value_problem_not_a_decode_error() {
        assert_eq!(
            integer(&ok(&OLD.replace("42", "-42")), "user_id"),
            Some(-42)
        );
    }

    #[test]
    fn each_bad_input_kind_has_its_own_code() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"".to_vec(), "empty_message"),
            (b" \n\t ".to_vec(), "empty_message"),
            (vec![b'{', 0xff, 0xfe, b'}'], "invalid_utf8"),
            (b"{\"event_type\": ".to_vec(), "malformed_json"),
            (b"not json".to_vec(), "malformed_json"),
            (OLD.replace('}', "}}").into_bytes(), "malformed_json"),
            (b"[1, 2]".to_vec(), "not_an_object"),
            (b"\"US\"".to_vec(), "not_an_object"),
            (b"null".to_vec(), "not_an_object"),
            (
                OLD.replace(r#""country": "US""#, r#""country": "US", "country": "XX""#)
                    .into_bytes(),
                "duplicate_field",
            ),
            (
                OLD.replace(r#", "country": "US""#, "").into_bytes(),
                "missing_field",
            ),
            (OLD.replace(r#""US""#, "null").into_bytes(), "null_field"),
            // A lone surrogate is not text: not a null either, required or not.
            (OLD.replace("US", "\\ud83d").into_bytes(), "malformed_json"),
            (
                OLD.replace('}', r#", "device_type": "\ud83d"}"#)
                    .into_bytes(),
                "malformed_json",
            ),
            (
                OLD.replace('}', r#", "other": "\ud83d"}"#).into_bytes(),
                "malformed_json",
            ),
            (OLD.replace("42", "\"42\"").into_bytes(), "wrong_type"),
            (OLD.replace("42", "42.5").into_bytes(), "wrong_type"),
            (OLD.replace(r#""US""#, "1").into_bytes(), "wrong_type"),
            (
                OLD.replace('}', r#", "device_type": 3}"#).into_bytes(),
                "wrong_type",
            ),
            (
                OLD.replace("42", "18446744073709551615").into_bytes(),
                "out_of_range",
            ),
            (
                OLD.replace("1700000000", "1700000000000").into_bytes(),
                "out_of_range",
            ),
            (OLD.replace("1700000000", "-1").into_bytes(), "out_of_range"),
            (
                OLD.replace("/page/7", &"x".repeat(MAX_FIELD_BYTES + 1))
                    .into_bytes(),
                "field_too_long",
            ),
        ];
        for (payload, expected) in cases {
            assert_eq!(
                code(&payload),
                expected,
                "{:?}",
                String::from_utf8_lossy(&payload)
            );
        }
    }

    /// tests/fixtures/bad-inputs: `CODE--name.bin`. Decoder codes must come out of the
    /// decoder; the quality plugin's codes must decode fine and be left to the plugin.
    #[test]
    fn the_bad_input_corpus_gets_the_codes_its_file_names_say() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/bad-inputs");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let Some((expected, _)) = name.strip_suffix(".bin").and_then(|n| n.split_once("--"))
            else {
                continue;
            };
            let payload = std::fs::read(&path).unwrap();
            let got = decode(&payload, LIMIT);
            // Codes given after decoding: by the quality plugin, or for the event time.
            if ["invalid_user_id", "invalid_country", "future_event"].contains(&expected) {
                assert!(got.is_ok(), "{name}: {got:?}");
            } else {
                assert_eq!(
                    got.map(|_| ()).unwrap_err().code().as_str(),
                    expected,
                    "{name}"
                );
            }
            seen += 1;
        }
        assert!(seen >= 40, "corpus has {seen} cases");
    }

    /// Each worst shape at 1 MB gets its verdict, and both paths agree on it
    /// (benches/hostile.rs times them: linear in the size).
    #[test]
    fn hostile_shapes_get_their_verdicts() {
        let expected = |name: &str| match name {
            "many-keys" => "too_many_fields",
            "escaped-field" => "field_too_long",
            _ => "ok",
        };
        for shape in super::hostile::SHAPES {
            let payload = (shape.make)(1_000_000);
            assert!(
                (900_000..=LIMIT).contains(&payload.len()),
                "{}: {} bytes",
                shape.name,
                payload.len()
            );
            let got = match decode(payload.as_bytes(), LIMIT) {
                Ok(_) => "ok",
                Err(e) => e.code().as_str(),
            };
            assert_eq!(got, expected(shape.name), "{}", shape.name);
            assert!(paths_agree(&Schema::brief(), &payload), "{}", shape.name);
        }
    }

    #[test]
    fn only_top_level_members_count_against_the_bound() {
        let decoder = |max| Decoder::new(Arc::new(Schema::brief()), LIMIT).with_max_fields(max);
        let seven = OLD.replace('}', r#", "x": {"a": 1, "b": 2, "c": 3}}"#);
        assert!(decoder(7).decode(seven.as_bytes()).is_ok());
        let err = decoder(6).decode(seven.as_bytes()).unwrap_err();
        assert_eq!(err.code(), HostCode::TooManyFields);
        assert_eq!(
            err.to_string(),
            "the object has 7 fields, more than the limit of 6"
        );
        // What follows the limit must still be JSON.
        let broken = OLD.replace('}', r#", "x": 1, "y": }"#);
        assert_eq!(
            decoder(6).decode(broken.as_bytes()).unwrap_err().code(),
            HostCode::MalformedJson
        );
        // At the default, the brief's events have room to spare.
        let at_limit = super::hostile::keys_at(DEFAULT_MAX_FIELDS, 50_000);
        assert!(decode(at_limit.as_bytes(), LIMIT).is_ok());
        let over = super::hostile::keys_at(DEFAULT_MAX_FIELDS + 1, 50_000);
        assert_eq!(code(over.as_bytes()), "too_many_fields");
    }

    #[test]
    fn a_repeated_key_is_found_among_many() {
        let base = OLD.trim_end_matches('}');
        let extras: String = (0..50).map(|i| format!(r#", "k{i:02}": {i}"#)).collect();
        for (repeat, name) in [
            (r#", "k00": 0"#, "k00"),
            (r#", "country": "DE""#, "country"),
        ] {
            let payload = format!("{base}{extras}{repeat}}}");
            assert!(paths_agree(&Schema::brief(), &payload));
            let err = decode(payload.as_bytes(), LIMIT).unwrap_err();
            assert_eq!(err, DecodeError::DuplicateField(name.into()), "{payload}");
        }
    }

    #[test]
    fn nested_values_are_read_through_once() {
        // Keys of nested objects are decoded too: a lone surrogate there is caught.
        let bad_key = OLD.replace('}', r#", "x": {"ok": 1, "\ud83d": 2}}"#);
        assert_eq!(code(bad_key.as_bytes()), "malformed_json");
        // Repeated keys inside an extra field are the producer's business, kept as written.
        let nested = OLD.replace('}', r#", "x": {"a": 1, "a": 2}}"#);
        match ok(&nested).extra("x") {
            Some(Extra::Json(raw)) => assert_eq!(raw.get(), r#"{"a": 1, "a": 2}"#),
            other => panic!("{other:?}"),
        }
        // Nesting up to serde_json's limit passes; past it is malformed.
        for (depth, expected) in [(127, None), (128, Some("malformed_json"))] {
            let deep = "[".repeat(depth) + &"]".repeat(depth);
            let payload = OLD.replace('}', &format!(r#", "d": {deep}}}"#));
            assert_eq!(
                decode(payload.as_bytes(), LIMIT)
                    .err()
                    .map(|e| e.code().as_str()),
                expected,
                "depth {depth}"
            );
            assert!(paths_agree(&Schema::brief(), &payload));
        }
    }

    mod agreement {
        use super::super::*;
        use proptest::prelude::*;

        fn value() -> impl Strategy<Value = String> {
            // Numbers at the edges of JSON's grammar, good and bad.
            let edges = prop::sample::select(vec![
                "-0", "0", "01", "-", "1.", ".5", "1e", "1E+2", "2e-3", "-0.0", "1e400", "1e-400",
                "4.5", "1e3", "+1", "0x10", "NaN", "tru", "nul",
            ])
            .prop_map(str::to_string);
            let others = prop_oneof![
                Just("null".to_string()),
                Just("true".to_string()),
                Just("false".to_string()),
                any::<i64>().prop_map(|i| i.to_string()),
                Just("18446744073709551615".to_string()),
                Just("-9223372036854775809".to_string()),
                any::<f64>().prop_map(|x| x.to_string()),
                any::<f64>().prop_map(|x| format!("{x:e}")),
                (0u64..5_000_000_000).prop_map(|t| t.to_string()),
                "[a-zA-Z/ _\\\\\"é\u{1}]{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap()),
                "[a-z\u{1}\t]{0,4}".prop_map(|s| format!("\"{s}\"")),
                Just("\"\\u00e9\\ud83d\\ude00\"".to_string()),
                Just("\"\\ud83d\"".to_string()),
                Just(format!("\"{}\"", "y".repeat(MAX_FIELD_BYTES + 1))),
                Just("[1, {\"a\": 2}]".to_string()),
                Just("{\"a\": [\"}\", \"\\\"\"]}".to_string()),
                Just("[1, }".to_string()),
            ];
            prop_oneof![1 => edges, 2 => others]
        }

        /// JSON's whitespace, or something that is not.
        fn gap() -> impl Strategy<Value = &'static str> {
            let good = prop::sample::select(vec!["", " ", "\n\t", "\r "]);
            prop_oneof![20 => good, 1 => prop::sample::select(vec!["\u{a0}", "x"])]
        }

        /// The names of both schemas' fields, and two that neither has (one of them
        /// `country` written with an escape).
        fn key() -> impl Strategy<Value = String> {
            let fields = [Schema::brief(), every_type()]
                .map(|s| s.fields().to_vec())
                .concat();
            let mut names: Vec<String> = fields.into_iter().map(|f| f.name).collect();
            names.extend(["extra", "countr\\u0079"].map(String::from));
            prop::sample::select(names)
        }

        fn text() -> impl Strategy<Value = String> {
            "[a-zA-Z/ _\\\\\"é]{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap())
        }

        /// A member whose value is usually of the right type, else any value.
        fn member(
            key: &str,
            good: impl Strategy<Value = String> + 'static,
        ) -> BoxedStrategy<(String, String)> {
            (
                Just(key.to_string()),
                prop_oneof![4 => good.boxed(), 1 => value().boxed()],
            )
                .boxed()
        }

        /// An object with the members of a schema, some of them wrong, and a few others,
        /// in any order and with any gaps around its tokens.
        fn object(fields: Vec<BoxedStrategy<(String, String)>>) -> impl Strategy<Value = String> {
            let others = prop::collection::vec((key(), value()), 0..3);
            let members = (fields, others)
                .prop_map(|(mut members, others)| {
                    members.extend(others);
                    members
                })
                .prop_shuffle();
            let gaps = prop::collection::vec((gap(), gap(), gap(), gap()), 12);
            let after =
                prop_oneof![10 => Just(""), 1 => prop::sample::select(vec![",", "}", " 1"])];
            let ends = (gap(), after);
            (members, gaps, ends).prop_map(|(members, gaps, (before, after))| {
                let body: Vec<String> = members
                    .iter()
                    .zip(gaps.iter().cycle())
                    .map(|((k, v), (a, b, c, d))| format!("{a}\"{k}\"{b}:{c}{v}{d}"))
                    .collect();
                format!("{before}{{{}}}{after}", body.join(","))
            })
        }

        fn brief_event() -> impl Strategy<Value = String> {
            object(vec![
                member("event_type", text()),
                member("user_id", any::<i64>().prop_map(|i| i.to_string())),
                member("page_url", text()),
                member("button_id", text()),
                member("timestamp", (0..=MAX_TIMESTAMP).prop_map(|t| t.to_string())),
                member("country", text()),
                member("device_type", text()),
            ])
        }

        fn every_type_event() -> impl Strategy<Value = String> {
            object(vec![
                member("t", (0..=MAX_TIMESTAMP).prop_map(|t| t.to_string())),
                member("s", text()),
                member("i", any::<i64>().prop_map(|i| i.to_string())),
                member("x", any::<f64>().prop_map(|x| x.to_string())),
                member("b", any::<bool>().prop_map(|b| b.to_string())),
            ])
        }

        /// A schema with a field of every type.
        fn every_type() -> Schema {
            let toml = "time = \"t\"\n[fields]\nt = \"timestamp\"\ns = \"string\"\n\
                        i = { type = \"integer\", required = false }\n\
                        x = { type = \"float\", required = false }\n\
                        b = { type = \"boolean\", required = false }\n";
            Schema::parse(toml, "every-type.toml").unwrap()
        }

        /// Every number at the edges of the grammar, in a field of each type, whatever
        /// the proptest happens to draw.
        #[test]
        fn numbers_at_the_edges_agree() {
            let schema = every_type();
            let edges = [
                "-0",
                "0",
                "01",
                "-",
                "1.",
                ".5",
                "1e",
                "1E+2",
                "2e-3",
                "-0.0",
                "1e400",
                "1e-400",
                "4.5",
                "1e3",
                "+1",
                "0x10",
                "NaN",
                "tru",
                "nul",
                "-9223372036854775808",
                "9223372036854775808",
                "18446744073709551616",
                "123456789012345678901234567890",
            ];
            for edge in edges {
                for field in ["t", "i", "x", "b"] {
                    let time = if field == "t" { "" } else { r#", "t": 1"# };
                    let text = format!(r#"{{"s": ""{time}, "{field}": {edge}}}"#);
                    assert!(paths_agree(&schema, &text), "{text}");
                }
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(4000))]
            #[test]
            fn fast_and_checked_paths_agree(text in prop_oneof![brief_event(), every_type_event()]) {
                for schema in [Schema::brief(), every_type()] {
                    prop_assert!(paths_agree(&schema, &text), "{}", text);
                    // Bounds around the objects' sizes (5 to 10 members).
                    for max_fields in [5, 7, 9] {
                        prop_assert!(paths_agree_with(&schema, &text, max_fields), "{} (max {})", text, max_fields);
                    }
                }
            }
        }
    }

    #[test]
    fn too_large_is_checked_before_parsing() {
        let err = decode(OLD.as_bytes(), 10).unwrap_err();
        assert_eq!(err.code(), HostCode::MessageTooLarge);
    }

    #[test]
    fn deep_nesting_is_malformed_not_a_stack_overflow() {
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        let nested = OLD.replace('}', &format!(r#", "x": {deep}}}"#));
        assert_eq!(code(nested.as_bytes()), "malformed_json");
    }

    #[test]
    fn millisecond_timestamps_get_a_hint() {
        let err = decode(OLD.replace("1700000000", "1700000000000").as_bytes(), LIMIT).unwrap_err();
        assert!(err.to_string().contains("milliseconds"), "{err}");
    }

    #[test]
    fn messages_name_the_field() {
        let err = decode(OLD.replace(r#""US""#, "1").as_bytes(), LIMIT).unwrap_err();
        assert_eq!(
            err.to_string(),
            "field `country` must be a string, found a number"
        );
    }
}

#[cfg(test)]
mod other_schemas {
    use super::*;

    fn sensor() -> Decoder {
        let schema =
            Schema::parse(include_str!("../../schemas/sensor.toml"), "sensor.toml").unwrap();
        Decoder::new(Arc::new(schema), 1 << 20)
    }

    #[test]
    fn floats_booleans_and_another_time_field() {
        let d = sensor();
        let e = d
            .decode(br#"{"device_id": "d-1", "temperature": 21.5, "ts": 1700000000, "ok": true}"#)
            .unwrap();
        assert_eq!(e.fields[1], Some(Value::Float(21.5)));
        assert_eq!(
            e.get(d.schema().time()),
            Some(&Value::Integer(1_700_000_000))
        );
        assert_eq!(e.extra("ok").and_then(Extra::text).as_deref(), Some("true"));
        // An integer is a number too.
        let e = d
            .decode(br#"{"device_id": "d-1", "temperature": 21, "ts": 1}"#)
            .unwrap();
        assert_eq!(e.fields[1], Some(Value::Float(21.0)));
        let err = d
            .decode(br#"{"device_id": "d-1", "temperature": "21", "ts": 1}"#)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "field `temperature` must be a number, found a string"
        );
        let err = d
            .decode(br#"{"device_id": "d-1", "temperature": 1}"#)
            .unwrap_err();
        assert_eq!(err.to_string(), "required field `ts` is missing");
    }

    #[test]
    fn booleans_are_typed() {
        let schema = Schema::parse("time = \"t\"\n[fields]\nt = \"timestamp\"\nflag = { type = \"boolean\", required = false }\n", "b.toml").unwrap();
        let d = Decoder::new(Arc::new(schema), 1 << 20);
        assert_eq!(
            d.decode(br#"{"t": 1, "flag": false}"#).unwrap().fields[1],
            Some(Value::Boolean(false))
        );
        assert_eq!(d.decode(br#"{"t": 1}"#).unwrap().fields[1], None);
        let err = d.decode(br#"{"t": 1, "flag": 0}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "field `flag` must be a boolean or null, found a number"
        );
    }
}
