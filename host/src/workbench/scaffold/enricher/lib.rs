//! {{name}}: a streamhost enrichment. It adds `page_section`, the first segment of
//! `page_url` (`/page/66` → `page`), or the required setting `fallback` when the URL has
//! none. Make it yours: change the fields and `enrich`, then `./check.sh` (README.md).

use streamhost_sdk::{export_enricher, info, Changes, Enricher, Event, Info, Settings, Verdict};

/// The field the rule reads: the host sends a plugin only the fields it names.
const FIELD: &str = "page_url";
/// The field it adds (a field of the event schema keeps its type; a new one is text).
const ADDED: &str = "page_section";

#[derive(Debug)]
pub struct Rule {
    fallback: String,
}

impl Enricher for Rule {
    const INFO: Info = info![FIELD];

    /// The manifest's `[settings]`, once per instance: an error refuses the plugin, and
    /// the host (or `streamhost plugin check`) prints it.
    fn configure(settings: &Settings) -> Result<Self, String> {
        settings.only(&["fallback"])?;
        Ok(Rule {
            fallback: settings.require("fallback")?,
        })
    }

    /// Set fields with `changes.set_text` / `set_integer` / `set_float` / `set_boolean`;
    /// an enricher may also reject, as a validator does.
    fn enrich(&self, event: &Event, changes: &mut Changes) -> Verdict {
        let url = event.text(FIELD).unwrap_or("");
        match url.split('/').find(|segment| !segment.is_empty()) {
            Some(section) => changes.set_text(ADDED, section),
            None => changes.set_text(ADDED, self.fallback.as_str()),
        }
        Verdict::Accept
    }
}

export_enricher!(Rule);

#[cfg(test)]
mod tests {
    use super::*;
    use streamhost_sdk::testing::{enrich, settings};

    #[test]
    fn adds_the_section_or_the_fallback() {
        let rule = Rule::configure(&settings(&[("fallback", "home")])).unwrap();
        let (_, changes) = enrich(&rule, [(FIELD, "/page/66")]);
        assert_eq!(changes[ADDED], "page");
        let (_, changes) = enrich(&rule, [(FIELD, "/")]);
        assert_eq!(changes[ADDED], "home");
    }

    #[test]
    fn the_fallback_is_required() {
        let err = Rule::configure(&settings(&[])).unwrap_err();
        assert!(err.contains("`fallback` is required"), "{err}");
    }
}
