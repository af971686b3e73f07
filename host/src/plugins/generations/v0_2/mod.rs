//! 0.1 and 0.2 (`wit/archive/0.2.0`): the brief's fields of every event in, one
//! verdict per event out (the accepted event comes back whole). 0.1 is 0.2 without
//! `configure`, with the same records, so these bindings serve both. Kept so plugins
//! built against those versions keep working.

mod verdicts;

use std::fmt;

use super::brief::BriefFields;
use super::{Call, Crossing, Description, Failure, Generation};
use crate::event::Event;
use crate::plugins::answer::Rejections;
use crate::plugins::contract::Contract;
use crate::schema::Schema;

/// Host types generated from `wit/archive/0.2.0`.
mod wit {
    wasmtime::component::bindgen!({
        path: "../wit/archive/0.2.0",
        world: "plugin",
    });
    pub(crate) use exports::streamhost::plugin::rules::{Event, PluginInfo, Verdict};
}

/// The 0.1/0.2 generation.
#[derive(Debug)]
pub(crate) struct WholeEvents;

impl Generation for WholeEvents {
    fn versions(&self) -> &'static [&'static str] {
        &["0.1.0", "0.2.0"]
    }

    fn describe(&self, describe: Call<'_>, schema: &Schema) -> Result<Description, String> {
        let (info,) = describe.call::<(), (wit::PluginInfo,)>(())?;
        Ok(Description {
            name: info.name,
            version: info.version,
            contract: Contract::new(Whole(BriefFields::resolve(schema)?)),
        })
    }
}

/// A 0.1/0.2 plugin: where the brief's fields it carries sit in the schema.
#[derive(Debug)]
struct Whole(BriefFields);

impl fmt::Display for Whole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("whole events in and out (0.1/0.2)")
    }
}

impl Crossing for Whole {
    fn process(
        &self,
        process: Call<'_>,
        batch: &mut [Event],
        schema: &Schema,
    ) -> Result<Rejections, Failure> {
        let Whole(at) = self;
        let expected = batch.len();
        let events = verdicts::to_wit(batch, at);
        let (verdicts,) = process
            .call::<(Vec<wit::Event>,), (Vec<wit::Verdict>,)>((events,))
            .map_err(Failure::Plugin)?;
        if verdicts.len() != expected {
            return Err(Failure::Plugin(format!(
                "returned {} verdicts for {expected} events (must be one per event)",
                verdicts.len()
            )));
        }
        verdicts::apply(batch, verdicts, at, schema)
            .map_err(|e| Failure::Plugin(format!("bad answer: {e}")))
    }
}
