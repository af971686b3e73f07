//! Answers: a plugin lists only what differs from "accept every event unchanged".
//! Applying one checks it first; an answer is untrusted input like any other.
//! What every generation shares is here: verdicts and rejections in host terms, the
//! limits on what an answer holds and the checks of its parts. Each generation applies
//! its own answers with them (`apply` in its module under `generations/`).

use super::columns::entry;
use crate::decode::{MAX_FIELD_BYTES, MAX_TIMESTAMP};
use crate::event::{Event, Value};
use crate::schema::FieldType;

/// The decision on one event: by one plugin, whatever contract it speaks, and by the
/// whole chain.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Passed on, with the changes made to it.
    Accepted(Event),
    Rejected(Rejection),
}

/// Why an event was turned away, and by whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: String,
    pub message: String,
    /// `name@version` of the plugin that rejected (or failed on) the event, filled in
    /// by the plugin runtime; `host` for what the host turns away.
    pub rejected_by: String,
}

impl Rejection {
    /// A plugin's rejection, whose author the plugin runtime fills in.
    pub fn by_plugin(code: String, message: String) -> Self {
        Rejection {
            code,
            message,
            rejected_by: String::new(),
        }
    }
}

/// Longest rejection code. A code is a stable snake_case identifier (`[a-z][a-z0-9_]*`):
/// it is a metric label and a `GROUP BY` key downstream.
pub const MAX_CODE_BYTES: usize = 64;
/// Longest rejection message: a sentence for people reading the DLQ, not a payload.
pub const MAX_MESSAGE_BYTES: usize = 1024;
/// Longest field name an update may set, and a plugin's name or version.
pub const MAX_NAME_BYTES: usize = 128;

/// Whether `code` is a rejection code: `[a-z][a-z0-9_]*`, at most [`MAX_CODE_BYTES`].
pub fn is_code(code: &str) -> bool {
    let mut bytes = code.bytes();
    code.len() <= MAX_CODE_BYTES
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

use crate::text::shown;

/// Why an answer cannot be applied: the whole batch counts as failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("{what} names event {index}, but the batch has {size} events")]
    OutOfRange {
        what: &'static str,
        index: u32,
        size: usize,
    },
    #[error("rejected event {0} twice")]
    RejectedTwice(u32),
    #[error("{what} lists {events} events but {values} values")]
    Mismatch {
        what: String,
        events: usize,
        values: usize,
    },
    #[error("{what}: value {index} is not a slice of the text (offsets must ascend and fall on character boundaries)")]
    BadOffsets { what: String, index: usize },
    #[error("declares itself a validator but changed events ({0}); declare kind `enricher`")]
    ValidatorChanged(&'static str),
    #[error("the update of `{field}` has {given} values, but the schema types it {expected}")]
    WrongType {
        field: String,
        given: &'static str,
        expected: FieldType,
    },
    #[error("the update of `{field}` sets {value}, outside 0..={MAX_TIMESTAMP} epoch seconds")]
    TimeOutOfRange { field: String, value: i64 },
    #[error("the update of `{0}` names a field the host writes itself")]
    HostField(String),
    #[error("rejection code \"{0}\" is not a snake_case identifier ([a-z][a-z0-9_]*) of at most {MAX_CODE_BYTES} bytes")]
    BadCode(String),
    #[error("a rejection message is {0} bytes, over the limit of {MAX_MESSAGE_BYTES} bytes")]
    MessageTooLong(usize),
    #[error("an update names a field of {0} bytes; a field name has 1 to {MAX_NAME_BYTES} bytes")]
    BadFieldName(usize),
    #[error("the update of `{field}` sets a value of {size} bytes, over the schema's limit of {MAX_FIELD_BYTES} bytes")]
    FieldTooLong { field: String, size: usize },
}

/// A plugin's rejection, checked against the limits on codes and messages.
pub(crate) fn checked_rejection(code: String, message: String) -> Result<Rejection, AnswerError> {
    check_rejection(&code, &message)?;
    Ok(Rejection::by_plugin(code, message))
}

pub(crate) fn check_rejection(code: &str, message: &str) -> Result<(), AnswerError> {
    if !is_code(code) {
        return Err(AnswerError::BadCode(shown(code, MAX_CODE_BYTES)));
    }
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(AnswerError::MessageTooLong(message.len()));
    }
    Ok(())
}

/// A field name an update may set (schema field or a new one).
pub(crate) fn checked_name(name: &str) -> Result<(), AnswerError> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(AnswerError::BadFieldName(name.len()));
    }
    Ok(())
}

/// A new value of schema field `field` of type `ty`, re-checked as the decoder checks
/// input: a plugin cannot put into an event what the decoder would have refused.
pub(crate) fn checked_value(field: &str, ty: FieldType, value: &Value) -> Result<(), AnswerError> {
    match (ty, value) {
        (FieldType::Timestamp, Value::Integer(t)) if !(0..=MAX_TIMESTAMP).contains(t) => {
            Err(AnswerError::TimeOutOfRange {
                field: field.to_string(),
                value: *t,
            })
        }
        (FieldType::String, Value::Text(t)) if t.len() > MAX_FIELD_BYTES => {
            Err(AnswerError::FieldTooLong {
                field: field.to_string(),
                size: t.len(),
            })
        }
        _ => Ok(()),
    }
}

/// A rejection of any generation's answer: (event, code, message).
pub(crate) trait Rejected {
    fn parts(self) -> (u32, String, String);
}

/// The events one plugin rejected, by position in its batch, in ascending order.
pub type Rejections = Vec<(usize, Rejection)>;

/// The rejections of an answer, checked: in range, at most one per event.
pub(crate) fn rejections<R: Rejected>(
    size: usize,
    list: Vec<R>,
) -> Result<Rejections, AnswerError> {
    let mut rejections = list
        .into_iter()
        .map(|r| {
            let (event, code, message) = r.parts();
            let i = slot(size, "a rejection", event)?;
            Ok((i, checked_rejection(code, message)?))
        })
        .collect::<Result<Rejections, AnswerError>>()?;
    // Unstable is enough: two rejections of one event are refused below.
    rejections.sort_unstable_by_key(|(i, _)| *i);
    if let Some(pair) = rejections.windows(2).find(|w| w[0].0 == w[1].0) {
        // Positions are u32 indices of the answer, so this converts back.
        return Err(AnswerError::RejectedTwice(pair[0].0 as u32));
    }
    Ok(rejections)
}

pub(crate) fn slot(size: usize, what: &'static str, index: u32) -> Result<usize, AnswerError> {
    usize::try_from(index)
        .ok()
        .filter(|i| *i < size)
        .ok_or(AnswerError::OutOfRange { what, index, size })
}

/// The entries of a text column that must have one per listed event, each checked as
/// it is read.
pub(crate) fn texts<'a>(
    text: &'a str,
    ends: &'a [u32],
    events: usize,
    what: &'a str,
) -> Result<impl Iterator<Item = Result<&'a str, AnswerError>> + 'a, AnswerError> {
    same_length(what, events, ends.len())?;
    Ok((0..events).map(move |k| {
        entry(text, ends, k).ok_or_else(|| AnswerError::BadOffsets {
            what: what.to_string(),
            index: k,
        })
    }))
}

pub(crate) fn same_length(what: &str, events: usize, values: usize) -> Result<(), AnswerError> {
    if events == values {
        Ok(())
    } else {
        Err(AnswerError::Mismatch {
            what: what.to_string(),
            events,
            values,
        })
    }
}
