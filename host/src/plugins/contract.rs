//! What a plugin is, as far as crossing into it goes: a 0.1/0.2 plugin takes whole
//! events and returns them; a 0.3 plugin declares in `describe` whether it is a
//! validator or an enricher and which fields it reads, and gets only those.

use super::bindings::v3::{Fields, Kind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    /// 0.1 and 0.2: every field in, the whole event (or a rejection) out.
    WholeEvent,
    /// 0.3: the declared fields in columns, differences out.
    Columns { kind: Kind, reads: Fields },
}

const FIELD_NAMES: [(Fields, &str); 8] = [
    (Fields::EVENT_TYPE, "event_type"),
    (Fields::USER_ID, "user_id"),
    (Fields::PAGE_URL, "page_url"),
    (Fields::BUTTON_ID, "button_id"),
    (Fields::TIMESTAMP, "timestamp"),
    (Fields::COUNTRY, "country"),
    (Fields::DEVICE_TYPE, "device_type"),
    (Fields::ATTRIBUTES, "attributes"),
];

impl std::fmt::Display for Contract {
    /// `validator reading user_id, country`, for `plugin check` and `/plugins`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Contract::WholeEvent => write!(f, "whole events in and out (0.1/0.2)"),
            Contract::Columns { kind, reads } => {
                let kind = match kind {
                    Kind::Validator => "validator",
                    Kind::Enricher => "enricher",
                };
                let names: Vec<&str> = FIELD_NAMES
                    .iter()
                    .filter(|(field, _)| reads.contains(*field))
                    .map(|(_, name)| *name)
                    .collect();
                if names.is_empty() {
                    write!(f, "{kind} reading no fields")
                } else {
                    write!(f, "{kind} reading {}", names.join(", "))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_what_a_plugin_reads() {
        let c = Contract::Columns {
            kind: Kind::Validator,
            reads: Fields::USER_ID | Fields::COUNTRY,
        };
        assert_eq!(c.to_string(), "validator reading user_id, country");
        let c = Contract::Columns {
            kind: Kind::Enricher,
            reads: Fields::empty(),
        };
        assert_eq!(c.to_string(), "enricher reading no fields");
    }
}
