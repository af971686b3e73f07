//! 0.3 answers: a plugin lists only what differs from "accept every event unchanged".
//! Applying one checks it first; an answer is untrusted input like any other.

use super::bindings::v3::{Answer, Kind, NumberField, TextColumn, TextField};
use super::columns::entry;
use crate::decode::Event;

/// A plugin's judgement on one event, whatever WIT version it speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judged {
    /// Passed on, with the plugin's changes.
    Accepted(Event),
    Rejected {
        code: String,
        message: String,
    },
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
}

/// Apply `answer` to the batch it answers. One judgement per event, in order.
pub fn apply(events: Vec<Event>, answer: Answer, kind: Kind) -> Result<Vec<Judged>, AnswerError> {
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
    let mut events = events;
    let size = events.len();
    let slot = |what: &'static str, index: u32| -> Result<usize, AnswerError> {
        usize::try_from(index)
            .ok()
            .filter(|i| *i < size)
            .ok_or(AnswerError::OutOfRange { what, index, size })
    };

    let mut rejected: Vec<Option<(String, String)>> = vec![None; size];
    for r in answer.rejections {
        let i = slot("a rejection", r.event)?;
        if rejected[i].is_some() {
            return Err(AnswerError::RejectedTwice(r.event));
        }
        rejected[i] = Some((r.code, r.message));
    }

    for update in &answer.text_updates {
        let what = format!("the update of {}", text_field_name(update.field));
        let values = values(&update.values, update.events.len(), &what)?;
        for (&index, value) in update.events.iter().zip(values) {
            let i = slot("a text update", index)?;
            let value = value.map_err(|k| AnswerError::BadOffsets {
                what: what.clone(),
                index: k,
            })?;
            let event = &mut events[i];
            let target = match update.field {
                TextField::EventType => &mut event.event_type,
                TextField::PageUrl => &mut event.page_url,
                TextField::ButtonId => &mut event.button_id,
                TextField::Country => &mut event.country,
                TextField::DeviceType => event.device_type.get_or_insert_with(String::new),
            };
            // Reuses the field's buffer: no allocation for a value that fits.
            target.clear();
            target.push_str(value);
        }
    }

    for update in &answer.number_updates {
        if update.events.len() != update.values.len() {
            return Err(AnswerError::Mismatch {
                what: format!("the update of {}", number_field_name(update.field)),
                events: update.events.len(),
                values: update.values.len(),
            });
        }
        for (&index, &value) in update.events.iter().zip(&update.values) {
            let event = &mut events[slot("a number update", index)?];
            match update.field {
                NumberField::UserId => event.user_id = value,
                NumberField::Timestamp => event.timestamp = value,
            }
        }
    }

    for update in &answer.attribute_updates {
        let what = format!("attribute `{}`", update.name);
        let values = values(&update.values, update.events.len(), &what)?;
        for (&index, value) in update.events.iter().zip(values) {
            let i = slot("an attribute update", index)?;
            let value = value.map_err(|k| AnswerError::BadOffsets {
                what: what.clone(),
                index: k,
            })?;
            events[i]
                .attributes
                .push((update.name.clone(), value.to_string()));
        }
    }

    Ok(events
        .into_iter()
        .zip(rejected)
        .map(|(event, rejection)| match rejection {
            None => Judged::Accepted(event),
            Some((code, message)) => Judged::Rejected { code, message },
        })
        .collect())
}

/// The entries of a column that must have one per listed event; `Err(k)` for entry k
/// if its offsets are bad.
fn values<'a>(
    column: &'a TextColumn,
    events: usize,
    what: &str,
) -> Result<impl Iterator<Item = Result<&'a str, usize>> + 'a, AnswerError> {
    if column.ends.len() != events {
        return Err(AnswerError::Mismatch {
            what: what.to_string(),
            events,
            values: column.ends.len(),
        });
    }
    Ok((0..events).map(move |k| entry(column, k).ok_or(k)))
}

fn text_field_name(field: TextField) -> &'static str {
    match field {
        TextField::EventType => "event_type",
        TextField::PageUrl => "page_url",
        TextField::ButtonId => "button_id",
        TextField::Country => "country",
        TextField::DeviceType => "device_type",
    }
}

fn number_field_name(field: NumberField) -> &'static str {
    match field {
        NumberField::UserId => "user_id",
        NumberField::Timestamp => "timestamp",
    }
}

