//! 0.3 batches: the brief's fields a plugin declared, in columns, the others empty.

use super::super::brief::BriefFields;
use super::wit;
use crate::event::{Event, Value};
use crate::plugins::columns::{set_by_plugins, size, ColumnError, TextBuilder};

fn text_column(column: TextBuilder<'_>) -> Result<wit::TextColumn, ColumnError> {
    let (text, ends) = column.finish()?;
    Ok(wit::TextColumn { text, ends })
}

/// The 0.3 batch for a plugin that declared `reads`: the brief's fields, the others
/// empty. Values set by earlier plugins outside the schema are its "attributes".
pub(super) fn brief(
    events: &[Event],
    reads: wit::Fields,
    at: &BriefFields,
) -> Result<wit::Batch, ColumnError> {
    use wit::Fields as F;
    let text = |flag: F, name: &str, index: usize, typical: usize| {
        let mut column = TextBuilder::new(name, events.len(), typical);
        if reads.contains(flag) {
            for e in events {
                column.push(e.get(index).and_then(Value::as_text).unwrap_or(""));
            }
        }
        text_column(column)
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
    Ok(wit::Batch {
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

fn attributes(events: &[Event], read: bool) -> Result<wit::AttributeTable, ColumnError> {
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
    Ok(wit::AttributeTable {
        events: rows,
        names: text_column(names)?,
        values: text_column(values)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::columns::entry;
    use crate::plugins::generations::testing::event;
    use crate::schema::Schema;

    #[test]
    fn brief_columns_fill_only_what_was_declared() {
        let schema = Schema::brief();
        let at = BriefFields::resolve(&schema).unwrap();
        let mut events = vec![event("US", None, None), event("DE", Some("mobile"), None)];
        events[1].set_extra("a", Value::Text("1".into()));
        use wit::Fields as F;
        let b = brief(&events, F::COUNTRY | F::DEVICE_TYPE | F::ATTRIBUTES, &at).unwrap();
        assert!(b.user_id.is_empty() && b.page_url.ends.is_empty());
        assert_eq!(entry(&b.country.text, &b.country.ends, 1), Some("DE"));
        assert_eq!(b.device_type_present, [false, true]);
        assert_eq!(b.attributes.events, [1]);
    }
}
