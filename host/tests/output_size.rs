//! Every record the validate stage writes fits the one limit on output records, key
//! and value together: an enricher may set the window key (the enriched record's Kafka
//! key) to any length, and such an event goes to the DLQ as `output_too_large` instead
//! of being refused by the producer on every attempt.

// A test file: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use streamhost::event::Event;
use streamhost::plugins::Verdict;
use streamhost::records::{Destination, SourceRecord, MAX_OUTPUT_BYTES};
use streamhost::schema::Schema;
use streamhost::stages::validate::{Judge, Validate};

/// Accepts every event, with its `country` set to `len` bytes.
struct LongKey {
    country: usize,
    len: usize,
}

impl Judge for LongKey {
    fn judge(&mut self, events: Vec<Event>) -> Vec<Verdict> {
        let country = "C".repeat(self.len);
        events
            .into_iter()
            .map(|mut e| {
                e.set_text(self.country, &country);
                Verdict::Accepted(e)
            })
            .collect()
    }

    fn processed_by(&self) -> String {
        "long-key@1.0.0".into()
    }
}

fn record(offset: i64) -> SourceRecord {
    SourceRecord {
        partition: 0,
        offset,
        timestamp_ms: 1_764_000_000_000,
        payload: br#"{"event_type":"click","user_id":7,"page_url":"/page/1","button_id":"b","timestamp":1764000000,"country":"DE"}"#
            .to_vec(),
    }
}

#[test]
fn an_enriched_record_over_the_limit_with_its_key_goes_to_the_dlq() {
    let schema = Arc::new(Schema::brief());
    let validate = Validate::new(schema.clone(), "country", "my_events", 1 << 20).unwrap();
    let country = schema.index("country").unwrap();
    // The value alone (the country once, plus the other fields) is under the limit;
    // with the country again as the key it is over.
    let len = MAX_OUTPUT_BYTES * 6 / 10;
    let out = validate.process_batch(&mut LongKey { country, len }, &[record(1)]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].destination, Destination::Dlq);
    assert!(out[0].payload.len() < MAX_OUTPUT_BYTES);
    let v: serde_json::Value = serde_json::from_slice(&out[0].payload).unwrap();
    assert_eq!(v["code"], "output_too_large");
    assert_eq!(v["stage"], "route");
    assert!(v["message"].as_str().unwrap().contains("(key and value)"));

    // Just under the limit with the key, it is enriched, and fits.
    let len = MAX_OUTPUT_BYTES * 4 / 10;
    let out = validate.process_batch(&mut LongKey { country, len }, &[record(2)]);
    assert_eq!(out[0].destination, Destination::Enriched);
    assert_eq!(out[0].key.len(), len);
    assert!(out[0].size() <= MAX_OUTPUT_BYTES);
}
