//! 0.3 (`wit/archive/0.3.0`): the brief's fields a plugin declared, in columns, in;
//! its rejections and its updates of those fields and of attributes out. Kept so
//! plugins built against 0.3 keep working.

mod answer;
mod columns;

use std::fmt;

use super::brief::BriefFields;
use super::{Call, Crossing, Description, Failure, Generation};
use crate::event::Event;
use crate::plugins::answer::Rejections;
use crate::plugins::contract::{write_reading, Contract, Kind};
use crate::schema::Schema;

/// Host types generated from `wit/archive/0.3.0`.
mod wit {
    wasmtime::component::bindgen!({
        path: "../wit/archive/0.3.0",
        world: "plugin",
    });
    pub(crate) use exports::streamhost::plugin::rules::{
        Answer, AttributeTable, Batch, Fields, Kind, NumberField, PluginInfo, Rejection,
        TextColumn, TextField,
    };
}

use wit::Fields;

/// The 0.3 generation.
#[derive(Debug)]
pub(crate) struct BriefColumns;

impl Generation for BriefColumns {
    fn versions(&self) -> &'static [&'static str] {
        &["0.3.0"]
    }

    fn describe(&self, describe: Call<'_>, schema: &Schema) -> Result<Description, String> {
        let (info,) = describe.call::<(), (wit::PluginInfo,)>(())?;
        let kind = match info.kind {
            wit::Kind::Validator => Kind::Validator,
            wit::Kind::Enricher => Kind::Enricher,
        };
        Ok(Description {
            name: info.name,
            version: info.version,
            contract: Contract::new(Brief {
                kind,
                reads: info.reads,
                fields: BriefFields::resolve(schema)?,
            }),
        })
    }
}

/// A 0.3 plugin: its kind, the brief's fields it declared, and where they sit.
#[derive(Debug)]
struct Brief {
    kind: Kind,
    reads: Fields,
    fields: BriefFields,
}

const BRIEF_FIELD_NAMES: [(Fields, &str); 8] = [
    (Fields::EVENT_TYPE, "event_type"),
    (Fields::USER_ID, "user_id"),
    (Fields::PAGE_URL, "page_url"),
    (Fields::BUTTON_ID, "button_id"),
    (Fields::TIMESTAMP, "timestamp"),
    (Fields::COUNTRY, "country"),
    (Fields::DEVICE_TYPE, "device_type"),
    (Fields::ATTRIBUTES, "attributes"),
];

impl fmt::Display for Brief {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = BRIEF_FIELD_NAMES
            .iter()
            .filter(|(field, _)| self.reads.contains(*field))
            .map(|(_, name)| *name)
            .collect();
        write_reading(f, self.kind, &names)
    }
}

impl Crossing for Brief {
    fn process(
        &self,
        process: Call<'_>,
        batch: &mut [Event],
        schema: &Schema,
    ) -> Result<Rejections, Failure> {
        let columns = columns::brief(batch, self.reads, &self.fields)?;
        let (answer,) = process
            .call::<(wit::Batch,), (wit::Answer,)>((columns,))
            .map_err(Failure::Plugin)?;
        answer::apply(batch, answer, self.kind, &self.fields, schema)
            .map_err(|e| Failure::Plugin(format!("bad answer: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_what_a_plugin_reads() {
        let fields = BriefFields::resolve(&Schema::brief()).unwrap();
        let c = Contract::new(Brief {
            kind: Kind::Enricher,
            reads: Fields::empty(),
            fields,
        });
        assert_eq!(c.to_string(), "enricher reading no fields");
    }
}
