//! The dead-letter record, both directions: written for every rejected input record
//! ([`DlqRecord::rejecting`]), read back by `streamhost dlq replay`
//! ([`DlqRecord::original_bytes`]). It holds enough to understand the rejection and to
//! restore the original bytes.

use std::borrow::Cow;
use std::fmt;

use compact_str::format_compact;
use serde::{Deserialize, Serialize};

use base64::Engine as _;

use super::json::{self, Object};
use super::{Destination, Output, SourceRecord};
use crate::timefmt;

/// The largest DLQ record this host produces: room for any input of up to
/// [`MAX_REPLAYABLE_BYTES`] in its base64 form, with the record's other fields. Larger
/// than [`super::MAX_OUTPUT_BYTES`] on purpose: a DLQ record holds the whole input and
/// says why, so it cannot be as small as the largest input. The `dlq` topic's
/// `max.message.bytes` must allow it (docs/howto/operate.md).
pub const MAX_DLQ_BYTES: usize = 2_000_000;

/// Room kept in a DLQ record for everything but `raw`: each text field is cut to its
/// limit before it is written ([`DlqRecord::rejecting`]), and JSON escaping grows
/// text at most six-fold (`\u0001`).
const ENVELOPE_BYTES: usize = 6 * (MAX_CODE_BYTES + MAX_TEXT_BYTES + 2 * MAX_ID_BYTES) + 1_024;

/// The largest input whose DLQ record holds it whole, whatever its bytes: a larger
/// `pipeline.max_message_bytes` is refused at start-up, so every record the host
/// judges can be replayed from its DLQ copy.
pub const MAX_REPLAYABLE_BYTES: usize = (MAX_DLQ_BYTES - ENVELOPE_BYTES) / 4 * 3;

/// Longest `code` written (plugin codes are checked to be at most this at the answer).
const MAX_CODE_BYTES: usize = 64;
/// Longest `message` written: longer ones (a host message quoting a producer's field
/// name, say) are cut and end with `…`.
const MAX_TEXT_BYTES: usize = 1_536;
/// Longest `rejected_by` and `source_topic`.
const MAX_ID_BYTES: usize = 260;

/// `text` cut to at most `max` bytes at a character boundary, with `…` when cut.
fn cut(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &text[..end]))
}

/// The step of the pipeline that turned a record away (the record's `stage` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    Decode,
    Plugin,
    /// Turning an accepted event into its output record.
    Route,
    Window,
}

impl Step {
    /// The name used in DLQ records and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Decode => "decode",
            Step::Plugin => "plugin",
            Step::Route => "route",
            Step::Window => "window",
        }
    }
}

macro_rules! host_codes {
    ($($(#[$doc:meta])* $variant:ident = $text:literal,)*) => {
        /// The codes the host itself gives (plugins give their own: [`Code::Rule`]).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum HostCode {
            $($(#[$doc])* $variant,)*
        }

        impl HostCode {
            pub const ALL: &'static [HostCode] = &[$(HostCode::$variant,)*];

            /// The code as written in DLQ records and metric labels.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(HostCode::$variant => $text,)*
                }
            }
        }
    };
}

host_codes! {
    /// No bytes, or only whitespace.
    EmptyMessage = "empty_message",
    /// Over `pipeline.max_message_bytes`.
    MessageTooLarge = "message_too_large",
    InvalidUtf8 = "invalid_utf8",
    MalformedJson = "malformed_json",
    /// Valid JSON, but not an object.
    NotAnObject = "not_an_object",
    /// More top-level members than `pipeline.max_fields`.
    TooManyFields = "too_many_fields",
    DuplicateField = "duplicate_field",
    MissingField = "missing_field",
    NullField = "null_field",
    WrongType = "wrong_type",
    OutOfRange = "out_of_range",
    FieldTooLong = "field_too_long",
    /// An accepted event whose enriched record would be over [`MAX_OUTPUT_BYTES`].
    OutputTooLarge = "output_too_large",
    /// An event time further ahead of the wall clock than `pipeline.max_future_secs`.
    FutureEvent = "future_event",
    /// An event whose windows had all closed when it arrived.
    LateEvent = "late_event",
    /// A record on the enriched topic that is not an enriched event.
    UnreadableEnrichedEvent = "unreadable_enriched_event",
    /// A plugin could not judge the batch (trap, deadline, memory cap, bad answer).
    PluginFailed = "plugin_failed",
    /// A required plugin's circuit breaker is open.
    PluginDisabled = "plugin_disabled",
}

impl fmt::Display for HostCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who turned a record away: the host, or a plugin (`name@version`).
pub const REJECTED_BY_HOST: &str = "host";

/// How `raw` holds the original payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawEncoding {
    /// The payload is UTF-8 and `raw` is it, as is.
    Utf8,
    /// Not UTF-8: bytes as `\xNN`, `\` as `\\` (Rust's `escape_ascii`).
    Escaped,
    /// Standard base64 with padding: for a payload whose `utf8` or `escaped` form
    /// would not fit the record, which base64 (4 bytes per 3) does up to
    /// [`MAX_REPLAYABLE_BYTES`].
    Base64,
    /// Too large to keep whole even in base64: `raw` holds the start of its base64
    /// form; the message says where the original is. Only an input over
    /// [`MAX_REPLAYABLE_BYTES`] (over `pipeline.max_message_bytes`, which the input
    /// topic allowed) is written so.
    Truncated,
    /// Written by something else: not restorable.
    #[serde(other)]
    Unknown,
}

