//! 1.x answers: rejections, and updates by field name, checked whole against the
//! batch and the schema and then applied.

use super::wit;
use crate::decode::{MAX_FIELD_BYTES, MAX_TIMESTAMP};
use crate::event::{Event, Value};
use crate::plugins::answer::{
    checked_name, rejections, same_length, slot, texts, AnswerError, Rejected, Rejections,
};
use crate::plugins::contract::Kind;
use crate::schema::{FieldType, Schema, HOST_FIELDS};

impl Rejected for wit::Rejection {
    fn parts(self) -> (u32, String, String) {
        (self.event, self.code, self.message)
    }
}

/// Apply a 1.0 `answer` to the batch it answers: its changes to the events, in place,
/// and its rejections returned. On an error the events may be changed in part; the
/// caller drops them.
pub(super) fn apply(
    events: &mut [Event],
    answer: wit::Answer,
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
    updates: &[wit::Update],
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
            wit::Values::Text(_) => (FieldType::String, "text"),
            wit::Values::Integer(_) => (FieldType::Integer, "integer"),
            wit::Values::Float(_) => (FieldType::Float, "float"),
            wit::Values::Boolean(_) => (FieldType::Boolean, "boolean"),
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
            if let (FieldType::Timestamp, wit::Values::Integer(v)) = (ty, &update.values) {
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
            wit::Values::Text(c) => {
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
            wit::Values::Integer(v) => set_all(events, update, target, field, v, write, |x| {
                Value::Integer(*x)
            })?,
            wit::Values::Float(v) => set_all(events, update, target, field, v, write, |x| {
                Value::Float(*x)
            })?,
            wit::Values::Boolean(v) => set_all(events, update, target, field, v, write, |x| {
                Value::Boolean(*x)
            })?,
        }
    }
    Ok(())
}

/// Set `field` (schema slot `target`, or outside the schema) on the listed events.
fn set_all<T>(
    events: &mut [Event],
    update: &wit::Update,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::answer::Rejection;
    use wit::{Rejection as WitRejection, TextColumn, Update, Values};

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

    fn answer(rejections: Vec<WitRejection>, updates: Vec<Update>) -> wit::Answer {
        wit::Answer {
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
    fn apply(a: wit::Answer, kind: Kind) -> Result<(Vec<Event>, Rejections), AnswerError> {
        let mut events = vec![event("us"), event("DE")];
        let rejections = super::apply(&mut events, a, kind, &Schema::brief())?;
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
        let rejected = Rejection::by_plugin("c".into(), "m".into());
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
