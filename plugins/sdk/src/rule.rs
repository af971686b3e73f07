//! The two kinds of rule, and the plugin lifecycle the export macros drive.

use std::borrow::Cow;
use std::cell::RefCell;

use crate::changes::Changes;
use crate::event::{Columns, Event};
use crate::settings::Settings;
use crate::wit::{Answer, Batch, Kind, PluginInfo, Rejection};

/// Who the plugin is and what it reads; usually written with [`info!`](crate::info).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    /// Stable name, in metrics, logs and the DLQ's `rejected_by`.
    pub name: &'static str,
    /// The plugin's own semver version.
    pub version: &'static str,
    /// The fields the host puts in each batch: the rule sees these and no others.
    pub reads: &'static [&'static str],
}

/// A rule's judgement of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Reject {
        /// Machine-readable, snake_case, stable across versions (`invalid_country`).
        code: Cow<'static, str>,
        /// For people reading the dead-letter queue.
        message: String,
    },
}

impl Verdict {
    pub fn reject(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Verdict::Reject {
            code: code.into(),
            message: message.into(),
        }
    }

    /// The rejection code, `None` for [`Verdict::Accept`].
    pub fn code(&self) -> Option<&str> {
        match self {
            Verdict::Accept => None,
            Verdict::Reject { code, .. } => Some(code),
        }
    }
}

/// Judges events and never changes them.
pub trait Validator: Sized {
    const INFO: Info;

    /// Called once per instance with the manifest's `[settings]`, before the first
    /// batch. An error (an unknown key, a bad value) rejects the plugin with its message.
    fn configure(settings: &Settings) -> Result<Self, String>;

    fn check(&self, event: &Event) -> Verdict;
}

/// May change fields of the event and add new ones (and reject, like a validator).
pub trait Enricher: Sized {
    const INFO: Info;

    /// As [`Validator::configure`].
    fn configure(settings: &Settings) -> Result<Self, String>;

    fn enrich(&self, event: &Event, changes: &mut Changes) -> Verdict;
}

/// Either kind, as the lifecycle below drives it.
#[doc(hidden)]
pub trait Rule: Sized {
    const INFO: Info;
    const KIND: Kind;
    fn configure(settings: &Settings) -> Result<Self, String>;
    fn apply(&self, event: &Event, changes: &mut Changes) -> Verdict;
}

#[doc(hidden)]
#[derive(Debug)]
pub struct AsValidator<V>(V);

#[doc(hidden)]
#[derive(Debug)]
pub struct AsEnricher<E>(E);

impl<V: Validator> Rule for AsValidator<V> {
    const INFO: Info = V::INFO;
    const KIND: Kind = Kind::Validator;
    fn configure(settings: &Settings) -> Result<Self, String> {
        V::configure(settings).map(AsValidator)
    }
    fn apply(&self, event: &Event, _: &mut Changes) -> Verdict {
        self.0.check(event)
    }
}

impl<E: Enricher> Rule for AsEnricher<E> {
    const INFO: Info = E::INFO;
    const KIND: Kind = Kind::Enricher;
    fn configure(settings: &Settings) -> Result<Self, String> {
        E::configure(settings).map(AsEnricher)
    }
    fn apply(&self, event: &Event, changes: &mut Changes) -> Verdict {
        self.0.enrich(event, changes)
    }
}

/// `describe`.
pub fn describe<R: Rule>() -> PluginInfo {
    PluginInfo {
        name: R::INFO.name.to_string(),
        version: R::INFO.version.to_string(),
        kind: R::KIND,
        reads: R::INFO.reads.iter().map(|f| f.to_string()).collect(),
    }
}

/// `configure`: makes the instance's rule.
pub fn configure<R: Rule>(
    slot: &RefCell<Option<R>>,
    settings: Vec<(String, String)>,
) -> Result<(), String> {
    let rule = R::configure(&Settings::new(settings))?;
    *slot.borrow_mut() = Some(rule);
    Ok(())
}

/// `process`. A batch before `configure` (the host always configures first) runs the
/// rule made from no settings; if that is refused, every event is rejected with code
/// `plugin_not_configured` rather than judged by a rule that does not exist.
pub fn process<R: Rule>(slot: &RefCell<Option<R>>, batch: &Batch) -> Answer {
    if slot.borrow().is_none() {
        if let Err(why) = configure(slot, Vec::new()) {
            return apply(batch, R::INFO.reads, |_, _| {
                Verdict::reject("plugin_not_configured", format!("not configured: {why}"))
            });
        }
    }
    match &*slot.borrow() {
        Some(rule) => apply(batch, R::INFO.reads, |event, changes| {
            rule.apply(event, changes)
        }),
        None => apply(batch, R::INFO.reads, |_, _| Verdict::Accept),
    }
}

/// The codec: each event of the batch, as a view over its columns, through `rule`;
/// rejections and changes collected into the answer's columnar form. Allocates per
/// event only for what it answers (a rejection's strings, a changed value).
pub(crate) fn apply(
    batch: &Batch,
    reads: &'static [&'static str],
    mut rule: impl FnMut(&Event, &mut Changes) -> Verdict,
) -> Answer {
    let mut rejections = Vec::new();
    let mut changes = Changes::for_batch(batch.size as usize);
    let columns = Columns::new(&batch.columns, reads);
    for index in 0..batch.size {
        changes.start(index);
        let event = Event::new(&columns, index as usize);
        if let Verdict::Reject { code, message } = rule(&event, &mut changes) {
            changes.discard_current();
            rejections.push(Rejection {
                event: index,
                code: code.into_owned(),
                message,
            });
        }
    }
    Answer {
        rejections,
        updates: changes.finish(),
    }
}
