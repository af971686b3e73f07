//! Enrichment, run before the quality rules (`10-enrich.wasm`, `20-quality.wasm`):
//!
//! * `country`: trimmed and upper-cased, so ` us` is judged as `US` by the quality rules;
//! * `page_id`: the number in `/page/N` (text), absent for other URLs;
//! * `schema_version`: `1` for events without `device_type` (before the producer's
//!   schema change), `2` after (text).
//!
//! `device_type` is deliberately left empty on old events: NULL says "the producer did
//! not send it", which a filled-in `unknown` would blur (docs/design.md, "Schema evolution").
//! This plugin never rejects. The rules are plain functions (`rules.rs`, shared with
//! plugins/compat/enrich-v0.3); the plugin is a thin [`Enricher`] over them.

use streamhost_sdk::{export_enricher, info, Changes, Enricher, Event, Info, Settings, Verdict};

mod rules;
pub use rules::*;

#[derive(Debug)]
pub struct Enrich;

impl Enricher for Enrich {
    // `device_type` only for its presence (schema_version).
    const INFO: Info = info!["country", "page_url", "device_type"];

    fn configure(settings: &Settings) -> Result<Self, String> {
        settings.none().map(|()| Enrich)
    }

    /// An absent country or URL is read as "", as the 0.3 build read its placeholder.
    /// `page_id` and `schema_version` are text, as the 0.3 build's attributes were.
    fn enrich(&self, event: &Event, changes: &mut Changes) -> Verdict {
        let country = event.text("country").unwrap_or("");
        // Only real changes cross back: most countries arrive normalised.
        if !is_normalised(country) {
            changes.set_text("country", normalise_country(country));
        }
        if let Some(id) = page_id(event.text("page_url").unwrap_or("")) {
            changes.set_text("page_id", id);
        }
        changes.set_text("schema_version", schema_version(event.has("device_type")));
        Verdict::Accept
    }
}

export_enricher!(Enrich);

#[cfg(test)]
mod tests {
    use super::*;
    use streamhost_sdk::testing::{self, json};

    #[test]
    fn each_event_gets_what_the_0_3_build_gave_it() {
        let enrich = |event| testing::enrich(&Enrich, event);
        let accepted = |changes| (Verdict::Accept, changes);
        assert_eq!(
            enrich(json!({"country": " us", "page_url": "/page/42", "device_type": "mobile"})),
            accepted(json!({"country": "US", "page_id": "42", "schema_version": "2"}))
        );
        assert_eq!(
            enrich(json!({"country": "DE", "page_url": "/about", "device_type": null})),
            accepted(json!({"schema_version": "1"}))
        );
        assert_eq!(enrich(json!({})), accepted(json!({"schema_version": "1"})));
    }

    #[test]
    fn a_batch_answers_one_text_update_per_field() {
        let events = [
            json!({"country": "US", "page_url": "/page/1"}),
            json!({"country": "fr ", "page_url": "/x", "device_type": "tv"}),
            json!({"country": "JP", "page_url": "/page/7", "device_type": ""}),
        ];
        let batch = testing::batch(Enrich::INFO.reads, &events);
        let answer = testing::run_enricher::<Enrich>(&[], &batch).unwrap();
        assert!(answer.rejections.is_empty());
        let updates: Vec<_> = answer
            .updates
            .iter()
            .map(|u| (u.field.as_str(), u.events.clone()))
            .collect();
        // schema_version for every event, in event order; the others only where changed.
        assert_eq!(
            updates,
            [
                ("page_id", vec![0, 2]),
                ("schema_version", vec![0, 1, 2]),
                ("country", vec![1])
            ]
        );
        let versions: Vec<_> = (0..3)
            .map(|e| testing::changes(&answer, e)["schema_version"].clone())
            .collect();
        assert_eq!(versions, ["1", "2", "2"]);
        assert_eq!(testing::changes(&answer, 1)["country"], "FR");
    }

    #[test]
    fn takes_no_settings() {
        let batch = testing::batch(Enrich::INFO.reads, &[]);
        let err = testing::run_enricher::<Enrich>(&[("x", "1")], &batch).unwrap_err();
        assert_eq!(err, "unknown setting `x`: this plugin takes none");
    }
}
