//! The rules of the `enrich` and `quality` plugins applied natively to a host `Event`,
//! from the same Rust functions the plugins export. One definition for the benchmark's
//! native baseline (`benches/pipeline.rs`) and the equivalence test
//! (`tests/equivalence.rs`), so the test proves the baseline is the same rules as the
//! WASM chain it is compared with.

use streamhost::decode::Event;

/// `enrich`: normalise the country, add `page_id` and `schema_version`.
pub fn enrich(e: &mut Event) {
    e.country = enrich::normalise_country(&e.country);
    if let Some(id) = enrich::page_id(&e.page_url) {
        e.attributes.push(("page_id".into(), id.to_string()));
    }
    e.attributes.push((
        "schema_version".into(),
        enrich::schema_version(e.device_type.is_some()).into(),
    ));
}

/// `quality`: non-negative user id, country on the allow-list.
pub fn judge(e: &Event, allowed: &[String]) -> Result<(), quality::Problem> {
    quality::check(e.user_id, &e.country, allowed)
}
