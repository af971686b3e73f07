//! One event of a batch, as a view over the batch's columns: nothing is copied.

use std::fmt;

use crate::codec::{same_name, text_at};
use crate::wit::{Column, Values};

/// One event: the fields the plugin reads (`Info::reads`), looked up by name. A field
/// is `None` when the event lacks it (or has it as null), and when the plugin did not
/// declare it in `reads` (the host sends only those).
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    columns: &'a Columns<'a>,
    index: usize,
}

/// A batch's columns, with the column of each name in `Info::reads` found once.
///
/// A rule asks for a field with a string literal, and the compiler keeps one copy of
/// equal literals: `event.text("country")` passes the very `&'static str` that
/// `info!["country"]` holds. A name at the address and length of an entry of `reads`
/// is that entry (static text never changes), so it is found without comparing text.
/// Any other name is looked up by its text, out of line, so that the lookup by address
/// stays small enough to be inlined into the rule.
#[derive(Debug)]
pub(crate) struct Columns<'a> {
    columns: &'a [Column],
    /// Each entry of `reads` with its column, if the host sent one.
    of_read: Vec<(&'static str, Option<&'a Column>)>,
}

impl<'a> Columns<'a> {
    pub(crate) fn new(columns: &'a [Column], reads: &'static [&'static str]) -> Self {
        let of_read = reads
            .iter()
            .map(|name| (*name, columns.iter().find(|c| c.name == *name)))
            .collect();
        Self { columns, of_read }
    }

    #[inline(always)]
    fn find(&self, field: &str) -> Option<&'a Column> {
        for (name, column) in &self.of_read {
            if name.as_ptr() == field.as_ptr() && name.len() == field.len() {
                return *column;
            }
        }
        self.find_by_text(field)
    }

    #[cold]
    #[inline(never)]
    fn find_by_text(&self, field: &str) -> Option<&'a Column> {
        self.columns.iter().find(|c| same_name(&c.name, field))
    }
}

/// A field's value, typed as it crossed: the event schema decides the type, a field
/// outside the schema arrives as text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Text(&'a str),
    Integer(i64),
    Float(f64),
    Boolean(bool),
}

impl<'a> Event<'a> {
    pub(crate) fn new(columns: &'a Columns<'a>, index: usize) -> Self {
        Self { columns, index }
    }

    /// The event's index in its batch.
    pub fn index(&self) -> u32 {
        self.index as u32
    }

    /// Whether the event has the field (not null).
    #[inline]
    pub fn has(&self, field: &str) -> bool {
        self.value(field).is_some()
    }

    /// The field as it crossed, whatever its type. Inlined into the rule, where the
    /// type it asks for leaves one arm of the match.
    #[inline(always)]
    pub fn value(&self, field: &str) -> Option<Value<'a>> {
        let column = self.columns.find(field)?;
        if !column.present.get(self.index).copied().unwrap_or(false) {
            return None;
        }
        let i = self.index;
        match &column.values {
            Values::Text(text) => text_at(text, i).map(Value::Text),
            Values::Integer(values) => values.get(i).copied().map(Value::Integer),
            Values::Float(values) => values.get(i).copied().map(Value::Float),
            Values::Boolean(values) => values.get(i).copied().map(Value::Boolean),
        }
    }

    /// A text field. `None` for a field of another type.
    #[inline]
    pub fn text(&self, field: &str) -> Option<&'a str> {
        match self.value(field)? {
            Value::Text(text) => Some(text),
            _ => None,
        }
    }

    /// An integer (or timestamp) field; a text field is parsed (`"42"`). `None` when
    /// absent or not an integer.
    #[inline]
    pub fn integer(&self, field: &str) -> Option<i64> {
        match self.value(field)? {
            Value::Integer(n) => Some(n),
            Value::Text(text) => text.parse().ok(),
            Value::Float(_) | Value::Boolean(_) => None,
        }
    }

    /// A float field; an integer field is converted, a text field parsed (`"21.5"`).
    /// `None` when absent or not a number.
    #[inline]
    pub fn float(&self, field: &str) -> Option<f64> {
        match self.value(field)? {
            Value::Float(x) => Some(x),
            Value::Integer(n) => Some(n as f64),
            Value::Text(text) => text.parse().ok(),
            Value::Boolean(_) => None,
        }
    }

    /// A boolean field; a text field `true` / `false` is parsed. `None` when absent or
    /// not a boolean.
    #[inline]
    pub fn boolean(&self, field: &str) -> Option<bool> {
        match self.value(field)? {
            Value::Boolean(b) => Some(b),
            Value::Text(text) => text.parse().ok(),
            Value::Integer(_) | Value::Float(_) => None,
        }
    }
}

impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Text(text) => f.write_str(text),
            Value::Integer(n) => write!(f, "{n}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Boolean(b) => write!(f, "{b}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{batch, json};

    use super::*;

    /// A name is found whether it is the literal of `reads`, a copy of it, or not in
    /// `reads` at all (the host sends no column for it).
    #[test]
    fn fields_are_found_by_any_string_with_their_name() {
        const READS: &[&str] = &["user_id", "country"];
        let batch = batch(READS, &[json!({"user_id": 7, "country": "DE"})]);
        let columns = Columns::new(&batch.columns, READS);
        let event = Event::new(&columns, 0);
        assert_eq!(event.text("country"), Some("DE"));
        let copy = String::from("country");
        assert_eq!(event.text(&copy), Some("DE"));
        let user_id = ["user", "_id"].concat();
        assert_eq!(event.integer(&user_id), Some(7));
        assert_eq!(event.text("device_type"), None);
        // A reads entry without a column (an older host, say) is absent, not a panic.
        let only_one = Columns::new(&batch.columns[..1], READS);
        assert_eq!(Event::new(&only_one, 0).text("country"), None);
    }
}