impl RawEncoding {
    /// The name written in DLQ records (serde's, which reads them back).
    pub fn as_str(self) -> &'static str {
        match self {
            RawEncoding::Utf8 => "utf8",
            RawEncoding::Escaped => "escaped",
            RawEncoding::Base64 => "base64",
            RawEncoding::Truncated => "truncated",
            RawEncoding::Unknown => "unknown",
        }
    }
}

/// A dead-letter record. Its text borrows what it can when it is written
/// ([`DlqRecord::rejecting`]) and owns it when read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DlqRecord<'a> {
    /// A [`HostCode`], or the code a plugin gave.
    pub code: Cow<'a, str>,
    pub message: Cow<'a, str>,
    pub stage: Step,
    /// [`REJECTED_BY_HOST`], or `name@version` of the plugin.
    pub rejected_by: Cow<'a, str>,
    pub source_topic: Cow<'a, str>,
    pub source_partition: i32,
    pub source_offset: i64,
    /// Kafka timestamp of the source record, `YYYY-MM-DD hh:mm:ss` UTC.
    pub source_time: String,
    pub dlq_time: String,
    /// The original payload, as `raw_encoding` says.
    pub raw: Cow<'a, str>,
    pub raw_encoding: RawEncoding,
}

impl DlqRecord<'_> {
    /// The DLQ output for `source`, read from `source_topic`, turned away by
    /// `rejected_by` at `step` with `code` and `message`. Always at most
    /// [`MAX_DLQ_BYTES`], in one pass whatever the texts' sizes: each text field is cut
    /// to its limit, and `raw` takes the first form that fits (as is, escaped, base64).
    pub fn rejecting(
        source: &SourceRecord,
        source_topic: &str,
        step: Step,
        rejected_by: &str,
        code: &str,
        message: &str,
    ) -> Output {
        let key = format_compact!(
            "{}/{}/{}",
            cut(source_topic, MAX_ID_BYTES),
            source.partition,
            source.offset
        );
        let mut record = DlqRecord {
            code: cut(code, MAX_CODE_BYTES),
            message: cut(message, MAX_TEXT_BYTES),
            stage: step,
            rejected_by: cut(rejected_by, MAX_ID_BYTES),
            source_topic: cut(source_topic, MAX_ID_BYTES),
            source_partition: source.partition,
            source_offset: source.offset,
            source_time: timefmt::datetime_ms(source.timestamp_ms),
            dlq_time: timefmt::now(),
            raw: Cow::Borrowed(""),
            raw_encoding: RawEncoding::Utf8,
        };
        let payload = &source.payload;
        // The common case first: the payload as is (or escaped), in one write.
        (record.raw, record.raw_encoding) = match std::str::from_utf8(payload) {
            Ok(text) => (Cow::Borrowed(text), RawEncoding::Utf8),
            Err(_) => (
                Cow::Owned(payload.escape_ascii().to_string()),
                RawEncoding::Escaped,
            ),
        };
        let mut json = record.to_json();
        if json.len() > MAX_DLQ_BYTES {
            // Quotes and control characters grow in JSON, bytes that are not UTF-8
            // four-fold when escaped: base64 grows by a third, and needs no escaping.
            let base64 = base64::engine::general_purpose::STANDARD;
            record.raw = Cow::Borrowed("");
            let envelope = record.to_json().len();
            if envelope + base64::encoded_len(payload.len(), true).unwrap_or(usize::MAX)
                <= MAX_DLQ_BYTES
            {
                record.raw = Cow::Owned(base64.encode(payload));
                record.raw_encoding = RawEncoding::Base64;
            } else {
                // Over what any accepted input can be: keep the start and say where
                // the original is, which the input topic still has.
                record.message = Cow::Owned(format!(
                    "{} [raw truncated: it holds the start of the base64 form of the {}-byte original, which is at {key}]",
                    record.message,
                    payload.len()
                ));
                record.raw = Cow::Borrowed("");
                let envelope = record.to_json().len();
                let keep = MAX_DLQ_BYTES.saturating_sub(envelope) / 4 * 3;
                record.raw = Cow::Owned(base64.encode(&payload[..keep.min(payload.len())]));
                record.raw_encoding = RawEncoding::Truncated;
            }
            json = record.to_json();
        }
        Output {
            destination: Destination::Dlq,
            // The source position identifies the record: a re-delivery has the same key.
            key,
            payload: json,
        }
    }

    /// The record as JSON, written straight into its payload (the fields in the order
    /// of the struct, as serde writes them; read back with serde).
    fn to_json(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(self.raw.len() + self.message.len() + self.source_topic.len() + 320);
        let mut o = Object::new(&mut out);
        json::string(o.key("code"), &self.code);
        json::string(o.key("message"), &self.message);
        json::string(o.key("stage"), self.stage.as_str());
        json::string(o.key("rejected_by"), &self.rejected_by);
        json::string(o.key("source_topic"), &self.source_topic);
        json::integer(o.key("source_partition"), self.source_partition.into());
        json::integer(o.key("source_offset"), self.source_offset);
        json::string(o.key("source_time"), &self.source_time);
        json::string(o.key("dlq_time"), &self.dlq_time);
        json::string(o.key("raw"), &self.raw);
        json::string(o.key("raw_encoding"), self.raw_encoding.as_str());
        o.end();
        out
    }

    /// The payload exactly as it was read from the source topic.
    pub fn original_bytes(&self) -> Result<Vec<u8>, RawError> {
        match self.raw_encoding {
            RawEncoding::Utf8 => Ok(self.raw.as_bytes().to_vec()),
            RawEncoding::Escaped => Ok(unescape_ascii(&self.raw)?),
            RawEncoding::Base64 => base64::engine::general_purpose::STANDARD
                .decode(self.raw.as_bytes())
                .map_err(|e| RawError::Base64(e.to_string())),
            RawEncoding::Truncated => Err(RawError::Truncated),
            RawEncoding::Unknown => Err(RawError::UnknownEncoding),
        }
    }
}

