//! 1.x (`wit/plugin.wit`): the fields a plugin names, in typed columns, in; its
//! rejections and its updates by field name out.

mod answer;
mod columns;
mod lowered;
mod reads;

use std::fmt;

use self::reads::Read;
use super::{Call, Crossing, Description, Failure, Generation};
use crate::event::Event;
use crate::plugins::answer::Rejections;
use crate::plugins::contract::{write_reading, Contract, Kind};
use crate::schema::Schema;

/// Host types generated from `wit/plugin.wit`. The batch goes in as [`lowered::Batch`].
mod wit {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "plugin",
    });
    pub(crate) use exports::streamhost::plugin::rules::{
        Answer, Kind, PluginInfo, Rejection, TextColumn, Update, Values,
    };
}

/// The 1.x generation.
#[derive(Debug)]
pub(crate) struct Named;

impl Generation for Named {
    fn versions(&self) -> &'static [&'static str] {
        &["1.0.0"]
    }

    fn describe(&self, describe: Call<'_>, schema: &Schema) -> Result<Description, String> {
        let (info,) = describe.call::<(), (wit::PluginInfo,)>(())?;
        let kind = match info.kind {
            wit::Kind::Validator => Kind::Validator,
            wit::Kind::Enricher => Kind::Enricher,
        };
        let mut reads: Vec<Read> = Vec::with_capacity(info.reads.len());
        for name in &info.reads {
            if reads.iter().any(|r| r.name == *name) {
                return Err(format!("describe() lists `{name}` twice in `reads`"));
            }
            reads.push(Read::resolve(name, schema));
        }
        Ok(Description {
            name: info.name,
            version: info.version,
            contract: Contract::new(Columns { kind, reads }),
        })
    }
}

/// A 1.x plugin: its kind, and the fields it reads in the order it named them.
#[derive(Debug)]
struct Columns {
    kind: Kind,
    reads: Vec<Read>,
}

impl fmt::Display for Columns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.reads.iter().map(|r| r.name.as_str()).collect();
        write_reading(f, self.kind, &names)
    }
}

impl Crossing for Columns {
    fn process(
        &self,
        process: Call<'_>,
        batch: &mut [Event],
        schema: &Schema,
    ) -> Result<Rejections, Failure> {
        let columns = columns::named(batch, &self.reads)?;
        let (answer,) = process
            .call::<(lowered::Batch,), (wit::Answer,)>((columns,))
            .map_err(Failure::Plugin)?;
        answer::apply(batch, answer, self.kind, schema)
            .map_err(|e| Failure::Plugin(format!("bad answer: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::reads::Slot;
    use super::*;
    use crate::schema::FieldType;

    #[test]
    fn says_what_a_plugin_reads() {
        let schema = Schema::brief();
        let c = Contract::new(Columns {
            kind: Kind::Validator,
            reads: vec![
                Read::resolve("user_id", &schema),
                Read::resolve("app_version", &schema),
            ],
        });
        assert_eq!(c.to_string(), "validator reading user_id, app_version");
    }

    #[test]
    fn fields_outside_the_brief_resolve_by_name() {
        let sensor = Schema::parse(include_str!("../../../../../schemas/sensor.toml"), "s").unwrap();
        assert_eq!(
            Read::resolve("temperature", &sensor).slot,
            Slot::Schema {
                index: 1,
                ty: FieldType::Float
            }
        );
    }
}
