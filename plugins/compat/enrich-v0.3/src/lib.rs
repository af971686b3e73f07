//! `enrich` as it was as a WIT 0.3.0 plugin, built against the frozen
//! `wit/archive/0.3.0`, so the host's 0.3 path stays built and tested with an enricher.
//! Same rules as `enrich` (its rules file is `enrich`'s own):
//!
//! Enrichment, run before the quality rules (`10-enrich.wasm`, `20-quality.wasm`):
//!
//! * `country`: trimmed and upper-cased, so ` us` is judged as `US` by the quality rules;
//! * `page_id`: the number in `/page/N` (attribute), absent for other URLs;
//! * `schema_version`: `1` for events without `device_type` (before the producer's
//!   schema change), `2` after (attribute).
//!
//! `device_type` is deliberately left empty on old events: NULL says "the producer did
//! not send it", which a filled-in `unknown` would blur (docs/design.md, "Schema evolution").
//! This plugin never rejects.

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)] // the exports wit-bindgen generates
mod component {
    wit_bindgen::generate!({ path: "../../../wit/archive/0.3.0", world: "plugin" });

    use exports::streamhost::plugin::rules::{
        Answer, AttributeUpdate, Batch, Fields, Guest, Kind, PluginInfo, TextColumn, TextField,
        TextUpdate,
    };

    struct Enrich;

    /// Builds the column of one update: `events[k]` gets value k.
    #[derive(Default)]
    struct Column {
        events: Vec<u32>,
        text: String,
        ends: Vec<u32>,
    }

    impl Column {
        fn push(&mut self, event: usize, value: impl std::fmt::Display) {
            use std::fmt::Write;
            self.events.push(event as u32);
            // Formats straight into the column: no String per value.
            let _ = write!(self.text, "{value}");
            self.ends.push(self.text.len() as u32);
        }

        fn finish(self) -> (Vec<u32>, TextColumn) {
            let values = TextColumn {
                text: self.text,
                ends: self.ends,
            };
            (self.events, values)
        }
    }

    impl Guest for Enrich {
        fn describe() -> PluginInfo {
            PluginInfo {
                name: env!("CARGO_PKG_NAME").to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                kind: Kind::Enricher,
                // `device_type` only for its presence (schema_version).
                reads: Fields::COUNTRY | Fields::PAGE_URL | Fields::DEVICE_TYPE,
            }
        }

        fn configure(settings: Vec<(String, String)>) -> Result<(), String> {
            match settings.first() {
                None => Ok(()),
                Some((key, _)) => Err(format!("unknown setting `{key}`: this plugin takes none")),
            }
        }

        fn process(batch: Batch) -> Answer {
            let mut countries = Column::default();
            let mut page_ids = Column::default();
            let mut versions = Column::default();
            let (mut country_start, mut url_start) = (0, 0);
            let rows = batch
                .country
                .ends
                .iter()
                .zip(&batch.page_url.ends)
                .zip(&batch.device_type_present);
            for (event, ((&country_end, &url_end), &has_device_type)) in rows.enumerate() {
                let (country_end, url_end) = (country_end as usize, url_end as usize);
                let country = batch
                    .country
                    .text
                    .get(country_start..country_end)
                    .unwrap_or_default();
                let url = batch
                    .page_url
                    .text
                    .get(url_start..url_end)
                    .unwrap_or_default();
                (country_start, url_start) = (country_end, url_end);

                // Only real changes cross back: most countries arrive normalised.
                if !super::is_normalised(country) {
                    countries.push(event, super::normalise_country(country));
                }
                if let Some(id) = super::page_id(url) {
                    page_ids.push(event, id);
                }
                versions.push(event, super::schema_version(has_device_type));
            }
            let (country_events, country_values) = countries.finish();
            let mut attribute_updates = Vec::new();
            // In this order, as the 0.2 plugin added them: page_id, then schema_version.
            for (name, column) in [("page_id", page_ids), ("schema_version", versions)] {
                let (events, values) = column.finish();
                if !events.is_empty() {
                    attribute_updates.push(AttributeUpdate {
                        name: name.to_string(),
                        events,
                        values,
                    });
                }
            }
            Answer {
                rejections: Vec::new(),
                text_updates: vec![TextUpdate {
                    field: TextField::Country,
                    events: country_events,
                    values: country_values,
                }],
                number_updates: Vec::new(),
                attribute_updates,
            }
        }
    }

    export!(Enrich);
}

#[path = "../../../enrich/src/rules.rs"]
mod rules;
pub use rules::*;
