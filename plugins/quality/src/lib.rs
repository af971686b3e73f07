//! Data-quality rules for the brief's events.
//!
//! * `invalid_user_id`: `user_id` must not be negative (the generator negates 5 % of ids).
//! * `invalid_country`: the country must be one of the ISO 3166-1 alpha-2 codes the
//!   product serves. `XX` and `ZZ` are user-assigned codes that the generator uses as
//!   garbage, so an allow-list (not a deny-list) is the rule: a new garbage code is
//!   rejected without a plugin change.
//!
//! The rules themselves are plain functions (`check`) so they are unit-tested natively;
//! the component glue is a thin layer over them.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "../../wit", world: "plugin" });

    use exports::streamhost::plugin::rules::{Event, Guest, PluginInfo, Rejection, Verdict};

    struct Quality;

    impl Guest for Quality {
        fn describe() -> PluginInfo {
            PluginInfo {
                name: env!("CARGO_PKG_NAME").to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
            }
        }

        fn process(batch: Vec<Event>) -> Vec<Verdict> {
            batch
                .into_iter()
                .map(|event| match super::check(event.user_id, &event.country) {
                    Ok(()) => Verdict::Accept(event),
                    Err(problem) => Verdict::Reject(Rejection {
                        code: problem.code().to_string(),
                        message: problem.to_string(),
                    }),
                })
                .collect()
        }
    }

    export!(Quality);
}

/// Countries this deployment accepts. Sorted, so membership is a binary search.
pub const ALLOWED_COUNTRIES: &[&str] = &["CA", "DE", "FR", "JP", "UK", "US"];

#[derive(Debug, PartialEq, Eq)]
pub enum Problem {
    NegativeUserId(i64),
    UnknownCountry(String),
}

impl Problem {
    pub fn code(&self) -> &'static str {
        match self {
            Problem::NegativeUserId(_) => "invalid_user_id",
            Problem::UnknownCountry(_) => "invalid_country",
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::NegativeUserId(id) => write!(f, "user_id {id} is negative"),
            Problem::UnknownCountry(c) => write!(
                f,
                "country {c:?} is not on the allow-list ({})",
                ALLOWED_COUNTRIES.join(", ")
            ),
        }
    }
}

/// The first rule an event breaks, in a fixed order (user id, then country) so that
/// the DLQ code for an event that breaks both is deterministic.
pub fn check(user_id: i64, country: &str) -> Result<(), Problem> {
    if user_id < 0 {
        return Err(Problem::NegativeUserId(user_id));
    }
    if ALLOWED_COUNTRIES.binary_search(&country).is_err() {
        return Err(Problem::UnknownCountry(country.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_is_sorted_for_binary_search() {
        let mut sorted = ALLOWED_COUNTRIES.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, ALLOWED_COUNTRIES);
    }

    #[test]
    fn accepts_every_valid_country_and_user_zero() {
        for c in ALLOWED_COUNTRIES {
            assert_eq!(check(0, c), Ok(()));
            assert_eq!(check(1000, c), Ok(()));
        }
    }

    #[test]
    fn rejects_negative_user_id_with_its_code() {
        let p = check(-7, "US").unwrap_err();
        assert_eq!(p.code(), "invalid_user_id");
        assert!(p.to_string().contains("-7"));
        assert_eq!(check(i64::MIN, "US").unwrap_err().code(), "invalid_user_id");
    }

    #[test]
    fn rejects_generator_garbage_and_near_misses() {
        for c in ["XX", "ZZ", "", "us", "USA", "U", " US", "ÜS"] {
            assert_eq!(check(1, c).unwrap_err().code(), "invalid_country", "{c:?}");
        }
    }

    #[test]
    fn user_id_is_checked_before_country() {
        assert_eq!(check(-1, "XX").unwrap_err().code(), "invalid_user_id");
    }
}
