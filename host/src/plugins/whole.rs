//! 0.1 and 0.2 calls: every field of every event in, one verdict per event out (the
//! accepted event comes back whole). Kept so plugins built against those versions
//! keep working; 0.3 plugins cross with columns instead (`columns`, `answer`).

use super::answer::Judged;
use super::bindings::v2::{Event as WitEvent, Verdict};
use crate::decode::Event;

pub fn to_wit(events: Vec<Event>) -> Vec<WitEvent> {
    events.into_iter().map(WitEvent::from).collect()
}

pub fn judged(verdict: Verdict) -> Judged {
    match verdict {
        Verdict::Accept(event) => Judged::Accepted(event.into()),
        Verdict::Reject(r) => Judged::Rejected {
            code: r.code,
            message: r.message,
        },
    }
}

impl From<Event> for WitEvent {
    fn from(e: Event) -> Self {
        WitEvent {
            event_type: e.event_type,
            user_id: e.user_id,
            page_url: e.page_url,
            button_id: e.button_id,
            timestamp: e.timestamp,
            country: e.country,
            device_type: e.device_type,
            attributes: e.attributes,
        }
    }
}

impl From<WitEvent> for Event {
    fn from(e: WitEvent) -> Self {
        Event {
            event_type: e.event_type,
            user_id: e.user_id,
            page_url: e.page_url,
            button_id: e.button_id,
            timestamp: e.timestamp,
            country: e.country,
            device_type: e.device_type,
            attributes: e.attributes,
        }
    }
}
