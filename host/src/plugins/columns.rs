//! Batches in columns: only the fields a plugin reads, one buffer per field (text as
//! one string plus end offsets). A call then copies a handful of buffers into the
//! plugin instead of every string of every event.
//!
//! [`named`] builds 1.0 batches (any field, by name, typed by the schema);
//! [`brief`] builds 0.3 batches (the brief's fields) for older plugins.

use super::bindings::lowered::{self, Present};
use super::bindings::{wit_0_3, wit_1};
use super::contract::{BriefFields, Read, Slot};
use crate::event::{Event, Extra, Value};
use crate::schema::FieldType;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ColumnError {
    /// Offsets are u32 (the plugin's memory is 32-bit anyway).
    #[error("the batch holds more than 4 GiB of `{0}` text; lower pipeline.batch_size")]
    TooLarge(String),
}

/// Builds one text column: the values back to back and their end offsets.
struct TextBuilder<'a> {
    field: &'a str,
    text: String,
    ends: Vec<u32>,
}

impl<'a> TextBuilder<'a> {
    fn new(field: &'a str, events: usize, typical_len: usize) -> Self {
        Self {
            field,
            text: String::with_capacity(events * typical_len),
            ends: Vec::with_capacity(events),
        }
    }

    /// An end past 4 GiB wraps here; [`finish`](Self::finish) refuses such a column.
    #[inline]
    fn push(&mut self, value: &str) {
        self.text.push_str(value);
        self.ends.push(self.text.len() as u32);
    }

    /// The text and its end offsets: every end is right when the whole text's is.
    fn finish(self) -> Result<(String, Vec<u32>), ColumnError> {
        match u32::try_from(self.text.len()) {
            Ok(_) => Ok((self.text, self.ends)),
            Err(_) => Err(ColumnError::TooLarge(self.field.to_string())),
        }
    }
}

/// Entry `i` of a text column, or `None` if the offsets do not describe one (out of
/// range, descending, or not on a character boundary): a column from a plugin is
/// untrusted.
pub fn entry<'t>(text: &'t str, ends: &[u32], i: usize) -> Option<&'t str> {
    let end = usize::try_from(*ends.get(i)?).ok()?;
    let start = match i.checked_sub(1) {
        None => 0,
        Some(previous) => usize::try_from(*ends.get(previous)?).ok()?,
    };
    text.get(start..end)
}

fn size(events: &[Event]) -> Result<u32, ColumnError> {
    u32::try_from(events.len()).map_err(|_| ColumnError::TooLarge("batch".into()))
}

/// The 1.0 batch for a plugin that reads `reads`: one column per name, in order.
pub(crate) fn named(events: &[Event], reads: &[Read]) -> Result<lowered::Batch, ColumnError> {
    let columns = reads
        .iter()
        .map(|read| column(events, read))
        .collect::<Result<_, _>>()?;
    Ok(lowered::Batch {
        size: size(events)?,
        columns,
    })
}

fn column(events: &[Event], read: &Read) -> Result<lowered::Column, ColumnError> {
    let mut present = Present::with_capacity(events.len());
    let values = match &read.slot {
        Slot::Schema { index, ty } => {
            let values = events.iter().map(|e| {
                let v = e.get(*index);
                present.push(v.is_some());
                v
            });
            match ty {
                FieldType::String => {
                    let mut column = TextBuilder::new(&read.name, events.len(), 12);
                    for v in values {
                        column.push(v.and_then(Value::as_text).unwrap_or(""));
                    }
                    text_values(column)?
                }
                FieldType::Integer | FieldType::Timestamp => wit_1::Values::Integer(
                    values
                        .map(|v| v.and_then(Value::as_integer).unwrap_or(0))
                        .collect(),
                ),
                FieldType::Float => wit_1::Values::Float(
                    values
                        .map(|v| match v {
                            Some(Value::Float(f)) => *f,
                            _ => 0.0,
                        })
                        .collect(),
                ),
                FieldType::Boolean => wit_1::Values::Boolean(
                    values
                        .map(|v| matches!(v, Some(Value::Boolean(true))))
                        .collect(),
                ),
            }
        }
        Slot::Outside => {
            let mut column = TextBuilder::new(&read.name, events.len(), 8);
            for event in events {
                let text = event.extra(&read.name).and_then(Extra::text);
                present.push(text.is_some());
                column.push(text.as_deref().unwrap_or(""));
            }
            text_values(column)?
        }
    };
    Ok(lowered::Column {
        name: read.name.clone(),
        present,
        values,
    })
}

fn text_values(column: TextBuilder<'_>) -> Result<wit_1::Values, ColumnError> {
    let (text, ends) = column.finish()?;
    Ok(wit_1::Values::Text(wit_1::TextColumn { text, ends }))
}

fn text_column_0_3(column: TextBuilder<'_>) -> Result<wit_0_3::TextColumn, ColumnError> {
    let (text, ends) = column.finish()?;
    Ok(wit_0_3::TextColumn { text, ends })
}

