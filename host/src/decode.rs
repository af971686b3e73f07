//! Stage 2: raw Kafka payload → typed [`Event`], or a [`DecodeError`] with its own DLQ code.
//!
//! The host checks shape and types (is it JSON, is every field there, is it the right
//! type and in the range the rest of the pipeline can store); plugins judge values.
//! Unknown fields are kept aside and written back to `enriched_events` unchanged, so a
//! producer that adds a field loses nothing before ClickHouse gets a column for it.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Largest string field accepted. Longer values are almost always a producer bug
/// (or an attack) and would bloat every downstream table.
pub const MAX_FIELD_BYTES: usize = 2048;

/// ClickHouse `DateTime` is a UInt32 of seconds: anything outside cannot be stored.
pub const MAX_TIMESTAMP: i64 = u32::MAX as i64;

/// One event as the producer's schema defines it (both the old and the new version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event_type: String,
    pub user_id: i64,
    pub page_url: String,
    pub button_id: String,
    /// Event time in seconds since the Unix epoch.
    pub timestamp: i64,
    pub country: String,
    /// `None` for events from before the schema change.
    pub device_type: Option<String>,
    /// Fields added by enrichment plugins.
    pub attributes: Vec<(String, String)>,
}

/// A decoded event plus the fields the host does not know (kept for the output).
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub event: Event,
    pub extra: Map<String, Value>,
}

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
    #[error("field `{0}` appears more than once")]
    DuplicateField(String),
    #[error("required field `{0}` is missing")]
    MissingField(&'static str),
    #[error("required field `{0}` is null")]
    NullField(&'static str),
    #[error("field `{field}` must be {expected}, found {found}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    #[error("field `{field}` is out of range: {detail}")]
    OutOfRange { field: &'static str, detail: String },
    #[error("field `{field}` is {size} bytes, longer than the limit of {MAX_FIELD_BYTES}")]
    FieldTooLong { field: &'static str, size: usize },
}

impl DecodeError {
    /// Stable, machine-readable code written to the DLQ.
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::Empty => "empty_message",
            DecodeError::TooLarge { .. } => "message_too_large",
            DecodeError::InvalidUtf8(_) => "invalid_utf8",
            DecodeError::MalformedJson(_) => "malformed_json",
            DecodeError::NotAnObject(_) => "not_an_object",
            DecodeError::DuplicateField(_) => "duplicate_field",
            DecodeError::MissingField(_) => "missing_field",
            DecodeError::NullField(_) => "null_field",
            DecodeError::WrongType { .. } => "wrong_type",
            DecodeError::OutOfRange { .. } => "out_of_range",
            DecodeError::FieldTooLong { .. } => "field_too_long",
        }
    }
}

/// Decode one payload. Never panics, whatever the bytes.
pub fn decode(payload: &[u8], max_message_bytes: usize) -> Result<Decoded, DecodeError> {
    if payload.len() > max_message_bytes {
        return Err(DecodeError::TooLarge {
            size: payload.len(),
            limit: max_message_bytes,
        });
    }
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Err(DecodeError::Empty);
    }
    let text = std::str::from_utf8(payload).map_err(|e| DecodeError::InvalidUtf8(e.to_string()))?;
    if let Some(decoded) = decode_fast(text) {
        return Ok(decoded);
    }
    decode_checked(text)
}

/// The common case, typed and borrowed: exactly the schema's fields with the right
/// types, no unknown or repeated keys. Anything else (`None`) takes [`decode_checked`],
/// which accepts the same inputs and says precisely what is wrong with the others;
/// `fast_and_checked_paths_agree` tests that they agree.
fn decode_fast(text: &str) -> Option<Decoded> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Fast<'a> {
        #[serde(borrow)]
        event_type: Cow<'a, str>,
        user_id: i64,
        #[serde(borrow)]
        page_url: Cow<'a, str>,
        #[serde(borrow)]
        button_id: Cow<'a, str>,
        timestamp: i64,
        #[serde(borrow)]
        country: Cow<'a, str>,
        #[serde(borrow, default)]
        device_type: Option<Cow<'a, str>>,
    }
    let f: Fast = serde_json::from_str(text).ok()?;
    let too_long = [&f.event_type, &f.page_url, &f.button_id, &f.country]
        .into_iter()
        .chain(f.device_type.as_ref())
        .any(|s| s.len() > MAX_FIELD_BYTES);
    if too_long || !(0..=MAX_TIMESTAMP).contains(&f.timestamp) {
        return None;
    }
    Some(Decoded {
        event: Event {
            event_type: f.event_type.into_owned(),
            user_id: f.user_id,
            page_url: f.page_url.into_owned(),
            button_id: f.button_id.into_owned(),
            timestamp: f.timestamp,
            country: f.country.into_owned(),
            device_type: f.device_type.map(Cow::into_owned),
            attributes: Vec::new(),
        },
        extra: Map::new(),
    })
}

