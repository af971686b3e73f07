//! What a plugin is, as far as crossing into it goes, resolved against the event
//! schema at load time: which of its generation's calls the host makes and where
//! each field it reads sits in an [`Event`](crate::event::Event).

use std::fmt;

use crate::schema::{FieldType, Schema};

use super::bindings::wit_0_3::Fields;

/// Validator or enricher, whatever the generation said it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Judges events and never changes them.
    Validator,
    /// May also change fields and add new ones.
    Enricher,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Validator => "validator",
            Kind::Enricher => "enricher",
        }
    }
}

/// Where a field a plugin names lives in an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// A schema field: typed.
    Schema { index: usize, ty: FieldType },
    /// Outside the schema: read as text.
    Outside,
}

/// One field a 1.0 plugin reads, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub name: String,
    pub slot: Slot,
}

impl Read {
    pub fn resolve(name: &str, schema: &Schema) -> Self {
        let slot = match schema.index(name) {
            Some(index) => Slot::Schema {
                index,
                ty: schema.field(index).ty,
            },
            None => Slot::Outside,
        };
        Read {
            name: name.to_string(),
            slot,
        }
    }
}

/// Where the brief's seven fields sit in the schema: what 0.1–0.3 plugins carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BriefFields {
    pub event_type: usize,
    pub user_id: usize,
    pub page_url: usize,
    pub button_id: usize,
    pub timestamp: usize,
    pub country: usize,
    pub device_type: usize,
}

impl BriefFields {
    /// The brief's fields in `schema`, or which one is missing or of the wrong kind.
    pub fn resolve(schema: &Schema) -> Result<Self, String> {
        let find = |name: &str, ty: FieldType, required: bool| -> Result<usize, String> {
            let explain = |what: &str| {
                format!(
                    "contracts before 1.0 carry the brief's fields, and the schema {what}; \
                     rebuild the plugin against wit/plugin.wit (1.0), which reads fields by name"
                )
            };
            let Some(index) = schema.index(name) else {
                return Err(explain(&format!("has no field `{name}`")));
            };
            let field = schema.field(index);
            let ty_ok =
                field.ty == ty || (ty == FieldType::Integer && field.ty == FieldType::Timestamp);
            if !ty_ok || (required && !field.required) {
                return Err(explain(&format!(
                    "has `{name}` as {}{} where they need {}{ty}",
                    if field.required { "" } else { "optional " },
                    field.ty,
                    if required { "required " } else { "" },
                )));
            }
            Ok(index)
        };
        Ok(BriefFields {
            event_type: find("event_type", FieldType::String, true)?,
            user_id: find("user_id", FieldType::Integer, true)?,
            page_url: find("page_url", FieldType::String, true)?,
            button_id: find("button_id", FieldType::String, true)?,
            timestamp: find("timestamp", FieldType::Timestamp, true)?,
            country: find("country", FieldType::String, true)?,
            device_type: find("device_type", FieldType::String, false)?,
        })
    }
}

/// How the host crosses into a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contract {
    /// 0.1 and 0.2: the brief's fields, whole events in and out.
    WholeEvent(BriefFields),
    /// 0.3: the declared brief fields in columns, differences out.
    BriefColumns {
        kind: Kind,
        reads: Fields,
        fields: BriefFields,
    },
    /// 1.0: the named fields in typed columns, differences by name out.
    Named { kind: Kind, reads: Vec<Read> },
}

const BRIEF_FIELD_NAMES: [(Fields, &str); 8] = [
    (Fields::EVENT_TYPE, "event_type"),
    (Fields::USER_ID, "user_id"),
    (Fields::PAGE_URL, "page_url"),
    (Fields::BUTTON_ID, "button_id"),
    (Fields::TIMESTAMP, "timestamp"),
    (Fields::COUNTRY, "country"),
    (Fields::DEVICE_TYPE, "device_type"),
    (Fields::ATTRIBUTES, "attributes"),
];

impl fmt::Display for Contract {
    /// `validator reading user_id, country`, for `plugin check` and `/plugins`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, names): (Kind, Vec<&str>) = match self {
            Contract::WholeEvent(_) => return write!(f, "whole events in and out (0.1/0.2)"),
            Contract::BriefColumns { kind, reads, .. } => (
                *kind,
                BRIEF_FIELD_NAMES
                    .iter()
                    .filter(|(field, _)| reads.contains(*field))
                    .map(|(_, name)| *name)
                    .collect(),
            ),
            Contract::Named { kind, reads } => {
                (*kind, reads.iter().map(|r| r.name.as_str()).collect())
            }
        };
        if names.is_empty() {
            write!(f, "{} reading no fields", kind.as_str())
        } else {
            write!(f, "{} reading {}", kind.as_str(), names.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_what_a_plugin_reads() {
        let schema = Schema::brief();
        let c = Contract::Named {
            kind: Kind::Validator,
            reads: vec![
                Read::resolve("user_id", &schema),
                Read::resolve("app_version", &schema),
            ],
        };
        assert_eq!(c.to_string(), "validator reading user_id, app_version");
        let fields = BriefFields::resolve(&schema).unwrap();
        let c = Contract::BriefColumns {
            kind: Kind::Enricher,
            reads: Fields::empty(),
            fields,
        };
        assert_eq!(c.to_string(), "enricher reading no fields");
    }

    #[test]
    fn old_contracts_need_the_brief_fields() {
        let sensor = Schema::parse(include_str!("../../../schemas/sensor.toml"), "s").unwrap();
        let e = BriefFields::resolve(&sensor).unwrap_err();
        assert!(e.contains("has no field `event_type`"), "{e}");
        assert_eq!(
            Read::resolve("temperature", &sensor).slot,
            Slot::Schema {
                index: 1,
                ty: FieldType::Float
            }
        );
    }
}
