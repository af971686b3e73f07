//! The event schema: which top-level fields an event has, their types, which are
//! required, and which one is the event time. It is data (a TOML file), not code: the
//! brief's events are [`Schema::brief`] (`schemas/events.toml`), and another event type
//! is another file given with `--schema`.
//!
//! ```toml
//! time = "timestamp"            # the event-time field
//! [fields]
//! user_id = "integer"           # required
//! device_type = { type = "string", required = false }
//! ```
//!
//! Fields outside the schema are kept as they came and can still be read by plugins
//! (as text); the schema only decides what the host checks and types.

use std::fmt;
use std::path::Path;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

/// The brief's schema, the default.
pub const BRIEF_SCHEMA: &str = include_str!("../../schemas/events.toml");

/// The type of a schema field, as the JSON must carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// A JSON string.
    String,
    /// A JSON integer that fits 64 signed bits.
    Integer,
    /// Any JSON number.
    Float,
    /// `true` or `false`.
    Boolean,
    /// Seconds since the Unix epoch (UTC), a JSON integer in `0..=u32::MAX`: what
    /// ClickHouse's `DateTime` stores.
    Timestamp,
}

impl FieldType {
    pub const ALL: [FieldType; 5] = [
        FieldType::String,
        FieldType::Integer,
        FieldType::Float,
        FieldType::Boolean,
        FieldType::Timestamp,
    ];

    /// The name used in schema files.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Integer => "integer",
            FieldType::Float => "float",
            FieldType::Boolean => "boolean",
            FieldType::Timestamp => "timestamp",
        }
    }

    /// The type a field of this type crosses into plugins with: a timestamp is an
    /// integer of epoch seconds.
    pub fn carried_as(self) -> FieldType {
        match self {
            FieldType::Timestamp => FieldType::Integer,
            other => other,
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One field of the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub ty: FieldType,
    /// A required field missing (or null) is a decode error; an optional one is absent.
    pub required: bool,
}

/// Names the host writes into every output event itself; no schema field may take one.
pub const HOST_FIELDS: [&str; 4] = ["source_partition", "source_offset", "processed_by", "extra"];

/// A checked schema: unique names, a required timestamp field as the event time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    fields: Vec<Field>,
    time: usize,
}

/// Why a schema file is refused: what, and on which line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("{origin}: {message}")]
    Syntax { origin: String, message: String },
    #[error("{origin}:{line}: {message}")]
    At {
        origin: String,
        line: usize,
        message: String,
    },
    #[error("{origin}: {message}")]
    File { origin: String, message: String },
}

impl Schema {
    /// The brief's events: `schemas/events.toml`.
    pub fn brief() -> Self {
        // Checked by a unit test, so a broken default cannot ship.
        Self::parse(BRIEF_SCHEMA, "schemas/events.toml").unwrap_or_else(|e| {
            unreachable!("the built-in schema is checked by a test: {e}");
        })
    }

