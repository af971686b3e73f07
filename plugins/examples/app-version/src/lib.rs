//! `app_version` must be `MAJOR.MINOR.PATCH`, digits only (`2.10.0`). No schema has the
//! field, so it arrives as text; an event without one is accepted.

use streamhost_sdk::{export_validator, info, Event, Info, Settings, Validator, Verdict};

#[derive(Debug)]
pub struct AppVersion;

impl Validator for AppVersion {
    const INFO: Info = info!["app_version"];

    fn configure(settings: &Settings) -> Result<Self, String> {
        settings.none().map(|()| AppVersion)
    }

    fn check(&self, event: &Event) -> Verdict {
        match event.text("app_version") {
            Some(v) if !is_version(v) => Verdict::reject(
                "invalid_app_version",
                format!("app_version {v:?} is not MAJOR.MINOR.PATCH (digits, e.g. 2.10.0)"),
            ),
            _ => Verdict::Accept,
        }
    }
}

/// Three parts, each one or more ASCII digits.
fn is_version(v: &str) -> bool {
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    v.split('.').map(digits).eq([true; 3])
}

export_validator!(AppVersion);

#[test]
fn judges_app_versions() {
    use streamhost_sdk::testing::check;
    let verdict = |v| check(&AppVersion, [("app_version", v)]);
    assert_eq!(verdict("2.10.0"), Verdict::Accept);
    assert_eq!(check(&AppVersion, "{}"), Verdict::Accept);
    for bad in ["2.10", "2.10.0.1", "v2.1.0", "1.2.3-beta", "1..3", ""] {
        assert_eq!(verdict(bad).code(), Some("invalid_app_version"), "{bad:?}");
    }
}
