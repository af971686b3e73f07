//! 0.1/0.2 events and verdicts: the brief's fields of each event out of the host, and
//! the verdicts back in, checked.

use super::super::brief::BriefFields;
use super::wit::{Event as WitEvent, Verdict as WitVerdict};
use crate::event::{Event, Value};
use crate::plugins::answer::{
    check_rejection, checked_name, checked_value, AnswerError, Rejection, Rejections,
};
use crate::plugins::columns::set_by_plugins;
use crate::schema::Schema;

fn text(event: &Event, index: usize) -> String {
    event
        .get(index)
        .and_then(Value::as_text)
        .unwrap_or_default()
        .to_string()
}

fn integer(event: &Event, index: usize) -> i64 {
    event.get(index).and_then(Value::as_integer).unwrap_or(0)
}

/// The brief's fields of `events`, one 0.1/0.2 event each.
pub(super) fn to_wit(events: &[Event], at: &BriefFields) -> Vec<WitEvent> {
    events
        .iter()
        .map(|e| WitEvent {
            event_type: text(e, at.event_type),
            user_id: integer(e, at.user_id),
            page_url: text(e, at.page_url),
            button_id: text(e, at.button_id),
            timestamp: integer(e, at.timestamp),
            country: text(e, at.country),
            device_type: e
                .get(at.device_type)
                .and_then(Value::as_text)
                .map(String::from),
            attributes: set_by_plugins(e)
                .map(|(name, value)| (name.to_string(), value.into_owned()))
                .collect(),
        })
        .collect()
}

/// Apply the verdicts on `events` (one each): the plugin's version of the brief's
/// fields and attributes where it accepted, the rejections returned. Every verdict is
/// checked against the schema (as input is) before any event changes: a refused
/// answer leaves the events as they were.
pub(super) fn apply(
    events: &mut [Event],
    verdicts: Vec<WitVerdict>,
    at: &BriefFields,
    schema: &Schema,
) -> Result<Rejections, AnswerError> {
    let mut rejections = Rejections::new();
    for verdict in &verdicts {
        if let WitVerdict::Reject(r) = verdict {
            check_rejection(&r.code, &r.message)?;
        }
        if let WitVerdict::Accept(w) = verdict {
            let check = |index: usize, value: Value| {
                let field = schema.field(index);
                checked_value(&field.name, field.ty, &value)
            };
            check(at.event_type, Value::Text(w.event_type.as_str().into()))?;
            check(at.page_url, Value::Text(w.page_url.as_str().into()))?;
            check(at.button_id, Value::Text(w.button_id.as_str().into()))?;
            check(at.timestamp, Value::Integer(w.timestamp))?;
            check(at.country, Value::Text(w.country.as_str().into()))?;
            if let Some(d) = &w.device_type {
                check(at.device_type, Value::Text(d.as_str().into()))?;
            }
            for (name, _) in &w.attributes {
                checked_name(name)?;
            }
        }
    }
    for (i, (event, verdict)) in events.iter_mut().zip(verdicts).enumerate() {
        match verdict {
            WitVerdict::Accept(w) => {
                event.set(at.event_type, Value::Text(w.event_type.into()));
                event.set(at.user_id, Value::Integer(w.user_id));
                event.set(at.page_url, Value::Text(w.page_url.into()));
                event.set(at.button_id, Value::Text(w.button_id.into()));
                event.set(at.timestamp, Value::Integer(w.timestamp));
                event.set(at.country, Value::Text(w.country.into()));
                match w.device_type {
                    Some(d) => event.set(at.device_type, Value::Text(d.into())),
                    None => event.fields[at.device_type] = None,
                }
                // 0.2 never let an attribute replace a field of the event or of the host.
                for (name, value) in w.attributes {
                    if schema.is_outside(&name) {
                        event.set_extra(&name, Value::Text(value.into()));
                    }
                }
            }
            WitVerdict::Reject(r) => rejections.push((i, Rejection::by_plugin(r.code, r.message))),
        }
    }
    Ok(rejections)
}