/// The 0.3 batch for a plugin that declared `reads`: the brief's fields, the others
/// empty. Values set by earlier plugins outside the schema are its "attributes".
pub fn brief(
    events: &[Event],
    reads: wit_0_3::Fields,
    at: &BriefFields,
) -> Result<wit_0_3::Batch, ColumnError> {
    use wit_0_3::Fields as F;
    let text = |flag: F, name: &str, index: usize, typical: usize| {
        let mut column = TextBuilder::new(name, events.len(), typical);
        if reads.contains(flag) {
            for e in events {
                column.push(e.get(index).and_then(Value::as_text).unwrap_or(""));
            }
        }
        text_column_0_3(column)
    };
    let numbers = |flag: F, index: usize| -> Vec<i64> {
        if reads.contains(flag) {
            events
                .iter()
                .map(|e| e.get(index).and_then(Value::as_integer).unwrap_or(0))
                .collect()
        } else {
            Vec::new()
        }
    };
    Ok(wit_0_3::Batch {
        size: size(events)?,
        event_type: text(F::EVENT_TYPE, "event_type", at.event_type, 12)?,
        user_id: numbers(F::USER_ID, at.user_id),
        page_url: text(F::PAGE_URL, "page_url", at.page_url, 16)?,
        button_id: text(F::BUTTON_ID, "button_id", at.button_id, 36)?,
        timestamp: numbers(F::TIMESTAMP, at.timestamp),
        country: text(F::COUNTRY, "country", at.country, 2)?,
        device_type: text(F::DEVICE_TYPE, "device_type", at.device_type, 8)?,
        device_type_present: if reads.contains(F::DEVICE_TYPE) {
            events
                .iter()
                .map(|e| e.get(at.device_type).is_some())
                .collect()
        } else {
            Vec::new()
        },
        attributes: attributes(events, reads.contains(F::ATTRIBUTES))?,
    })
}

/// The values plugins set outside the schema, one row each, as 0.3's attribute table.
pub fn set_by_plugins(event: &Event) -> impl Iterator<Item = (&str, std::borrow::Cow<'_, str>)> {
    event.extra.iter().filter_map(|(name, v)| match v {
        Extra::Set(value) => Some((name.as_str(), value.to_text())),
        Extra::Json(_) => None,
    })
}

fn attributes(events: &[Event], read: bool) -> Result<wit_0_3::AttributeTable, ColumnError> {
    let mut rows = Vec::new();
    let mut names = TextBuilder::new("attribute names", 0, 0);
    let mut values = TextBuilder::new("attribute values", 0, 0);
    if read {
        for (index, event) in events.iter().enumerate() {
            let index = u32::try_from(index).map_err(|_| ColumnError::TooLarge("batch".into()))?;
            for (name, value) in set_by_plugins(event) {
                rows.push(index);
                names.push(name);
                values.push(&value);
            }
        }
    }
    Ok(wit_0_3::AttributeTable {
        events: rows,
        names: text_column_0_3(names)?,
        values: text_column_0_3(values)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Schema;

    fn event(country: &str, device_type: Option<&str>, app: Option<&str>) -> Event {
        let mut e = Event {
            fields: vec![
                Some(Value::Text("page_view".into())),
                Some(Value::Integer(7)),
                Some(Value::Text("/page/1".into())),
                Some(Value::Text("b".into())),
                Some(Value::Integer(1_700_000_000)),
                Some(Value::Text(country.into())),
                device_type.map(|d| Value::Text(d.into())),
            ],
            extra: Vec::new(),
        };
        if let Some(app) = app {
            let raw = serde_json::value::RawValue::from_string(app.into()).unwrap();
            e.extra.push(("app_version".into(), Extra::Json(raw)));
        }
        e
    }

    fn text_of(values: &wit_1::Values) -> Vec<&str> {
        let wit_1::Values::Text(c) = values else {
            panic!("{values:?}")
        };
        (0..c.ends.len())
            .map(|i| entry(&c.text, &c.ends, i).unwrap())
            .collect()
    }

    #[test]
    fn named_columns_are_typed_by_the_schema_and_text_outside_it() {
        let schema = Schema::brief();
        let events = [
            event("US", None, Some(r#""1.2.3""#)),
            event("", Some("mobile"), Some("7")),
            event("DÉ", Some(""), None),
        ];
        let reads: Vec<Read> = [
            "country",
            "user_id",
            "device_type",
            "app_version",
            "nowhere",
        ]
        .iter()
        .map(|n| Read::resolve(n, &schema))
        .collect();
        let b = named(&events, &reads).unwrap();
        assert_eq!(b.size, 3);
        assert_eq!(b.columns[0].name, "country");
        assert_eq!(text_of(&b.columns[0].values), ["US", "", "DÉ"]);
        assert!(matches!(&b.columns[1].values, wit_1::Values::Integer(v) if v == &[7, 7, 7]));
        assert_eq!(b.columns[2].present.0, [false, true, true]);
        assert_eq!(b.columns[3].present.0, [true, true, false]);
        assert_eq!(text_of(&b.columns[3].values), ["1.2.3", "7", ""]);
        assert_eq!(b.columns[4].present.0, [false, false, false]);
    }

    #[test]
    fn brief_columns_fill_only_what_was_declared() {
        let schema = Schema::brief();
        let at = BriefFields::resolve(&schema).unwrap();
        let mut events = vec![event("US", None, None), event("DE", Some("mobile"), None)];
        events[1].set_extra("a", Value::Text("1".into()));
        use wit_0_3::Fields as F;
        let b = brief(&events, F::COUNTRY | F::DEVICE_TYPE | F::ATTRIBUTES, &at).unwrap();
        assert!(b.user_id.is_empty() && b.page_url.ends.is_empty());
        assert_eq!(entry(&b.country.text, &b.country.ends, 1), Some("DE"));
        assert_eq!(b.device_type_present, [false, true]);
        assert_eq!(b.attributes.events, [1]);
    }

    #[test]
    fn untrusted_offsets_give_no_entry_instead_of_a_panic() {
        let (text, ends) = ("aÉb", [2, 1, 4, 99]);
        assert_eq!(entry(text, &ends, 0), None, "inside É");
        assert_eq!(entry(text, &ends, 1), None, "descending");
        assert_eq!(entry(text, &ends, 2), Some("Éb"));
        assert_eq!(entry(text, &ends, 3), None, "past the end");
    }
}