/// Field by field, with a precise error for the first problem.
fn decode_checked(text: &str) -> Result<Decoded, DecodeError> {
    let top: TopLevel =
        serde_json::from_str(text).map_err(|e| DecodeError::MalformedJson(e.to_string()))?;
    let fields = match top {
        TopLevel::Object(fields) => fields,
        TopLevel::Other(kind) => return Err(DecodeError::NotAnObject(kind)),
    };

    let mut map = Map::with_capacity(fields.len());
    for (key, value) in fields {
        if map.contains_key(&key) {
            return Err(DecodeError::DuplicateField(key));
        }
        map.insert(key, value);
    }

    let event = Event {
        event_type: take_string(&mut map, "event_type")?,
        user_id: take_i64(&mut map, "user_id")?,
        page_url: take_string(&mut map, "page_url")?,
        button_id: take_string(&mut map, "button_id")?,
        timestamp: take_timestamp(&mut map)?,
        country: take_string(&mut map, "country")?,
        device_type: take_optional_string(&mut map, "device_type")?,
        attributes: Vec::new(),
    };
    Ok(Decoded { event, extra: map })
}

fn take_required(map: &mut Map<String, Value>, field: &'static str) -> Result<Value, DecodeError> {
    match map.remove(field) {
        None => Err(DecodeError::MissingField(field)),
        Some(Value::Null) => Err(DecodeError::NullField(field)),
        Some(v) => Ok(v),
    }
}

fn check_len(field: &'static str, s: String) -> Result<String, DecodeError> {
    if s.len() > MAX_FIELD_BYTES {
        return Err(DecodeError::FieldTooLong {
            field,
            size: s.len(),
        });
    }
    Ok(s)
}

fn take_string(map: &mut Map<String, Value>, field: &'static str) -> Result<String, DecodeError> {
    match take_required(map, field)? {
        Value::String(s) => check_len(field, s),
        other => Err(wrong_type(field, "a string", &other)),
    }
}

fn take_optional_string(
    map: &mut Map<String, Value>,
    field: &'static str,
) -> Result<Option<String>, DecodeError> {
    match map.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => check_len(field, s).map(Some),
        Some(other) => Err(wrong_type(field, "a string or null", &other)),
    }
}

fn take_i64(map: &mut Map<String, Value>, field: &'static str) -> Result<i64, DecodeError> {
    let value = take_required(map, field)?;
    let Value::Number(n) = &value else {
        return Err(wrong_type(field, "an integer", &value));
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
            field,
            detail: format!("{n} does not fit a signed 64-bit integer"),
        });
    }
    Err(DecodeError::WrongType {
        field,
        expected: "an integer",
        found: "a fractional number",
    })
}

fn take_timestamp(map: &mut Map<String, Value>) -> Result<i64, DecodeError> {
    let field = "timestamp";
    let ts = take_i64(map, field)?;
    if (0..=MAX_TIMESTAMP).contains(&ts) {
        return Ok(ts);
    }
    let hint = if ts > MAX_TIMESTAMP && ts / 1000 <= MAX_TIMESTAMP {
        " (looks like milliseconds; the schema says seconds)"
    } else {
        ""
    };
    Err(DecodeError::OutOfRange {
        field,
        detail: format!("{ts} is outside 0..={MAX_TIMESTAMP} epoch seconds{hint}"),
    })
}

fn wrong_type(field: &'static str, expected: &'static str, found: &Value) -> DecodeError {
    DecodeError::WrongType {
        field,
        expected,
        found: json_kind(found),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The top-level JSON value, with object members kept as a list so that duplicate
/// keys can be reported (serde_json's `Map` silently keeps the last one).
enum TopLevel {
    Object(Vec<(String, Value)>),
    Other(&'static str),
}

impl<'de> Deserialize<'de> for TopLevel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TopLevelVisitor)
    }
}

struct TopLevelVisitor;

