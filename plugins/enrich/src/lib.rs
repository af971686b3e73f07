//! Enrichment, run before the quality rules (`10-enrich.wasm`, `20-quality.wasm`):
//!
//! * `country`: trimmed and upper-cased, so ` us` is judged as `US` by the quality rules;
//! * `page_id`: the number in `/page/N` (attribute), absent for other URLs;
//! * `schema_version`: `1` for events without `device_type` (before the producer's
//!   schema change), `2` after (attribute).
//!
//! `device_type` is deliberately left empty on old events: NULL says "the producer did
//! not send it", which a filled-in `unknown` would blur (docs/plugins.md).
//! This plugin never rejects.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "../../wit", world: "plugin" });

    use exports::streamhost::plugin::rules::{Event, Guest, PluginInfo, Verdict};

    struct Enrich;

    impl Guest for Enrich {
        fn describe() -> PluginInfo {
            PluginInfo {
                name: env!("CARGO_PKG_NAME").to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
            }
        }

        fn configure(settings: Vec<(String, String)>) -> Result<(), String> {
            match settings.first() {
                None => Ok(()),
                Some((key, _)) => Err(format!("unknown setting `{key}`: this plugin takes none")),
            }
        }

        fn process(batch: Vec<Event>) -> Vec<Verdict> {
            batch
                .into_iter()
                .map(|mut e| {
                    e.country = super::normalise_country(&e.country);
                    if let Some(id) = super::page_id(&e.page_url) {
                        e.attributes.push(("page_id".into(), id.to_string()));
                    }
                    let version = super::schema_version(e.device_type.is_some());
                    e.attributes.push(("schema_version".into(), version.into()));
                    Verdict::Accept(e)
                })
                .collect()
        }
    }

    export!(Enrich);
}

pub fn normalise_country(country: &str) -> String {
    country.trim().to_ascii_uppercase()
}

/// `/page/42` → 42.
pub fn page_id(url: &str) -> Option<u32> {
    url.strip_prefix("/page/")?.parse().ok()
}

pub fn schema_version(has_device_type: bool) -> &'static str {
    if has_device_type {
        "2"
    } else {
        "1"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_country_codes() {
        assert_eq!(normalise_country(" us "), "US");
        assert_eq!(normalise_country("De"), "DE");
        assert_eq!(normalise_country("XX"), "XX");
    }

    #[test]
    fn derives_page_ids_only_from_page_urls() {
        assert_eq!(page_id("/page/42"), Some(42));
        assert_eq!(page_id("/page/"), None);
        assert_eq!(page_id("/pages/1"), None);
        assert_eq!(page_id("/page/-1"), None);
    }

    #[test]
    fn schema_version_follows_device_type() {
        assert_eq!(schema_version(false), "1");
        assert_eq!(schema_version(true), "2");
    }
}
