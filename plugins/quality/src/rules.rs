//! The rules as plain functions: unit-tested natively, shared by the 1.0 plugin
//! (`lib.rs`) and the compatibility builds (`plugins/compat/quality-v0.3`, `-v0.2`), and
//! used by the host's benchmark and equivalence test as the native reference.

/// Countries accepted by default, sorted.
pub const ALLOWED_COUNTRIES: &[&str] = &["CA", "DE", "FR", "JP", "UK", "US"];

/// Settings from the manifest (`[settings]` in the plugin's `.toml`).
#[derive(Debug, PartialEq, Eq)]
pub struct Settings {
    /// `allowed_countries = "US,CA"`: replaces the default allow-list.
    pub allowed_countries: AllowList,
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
        Ok(Self {
            allowed_countries: AllowList::new(allowed),
        })
    }
}

/// The countries accepted, sorted, with the text a rejection quotes. The default is
/// empty: it accepts no country.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    codes: Vec<String>,
    /// The codes of up to [`KEY_BYTES`] bytes as [`key`]s, sorted: membership compares
    /// numbers, not strings (a string comparison is a call to a byte loop in WASM).
    keys: Vec<u64>,
    /// `CA, DE, FR`.
    listed: String,
}

/// The longest code [`key`] packs.
const KEY_BYTES: usize = 7;

/// A code of at most [`KEY_BYTES`] bytes as one number: its bytes, then its length.
/// Different codes get different numbers.
fn key(code: &str) -> Option<u64> {
    if code.len() > KEY_BYTES {
        return None;
    }
    let bytes = code.bytes().enumerate();
    let packed = bytes.fold(0, |k, (i, b)| k | u64::from(b) << (8 * (KEY_BYTES - i)));
    Some(packed | code.len() as u64)
}

impl AllowList {
    pub fn new(mut codes: Vec<String>) -> Self {
        codes.sort();
        codes.dedup();
        let mut keys: Vec<u64> = codes.iter().filter_map(|c| key(c)).collect();
        keys.sort_unstable();
        let listed = codes.join(", ");
        Self {
            codes,
            keys,
            listed,
        }
    }

    pub fn codes(&self) -> &[String] {
        &self.codes
    }

    #[inline]
    pub fn contains(&self, country: &str) -> bool {
        match key(country) {
            Some(k) => self.keys.binary_search(&k).is_ok(),
            None => self.codes.iter().any(|c| c == country),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Problem<'a> {
    NegativeUserId(i64),
    UnknownCountry(&'a str, &'a AllowList),
}

impl Problem<'_> {
    pub fn code(&self) -> &'static str {
        match self {
            Problem::NegativeUserId(_) => "invalid_user_id",
            Problem::UnknownCountry(..) => "invalid_country",
        }
    }

    /// For people reading the dead-letter queue. Written piece by piece into a buffer
    /// sized once: this runs for every rejected event.
    pub fn message(&self) -> String {
        match self {
            Problem::NegativeUserId(id) => {
                let mut message = String::with_capacity(40);
                message.push_str("user_id ");
                push_decimal(*id, &mut message);
                message.push_str(" is negative");
                message
            }
            Problem::UnknownCountry(country, allowed) => {
                let listed = &allowed.listed;
                let mut message = String::with_capacity(48 + country.len() + listed.len());
                message.push_str("country ");
                quote(country, &mut message);
                message.push_str(" is not on the allow-list (");
                message.push_str(listed);
                message.push(')');
                message
            }
        }
    }
}

impl std::fmt::Display for Problem<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

/// `n` in decimal, as `{n}` writes it, without the formatting machinery (a call
/// through `fmt::Write` costs the plugin more than the rest of its rule).
fn push_decimal(n: i64, out: &mut String) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        out.push('-');
    }
    out.extend(digits[at..].iter().map(|&d| char::from(d)));
}

/// `text` as `{:?}` writes it: in quotes, with escapes (printable ASCII needs none but
/// for `"` and `\`).
fn quote(text: &str, out: &mut String) {
    let plain = |b: u8| matches!(b, b' '..=b'~') && b != b'"' && b != b'\\';
    if text.bytes().all(plain) {
        out.push('"');
        out.push_str(text);
        out.push('"');
    } else {
        // Writing into a String cannot fail.
        let _ = std::fmt::Write::write_fmt(out, format_args!("{text:?}"));
    }
}

/// The first rule an event breaks, in a fixed order (user id, then country) so that
/// the DLQ code for an event that breaks both is deterministic.
#[inline]
pub fn check<'a>(
    user_id: i64,
    country: &'a str,
    allowed: &'a AllowList,
) -> Result<(), Problem<'a>> {
    if user_id < 0 {
        return Err(Problem::NegativeUserId(user_id));
    }
    if !allowed.contains(country) {
        return Err(Problem::UnknownCountry(country, allowed));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default() -> AllowList {
        Settings::parse(&[]).unwrap().allowed_countries
    }

    /// Codes that pack into one number and codes that do not, against their
    /// neighbours: a byte more or less, a byte different, a zero byte.
    #[test]
    fn membership_is_string_equality() {
        let codes = ["US", "U", "", "ABCDEFG", "ABCDEFGH", "Ü", "A\0"];
        let allowed = AllowList::new(codes.iter().map(|c| c.to_string()).collect());
        let probes = [
            "US",
            "U",
            "",
            "ABCDEFG",
            "ABCDEFGH",
            "Ü",
            "A\0",
            "US\0",
            "A",
            "\0",
            "UT",
            "ABCDEF",
            "ABCDEFGHI",
            "ABCDEFGX",
            "Ü ",
            "ü",
        ];
        for probe in probes {
            assert_eq!(allowed.contains(probe), codes.contains(&probe), "{probe:?}");
        }
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
        let allowed = default();
        let p = check(-7, "US", &allowed).unwrap_err();
        assert_eq!(p.code(), "invalid_user_id");
        assert_eq!(p.message(), "user_id -7 is negative");
        let p = check(1, "XX", &allowed).unwrap_err();
        let listed = "CA, DE, FR, JP, UK, US";
        assert_eq!(
            p.message(),
            format!("country \"XX\" is not on the allow-list ({listed})")
        );
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
    fn numbers_are_written_as_display_writes_them() {
        for n in [0, 7, -7, 10, -100, 1234567890, i64::MAX, i64::MIN] {
            let mut written = String::new();
            push_decimal(n, &mut written);
            assert_eq!(written, n.to_string());
        }
    }

    #[test]
    fn countries_are_quoted_as_debug_quotes_them() {
        for text in ["XX", "", " us", "a\"b", "a\\b", "\t", "\u{7f}", "ü", "~!"] {
            let mut quoted = String::new();
            quote(text, &mut quoted);
            assert_eq!(quoted, format!("{text:?}"));
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
        assert_eq!(s.allowed_countries.codes(), ["BR", "US"]);
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