/// Why a DLQ record's original payload cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RawError {
    #[error("raw_encoding is none of \"utf8\", \"escaped\", \"base64\" and \"truncated\"")]
    UnknownEncoding,
    #[error("raw is not valid base64: {0}")]
    Base64(String),
    #[error("raw holds only the start of the original (raw_encoding \"truncated\"); the message says where the original is")]
    Truncated,
    #[error("raw is not valid escaped text: {0}")]
    Escape(#[from] UnescapeError),
}

/// Why an `escaped` `raw` cannot be turned back into bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnescapeError {
    #[error("byte {at}: a backslash at the end of the text")]
    TrailingBackslash { at: usize },
    #[error("byte {at}: unknown escape \\{found}")]
    UnknownEscape { at: usize, found: char },
    #[error("byte {at}: \\x must be followed by two hex digits")]
    BadHex { at: usize },
    #[error("byte {at}: {found:?} is not ASCII (escaped text is ASCII only)")]
    NonAscii { at: usize, found: char },
}

/// The inverse of Rust's `<[u8]>::escape_ascii`: `\t \r \n \\ \' \"` and `\xNN` (either
/// case) become their bytes, other ASCII characters stand for themselves.
pub fn unescape_ascii(text: &str) -> Result<Vec<u8>, UnescapeError> {
    let bytes = text.as_bytes();
    let char_at = |i: usize| {
        text.get(i..)
            .and_then(|rest| rest.chars().next())
            .unwrap_or(char::REPLACEMENT_CHARACTER)
    };
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if !b.is_ascii() {
            return Err(UnescapeError::NonAscii {
                at: i,
                found: char_at(i),
            });
        }
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let Some(&escape) = bytes.get(i + 1) else {
            return Err(UnescapeError::TrailingBackslash { at: i });
        };
        let byte = match escape {
            b't' => b'\t',
            b'r' => b'\r',
            b'n' => b'\n',
            b'\\' | b'\'' | b'"' => escape,
            b'x' => {
                let digit = |j: usize| bytes.get(j).and_then(|d| (*d as char).to_digit(16));
                match (digit(i + 2), digit(i + 3)) {
                    (Some(hi), Some(lo)) => {
                        out.push((hi * 16 + lo) as u8);
                        i += 4;
                        continue;
                    }
                    _ => return Err(UnescapeError::BadHex { at: i }),
                }
            }
            _ => {
                return Err(UnescapeError::UnknownEscape {
                    at: i,
                    found: char_at(i + 1),
                })
            }
        };
        out.push(byte);
        i += 2;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::sample_source as source;
    use proptest::prelude::*;
    use serde_json::Value;

    /// The hand-written writer and serde (which reads records back) agree, byte for
    /// byte, for every step and encoding.
    #[test]
    fn records_are_written_as_serde_writes_them() {
        let steps = [Step::Decode, Step::Plugin, Step::Route, Step::Window];
        let encodings = [
            RawEncoding::Utf8,
            RawEncoding::Escaped,
            RawEncoding::Base64,
            RawEncoding::Truncated,
        ];
        for (step, raw_encoding) in steps.into_iter().zip(encodings) {
            let record = DlqRecord {
                code: "bad \"code\"".into(),
                message: "line\nbreak, ünïcode ✓, \u{1}".into(),
                stage: step,
                rejected_by: "quality@1.0.0".into(),
                source_topic: "my_events".into(),
                source_partition: -1,
                source_offset: i64::MAX,
                source_time: "2026-12-02 07:00:00".into(),
                dlq_time: "2026-12-02 07:00:01".into(),
                raw: r#"{"a": "\"x\""}"#.into(),
                raw_encoding,
            };
            assert_eq!(
                String::from_utf8(record.to_json()).unwrap(),
                serde_json::to_string(&record).unwrap()
            );
        }
    }

    #[test]
    fn every_input_up_to_the_replayable_size_fits_whole_whatever_its_bytes() {
        // The worst shapes for each form: quotes double in JSON, control characters
        // grow six-fold, bytes that are not UTF-8 four-fold when escaped.
        let n = MAX_REPLAYABLE_BYTES;
        let inputs: [Vec<u8>; 4] = [
            "\"x".repeat(n / 2).into_bytes(),
            vec![1u8; n],
            vec![0xffu8; n],
            (0..n).map(|i| (i % 256) as u8).collect(),
        ];
        // Texts at their worst too: long, and all control characters.
        let long = "\u{1}".repeat(100_000);
        for payload in inputs {
            let out =
                DlqRecord::rejecting(&source(&payload), &long, Step::Decode, &long, &long, &long);
            assert!(out.payload.len() <= MAX_DLQ_BYTES, "{}", out.payload.len());
            let entry: DlqRecord = serde_json::from_slice(&out.payload).unwrap();
            assert_eq!(entry.raw_encoding, RawEncoding::Base64);
            assert!(entry.original_bytes().unwrap() == payload);
            assert!(entry.message.ends_with('…') && entry.code.len() <= 64);
        }
        // The bound the configuration names (config.rs) is this one.
        assert_eq!(MAX_REPLAYABLE_BYTES, 1_489_692);
    }

    #[test]
    fn an_input_over_the_replayable_size_keeps_the_start_and_says_where_the_rest_is() {
        let payload = vec![0xffu8; MAX_DLQ_BYTES];
        let huge = "m".repeat(3 << 20);
        let out = DlqRecord::rejecting(
            &source(&payload),
            "my_events",
            Step::Decode,
            "host",
            "message_too_large",
            &huge,
        );
        assert!(out.payload.len() <= MAX_DLQ_BYTES, "{}", out.payload.len());
        let entry: DlqRecord = serde_json::from_slice(&out.payload).unwrap();
        assert_eq!(entry.raw_encoding, RawEncoding::Truncated);
        assert_eq!(entry.original_bytes(), Err(RawError::Truncated));
        assert!(
            entry.message.contains("2000000-byte original")
                && entry.message.contains("my_events/2/41")
        );
        let start = base64::engine::general_purpose::STANDARD
            .decode(entry.raw.as_bytes())
            .unwrap();
        assert!(start.len() > 1_400_000 && payload.starts_with(&start));
        // Below the limits nothing changes.
        let small =
            DlqRecord::rejecting(&source(b"{}"), "my_events", Step::Decode, "host", "c", "m");
        let v: Value = serde_json::from_slice(&small.payload).unwrap();
        assert_eq!(
            (
                v["raw"].as_str(),
                v["raw_encoding"].as_str(),
                v["message"].as_str()
            ),
            (Some("{}"), Some("utf8"), Some("m"))
        );
    }

    #[test]
    fn dlq_keeps_utf8_payloads_verbatim() {
        let payload = "{\"country\": \"ZZ\", \"note\": \"é\\u0000\"}".as_bytes();
        let out = DlqRecord::rejecting(
            &source(payload),
            "my_events",
            Step::Plugin,
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
        let out = DlqRecord::rejecting(
            &source(&payload),
            "my_events",
            Step::Decode,
            "host",
            "invalid_utf8",
            "bad",
        );
        let v: Value = serde_json::from_slice(&out.payload).unwrap();
        assert_eq!(v["raw_encoding"], "escaped");
        assert_eq!(v["raw"], "a\\\\\\xff\\x00\\\"");
    }
    #[test]
    fn unescape_reads_every_escape_of_escape_ascii() {
        assert_eq!(
            unescape_ascii(r#"a\t\r\n\\\'\"\x00\xff\xFFz"#).unwrap(),
            b"a\t\r\n\\'\"\x00\xff\xffz"
        );
        assert_eq!(unescape_ascii("").unwrap(), b"");
    }

    #[test]
    fn unescape_says_what_is_wrong_and_where() {
        use UnescapeError::*;
        assert_eq!(unescape_ascii("ab\\"), Err(TrailingBackslash { at: 2 }));
        assert_eq!(
            unescape_ascii("a\\q"),
            Err(UnknownEscape { at: 1, found: 'q' })
        );
        assert_eq!(
            unescape_ascii("a\\é"),
            Err(UnknownEscape { at: 1, found: 'é' })
        );
        assert_eq!(unescape_ascii("\\x4"), Err(BadHex { at: 0 }));
        assert_eq!(unescape_ascii("\\x+f"), Err(BadHex { at: 0 }));
        assert_eq!(unescape_ascii("\\xg0"), Err(BadHex { at: 0 }));
        assert_eq!(unescape_ascii("aé"), Err(NonAscii { at: 1, found: 'é' }));
        assert!(unescape_ascii("\\x4")
            .unwrap_err()
            .to_string()
            .contains("two hex digits"));
    }

    proptest! {
        #[test]
        fn unescape_inverts_escape_ascii(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let escaped = bytes.escape_ascii().to_string();
            prop_assert_eq!(unescape_ascii(&escaped).unwrap(), bytes);
        }

        /// Whatever the pipeline dead-letters, replay restores byte for byte.
        #[test]
        fn dlq_records_restore_the_original_bytes(
            bytes in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..256),
                ".{0,64}".prop_map(String::into_bytes),
            ]
        ) {
            let source = SourceRecord { partition: 1, offset: 7, timestamp_ms: 1_700_000_000_000, payload: bytes.clone() };
            let out = DlqRecord::rejecting(&source, "my_events", Step::Decode, "host", "invalid_utf8", "m");
            let entry: DlqRecord = serde_json::from_slice(&out.payload).unwrap();
            prop_assert_eq!(entry.original_bytes().unwrap(), bytes);
        }
    }

    #[test]
    fn raw_with_an_unknown_encoding_is_an_error_not_a_guess() {
        let mut e: DlqRecord = serde_json::from_slice(
            &DlqRecord::rejecting(&source(b"x"), "my_events", Step::Decode, "host", "c", "m")
                .payload,
        )
        .unwrap();
        e.raw_encoding = serde_json::from_str("\"rot13\"").unwrap();
        assert_eq!(e.original_bytes(), Err(RawError::UnknownEncoding));
        e.raw_encoding = RawEncoding::Escaped;
        e.raw = "\\".into();
        assert!(matches!(e.original_bytes(), Err(RawError::Escape(_))));
    }
}
