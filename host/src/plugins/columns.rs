//! Batches in columns: only the fields a plugin reads, one buffer per field (text as
//! one string plus end offsets). A call then copies a handful of buffers into the
//! plugin instead of every string of every event.
//!
//! What every generation's columns share: the text column builder and reader, the
//! batch size, and the values plugins set; each generation builds its own batches
//! from them (in its module under `generations`).

use crate::event::{Event, Extra};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ColumnError {
    /// Offsets are u32 (the plugin's memory is 32-bit anyway).
    #[error("the batch holds more than 4 GiB of `{0}` text; lower pipeline.batch_size")]
    TooLarge(String),
}

/// Builds one text column: the values back to back and their end offsets.
pub(crate) struct TextBuilder<'a> {
    field: &'a str,
    text: String,
    ends: Vec<u32>,
}

impl<'a> TextBuilder<'a> {
    pub(crate) fn new(field: &'a str, events: usize, typical_len: usize) -> Self {
        Self {
            field,
            text: String::with_capacity(events * typical_len),
            ends: Vec::with_capacity(events),
        }
    }

    /// An end past 4 GiB wraps here; [`finish`](Self::finish) refuses such a column.
    #[inline]
    pub(crate) fn push(&mut self, value: &str) {
        self.text.push_str(value);
        self.ends.push(self.text.len() as u32);
    }

    /// The text and its end offsets: every end is right when the whole text's is.
    pub(crate) fn finish(self) -> Result<(String, Vec<u32>), ColumnError> {
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

/// The number of events, as a batch says it.
pub(crate) fn size(events: &[Event]) -> Result<u32, ColumnError> {
    u32::try_from(events.len()).map_err(|_| ColumnError::TooLarge("batch".into()))
}

/// The values plugins set outside the schema (0.1–0.3 carry them as attributes).
pub fn set_by_plugins(event: &Event) -> impl Iterator<Item = (&str, std::borrow::Cow<'_, str>)> {
    event.extra.iter().filter_map(|(name, v)| match v {
        Extra::Set(value) => Some((name.as_str(), value.to_text())),
        Extra::Json(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_offsets_give_no_entry_instead_of_a_panic() {
        let (text, ends) = ("aÉb", [2, 1, 4, 99]);
        assert_eq!(entry(text, &ends, 0), None, "inside É");
        assert_eq!(entry(text, &ends, 1), None, "descending");
        assert_eq!(entry(text, &ends, 2), Some("Éb"));
        assert_eq!(entry(text, &ends, 3), None, "past the end");
    }
}