impl<'de> Visitor<'de> for TopLevelVisitor {
    type Value = TopLevel;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<TopLevel, A::Error> {
        let mut fields = Vec::with_capacity(access.size_hint().unwrap_or(8));
        while let Some(entry) = access.next_entry::<String, Value>()? {
            fields.push(entry);
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

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 1 << 20;

    fn ok(json: &str) -> Decoded {
        decode(json.as_bytes(), LIMIT).unwrap()
    }

    fn code(payload: &[u8]) -> &'static str {
        decode(payload, LIMIT).unwrap_err().code()
    }

    const OLD: &str = r#"{"event_type": "page_view", "user_id": 42, "page_url": "/page/7", "button_id": "b-1", "timestamp": 1700000000, "country": "US"}"#;

    #[test]
    fn decodes_old_schema_without_device_type() {
        let d = ok(OLD);
        assert_eq!(d.event.event_type, "page_view");
        assert_eq!(d.event.user_id, 42);
        assert_eq!(d.event.page_url, "/page/7");
        assert_eq!(d.event.button_id, "b-1");
        assert_eq!(d.event.timestamp, 1_700_000_000);
        assert_eq!(d.event.country, "US");
        assert_eq!(d.event.device_type, None);
        assert!(d.extra.is_empty());
    }

    #[test]
    fn decodes_new_schema_and_null_device_type() {
        let new = OLD.replace('}', r#", "device_type": "mobile"}"#);
        assert_eq!(ok(&new).event.device_type.as_deref(), Some("mobile"));
        let null = OLD.replace('}', r#", "device_type": null}"#);
        assert_eq!(ok(&null).event.device_type, None);
    }

    #[test]
    fn keeps_unknown_fields_for_the_output() {
        let d = ok(&OLD.replace('}', r#", "session": {"id": 3}, "ab": "x"}"#));
        assert_eq!(d.extra.len(), 2);
        assert_eq!(d.extra["ab"], "x");
    }

    #[test]
    fn negative_user_id_is_a_value_problem_not_a_decode_error() {
        assert_eq!(ok(&OLD.replace("42", "-42")).event.user_id, -42);
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
            if ["invalid_user_id", "invalid_country"].contains(&expected) {
                assert!(got.is_ok(), "{name}: {got:?}");
            } else {
                assert_eq!(got.map(|_| ()).unwrap_err().code(), expected, "{name}");
            }
            seen += 1;
        }
        assert!(seen >= 30, "corpus has {seen} cases");
    }

    mod agreement {
        use super::super::*;
        use proptest::prelude::*;

        fn value() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("null".to_string()),
                Just("true".to_string()),
                any::<i64>().prop_map(|i| i.to_string()),
                Just("18446744073709551615".to_string()),
                Just("1e3".to_string()),
                Just("4.5".to_string()),
                (0u64..5_000_000_000).prop_map(|t| t.to_string()),
                "[a-zA-Z/ _\\\\\"é]{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap()),
                Just("\"x\"".to_string()),
                Just(format!("\"{}\"", "y".repeat(MAX_FIELD_BYTES + 1))),
                Just("[1, {\"a\": 2}]".to_string()),
            ]
        }

        fn object() -> impl Strategy<Value = String> {
            let key = prop_oneof![
                Just("event_type"),
                Just("user_id"),
                Just("page_url"),
                Just("button_id"),
                Just("timestamp"),
                Just("country"),
                Just("device_type"),
                Just("extra"),
                Just("countr\\u0079"),
            ];
            prop::collection::vec((key, value()), 0..10).prop_map(|fields| {
                let body: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("\"{k}\": {v}"))
                    .collect();
                format!("{{{}}}", body.join(", "))
            })
        }

        fn valid() -> impl Strategy<Value = String> {
            (any::<i64>(), 0i64..=MAX_TIMESTAMP, "[A-Z]{2}", prop::option::of("[a-z]{1,8}")).prop_map(|(u, t, c, d)| {
                let device = d.map(|d| format!(r#", "device_type": "{d}""#)).unwrap_or_default();
                format!(r#"{{"event_type": "page_view", "user_id": {u}, "page_url": "/p", "button_id": "b", "timestamp": {t}, "country": "{c}"{device}}}"#)
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]
            #[test]
            fn fast_and_checked_paths_agree(text in prop_oneof![object(), valid()]) {
                let checked = decode_checked(&text);
                match decode_fast(&text) {
                    Some(fast) => prop_assert_eq!(Ok(fast), checked, "{}", text),
                    None => prop_assert!(checked.is_err() || !checked.as_ref().unwrap().extra.is_empty()
                        || text.contains("u0079"), "fast refused a plain valid event: {}", text),
                }
            }
        }
    }

    #[test]
    fn too_large_is_checked_before_parsing() {
        let err = decode(OLD.as_bytes(), 10).unwrap_err();
        assert_eq!(err.code(), "message_too_large");
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
