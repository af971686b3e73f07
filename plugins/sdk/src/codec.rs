//! The text-column layout, both ways: `text[ends[i - 1]..ends[i]]` is value i.

use std::fmt::{self, Write};

use crate::wit::TextColumn;

/// Value `index` of a text column (`None` past its end or on offsets that do not cut
/// the text at character boundaries).
pub(crate) fn text_at(column: &TextColumn, index: usize) -> Option<&str> {
    let end = *column.ends.get(index)? as usize;
    let start = match index.checked_sub(1) {
        Some(previous) => *column.ends.get(previous)? as usize,
        None => 0,
    };
    column.text.get(start..end)
}

/// Builds a text column value by value, formatting straight into the one buffer.
#[derive(Debug, Default)]
pub(crate) struct TextBuilder {
    text: String,
    ends: Vec<u32>,
}

impl TextBuilder {
    pub(crate) fn push(&mut self, value: impl fmt::Display) {
        // Writing into a String cannot fail.
        let _ = write!(self.text, "{value}");
        self.ends.push(self.text.len() as u32);
    }

    /// Drops the last value.
    pub(crate) fn pop(&mut self) {
        self.ends.pop();
        self.text
            .truncate(self.ends.last().copied().unwrap_or(0) as usize);
    }

    pub(crate) fn finish(self) -> TextColumn {
        TextColumn {
            text: self.text,
            ends: self.ends,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_a_column() {
        let mut b = TextBuilder::default();
        for v in ["US", "", "ÜS", "x"] {
            b.push(v);
        }
        b.pop();
        b.push(42);
        let column = b.finish();
        assert_eq!(column.text, "USÜS42");
        let values: Vec<_> = (0..5).map(|i| text_at(&column, i)).collect();
        assert_eq!(values, [Some("US"), Some(""), Some("ÜS"), Some("42"), None]);
    }

    #[test]
    fn bad_offsets_read_as_missing_not_as_a_panic() {
        let column = TextColumn {
            text: "Ü".into(),
            ends: vec![1, 0, 9],
        };
        assert_eq!(text_at(&column, 0), None);
        assert_eq!(text_at(&column, 1), None);
        assert_eq!(text_at(&column, 2), None);
    }
}
