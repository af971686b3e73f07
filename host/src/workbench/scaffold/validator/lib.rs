//! {{name}}: a streamhost rule. It rejects an event whose `page_url` is one of the
//! values of the required setting `blocked`. Make it yours: change `FIELD` and `check`,
//! then `./check.sh` (README.md).

use streamhost_sdk::{export_validator, info, Event, Info, Settings, Validator, Verdict};

/// The field the rule reads: the host sends a plugin only the fields it names.
const FIELD: &str = "page_url";

#[derive(Debug)]
pub struct Rule {
    blocked: Vec<String>,
}

impl Validator for Rule {
    const INFO: Info = info![FIELD];

    /// The manifest's `[settings]`, once per instance: an error refuses the plugin, and
    /// the host (or `streamhost plugin check`) prints it.
    fn configure(settings: &Settings) -> Result<Self, String> {
        settings.only(&["blocked"])?;
        let blocked = settings
            .list("blocked")
            .ok_or("setting `blocked` is required: the values of `page_url` to reject")?;
        Ok(Rule {
            blocked: blocked.into_iter().map(String::from).collect(),
        })
    }

    /// `Verdict::reject(code, message)`: the code is snake_case and stable (dashboards
    /// group by it), the message is for people reading the dead-letter queue.
    fn check(&self, event: &Event) -> Verdict {
        match event.text(FIELD) {
            Some(value) if self.blocked.iter().any(|b| b == value) => {
                Verdict::reject("blocked_value", format!("{FIELD} {value:?} is blocked"))
            }
            _ => Verdict::Accept,
        }
    }
}

export_validator!(Rule);

#[cfg(test)]
mod tests {
    use super::*;
    use streamhost_sdk::testing::{check, settings};

    #[test]
    fn rejects_blocked_values_only() {
        let rule = Rule::configure(&settings(&[("blocked", "/spam,/ads")])).unwrap();
        assert_eq!(check(&rule, [(FIELD, "/spam")]).code(), Some("blocked_value"));
        assert_eq!(check(&rule, [(FIELD, "/home")]), Verdict::Accept);
        assert_eq!(check(&rule, "{}"), Verdict::Accept);
    }

    #[test]
    fn the_blocklist_is_required() {
        let err = Rule::configure(&settings(&[])).unwrap_err();
        assert!(err.contains("`blocked` is required"), "{err}");
    }
}
