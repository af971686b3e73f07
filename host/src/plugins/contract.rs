//! What a plugin is, as far as crossing into it goes, resolved against the event
//! schema at load time: its kind and the fields it reads, and which of its generation's
//! calls the host makes (each generation's contract is in `generations`).

use std::fmt;
use std::sync::Arc;

use super::answer::Rejections;
use super::generations::{Call, Crossing, Failure};
use crate::event::Event;
use crate::schema::Schema;

/// Validator or enricher, whatever the generation said it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Judges events and never changes them.
    Validator,
    /// May also change fields and add new ones.
    Enricher,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Validator => "validator",
            Kind::Enricher => "enricher",
        }
    }
}

/// How the host crosses into a plugin: its generation's calls, resolved against the
/// schema. Shown as `validator reading user_id, country`, for `plugin check` and
/// `/plugins`.
#[derive(Clone)]
pub struct Contract(Arc<dyn Crossing>);

impl Contract {
    pub(crate) fn new(crossing: impl Crossing + 'static) -> Self {
        Contract(Arc::new(crossing))
    }

    /// What a plugin's contract is until its `describe` has answered.
    pub(crate) fn undescribed() -> Self {
        Contract::new(Undescribed)
    }

    pub(crate) fn crossing(&self) -> &dyn Crossing {
        &*self.0
    }
}

impl fmt::Display for Contract {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for Contract {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// `validator reading user_id, country`: how the contracts that declare what they read
/// show it.
pub(crate) fn write_reading(f: &mut fmt::Formatter<'_>, kind: Kind, names: &[&str]) -> fmt::Result {
    if names.is_empty() {
        write!(f, "{} reading no fields", kind.as_str())
    } else {
        write!(f, "{} reading {}", kind.as_str(), names.join(", "))
    }
}

/// The contract of a plugin being loaded, before `describe` says what it is: nothing
/// crosses into it.
#[derive(Debug)]
struct Undescribed;

impl fmt::Display for Undescribed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not described yet")
    }
}

impl Crossing for Undescribed {
    fn process(
        &self,
        _process: Call<'_>,
        _batch: &mut [Event],
        _schema: &Schema,
    ) -> Result<Rejections, Failure> {
        Err(Failure::Plugin("describe() has not answered yet".into()))
    }
}
