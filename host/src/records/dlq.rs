//! The dead-letter record, both directions: written for every rejected input record
//! ([`DlqRecord::rejecting`]), read back by `streamhost dlq replay`
//! ([`DlqRecord::original_bytes`]). It holds enough to understand the rejection and to
//! restore the original bytes.

use std::borrow::Cow;
use std::fmt;

use compact_str::format_compact;
use serde::{Deserialize, Serialize};

use super::json::{self, Object};
use super::{Destination, Output, SourceRecord, MAX_OUTPUT_BYTES};
use crate::timefmt;

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
    /// Too large to keep whole: `raw` holds the start of it; the message says where
    /// the original is.
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
    /// `rejected_by` at `step` with `code` and `message`.
    pub fn rejecting(
        source: &SourceRecord,
        source_topic: &str,
        step: Step,
        rejected_by: &str,
        code: &str,
        message: &str,
    ) -> Output {
        let (raw, raw_encoding) = match std::str::from_utf8(&source.payload) {
            Ok(text) => (Cow::Borrowed(text), RawEncoding::Utf8),
            Err(_) => (
                Cow::Owned(source.payload.escape_ascii().to_string()),
                RawEncoding::Escaped,
            ),
        };
        let mut record = DlqRecord {
            code: code.into(),
            message: message.into(),
            stage: step,
            rejected_by: rejected_by.into(),
            source_topic: source_topic.into(),
            source_partition: source.partition,
            source_offset: source.offset,
            source_time: timefmt::datetime_ms(source.timestamp_ms),
            dlq_time: timefmt::now(),
            raw,
            raw_encoding,
        };
        let key = format_compact!("{source_topic}/{}/{}", source.partition, source.offset);
        let mut payload = record.to_json();
        if payload.len() > MAX_OUTPUT_BYTES {
            // Rare (an input near the broker's limit grows when escaped): keep the start
            // of the bytes, say so, and point at the original, which the input topic
            // still has.
            let full = record.raw.len();
            record.message = Cow::Owned(format!(
                "{message} [raw truncated: it holds the start of the {}-byte original ({} form), which is at {key}]",
                source.payload.len(),
                match record.raw_encoding {
                    RawEncoding::Utf8 => "utf8",
                    _ => "escaped",
                }
            ));
            record.raw_encoding = RawEncoding::Truncated;
            // Escaping grows the bytes by about payload / raw: cut in proportion.
            let mut keep = full * (MAX_OUTPUT_BYTES - 2_048) / payload.len();
            loop {
                while !record.raw.is_char_boundary(keep) {
                    keep -= 1;
                }
                record.raw.to_mut().truncate(keep);
                payload = record.to_json();
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
            RawEncoding::Truncated => Err(RawError::Truncated),
            RawEncoding::Unknown => Err(RawError::UnknownEncoding),
        }
    }
}

/// Why a DLQ record's original payload cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RawError {
    #[error("raw_encoding is none of \"utf8\", \"escaped\" and \"truncated\"")]
    UnknownEncoding,
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
            RawEncoding::Truncated,
            RawEncoding::Unknown,
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
    fn a_dlq_record_over_the_output_limit_keeps_the_start_of_raw_and_says_so() {
        // Near the broker's limit, and quotes double when escaped into JSON.
        let payload = "\"x".repeat(400_000).into_bytes();
        let out = DlqRecord::rejecting(
            &source(&payload),
            "my_events",
            Step::Decode,
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
        let small =
            DlqRecord::rejecting(&source(b"{}"), "my_events", Step::Decode, "host", "c", "m");
        let v: Value = serde_json::from_slice(&small.payload).unwrap();
        assert_eq!(
            (v["raw"].as_str(), v["raw_encoding"].as_str()),
            (Some("{}"), Some("utf8"))
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
        e.raw_encoding = serde_json::from_str("\"base64\"").unwrap();
        assert_eq!(e.original_bytes(), Err(RawError::UnknownEncoding));
        e.raw_encoding = RawEncoding::Escaped;
        e.raw = "\\".into();
        assert!(matches!(e.original_bytes(), Err(RawError::Escape(_))));
    }
}