#[cfg(test)]
mod tests {
    use super::super::bindings::v3::exports::streamhost::plugin::rules::{
        AttributeUpdate, NumberUpdate, Rejection, TextUpdate,
    };
    use super::*;

    fn event(country: &str) -> Event {
        Event {
            event_type: "page_view".into(),
            user_id: 1,
            page_url: "/page/1".into(),
            button_id: "b".into(),
            timestamp: 1_700_000_000,
            country: country.into(),
            device_type: None,
            attributes: Vec::new(),
        }
    }

    fn column(values: &[&str]) -> TextColumn {
        let mut text = String::new();
        let mut ends = Vec::new();
        for v in values {
            text.push_str(v);
            ends.push(text.len() as u32);
        }
        TextColumn { text, ends }
    }

    fn empty() -> Answer {
        Answer {
            rejections: Vec::new(),
            text_updates: Vec::new(),
            number_updates: Vec::new(),
            attribute_updates: Vec::new(),
        }
    }

    #[test]
    fn an_empty_answer_accepts_everything_unchanged() {
        let events = vec![event("US"), event("XX")];
        let judged = apply(events.clone(), empty(), Kind::Validator).unwrap();
        assert_eq!(
            judged,
            events.into_iter().map(Judged::Accepted).collect::<Vec<_>>()
        );
    }

    #[test]
    fn updates_apply_in_order_and_rejections_win() {
        let mut answer = empty();
        answer.rejections.push(Rejection {
            event: 1,
            code: "invalid_country".into(),
            message: "no".into(),
        });
        answer.text_updates.push(TextUpdate {
            field: TextField::Country,
            events: vec![0, 1],
            values: column(&["US", "XX"]),
        });
        answer.text_updates.push(TextUpdate {
            field: TextField::DeviceType,
            events: vec![0],
            values: column(&["tv"]),
        });
        answer.number_updates.push(NumberUpdate {
            field: NumberField::UserId,
            events: vec![0],
            values: vec![42],
        });
        for (name, values) in [("page_id", ["1", "2"]), ("schema_version", ["1", "1"])] {
            answer.attribute_updates.push(AttributeUpdate {
                name: name.into(),
                events: vec![0, 1],
                values: column(&values),
            });
        }
        let judged = apply(vec![event(" us"), event("xx")], answer, Kind::Enricher).unwrap();
        let mut expected = event("US");
        expected.device_type = Some("tv".into());
        expected.user_id = 42;
        expected.attributes = vec![
            ("page_id".into(), "1".into()),
            ("schema_version".into(), "1".into()),
        ];
        assert_eq!(
            judged,
            [
                Judged::Accepted(expected),
                Judged::Rejected {
                    code: "invalid_country".into(),
                    message: "no".into()
                }
            ]
        );
    }

    #[test]
    fn bad_answers_are_refused_with_a_reason() {
        let events = || vec![event("US"), event("US")];
        let mut a = empty();
        a.rejections.push(Rejection {
            event: 2,
            code: "c".into(),
            message: "m".into(),
        });
        assert_eq!(
            apply(events(), a, Kind::Validator).unwrap_err().to_string(),
            "a rejection names event 2, but the batch has 2 events"
        );

        let mut a = empty();
        for _ in 0..2 {
            a.rejections.push(Rejection {
                event: 0,
                code: "c".into(),
                message: "m".into(),
            });
        }
        assert_eq!(
            apply(events(), a, Kind::Validator),
            Err(AnswerError::RejectedTwice(0))
        );

        let mut a = empty();
        a.attribute_updates.push(AttributeUpdate {
            name: "x".into(),
            events: vec![0, 1],
            values: column(&["1"]),
        });
        assert!(matches!(
            apply(events(), a.clone(), Kind::Enricher),
            Err(AnswerError::Mismatch { .. })
        ));
        assert_eq!(
            apply(events(), a, Kind::Validator),
            Err(AnswerError::ValidatorChanged("attribute-updates"))
        );

        let mut a = empty();
        a.text_updates.push(TextUpdate {
            field: TextField::Country,
            events: vec![0],
            values: TextColumn {
                text: "É".into(),
                ends: vec![1],
            },
        });
        assert!(matches!(
            apply(events(), a, Kind::Enricher),
            Err(AnswerError::BadOffsets { index: 0, .. })
        ));
    }
}
