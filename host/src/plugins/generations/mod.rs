//! Contract generations: one module per WIT world the host has bindings for, each
//! behind [`Generation`] (what a plugin of it is) and [`Crossing`] (how a batch goes
//! into one plugin and its answer comes back as the host's verdicts), listed oldest
//! first in [`GENERATIONS`].
//!
//! * [`v0_2`]: 0.1 and 0.2 (`wit/archive/0.2.0`), whole events in and out.
//! * [`v0_3`]: 0.3 (`wit/archive/0.3.0`), the brief's fields in columns, differences out.
//! * [`v1`]: 1.x (`wit/plugin.wit`), named typed columns in, differences by name out.
//! * [`brief`]: where the brief's fields sit in the schema, for 0.1–0.3.
//!
//! What all generations share stays outside: the sandbox, deadlines and the answer
//! budget (`runtime`), text columns (`columns`), answer limits and checks (`answer`).
//!
//! **Adding a generation:** freeze the released WIT under `wit/archive/`, add a folder
//! here with its `bindgen!` bindings and its [`Generation`] and [`Crossing`], and add
//! it to the `generations!` list below (newest last). If it is the new
//! `wit/plugin.wit`, set `WIT_VERSION` (`plugins/mod.rs`) to its version.
//!
//! **Retiring a generation:** delete its folder and its entry in that list.

use std::fmt;

use wasmtime::component::{ComponentExportIndex, ComponentNamedList, Instance, Lift, Lower};
use wasmtime::Store;

use super::answer::Rejections;
use super::columns::ColumnError;
use super::contract::Contract;
use super::runtime::{compatible, explain, SandboxLimits, SandboxState};
use crate::event::Event;
use crate::schema::Schema;

pub(crate) mod brief;

/// A contract generation: the WIT versions it serves and what `describe` says in them.
pub(crate) trait Generation: fmt::Debug + Sync {
    /// The versions it serves, oldest first, each with its semver-compatible releases.
    fn versions(&self) -> &'static [&'static str];

    /// Call `describe` on a fresh instance and say what the plugin is, its contract
    /// resolved against `schema`; or why it cannot be loaded.
    fn describe(&self, describe: Call<'_>, schema: &Schema) -> Result<Description, String>;
}

/// How a batch crosses into one plugin of a generation, as its `describe` set it up.
/// Shown (`Display`) as `plugin check` and `/plugins` say what the plugin is.
pub(crate) trait Crossing: fmt::Display + fmt::Debug + Send + Sync {
    /// Call `process` on `batch`: the plugin's changes are made to the events in place,
    /// and its rejections returned by position, ascending. An answer is checked whole
    /// before any event changes.
    fn process(
        &self,
        process: Call<'_>,
        batch: &mut [Event],
        schema: &Schema,
    ) -> Result<Rejections, Failure>;
}

/// `describe()` of any generation, in host terms.
#[derive(Debug)]
pub(crate) struct Description {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) contract: Contract,
}

/// Why a batch was not judged.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    /// The host cannot put the batch into the plugin's columns: the host's problem, not
    /// the plugin's; its instance is fine.
    #[error(transparent)]
    Batch(#[from] ColumnError),
    /// The plugin failed: a wrong signature, a trap, the deadline, or an answer that
    /// does not fit the batch. Its instance may be in any state.
    #[error("{0}")]
    Plugin(String),
}

/// One call of one export of a plugin instance, whose failures are told in one line a
/// plugin author can act on.
pub(crate) struct Call<'a> {
    pub(crate) store: &'a mut Store<SandboxState>,
    pub(crate) instance: &'a Instance,
    pub(crate) export: ComponentExportIndex,
    /// The export's name in the WIT (`describe`, `process`).
    pub(crate) name: &'static str,
    pub(crate) limits: SandboxLimits,
}

impl fmt::Debug for Call<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Call<'_> {
    /// Call the export as a function taking `P` and returning `R`, the generation's types.
    pub(crate) fn call<P, R>(self, params: P) -> Result<R, String>
    where
        P: ComponentNamedList + Lower,
        R: ComponentNamedList + Lift,
    {
        let f = self
            .instance
            .get_typed_func::<P, R>(&mut *self.store, self.export)
            .map_err(|e| format!("`{}` has the wrong signature: {e:#}", self.name))?;
        f.call(&mut *self.store, params)
            .map_err(|e| explain(&e, self.limits))
    }
}

/// Declares each generation's module and lists it, oldest first: one entry per
/// generation, `module::Generation`.
macro_rules! generations {
    ($($module:ident :: $generation:ident),+ $(,)?) => {
        $(pub(crate) mod $module;)+

        /// Every generation this host loads, oldest first.
        pub(crate) const GENERATIONS: &[&dyn Generation] = &[$(&$module::$generation),+];
    };
}

generations![v0_2::WholeEvents, v0_3::BriefColumns, v1::Named];

/// Every WIT version this host loads (each with its semver-compatible releases),
/// oldest first.
pub(crate) fn accepted_versions() -> Vec<&'static str> {
    GENERATIONS
        .iter()
        .flat_map(|g| g.versions())
        .copied()
        .collect()
}

/// The generation that serves plugins built against `wit_version`, if any.
pub(crate) fn serving(wit_version: &str) -> Option<&'static dyn Generation> {
    GENERATIONS.iter().copied().find(|g| {
        g.versions()
            .iter()
            .any(|offered| compatible(wit_version, offered))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::WIT_VERSION;

    #[test]
    fn every_version_has_one_generation_and_the_newest_is_the_current_wit() {
        for version in accepted_versions() {
            let serving: Vec<_> = GENERATIONS
                .iter()
                .filter(|g| g.versions().iter().any(|v| compatible(version, v)))
                .collect();
            assert_eq!(serving.len(), 1, "{version}: {serving:?}");
        }
        assert_eq!(accepted_versions().last(), Some(&WIT_VERSION));
        assert!(serving(WIT_VERSION).is_some() && serving("0.4.0").is_none());
    }
}

/// What the generations' tests share.
#[cfg(test)]
pub(crate) mod testing {
    use crate::event::{Event, Extra, Value};

    /// An event of the brief's shape: `country`, with or without `device_type`, and an
    /// `app_version` outside the schema when `app` (its JSON) is given.
    pub(crate) fn event(country: &str, device_type: Option<&str>, app: Option<&str>) -> Event {
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
}
