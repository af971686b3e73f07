//! Any bytes through the decoder, and the DLQ record built for them: never a panic,
//! and the DLQ record always carries the payload back losslessly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamhost::decode::decode;
use streamhost::route::{self, Stage};
use streamhost::source::SourceRecord;

fuzz_target!(|data: &[u8]| {
    let result = decode(data, 1 << 20);
    if let Err(e) = &result {
        let record = SourceRecord { partition: 0, offset: 0, timestamp_ms: 0, payload: data.to_vec() };
        let out = route::dlq(&record, "my_events", Stage::Decode, "host", e.code(), &e.to_string());
        let v: serde_json::Value = serde_json::from_slice(&out.payload).expect("DLQ record is JSON");
        if v["raw_encoding"] == "utf8" {
            assert_eq!(v["raw"].as_str().expect("raw").as_bytes(), data);
        }
    }
});
