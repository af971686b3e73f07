//! What an enricher changes, collected for the whole batch into the answer's updates:
//! one update per field (and type), `events[k]` getting value k.

use crate::codec::{same_name, Text, TextBuilder};
use crate::wit::{Update, Values};

/// The changes of one batch; an enricher sets fields of the event it is given. A field
/// of the event schema must keep its type (the host refuses the batch otherwise); any
/// other name is added to the output event. Setting a field twice for one event keeps
/// the last value; a rejected event's changes are dropped.
#[derive(Debug, Default)]
pub struct Changes {
    event: u32,
    /// Events in the batch: the room a new update gets.
    size: usize,
    updates: Vec<Pending>,
}

#[derive(Debug)]
struct Pending {
    field: String,
    events: Vec<u32>,
    values: Builder,
}

#[derive(Debug)]
enum Builder {
    Text(TextBuilder),
    Integer(Vec<i64>),
    Float(Vec<f64>),
    Boolean(Vec<bool>),
}

/// The type of a [`Builder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Integer,
    Float,
    Boolean,
}

impl Builder {
    fn kind(&self) -> Kind {
        match self {
            Builder::Text(_) => Kind::Text,
            Builder::Integer(_) => Kind::Integer,
            Builder::Float(_) => Kind::Float,
            Builder::Boolean(_) => Kind::Boolean,
        }
    }

    fn pop(&mut self) {
        match self {
            Builder::Text(b) => b.pop(),
            Builder::Integer(v) => drop(v.pop()),
            Builder::Float(v) => drop(v.pop()),
            Builder::Boolean(v) => drop(v.pop()),
        }
    }

    fn finish(self) -> Values {
        match self {
            Builder::Text(b) => Values::Text(b.finish()),
            Builder::Integer(v) => Values::Integer(v),
            Builder::Float(v) => Values::Float(v),
            Builder::Boolean(v) => Values::Boolean(v),
        }
    }
}

impl Changes {
    /// The changes of a batch of `size` events.
    pub(crate) fn for_batch(size: usize) -> Self {
        Self {
            size,
            ..Self::default()
        }
    }

    /// Sets a text field, written straight into the batch's column: a string, an
    /// integer, a `bool`, or `format_args!(...)` ([`Text`]). Nothing is allocated per
    /// event.
    pub fn set_text(&mut self, field: &str, value: impl Text) {
        let size = self.size;
        if let Builder::Text(b) = self.slot(field, Kind::Text, || {
            Builder::Text(TextBuilder::with_capacity(size))
        }) {
            b.push(value);
        }
    }

    /// Sets an integer (or timestamp) field.
    pub fn set_integer(&mut self, field: &str, value: i64) {
        let size = self.size;
        if let Builder::Integer(v) = self.slot(field, Kind::Integer, || {
            Builder::Integer(Vec::with_capacity(size))
        }) {
            v.push(value);
        }
    }

    pub fn set_float(&mut self, field: &str, value: f64) {
        let size = self.size;
        if let Builder::Float(v) = self.slot(field, Kind::Float, || {
            Builder::Float(Vec::with_capacity(size))
        }) {
            v.push(value);
        }
    }

    pub fn set_boolean(&mut self, field: &str, value: bool) {
        let size = self.size;
        if let Builder::Boolean(v) = self.slot(field, Kind::Boolean, || {
            Builder::Boolean(Vec::with_capacity(size))
        }) {
            v.push(value);
        }
    }

    /// The values of the latest update of `field` if it has the type of `kind`, else a
    /// new update made by `new` (updates apply in order, so the later one wins), with
    /// the current event appended to its events and its value left to the caller to
    /// push.
    fn slot(&mut self, field: &str, kind: Kind, new: impl FnOnce() -> Builder) -> &mut Builder {
        let event = self.event;
        let latest = self
            .updates
            .iter()
            .rposition(|u| same_name(&u.field, field));
        let index = match latest {
            Some(i) if self.updates[i].values.kind() == kind => i,
            _ => {
                self.updates.push(Pending {
                    field: field.to_string(),
                    events: Vec::with_capacity(self.size),
                    values: new(),
                });
                self.updates.len() - 1
            }
        };
        let update = &mut self.updates[index];
        if update.events.last() == Some(&event) {
            update.values.pop();
        } else {
            update.events.push(event);
        }
        &mut update.values
    }

    /// Starts collecting the changes of event `event` (events come in increasing order).
    pub(crate) fn start(&mut self, event: u32) {
        self.event = event;
    }

    /// Drops what the current event changed (it was rejected).
    pub(crate) fn discard_current(&mut self) {
        for update in &mut self.updates {
            if update.events.last() == Some(&self.event) {
                update.events.pop();
                update.values.pop();
            }
        }
    }

    pub(crate) fn finish(self) -> Vec<Update> {
        self.updates
            .into_iter()
            .filter(|u| !u.events.is_empty())
            .map(|u| Update {
                field: u.field,
                events: u.events,
                values: u.values.finish(),
            })
            .collect()
    }
}
