//! The rules as plain functions: unit-tested natively, shared by the 1.0 plugin
//! (`lib.rs`) and the 0.3 compatibility fixture (`plugins/compat/enrich-v0.3`), and used
//! by the host's benchmark and equivalence test as the native reference.

pub fn normalise_country(country: &str) -> String {
    country.trim().to_ascii_uppercase()
}

/// Whether [`normalise_country`] would leave `country` as it is (checked without
/// allocating: most countries arrive normalised).
pub fn is_normalised(country: &str) -> bool {
    // Printable ASCII at both ends is not whitespace, so `trim` would keep the text;
    // anything else (rare) asks `trim`, which knows Unicode's whitespace.
    let printable = |b: Option<&u8>| b.is_some_and(|b| matches!(b, b'!'..=b'~'));
    let bytes = country.as_bytes();
    let trimmed = bytes.is_empty()
        || (printable(bytes.first()) && printable(bytes.last()))
        || country.trim().len() == country.len();
    trimmed && !bytes.iter().any(u8::is_ascii_lowercase)
}

/// `/page/42` → 42.
pub fn page_id(url: &str) -> Option<u32> {
    // A fixed-size comparison, not a call to a byte loop in WASM.
    let (prefix, _) = url.as_bytes().split_first_chunk::<6>()?;
    if prefix != b"/page/" {
        return None;
    }
    url.get(prefix.len()..)?.parse().ok()
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
    fn is_normalised_agrees_with_normalise_country() {
        for c in [
            "US",
            " us",
            "us",
            "De",
            "",
            " ",
            "XX ",
            "ÜS",
            "üs",
            "U S",
            "\tUS",
            "us\u{a0}",
            "\u{a0}US",
            "\u{b}US",
            "US\u{3000}",
            "~!",
            "\u{7f}US",
        ] {
            assert_eq!(is_normalised(c), normalise_country(c) == c, "{c:?}");
        }
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
