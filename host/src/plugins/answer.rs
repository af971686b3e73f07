//! Answers: a plugin lists only what differs from "accept every event unchanged".
//! Applying one checks it first; an answer is untrusted input like any other.
//! [`apply_named`] applies 1.0 answers (updates by field name), [`apply_brief`] 0.3 ones.

use super::bindings::{wit_0_3, wit_1};
use super::columns::entry;
use super::contract::{BriefFields, Kind};
use crate::decode::MAX_TIMESTAMP;
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

impl Verdict {
    /// A rejection whose author the plugin runtime fills in.
    pub fn rejected(code: String, message: String) -> Self {
        Verdict::Rejected(Rejection {
            code,
            message,
            rejected_by: String::new(),
        })
    }
}

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

/// The rejections of an answer, checked: in range, at most one per event.
fn rejections<R: Rejected>(
    size: usize,
    list: Vec<R>,
) -> Result<Vec<Option<(String, String)>>, AnswerError> {
    let mut rejected: Vec<Option<(String, String)>> = vec![None; size];
    for (event, code, message) in list.into_iter().map(Rejected::parts) {
        let i = slot(size, "a rejection", event)?;
        if rejected[i].is_some() {
            return Err(AnswerError::RejectedTwice(event));
        }
        rejected[i] = Some((code, message));
    }
    Ok(rejected)
}

fn slot(size: usize, what: &'static str, index: u32) -> Result<usize, AnswerError> {
    usize::try_from(index)
        .ok()
        .filter(|i| *i < size)
        .ok_or(AnswerError::OutOfRange { what, index, size })
}

fn verdicts(events: Vec<Event>, rejected: Vec<Option<(String, String)>>) -> Vec<Verdict> {
    events
        .into_iter()
        .zip(rejected)
        .map(|(event, rejection)| match rejection {
            None => Verdict::Accepted(event),
            Some((code, message)) => Verdict::rejected(code, message),
        })
        .collect()
}

/// The entries of a text column that must have one per listed event.
fn texts<'a>(
    text: &'a str,
    ends: &'a [u32],
    events: usize,
    what: &str,
) -> Result<Vec<&'a str>, AnswerError> {
    if ends.len() != events {
        return Err(AnswerError::Mismatch {
            what: what.to_string(),
            events,
            values: ends.len(),
        });
    }
    (0..events)
        .map(|k| {
            entry(text, ends, k).ok_or_else(|| AnswerError::BadOffsets {
                what: what.to_string(),
                index: k,
            })
        })
        .collect()
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

/// Apply a 1.0 `answer` to the batch it answers. One verdict per event, in order.
pub fn apply_named(
    mut events: Vec<Event>,
    answer: wit_1::Answer,
    kind: Kind,
    schema: &Schema,
) -> Result<Vec<Verdict>, AnswerError> {
    if kind == Kind::Validator && !answer.updates.is_empty() {
        return Err(AnswerError::ValidatorChanged("updates"));
    }
    let size = events.len();
    let rejected = rejections(size, answer.rejections)?;
    for update in &answer.updates {
        let field = update.field.as_str();
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
                let texts = texts(&c.text, &c.ends, n, &what)?;
                for (&i, text) in update.events.iter().zip(texts) {
                    let event = &mut events[slot(size, "an update", i)?];
                    match target {
                        // Reuses the field's buffer: no allocation for a value that fits.
                        Some(index) => event.set_text(index, text),
                        None => event.set_extra(field, Value::Text(text.into())),
                    }
                }
            }
            wit_1::Values::Integer(v) => set_all(&mut events, update, target, field, v, |x| {
                Value::Integer(*x)
            })?,
            wit_1::Values::Float(v) => {
                set_all(&mut events, update, target, field, v, |x| Value::Float(*x))?
            }
            wit_1::Values::Boolean(v) => set_all(&mut events, update, target, field, v, |x| {
                Value::Boolean(*x)
            })?,
        }
    }
    Ok(verdicts(events, rejected))
}

/// Set `field` (schema slot `target`, or outside the schema) on the listed events.
fn set_all<T>(
    events: &mut [Event],
    update: &wit_1::exports::streamhost::plugin::rules::Update,
    target: Option<usize>,
    field: &str,
    values: &[T],
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
            Some(index) => event.set(index, value(v)),
            None => event.set_extra(field, value(v)),
        }
    }
    Ok(())
}

/// Apply a 0.3 `answer` to the batch it answers. One verdict per event, in order.
pub fn apply_brief(
    mut events: Vec<Event>,
    answer: wit_0_3::Answer,
    kind: Kind,
    at: &BriefFields,
    schema: &Schema,
) -> Result<Vec<Verdict>, AnswerError> {
    use wit_0_3::{NumberField, TextField};
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
    let size = events.len();
    let rejected = rejections(size, answer.rejections)?;
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
            events[slot(size, "a text update", i)?].set_text(index, value);
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
            events[slot(size, "a number update", i)?].set(index, Value::Integer(value));
        }
    }
    for update in &answer.attribute_updates {
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
            if outside {
                event.set_extra(&update.name, Value::Text(value.into()));
            }
        }
    }
    Ok(verdicts(events, rejected))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wit_1::exports::streamhost::plugin::rules::{Rejection, Update};
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

    fn answer(rejections: Vec<Rejection>, updates: Vec<Update>) -> wit_1::Answer {
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

    fn apply(a: wit_1::Answer, kind: Kind) -> Result<Vec<Verdict>, AnswerError> {
        apply_named(vec![event("us"), event("DE")], a, kind, &Schema::brief())
    }

    #[test]
    fn an_empty_answer_accepts_everything_unchanged() {
        let out = apply(answer(vec![], vec![]), Kind::Validator).unwrap();
        assert_eq!(
            out,
            [
                Verdict::Accepted(event("us")),
                Verdict::Accepted(event("DE"))
            ]
        );
    }

    #[test]
    fn updates_apply_by_name_in_order_and_rejections_win() {
        let a = answer(
            vec![Rejection {
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
        let out = apply(a, Kind::Enricher).unwrap();
        let Verdict::Accepted(e) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(e.get(5), Some(&Value::Text("US".into())));
        assert_eq!(e.get(1), Some(&Value::Integer(9)));
        assert_eq!(e.get(6), Some(&Value::Text("mobile".into())));
        assert_eq!(
            e.extra("page_id").and_then(|x| x.text()).as_deref(),
            Some("1")
        );
        assert_eq!(out[1], Verdict::rejected("c".into(), "m".into()));
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
                        Rejection {
                            event: 0,
                            code: "c".into(),
                            message: "m".into(),
                        },
                        Rejection {
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
