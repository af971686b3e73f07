//! Any bytes through the decoder, by the brief's schema and by one with a float: never a
//! panic; the fast path takes only what the checked path accepts, and reads it alike;
//! and the DLQ record of a rejected payload is JSON that gives the payload back.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use streamhost::decode::{self, Decoder};
use streamhost::records::dlq::{DlqRecord, RawEncoding, Step, REJECTED_BY_HOST};
use streamhost::records::SourceRecord;
use streamhost::schema::Schema;

fn schemas() -> &'static [Arc<Schema>; 2] {
    static SCHEMAS: OnceLock<[Arc<Schema>; 2]> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let sensor = include_str!("../../schemas/sensor.toml");
        let sensor = Schema::parse(sensor, "sensor.toml").expect("sensor.toml parses");
        [Arc::new(Schema::brief()), Arc::new(sensor)]
    })
}

fuzz_target!(|data: &[u8]| {
    for schema in schemas() {
        if let Ok(text) = std::str::from_utf8(data) {
            assert!(
                decode::paths_agree(schema, text),
                "paths disagree on {text:?}"
            );
        }
        let Err(e) = Decoder::new(schema.clone(), 1 << 20).decode(data) else {
            continue;
        };
        let source = SourceRecord {
            partition: 0,
            offset: 0,
            timestamp_ms: 0,
            payload: data.to_vec(),
        };
        let out = DlqRecord::rejecting(
            &source,
            "my_events",
            Step::Decode,
            REJECTED_BY_HOST,
            e.code().as_str(),
            &e.to_string(),
        );
        let back: DlqRecord = serde_json::from_slice(&out.payload).expect("DLQ record is JSON");
        if back.raw_encoding == RawEncoding::Utf8 {
            assert_eq!(back.raw.as_bytes(), data);
        }
    }
});
