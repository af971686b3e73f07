//! 1.x batches: one column per field a plugin reads, by name, typed by the schema
//! (text outside it).

use super::lowered::{self, Present};
use super::reads::{Read, Slot};
use super::wit;
use crate::event::{Event, Extra, Value};
use crate::plugins::columns::{size, ColumnError, TextBuilder};
use crate::schema::FieldType;

/// The 1.0 batch for a plugin that reads `reads`: one column per name, in order.
pub(super) fn named(events: &[Event], reads: &[Read]) -> Result<lowered::Batch, ColumnError> {
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
                FieldType::Integer | FieldType::Timestamp => wit::Values::Integer(
                    values
                        .map(|v| v.and_then(Value::as_integer).unwrap_or(0))
                        .collect(),
                ),
                FieldType::Float => wit::Values::Float(
                    values
                        .map(|v| match v {
                            Some(Value::Float(f)) => *f,
                            _ => 0.0,
                        })
                        .collect(),
                ),
                FieldType::Boolean => wit::Values::Boolean(
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

fn text_values(column: TextBuilder<'_>) -> Result<wit::Values, ColumnError> {
    let (text, ends) = column.finish()?;
    Ok(wit::Values::Text(wit::TextColumn { text, ends }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::columns::entry;
    use crate::plugins::generations::testing::event;
    use crate::schema::Schema;

    fn text_of(values: &wit::Values) -> Vec<&str> {
        let wit::Values::Text(c) = values else {
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
        assert!(matches!(&b.columns[1].values, wit::Values::Integer(v) if v == &[7, 7, 7]));
        assert_eq!(b.columns[2].present.0, [false, true, true]);
        assert_eq!(b.columns[3].present.0, [true, true, false]);
        assert_eq!(text_of(&b.columns[3].values), ["1.2.3", "7", ""]);
        assert_eq!(b.columns[4].present.0, [false, false, false]);
    }
}
