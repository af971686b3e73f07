//! The brief's seven fields, which every generation before 1.0 carries (0.1–0.3):
//! where they sit in the schema, or why a schema cannot serve such plugins. Retiring
//! the last of those generations retires this file too (the compiler says so).

use crate::schema::{FieldType, Schema};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_contracts_need_the_brief_fields() {
        let sensor = Schema::parse(include_str!("../../../../schemas/sensor.toml"), "s").unwrap();
        let e = BriefFields::resolve(&sensor).unwrap_err();
        assert!(e.contains("has no field `event_type`"), "{e}");
    }
}
