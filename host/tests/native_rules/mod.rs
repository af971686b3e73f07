//! The rules of the `enrich` and `quality` plugins applied natively to a host `Event`,
//! from the same Rust functions the plugins export. One definition for the benchmark's
//! native baseline (`benches/pipeline.rs`) and the equivalence test
//! (`tests/equivalence.rs`), so the test proves the baseline is the same rules as the
//! WASM chain it is compared with.

use compact_str::ToCompactString;
use streamhost::event::{Event, Value};
use streamhost::plugins::{Rejection, Verdict};
use streamhost::schema::Schema;
use streamhost::stages::validate::Judge;

/// Where the fields the rules read sit in the brief's schema.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    user_id: usize,
    page_url: usize,
    country: usize,
    device_type: usize,
}

fn text(e: &Event, index: usize) -> &str {
    e.get(index).and_then(Value::as_text).unwrap_or("")
}

impl Rules {
    pub fn for_schema(schema: &Schema) -> Self {
        let at = |name: &str| schema.index(name).unwrap_or_else(|| panic!("no {name}"));
        Self {
            user_id: at("user_id"),
            page_url: at("page_url"),
            country: at("country"),
            device_type: at("device_type"),
        }
    }

    /// `enrich`: normalise the country, add `page_id` and `schema_version`.
    pub fn enrich(&self, e: &mut Event) {
        // As the plugin: only a country that changes is set.
        let country = text(e, self.country);
        if !enrich::is_normalised(country) {
            let country = enrich::normalise_country(country);
            e.set(self.country, Value::Text(country.into()));
        }
        if let Some(id) = enrich::page_id(text(e, self.page_url)) {
            e.set_extra("page_id", Value::Text(id.to_compact_string()));
        }
        let version = enrich::schema_version(e.get(self.device_type).is_some());
        e.set_extra("schema_version", Value::Text(version.into()));
    }

    /// `quality`: non-negative user id, country on the allow-list.
    pub fn judge<'a>(
        &self,
        e: &'a Event,
        allowed: &'a quality::AllowList,
    ) -> Result<(), quality::Problem<'a>> {
        let user_id = e.get(self.user_id).and_then(Value::as_integer).unwrap_or(0);
        quality::check(user_id, text(e, self.country), allowed)
    }
}

/// enrich + quality as native Rust in place of the plugin chain, for
/// `Validate::process_batch`: the same decode, the same routing, the same output
/// order, the same rejection counting and logging. `processed_by` and `rejected_by`
/// are what the chain it stands for writes.
#[derive(Debug)]
pub struct NativeChain {
    pub rules: Rules,
    pub allowed: quality::AllowList,
    pub processed_by: String,
    pub rejected_by: String,
}

impl NativeChain {
    pub fn new(schema: &Schema, allowed: &quality::AllowList, ids: (&str, &str)) -> Self {
        Self {
            rules: Rules::for_schema(schema),
            allowed: allowed.clone(),
            processed_by: ids.0.to_string(),
            rejected_by: ids.1.to_string(),
        }
    }
}

impl Judge for NativeChain {
    fn judge(&mut self, events: Vec<Event>) -> Vec<Verdict> {
        events
            .into_iter()
            .map(|mut e| {
                self.rules.enrich(&mut e);
                match self.rules.judge(&e, &self.allowed) {
                    Ok(()) => Verdict::Accepted(e),
                    Err(p) => Verdict::Rejected(Rejection {
                        code: p.code().into(),
                        message: p.message(),
                        rejected_by: self.rejected_by.clone(),
                    }),
                }
            })
            .collect()
    }

    fn processed_by(&self) -> String {
        self.processed_by.clone()
    }
}
