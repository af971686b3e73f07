//! 0.3 batches: only the fields a plugin reads, in columns (one text buffer and end
//! offsets per string field). A call then copies a handful of buffers into the plugin
//! instead of allocating and copying every string of every event, which was most of
//! the cost of a 0.2 call (docs/benchmarks.md).

use super::bindings::v3::{AttributeTable, Batch, Fields, TextColumn};
use crate::decode::Event;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ColumnError {
    /// Offsets are u32 (the plugin's memory is 32-bit anyway).
    #[error("the batch holds more than 4 GiB of `{0}` text; lower pipeline.batch_size")]
    TooLarge(&'static str),
}

/// Builds one [`TextColumn`].
struct TextColumnBuilder {
    field: &'static str,
    text: String,
    ends: Vec<u32>,
}

impl TextColumnBuilder {
    fn new(field: &'static str, events: usize, typical_len: usize) -> Self {
        Self {
            field,
            text: String::with_capacity(events * typical_len),
            ends: Vec::with_capacity(events),
        }
    }

    fn push(&mut self, value: &str) -> Result<(), ColumnError> {
        self.text.push_str(value);
        let end = u32::try_from(self.text.len()).map_err(|_| ColumnError::TooLarge(self.field))?;
        self.ends.push(end);
        Ok(())
    }

    fn finish(self) -> TextColumn {
        TextColumn {
            text: self.text,
            ends: self.ends,
        }
    }
}

fn empty_column() -> TextColumn {
    TextColumn {
        text: String::new(),
        ends: Vec::new(),
    }
}

/// A string column of `events`, or an empty one if the plugin does not read `field`.
fn text_column<'e>(
    events: &'e [Event],
    reads: Fields,
    field: (Fields, &'static str),
    typical_len: usize,
    value: impl Fn(&'e Event) -> &'e str,
) -> Result<TextColumn, ColumnError> {
    if !reads.contains(field.0) {
        return Ok(empty_column());
    }
    let mut column = TextColumnBuilder::new(field.1, events.len(), typical_len);
    for event in events {
        column.push(value(event))?;
    }
    Ok(column.finish())
}

/// The batch a 0.3 plugin that declared `reads` gets for `events`.
pub fn batch(events: &[Event], reads: Fields) -> Result<Batch, ColumnError> {
    let size = u32::try_from(events.len()).map_err(|_| ColumnError::TooLarge("batch"))?;
    let numbers = |field: Fields, value: fn(&Event) -> i64| -> Vec<i64> {
        if reads.contains(field) {
            events.iter().map(value).collect()
        } else {
            Vec::new()
        }
    };
    let reads_device_type = reads.contains(Fields::DEVICE_TYPE);
    Ok(Batch {
        size,
        event_type: text_column(events, reads, (Fields::EVENT_TYPE, "event_type"), 12, |e| {
            &e.event_type
        })?,
        user_id: numbers(Fields::USER_ID, |e| e.user_id),
        page_url: text_column(events, reads, (Fields::PAGE_URL, "page_url"), 16, |e| {
            &e.page_url
        })?,
        button_id: text_column(events, reads, (Fields::BUTTON_ID, "button_id"), 36, |e| {
            &e.button_id
        })?,
        timestamp: numbers(Fields::TIMESTAMP, |e| e.timestamp),
        country: text_column(events, reads, (Fields::COUNTRY, "country"), 2, |e| {
            &e.country
        })?,
        device_type: text_column(
            events,
            reads,
            (Fields::DEVICE_TYPE, "device_type"),
            8,
            |e| e.device_type.as_deref().unwrap_or(""),
        )?,
        device_type_present: if reads_device_type {
            events.iter().map(|e| e.device_type.is_some()).collect()
        } else {
            Vec::new()
        },
        attributes: attributes(events, reads)?,
    })
}

fn attributes(events: &[Event], reads: Fields) -> Result<AttributeTable, ColumnError> {
    let mut table = AttributeTable {
        events: Vec::new(),
        names: empty_column(),
        values: empty_column(),
    };
    if !reads.contains(Fields::ATTRIBUTES) {
        return Ok(table);
    }
    let rows: usize = events.iter().map(|e| e.attributes.len()).sum();
    let mut names = TextColumnBuilder::new("attribute names", rows, 12);
    let mut values = TextColumnBuilder::new("attribute values", rows, 8);
    for (index, event) in events.iter().enumerate() {
        let index = u32::try_from(index).map_err(|_| ColumnError::TooLarge("batch"))?;
        for (name, value) in &event.attributes {
            table.events.push(index);
            names.push(name)?;
            values.push(value)?;
        }
    }
    table.names = names.finish();
    table.values = values.finish();
    Ok(table)
}

/// Entry `i` of a column, or `None` if the offsets do not describe one (out of range,
/// descending, or not on a character boundary): a column from a plugin is untrusted.
pub fn entry(column: &TextColumn, i: usize) -> Option<&str> {
    let end = usize::try_from(*column.ends.get(i)?).ok()?;
    let start = match i.checked_sub(1) {
        None => 0,
        Some(previous) => usize::try_from(*column.ends.get(previous)?).ok()?,
    };
    column.text.get(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(country: &str, device_type: Option<&str>, attributes: &[(&str, &str)]) -> Event {
        Event {
            event_type: "page_view".into(),
            user_id: 7,
            page_url: "/page/1".into(),
            button_id: "b".into(),
            timestamp: 1_700_000_000,
            country: country.into(),
            device_type: device_type.map(String::from),
            attributes: attributes
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn only_declared_fields_are_filled_and_entries_read_back() {
        let events = [
            event("US", None, &[]),
            event("", Some("mobile"), &[("a", "1"), ("b", "")]),
            event("DÉ", Some(""), &[]),
        ];
        let b = batch(
            &events,
            Fields::COUNTRY | Fields::DEVICE_TYPE | Fields::ATTRIBUTES,
        )
        .unwrap();
        assert_eq!(b.size, 3);
        assert!(b.user_id.is_empty() && b.page_url.ends.is_empty() && b.page_url.text.is_empty());
        let countries: Vec<_> = (0..3).map(|i| entry(&b.country, i).unwrap()).collect();
        assert_eq!(countries, ["US", "", "DÉ"]);
        assert_eq!(b.device_type_present, [false, true, true]);
        assert_eq!(entry(&b.device_type, 1), Some("mobile"));
        assert_eq!(b.attributes.events, [1, 1]);
        assert_eq!(entry(&b.attributes.names, 1), Some("b"));
        assert_eq!(entry(&b.attributes.values, 0), Some("1"));
        assert_eq!(entry(&b.country, 3), None);
    }

    #[test]
    fn untrusted_offsets_give_no_entry_instead_of_a_panic() {
        let column = TextColumn {
            text: "aÉb".into(),
            ends: vec![2, 1, 4, 99],
        };
        assert_eq!(entry(&column, 0), None, "inside É");
        assert_eq!(entry(&column, 1), None, "descending");
        assert_eq!(entry(&column, 2), Some("Éb"));
        assert_eq!(entry(&column, 3), None, "past the end");
    }
}
