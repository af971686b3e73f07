//! 0.1 and 0.2 calls: the brief's fields of every event in, one verdict per event out
//! (the accepted event comes back whole). Kept so plugins built against those versions
//! keep working; newer ones cross with columns (`columns`, `answer`).

use super::answer::Rejection;
use super::bindings::wit_0_2::{Event as WitEvent, Verdict as WitVerdict};
use super::columns::set_by_plugins;
use super::contract::BriefFields;
use crate::event::{Event, Value};
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

pub fn to_wit(events: &[Event], at: &BriefFields) -> Vec<WitEvent> {
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

/// Apply the verdict on `event`: the plugin's version of the brief's fields and
/// attributes if it accepted, the rejection otherwise.
pub fn verdict(
    event: &mut Event,
    verdict: WitVerdict,
    at: &BriefFields,
    schema: &Schema,
) -> Option<Rejection> {
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
            None
        }
        WitVerdict::Reject(r) => Some(Rejection::by_plugin(r.code, r.message)),
    }
}
