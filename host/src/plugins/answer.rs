//! Answers: a plugin lists only what differs from "accept every event unchanged".
//! Applying one checks it first; an answer is untrusted input like any other.
//! [`apply_named`] applies 1.0 answers (updates by field name), [`apply_brief`] 0.3 ones.

use super::bindings::{wit_0_3, wit_1};
use super::columns::entry;
use super::contract::{BriefFields, Kind};
use crate::decode::{MAX_FIELD_BYTES, MAX_TIMESTAMP};
use crate::event::{Event, Value};
use crate::schema::{FieldType, Schema, HOST_FIELDS};

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

/// A rejection of either generation: (event, code, message).
trait Rejected {
    fn parts(self) -> (u32, String, String);
}

impl Rejected for wit_1::exports::streamhost::plugin::rules::Rejection {
    fn parts(self) -> (u32, String, String) {
        (self.event, self.code, self.message)
    }
}

impl Rejected for wit_0_3::exports::streamhost::plugin::rules::Rejection {
    fn parts(self) -> (u32, String, String) {
        (self.event, self.code, self.message)
    }
}

/// The events one plugin rejected, by position in its batch, in ascending order.
pub type Rejections = Vec<(usize, Rejection)>;

/// The rejections of an answer, checked: in range, at most one per event.
fn rejections<R: Rejected>(size: usize, list: Vec<R>) -> Result<Rejections, AnswerError> {
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

fn slot(size: usize, what: &'static str, index: u32) -> Result<usize, AnswerError> {
    usize::try_from(index)
        .ok()
        .filter(|i| *i < size)
        .ok_or(AnswerError::OutOfRange { what, index, size })
}

/// The entries of a text column that must have one per listed event, each checked as
/// it is read.
fn texts<'a>(
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

fn same_length(what: &str, events: usize, values: usize) -> Result<(), AnswerError> {
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

/// Apply a 1.0 `answer` to the batch it answers: its changes to the events, in place,
/// and its rejections returned. On an error the events may be changed in part; the
/// caller drops them.
pub fn apply_named(
    events: &mut [Event],
    answer: wit_1::Answer,
    kind: Kind,
    schema: &Schema,
) -> Result<Rejections, AnswerError> {
    if kind == Kind::Validator && !answer.updates.is_empty() {
        return Err(AnswerError::ValidatorChanged("updates"));
    }
    let rejected = rejections(events.len(), answer.rejections)?;
    // Checked whole before anything changes: a refused answer leaves the events as
    // they were, so that the chain can judge them again (in smaller batches).
    named_updates(events, &answer.updates, schema, false)?;
    named_updates(events, &answer.updates, schema, true)?;
    Ok(rejected)
}

/// Check the updates against the batch and the schema; with `write`, also make them.
fn named_updates(
    events: &mut [Event],
    updates: &[wit_1::exports::streamhost::plugin::rules::Update],
    schema: &Schema,
    write: bool,
) -> Result<(), AnswerError> {
    let size = events.len();
    for update in updates {
        let field = update.field.as_str();
        checked_name(field)?;
        if HOST_FIELDS.contains(&field) {
            return Err(AnswerError::HostField(field.to_string()));
        }
        let what = format!("the update of `{field}`");
        let target = schema.index(field);
        let given = match &update.values {
            wit_1::Values::Text(_) => (FieldType::String, "text"),
            wit_1::Values::Integer(_) => (FieldType::Integer, "integer"),
            wit_1::Values::Float(_) => (FieldType::Float, "float"),
            wit_1::Values::Boolean(_) => (FieldType::Boolean, "boolean"),
        };
        if let Some(index) = target {
            let ty = schema.field(index).ty;
            if ty.carried_as() != given.0 {
                return Err(AnswerError::WrongType {
                    field: field.to_string(),
                    given: given.1,
                    expected: ty,
                });
            }
            if let (FieldType::Timestamp, wit_1::Values::Integer(v)) = (ty, &update.values) {
                if let Some(bad) = v.iter().find(|t| !(0..=MAX_TIMESTAMP).contains(*t)) {
                    return Err(AnswerError::TimeOutOfRange {
                        field: field.to_string(),
                        value: *bad,
                    });
                }
            }
        }
        let n = update.events.len();
        match &update.values {
            wit_1::Values::Text(c) => {
                for (&i, text) in update.events.iter().zip(texts(&c.text, &c.ends, n, &what)?) {
                    let text = text?;
                    if target.is_some() && text.len() > MAX_FIELD_BYTES {
                        return Err(AnswerError::FieldTooLong {
                            field: field.to_string(),
                            size: text.len(),
                        });
                    }
                    let event = &mut events[slot(size, "an update", i)?];
                    match target {
                        _ if !write => {}
                        // Reuses the field's buffer: no allocation for a value that fits.
                        Some(index) => event.set_text(index, text),
                        None => event.set_extra(field, Value::Text(text.into())),
                    }
                }
            }
            wit_1::Values::Integer(v) => set_all(events, update, target, field, v, write, |x| {
                Value::Integer(*x)
            })?,
            wit_1::Values::Float(v) => set_all(events, update, target, field, v, write, |x| {
                Value::Float(*x)
            })?,
            wit_1::Values::Boolean(v) => set_all(events, update, target, field, v, write, |x| {
                Value::Boolean(*x)
            })?,
        }
    }
    Ok(())
}

/// Set `field` (schema slot `target`, or outside the schema) on the listed events.
fn set_all<T>(
    events: &mut [Event],
    update: &wit_1::exports::streamhost::plugin::rules::Update,
    target: Option<usize>,
    field: &str,
    values: &[T],
    write: bool,
    value: impl Fn(&T) -> Value,
) -> Result<(), AnswerError> {
    same_length(
        &format!("the update of `{field}`"),
        update.events.len(),
        values.len(),
    )?;
    let size = events.len();
    for (&i, v) in update.events.iter().zip(values) {
        let event = &mut events[slot(size, "an update", i)?];
        match target {
            _ if !write => {}
            Some(index) => event.set(index, value(v)),
            None => event.set_extra(field, value(v)),
        }
    }
    Ok(())
}

/// Apply a 0.3 `answer` to the batch it answers, as [`apply_named`] does.
pub fn apply_brief(
    events: &mut [Event],
    mut answer: wit_0_3::Answer,
    kind: Kind,
    at: &BriefFields,
    schema: &Schema,
) -> Result<Rejections, AnswerError> {
    if kind == Kind::Validator {
        let changed = [
            (!answer.text_updates.is_empty(), "text-updates"),
            (!answer.number_updates.is_empty(), "number-updates"),
            (!answer.attribute_updates.is_empty(), "attribute-updates"),
        ];
        if let Some((_, what)) = changed.iter().find(|(changed, _)| *changed) {
            return Err(AnswerError::ValidatorChanged(what));
        }
    }
    let rejected = rejections(events.len(), std::mem::take(&mut answer.rejections))?;
    // As in `apply_named`: checked whole, then made.
    brief_updates(events, &answer, at, schema, false)?;
    brief_updates(events, &answer, at, schema, true)?;
    Ok(rejected)
}

/// Check a 0.3 answer's updates; with `write`, also make them.
fn brief_updates(
    events: &mut [Event],
    answer: &wit_0_3::Answer,
    at: &BriefFields,
    schema: &Schema,
    write: bool,
) -> Result<(), AnswerError> {
    use wit_0_3::{NumberField, TextField};
    let size = events.len();
    for update in &answer.text_updates {
        let (index, name) = match update.field {
            TextField::EventType => (at.event_type, "event_type"),
            TextField::PageUrl => (at.page_url, "page_url"),
            TextField::ButtonId => (at.button_id, "button_id"),
            TextField::Country => (at.country, "country"),
            TextField::DeviceType => (at.device_type, "device_type"),
        };
        let what = format!("the update of {name}");
        let values = texts(
            &update.values.text,
            &update.values.ends,
            update.events.len(),
            &what,
        )?;
        for (&i, value) in update.events.iter().zip(values) {
            let value = value?;
            if value.len() > MAX_FIELD_BYTES {
                return Err(AnswerError::FieldTooLong {
                    field: name.to_string(),
                    size: value.len(),
                });
            }
            let event = &mut events[slot(size, "a text update", i)?];
            if write {
                event.set_text(index, value);
            }
        }
    }
    for update in &answer.number_updates {
        let (index, name) = match update.field {
            NumberField::UserId => (at.user_id, "user_id"),
            NumberField::Timestamp => (at.timestamp, "timestamp"),
        };
        same_length(
            &format!("the update of {name}"),
            update.events.len(),
            update.values.len(),
        )?;
        for (&i, &value) in update.events.iter().zip(&update.values) {
            let value = Value::Integer(value);
            checked_value(name, schema.field(index).ty, &value)?;
            let event = &mut events[slot(size, "a number update", i)?];
            if write {
                event.set(index, value);
            }
        }
    }
    for update in &answer.attribute_updates {
        checked_name(&update.name)?;
        let what = format!("attribute `{}`", update.name);
        let values = texts(
            &update.values.text,
            &update.values.ends,
            update.events.len(),
            &what,
        )?;
        // 0.3 never let an attribute replace a field of the event or of the host.
        let outside = schema.is_outside(&update.name);
        for (&i, value) in update.events.iter().zip(values) {
            let event = &mut events[slot(size, "an attribute update", i)?];
            let value = value?;
            if outside && write {
                event.set_extra(&update.name, Value::Text(value.into()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wit_1::exports::streamhost::plugin::rules::{Rejection as WitRejection, Update};
    use wit_1::{TextColumn, Values};

    fn event(country: &str) -> Event {
        Event {
            fields: vec![
                Some(Value::Text("page_view".into())),
                Some(Value::Integer(1)),
                Some(Value::Text("/page/1".into())),
                Some(Value::Text("b".into())),
                Some(Value::Integer(1_700_000_000)),
                Some(Value::Text(country.into())),
                None,
            ],
            extra: Vec::new(),
        }
    }

    fn column(values: &[&str]) -> Values {
        let mut text = String::new();
        let mut ends = Vec::new();
        for v in values {
            text.push_str(v);
            ends.push(text.len() as u32);
        }
        Values::Text(TextColumn { text, ends })
    }

    fn answer(rejections: Vec<WitRejection>, updates: Vec<Update>) -> wit_1::Answer {
        wit_1::Answer {
            rejections,
            updates,
        }
    }

    fn update(field: &str, events: Vec<u32>, values: Values) -> Update {
        Update {
            field: field.into(),
            events,
            values,
        }
    }

    /// The batch after the answer, and the answer's rejections.
    fn apply(a: wit_1::Answer, kind: Kind) -> Result<(Vec<Event>, Rejections), AnswerError> {
        let mut events = vec![event("us"), event("DE")];
        let rejections = apply_named(&mut events, a, kind, &Schema::brief())?;
        Ok((events, rejections))
    }

    #[test]
    fn an_empty_answer_accepts_everything_unchanged() {
        let out = apply(answer(vec![], vec![]), Kind::Validator).unwrap();
        assert_eq!(out, (vec![event("us"), event("DE")], vec![]));
    }

    #[test]
    fn rejections_come_back_in_batch_order() {
        let reject = |event| WitRejection {
            event,
            code: format!("c{event}"),
            message: "m".into(),
        };
        let (_, rejections) =
            apply(answer(vec![reject(1), reject(0)], vec![]), Kind::Validator).unwrap();
        let got: Vec<_> = rejections
            .iter()
            .map(|(i, r)| (*i, r.code.as_str()))
            .collect();
        assert_eq!(got, [(0, "c0"), (1, "c1")]);
    }

    #[test]
    fn updates_apply_by_name_in_order_and_rejections_win() {
        let a = answer(
            vec![WitRejection {
                event: 1,
                code: "c".into(),
                message: "m".into(),
            }],
            vec![
                update("country", vec![0, 1], column(&["XX", "YY"])),
                update("country", vec![0], column(&["US"])),
                update("user_id", vec![0], Values::Integer(vec![9])),
                update("page_id", vec![0], Values::Integer(vec![1])),
                update("device_type", vec![0], column(&["mobile"])),
            ],
        );
        let (events, rejections) = apply(a, Kind::Enricher).unwrap();
        let e = &events[0];
        assert_eq!(e.get(5), Some(&Value::Text("US".into())));
        assert_eq!(e.get(1), Some(&Value::Integer(9)));
        assert_eq!(e.get(6), Some(&Value::Text("mobile".into())));
        assert_eq!(
            e.extra("page_id").and_then(|x| x.text()).as_deref(),
            Some("1")
        );
        let rejected = super::Rejection::by_plugin("c".into(), "m".into());
        assert_eq!(rejections, [(1, rejected)]);
    }

    #[test]
    fn bad_answers_are_refused_with_a_reason() {
        let cases = [
            (
                answer(vec![], vec![update("country", vec![0], column(&["a"]))]),
                Kind::Validator,
                "declares itself a validator but changed events (updates); declare kind `enricher`",
            ),
            (
                answer(vec![], vec![update("country", vec![5], column(&["a"]))]),
                Kind::Enricher,
                "an update names event 5, but the batch has 2 events",
            ),
            (
                answer(vec![], vec![update("user_id", vec![0], column(&["a"]))]),
                Kind::Enricher,
                "the update of `user_id` has text values, but the schema types it integer",
            ),
            (
                answer(
                    vec![],
                    vec![update("timestamp", vec![0], Values::Integer(vec![-1]))],
                ),
                Kind::Enricher,
                "the update of `timestamp` sets -1, outside 0..=4294967295 epoch seconds",
            ),
            (
                answer(vec![], vec![update("country", vec![0, 1], column(&["a"]))]),
                Kind::Enricher,
                "the update of `country` lists 2 events but 1 values",
            ),
            (
                answer(
                    vec![],
                    vec![update("processed_by", vec![0], column(&["a"]))],
                ),
                Kind::Enricher,
                "the update of `processed_by` names a field the host writes itself",
            ),
            (
                answer(
                    vec![
                        WitRejection {
                            event: 0,
                            code: "c".into(),
                            message: "m".into(),
                        },
                        WitRejection {
                            event: 0,
                            code: "c".into(),
                            message: "m".into(),
                        },
                    ],
                    vec![],
                ),
                Kind::Validator,
                "rejected event 0 twice",
            ),
        ];
        for (a, kind, expected) in cases {
            assert_eq!(apply(a, kind).unwrap_err().to_string(), expected);
        }
    }
}
