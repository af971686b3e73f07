//! A streamhost plugin to copy (docs/howto/write-a-rule.md has the details):
//!
//! 1. `cp -r plugins/template plugins/myrule`, rename the package in its Cargo.toml and
//!    add `"plugins/myrule"` to `members` in the root Cargo.toml;
//! 2. write `check` (an [`Enricher`](streamhost_sdk::Enricher) to change fields) and its
//!    test: `cargo test -p myrule`;
//! 3. `scripts/build-plugins` → `plugins/dist/myrule.wasm`, then
//!    `streamhost plugin test plugins/dist/myrule.wasm --input events.jsonl`;
//! 4. deploy: copy to a hidden name in the plugin directory, then rename.

use streamhost_sdk::{export_validator, info, Event, Info, Settings, Validator, Verdict};

#[derive(Debug)]
pub struct Template;

impl Validator for Template {
    /// The fields `check` looks at, and no more: the host sends only these.
    const INFO: Info = info!["event_type"];

    /// Manifest `[settings]`: refuse what you do not understand (`settings.only(&[..])`,
    /// typed values with `settings.parse_or("max", 10)?`).
    fn configure(settings: &Settings) -> Result<Self, String> {
        settings.none().map(|()| Template)
    }

    /// Accepts everything. Yours: `Verdict::reject("snake_case_code", "why")`.
    fn check(&self, _event: &Event) -> Verdict {
        Verdict::Accept
    }
}

export_validator!(Template);

#[cfg(test)]
mod tests {
    use super::*;
    use streamhost_sdk::testing::check;

    #[test]
    fn accepts_everything() {
        assert_eq!(
            check(&Template, r#"{"event_type": "page_view"}"#),
            Verdict::Accept
        );
    }
}
