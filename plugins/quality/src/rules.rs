//! The rules as plain functions: unit-tested natively, shared by the 1.0 plugin
//! (`lib.rs`) and the compatibility builds (`plugins/compat/quality-v0.3`, `-v0.2`), and
//! used by the host's benchmark and equivalence test as the native reference.

/// Countries accepted by default. Sorted, so membership is a binary search.
pub const ALLOWED_COUNTRIES: &[&str] = &["CA", "DE", "FR", "JP", "UK", "US"];

/// Settings from the manifest (`[settings]` in the plugin's `.toml`).
#[derive(Debug, PartialEq, Eq)]
pub struct Settings {
    /// `allowed_countries = "US,CA"`: replaces the default allow-list.
    pub allowed_countries: Vec<String>,
}

impl Settings {
    pub fn parse(settings: &[(String, String)]) -> Result<Self, String> {
        let mut allowed: Vec<String> = ALLOWED_COUNTRIES.iter().map(|c| c.to_string()).collect();
        for (key, value) in settings {
            match key.as_str() {
                "allowed_countries" => {
                    allowed = value
                        .split(',')
                        .map(|c| c.trim().to_string())
                        .filter(|c| !c.is_empty())
                        .collect();
                    if allowed.is_empty() {
                        return Err(
                            "allowed_countries is empty: every event would be rejected".into()
                        );
                    }
                }
                other => {
                    return Err(format!(
                        "unknown setting `{other}` (known: allowed_countries)"
                    ))
                }
            }
        }
        allowed.sort();
        allowed.dedup();
        Ok(Self {
            allowed_countries: allowed,
        })
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Problem {
    NegativeUserId(i64),
    UnknownCountry(String, String),
}

impl Problem {
    pub fn code(&self) -> &'static str {
        match self {
            Problem::NegativeUserId(_) => "invalid_user_id",
            Problem::UnknownCountry(..) => "invalid_country",
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::NegativeUserId(id) => write!(f, "user_id {id} is negative"),
            Problem::UnknownCountry(c, allowed) => {
                write!(f, "country {c:?} is not on the allow-list ({allowed})")
            }
        }
    }
}

/// The first rule an event breaks, in a fixed order (user id, then country) so that
/// the DLQ code for an event that breaks both is deterministic.
/// `allowed` must be sorted ([`Settings::parse`] sorts it).
pub fn check(user_id: i64, country: &str, allowed: &[String]) -> Result<(), Problem> {
    if user_id < 0 {
        return Err(Problem::NegativeUserId(user_id));
    }
    if allowed
        .binary_search_by(|c| c.as_str().cmp(country))
        .is_err()
    {
        return Err(Problem::UnknownCountry(
            country.to_string(),
            allowed.join(", "),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default() -> Vec<String> {
        Settings::parse(&[]).unwrap().allowed_countries
    }

    #[test]
    fn allow_list_is_sorted_for_binary_search() {
        let mut sorted = ALLOWED_COUNTRIES.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, ALLOWED_COUNTRIES);
    }

    #[test]
    fn accepts_every_valid_country_and_user_zero() {
        for c in ALLOWED_COUNTRIES {
            assert_eq!(check(0, c, &default()), Ok(()));
            assert_eq!(check(1000, c, &default()), Ok(()));
        }
    }

    #[test]
    fn rejects_negative_user_id_with_its_code() {
        let p = check(-7, "US", &default()).unwrap_err();
        assert_eq!(p.code(), "invalid_user_id");
        assert!(p.to_string().contains("-7"));
        assert_eq!(
            check(i64::MIN, "US", &default()).unwrap_err().code(),
            "invalid_user_id"
        );
    }

    #[test]
    fn rejects_generator_garbage_and_near_misses() {
        for c in ["XX", "ZZ", "", "us", "USA", "U", " US", "ÜS"] {
            assert_eq!(
                check(1, c, &default()).unwrap_err().code(),
                "invalid_country",
                "{c:?}"
            );
        }
    }

    #[test]
    fn user_id_is_checked_before_country() {
        assert_eq!(
            check(-1, "XX", &default()).unwrap_err().code(),
            "invalid_user_id"
        );
    }

    #[test]
    fn settings_replace_the_allow_list_and_refuse_nonsense() {
        let s = Settings::parse(&[("allowed_countries".into(), " US, BR ,".into())]).unwrap();
        assert_eq!(s.allowed_countries, ["BR", "US"]);
        assert_eq!(check(1, "BR", &s.allowed_countries), Ok(()));
        assert_eq!(
            check(1, "DE", &s.allowed_countries).unwrap_err().code(),
            "invalid_country"
        );
        assert!(Settings::parse(&[("allowed_countries".into(), ",".into())]).is_err());
        let err = Settings::parse(&[("alowed".into(), "US".into())]).unwrap_err();
        assert!(err.contains("alowed"), "{err}");
    }
}