    /// Read and check a schema file.
    pub fn load(path: &Path) -> Result<Self, SchemaError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| SchemaError::File {
            origin: origin.clone(),
            message: format!("cannot read the schema file: {e}"),
        })?;
        Self::parse(&text, &origin)
    }

    /// Parse and check schema text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, SchemaError> {
        let file: SchemaFile = toml::from_str(text).map_err(|e| match e.span() {
            Some(span) => SchemaError::At {
                origin: origin.into(),
                line: line_of(text, span.start),
                message: e.message().trim().to_string(),
            },
            None => SchemaError::Syntax {
                origin: origin.into(),
                message: e.message().trim().to_string(),
            },
        })?;
        let at = |offset: usize, message: String| SchemaError::At {
            origin: origin.into(),
            line: line_of(text, offset),
            message,
        };

        let mut fields: Vec<Field> = Vec::with_capacity(file.fields.0.len());
        for (name, spec) in file.fields.0 {
            let (ty, required) = field_spec(spec.get_ref()).map_err(|m| {
                at(
                    spec.span().start,
                    format!("field `{}`: {m}", name.get_ref()),
                )
            })?;
            let name_text = name.get_ref();
            if name_text.is_empty() {
                return Err(at(name.span().start, "a field name is empty".into()));
            }
            if HOST_FIELDS.contains(&name_text.as_str()) {
                return Err(at(
                    name.span().start,
                    format!(
                        "field `{name_text}` is a name the host writes into every output event ({}); rename it",
                        HOST_FIELDS.join(", ")
                    ),
                ));
            }
            // TOML itself refuses a key written twice; two spellings of one key
            // (`a` and `"a"`) are the same key to it too. This catches what is left.
            if fields.iter().any(|f| f.name == *name_text) {
                return Err(at(
                    name.span().start,
                    format!("field `{name_text}` is listed twice"),
                ));
            }
            fields.push(Field {
                name: name_text.clone(),
                ty,
                required,
            });
        }
        if fields.is_empty() {
            return Err(SchemaError::File {
                origin: origin.into(),
                message: "no fields: list them under [fields], e.g. `user_id = \"integer\"`".into(),
            });
        }
        let Some(time) = file.time else {
            return Err(SchemaError::File {
                origin: origin.into(),
                message: "no time field: name the event-time field at the top, e.g. `time = \"timestamp\"`, and give it type \"timestamp\"".into(),
            });
        };
        let time_name = time.get_ref();
        let Some(index) = fields.iter().position(|f| f.name == *time_name) else {
            return Err(at(
                time.span().start,
                format!("time field `{time_name}` is not one of the fields"),
            ));
        };
        let field = &fields[index];
        if field.ty != FieldType::Timestamp || !field.required {
            return Err(at(
                time.span().start,
                format!(
                    "time field `{time_name}` must be a required field of type \"timestamp\" (it is {}{})",
                    if field.required { "" } else { "an optional " },
                    field.ty
                ),
            ));
        }
        Ok(Schema {
            fields,
            time: index,
        })
    }

    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    pub fn field(&self, index: usize) -> &Field {
        &self.fields[index]
    }

    /// The index of a field by name.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    /// Whether a plugin may set `name` as a field outside the schema: it is neither a
    /// schema field nor one the host writes itself.
    pub fn is_outside(&self, name: &str) -> bool {
        self.index(name).is_none() && !HOST_FIELDS.contains(&name)
    }

    /// The index of the event-time field.
    pub fn time(&self) -> usize {
        self.time
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

impl fmt::Display for Schema {
    /// One line per field, as `streamhost schema check` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, field) in self.fields.iter().enumerate() {
            let mut notes = Vec::new();
            if !field.required {
                notes.push("optional");
            }
            if i == self.time {
                notes.push("event time");
            }
            let notes = if notes.is_empty() {
                String::new()
            } else {
                format!(" ({})", notes.join(", "))
            };
            writeln!(f, "  {:<20} {}{notes}", field.name, field.ty)?;
        }
        Ok(())
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// `"integer"` or `{ type = "string", required = false }`.
fn field_spec(spec: &toml::Value) -> Result<(FieldType, bool), String> {
    let type_of = |name: &str| {
        FieldType::parse(name).ok_or_else(|| {
            let known: Vec<&str> = FieldType::ALL.iter().map(|t| t.as_str()).collect();
            format!("unknown type \"{name}\" (known: {})", known.join(", "))
        })
    };
    match spec {
        toml::Value::String(name) => Ok((type_of(name)?, true)),
        toml::Value::Table(table) => {
            if let Some(key) = table
                .keys()
                .find(|k| !["type", "required"].contains(&k.as_str()))
            {
                return Err(format!("unknown key `{key}` (known: type, required)"));
            }
            let ty = match table.get("type") {
                Some(toml::Value::String(name)) => type_of(name)?,
                Some(_) => return Err("`type` must be a string".into()),
                None => return Err("no `type`".into()),
            };
            let required = match table.get("required") {
                None => true,
                Some(toml::Value::Boolean(b)) => *b,
                Some(_) => return Err("`required` must be true or false".into()),
            };
            Ok((ty, required))
        }
        _ => Err(
            "must be a type name (\"string\") or a table ({ type = \"string\", required = false })"
                .into(),
        ),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaFile {
    time: Option<Spanned<String>>,
    #[serde(default)]
    fields: OrderedFields,
}

/// `[fields]` in the order written (a map type would sort them).
#[derive(Default)]
struct OrderedFields(Vec<(Spanned<String>, Spanned<toml::Value>)>);

impl<'de> Deserialize<'de> for OrderedFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedFields;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table of field names and types")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedFields, A::Error> {
                let mut fields = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    fields.push(entry);
                }
                Ok(OrderedFields(fields))
            }
        }
        deserializer.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Schema::parse(text, "s.toml").unwrap_err().to_string()
    }

    #[test]
    fn the_brief_schema_is_valid_and_in_file_order() {
        let s = Schema::brief();
        let names: Vec<&str> = s.fields().iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "event_type",
                "user_id",
                "page_url",
                "button_id",
                "timestamp",
                "country",
                "device_type"
            ]
        );
        assert_eq!(s.field(s.time()).name, "timestamp");
        assert!(!s.field(6).required);
        assert_eq!(s.field(1).ty, FieldType::Integer);
    }

    #[test]
    fn the_sensor_schema_is_valid() {
        let s = Schema::parse(include_str!("../../schemas/sensor.toml"), "sensor.toml").unwrap();
        assert_eq!(
            s.field(s.index("temperature").unwrap()).ty,
            FieldType::Float
        );
        assert_eq!(s.field(s.time()).name, "ts");
    }

    #[test]
    fn bad_files_are_refused_with_the_line() {
        let unknown = "time = \"t\"\n[fields]\nt = \"timestamp\"\nx = \"strnig\"\n";
        assert_eq!(
            err(unknown),
            "s.toml:4: field `x`: unknown type \"strnig\" (known: string, integer, float, boolean, timestamp)"
        );
        let duplicate =
            "time = \"t\"\n[fields]\nt = \"timestamp\"\nx = \"string\"\nx = \"integer\"\n";
        let e = err(duplicate);
        assert!(e.starts_with("s.toml:5: "), "{e}");
        assert!(e.contains("duplicate key"), "{e}");
        let no_time = "[fields]\nt = \"timestamp\"\n";
        assert!(err(no_time).contains("no time field"), "{}", err(no_time));
        let wrong_time = "time = \"x\"\n[fields]\nx = \"string\"\n";
        assert_eq!(
            err(wrong_time),
            "s.toml:1: time field `x` must be a required field of type \"timestamp\" (it is string)"
        );
        let missing_time = "time = \"y\"\n[fields]\nx = \"timestamp\"\n";
        assert_eq!(
            err(missing_time),
            "s.toml:1: time field `y` is not one of the fields"
        );
        let host_name = "time = \"t\"\n[fields]\nt = \"timestamp\"\nprocessed_by = \"string\"\n";
        assert!(
            err(host_name).starts_with("s.toml:4: field `processed_by` is a name the host writes")
        );
        let bad_key = "time = \"t\"\n[fields]\nt = { type = \"timestamp\", requird = true }\n";
        assert!(
            err(bad_key).starts_with("s.toml:3: field `t`: unknown key `requird`"),
            "{}",
            err(bad_key)
        );
        let syntax = "time = \"t\"\n[fields\n";
        assert!(err(syntax).starts_with("s.toml:2: "), "{}", err(syntax));
        assert!(
            err("tim = 1\n").starts_with("s.toml:1: unknown field `tim`"),
            "{}",
            err("tim = 1\n")
        );
    }
}
