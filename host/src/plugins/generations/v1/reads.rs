//! The fields a 1.x plugin reads, by name, resolved against the schema.

use crate::schema::{FieldType, Schema};

/// Where a field a plugin names lives in an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// A schema field: typed.
    Schema { index: usize, ty: FieldType },
    /// Outside the schema: read as text.
    Outside,
}

/// One field a 1.x plugin reads, resolved.
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

