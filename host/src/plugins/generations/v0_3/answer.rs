//! 0.3 answers: rejections, and updates of the brief's fields and of attributes,
//! checked whole and then applied.

use super::super::brief::BriefFields;
use super::wit;
use crate::decode::MAX_FIELD_BYTES;
use crate::event::{Event, Value};
use crate::plugins::answer::{
    checked_name, checked_value, rejections, same_length, slot, texts, AnswerError, Rejected,
    Rejections,
};
use crate::plugins::contract::Kind;
use crate::schema::Schema;

impl Rejected for wit::Rejection {
    fn parts(self) -> (u32, String, String) {
        (self.event, self.code, self.message)
    }
}

/// Apply a 0.3 `answer` to the batch it answers: its changes to the events, in place,
/// and its rejections returned. On an error the events may be changed in part; the
/// caller drops them.
pub(super) fn apply(
    events: &mut [Event],
    mut answer: wit::Answer,
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
    // Checked whole before anything changes: a refused answer leaves the events as
    // they were, so that the chain can judge them again (in smaller batches).
    brief_updates(events, &answer, at, schema, false)?;
    brief_updates(events, &answer, at, schema, true)?;
    Ok(rejected)
}

/// Check a 0.3 answer's updates; with `write`, also make them.
fn brief_updates(
    events: &mut [Event],
    answer: &wit::Answer,
    at: &BriefFields,
    schema: &Schema,
    write: bool,
) -> Result<(), AnswerError> {
    use wit::{NumberField, TextField};
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

