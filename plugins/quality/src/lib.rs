//! Data-quality rules for the brief's events.
//!
//! * `invalid_user_id`: `user_id` must not be negative (the generator negates 5 % of ids).
//! * `invalid_country`: the country must be one of the ISO 3166-1 alpha-2 codes the
//!   product serves. `XX` and `ZZ` are user-assigned codes that the generator uses as
//!   garbage, so an allow-list (not a deny-list) is the rule: a new garbage code is
//!   rejected without a plugin change.
//!
//! The rules themselves are plain functions (`check`, in `rules.rs`, shared with the
//! compatibility builds in plugins/compat) so they are unit-tested natively; the plugin
//! is a thin [`Validator`] over them.

use streamhost_sdk::{export_validator, info, Event, Info, Validator, Verdict};

mod rules;
pub use rules::*;

/// The validator, holding the instance's allow-list (the default, or the manifest's
/// `allowed_countries`).
#[derive(Debug)]
pub struct Quality {
    allowed: AllowList,
}

impl Validator for Quality {
    const INFO: Info = info!["user_id", "country"];

    fn configure(settings: &streamhost_sdk::Settings) -> Result<Self, String> {
        let allowed = Settings::parse(settings.pairs())?.allowed_countries;
        Ok(Quality { allowed })
    }

    /// An absent field is judged as the 0.3 build judged its placeholder (user id 0,
    /// country ""), so both builds give every event the same verdict.
    fn check(&self, event: &Event) -> Verdict {
        let user_id = event.integer("user_id").unwrap_or(0);
        let country = event.text("country").unwrap_or("");
        match check(user_id, country, &self.allowed) {
            Ok(()) => Verdict::Accept,
            Err(problem) => Verdict::reject(problem.code(), problem.message()),
        }
    }
}

export_validator!(Quality);

#[cfg(test)]
mod tests {
    use super::*;
    use streamhost_sdk::testing::{self, json};

    /// A batch through the plugin as the host runs it: the same verdicts as `check`,
    /// codes and messages included, in event order.
    #[test]
    fn a_batch_is_judged_as_check_judges_each_event() {
        let events = [
            json!({"user_id": 1, "country": "US"}),
            json!({"user_id": -7, "country": "US"}),
            json!({"user_id": 2, "country": "XX"}),
            json!({"user_id": -1, "country": "ZZ"}),
            json!({"user_id": 3, "country": "BR"}),
            json!({"user_id": 4}),
        ];
        let batch = testing::batch(Quality::INFO.reads, &events);
        let answer = testing::run_validator::<Quality>(&[], &batch).unwrap();
        let got: Vec<_> = answer
            .rejections
            .iter()
            .map(|r| (r.event, r.code.as_str(), r.message.as_str()))
            .collect();
        let list = "CA, DE, FR, JP, UK, US";
        assert_eq!(
            got,
            [
                (1, "invalid_user_id", "user_id -7 is negative"),
                (
                    2,
                    "invalid_country",
                    &*format!("country \"XX\" is not on the allow-list ({list})")
                ),
                (3, "invalid_user_id", "user_id -1 is negative"),
                (
                    4,
                    "invalid_country",
                    &*format!("country \"BR\" is not on the allow-list ({list})")
                ),
                (
                    5,
                    "invalid_country",
                    &*format!("country \"\" is not on the allow-list ({list})")
                ),
            ]
        );
        assert!(answer.updates.is_empty());
        let answer = testing::run_validator::<Quality>(&[("allowed_countries", "BR")], &batch);
        let rejected: Vec<_> = answer.unwrap().rejections.iter().map(|r| r.event).collect();
        assert_eq!(rejected, [0, 1, 2, 3, 5]);
    }

    #[test]
    fn describes_itself_as_before_but_at_1_0() {
        let info = testing::describe_validator::<Quality>();
        assert_eq!(
            (info.name.as_str(), info.reads),
            ("quality", vec!["user_id".into(), "country".into()])
        );
        assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn settings_errors_are_the_0_3_builds() {
        let batch = testing::batch(Quality::INFO.reads, &[]);
        let run = |settings| testing::run_validator::<Quality>(settings, &batch).unwrap_err();
        assert_eq!(
            run(&[("alowed", "US")]),
            "unknown setting `alowed` (known: allowed_countries)"
        );
        assert_eq!(
            run(&[("allowed_countries", ","), ("x", "")]),
            "allowed_countries is empty: every event would be rejected"
        );
    }
}
