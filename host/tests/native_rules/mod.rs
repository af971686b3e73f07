//! The rules of the `enrich` and `quality` plugins applied natively to a host `Event`,
//! from the same Rust functions the plugins export. One definition for the benchmark's
//! native baseline (`benches/pipeline.rs`) and the equivalence test
//! (`tests/equivalence.rs`), so the test proves the baseline is the same rules as the
//! WASM chain it is compared with.

use streamhost::event::{Event, Value};
use streamhost::records::dlq::{DlqRecord, Step};
use streamhost::records::{Output, SourceRecord};
use streamhost::schema::Schema;
use streamhost::stages::validate::Validate;

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
        let country = enrich::normalise_country(text(e, self.country));
        e.set(self.country, Value::Text(country));
        if let Some(id) = enrich::page_id(text(e, self.page_url)) {
            e.set_extra("page_id", Value::Text(id.to_string()));
        }
        let version = enrich::schema_version(e.get(self.device_type).is_some());
        e.set_extra("schema_version", Value::Text(version.into()));
    }

    /// `quality`: non-negative user id, country on the allow-list.
    pub fn judge(&self, e: &Event, allowed: &[String]) -> Result<(), quality::Problem> {
        let user_id = e.get(self.user_id).and_then(Value::as_integer).unwrap_or(0);
        quality::check(user_id, text(e, self.country), allowed)
    }
}

/// `Validate::process_batch` with enrich + quality as native Rust instead of the plugin
/// chain: the same decode, the same routing, the same output order. `ids` are the
/// chain's `processed_by` and the quality rule's `rejected_by`.
pub fn process_batch(
    validate: &Validate,
    records: &[SourceRecord],
    allowed: &[String],
    ids: (&str, &str),
) -> Vec<Output> {
    let rules = Rules::for_schema(validate.decoder.schema());
    let (processed_by, rejected_by) = ids;
    let topic = validate.source_topic.as_str();
    let mut outputs = Vec::with_capacity(records.len());
    let mut judged = Vec::with_capacity(records.len());
    for record in records {
        match validate.decoder.decode(&record.payload) {
            Err(e) => outputs.push(DlqRecord::rejecting(
                record,
                topic,
                Step::Decode,
                "host",
                e.code().as_str(),
                &e.to_string(),
            )),
            Ok(mut e) => {
                rules.enrich(&mut e);
                judged.push((record, e));
            }
        }
    }
    for (record, e) in judged {
        outputs.push(match rules.judge(&e, allowed) {
            Ok(()) => validate.enricher.output(&e, record, processed_by),
            Err(p) => DlqRecord::rejecting(
                record,
                topic,
                Step::Plugin,
                rejected_by,
                p.code(),
                &p.to_string(),
            ),
        });
    }
    outputs
}
