//! Native tests of rules (plain `cargo test` on the host target, no wasm): events from
//! JSON or key-value pairs, through the same codec the component runs.
//!
//! ```
//! use streamhost_sdk::testing::{self, json};
//! # use streamhost_sdk::{info, Event, Info, Settings, Validator, Verdict};
//! # struct Rule;
//! # impl Validator for Rule {
//! #     const INFO: Info = info!["n"];
//! #     fn configure(s: &Settings) -> Result<Self, String> { s.none().map(|()| Rule) }
//! #     fn check(&self, e: &Event) -> Verdict {
//! #         if e.integer("n") == Some(0) { Verdict::reject("zero", "n is 0") } else { Verdict::Accept }
//! #     }
//! # }
//! assert_eq!(testing::check(&Rule, r#"{"n": 0}"#), Verdict::reject("zero", "n is 0"));
//! assert_eq!(testing::check(&Rule, json!({"n": 1})), Verdict::Accept);
//! assert_eq!(testing::check(&Rule, [("n", "0")]), Verdict::reject("zero", "n is 0"));
//! ```
//!
//! Events are typed by their JSON values (string → text, integer → integer, other
//! number → float, boolean → boolean, null → absent), as the host types the fields of
//! its schema. A field outside the schema arrives as text in production: write it as a
//! JSON string, or use pairs (all text).

use std::cell::RefCell;

pub use serde_json::{json, Value as Json};

use crate::codec::TextBuilder;
use crate::rule::{self, AsEnricher, AsValidator, Rule};
use crate::wit::{Answer, Batch, Column, PluginInfo, Values};
use crate::{Enricher, Settings, Validator, Verdict};

/// One event for a test: a JSON object (text or [`Json`]) or `(field, text)` pairs.
pub trait TestEvent {
    fn into_json(self) -> Json;
}

impl TestEvent for Json {
    fn into_json(self) -> Json {
        self
    }
}

impl TestEvent for &str {
    /// Panics (failing the test) on text that is not JSON.
    fn into_json(self) -> Json {
        match serde_json::from_str(self) {
            Ok(json) => json,
            Err(e) => panic!("test event {self:?} is not JSON: {e}"),
        }
    }
}

impl<const N: usize> TestEvent for [(&str, &str); N] {
    fn into_json(self) -> Json {
        self.as_slice().into_json()
    }
}

impl TestEvent for &[(&str, &str)] {
    fn into_json(self) -> Json {
        Json::Object(
            self.iter()
                .map(|(k, v)| (k.to_string(), Json::String(v.to_string())))
                .collect(),
        )
    }
}

/// Settings from pairs.
pub fn settings(pairs: &[(&str, &str)]) -> Settings {
    Settings::new(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// A batch as the host builds it: one column per name in `reads`, in order.
pub fn batch(reads: &[&str], events: &[Json]) -> Batch {
    Batch {
        size: events.len() as u32,
        columns: reads
            .iter()
            .map(|field| column(field, events.iter().map(|e| e.get(field))))
            .collect(),
    }
}

fn column<'a>(name: &str, values: impl Iterator<Item = Option<&'a Json>> + Clone) -> Column {
    let values = values.map(|v| v.filter(|v| !v.is_null()));
    let present: Vec<bool> = values.clone().map(|v| v.is_some()).collect();
    let given = || values.clone().flatten();
    let values = if given().all(|v| v.is_boolean()) && given().next().is_some() {
        Values::Boolean(
            values
                .map(|v| v.and_then(Json::as_bool).unwrap_or(false))
                .collect(),
        )
    } else if given().all(|v| v.is_i64()) && given().next().is_some() {
        Values::Integer(
            values
                .map(|v| v.and_then(Json::as_i64).unwrap_or(0))
                .collect(),
        )
    } else if given().all(|v| v.is_number()) && given().next().is_some() {
        Values::Float(
            values
                .map(|v| v.and_then(Json::as_f64).unwrap_or(0.0))
                .collect(),
        )
    } else {
        let mut text = TextBuilder::default();
        for value in values {
            match value {
                Some(Json::String(s)) => text.push(s),
                Some(other) => text.push(other.to_string()),
                None => text.push(""),
            }
        }
        Values::Text(text.finish())
    };
    Column {
        name: name.to_string(),
        present,
        values,
    }
}

/// `rule`'s verdict on one event.
pub fn check<V: Validator>(rule: &V, event: impl TestEvent) -> Verdict {
    let batch = batch(V::INFO.reads, &[event.into_json()]);
    let answer = rule::apply(&batch, V::INFO.reads, |e, _| rule.check(e));
    verdict(&answer, 0)
}

/// `rule`'s verdict on one event and the fields it set, as a JSON object.
pub fn enrich<E: Enricher>(rule: &E, event: impl TestEvent) -> (Verdict, Json) {
    let batch = batch(E::INFO.reads, &[event.into_json()]);
    let answer = rule::apply(&batch, E::INFO.reads, |e, changes| rule.enrich(e, changes));
    (verdict(&answer, 0), changes(&answer, 0))
}

/// A whole batch through a validator as the component runs it: `configure` with
/// `settings`, then `process`.
pub fn run_validator<V: Validator>(
    settings: &[(&str, &str)],
    batch: &Batch,
) -> Result<Answer, String> {
    run::<AsValidator<V>>(settings, batch)
}

/// A whole batch through an enricher as the component runs it.
pub fn run_enricher<E: Enricher>(
    settings: &[(&str, &str)],
    batch: &Batch,
) -> Result<Answer, String> {
    run::<AsEnricher<E>>(settings, batch)
}

/// What a validator's `describe` answers.
pub fn describe_validator<V: Validator>() -> PluginInfo {
    rule::describe::<AsValidator<V>>()
}

/// What an enricher's `describe` answers.
pub fn describe_enricher<E: Enricher>() -> PluginInfo {
    rule::describe::<AsEnricher<E>>()
}

fn run<R: Rule>(settings: &[(&str, &str)], batch: &Batch) -> Result<Answer, String> {
    let slot = RefCell::new(None);
    let pairs = settings.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    rule::configure::<R>(&slot, pairs.collect())?;
    Ok(rule::process(&slot, batch))
}

/// The answer's verdict on event `event`.
pub fn verdict(answer: &Answer, event: u32) -> Verdict {
    match answer.rejections.iter().find(|r| r.event == event) {
        Some(r) => Verdict::reject(r.code.clone(), r.message.clone()),
        None => Verdict::Accept,
    }
}

/// The fields the answer sets on event `event` (the last value where set twice), as a
/// JSON object.
pub fn changes(answer: &Answer, event: u32) -> Json {
    let mut fields = serde_json::Map::new();
    for update in &answer.updates {
        let Some(k) = update.events.iter().position(|&e| e == event) else {
            continue;
        };
        let value = match &update.values {
            Values::Text(t) => crate::codec::text_at(t, k).map(Json::from),
            Values::Integer(v) => v.get(k).map(|&n| Json::from(n)),
            Values::Float(v) => v.get(k).map(|&x| Json::from(x)),
            Values::Boolean(v) => v.get(k).map(|&b| Json::from(b)),
        };
        fields.insert(update.field.clone(), value.unwrap_or(Json::Null));
    }
    Json::Object(fields)
}
