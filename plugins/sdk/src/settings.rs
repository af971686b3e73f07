//! The manifest's `[settings]`, as the host passes them: string keys and values.

use std::fmt::Display;
use std::str::FromStr;

/// Settings with typed lookups whose errors say which key and value were wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pairs: Vec<(String, String)>,
}

impl Settings {
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Self { pairs }
    }

    /// The pairs in manifest order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The value of `key` (the last one if given twice).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `key` parsed as a `T`; `Ok(None)` when not set, an error naming the key and the
    /// value when it does not parse.
    pub fn parse<T>(&self, key: &str) -> Result<Option<T>, String>
    where
        T: FromStr,
        T::Err: Display,
    {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        value.trim().parse().map(Some).map_err(|e| {
            let wanted = std::any::type_name::<T>()
                .rsplit("::")
                .next()
                .unwrap_or("value");
            format!("setting `{key}` = {value:?} is not a valid {wanted}: {e}")
        })
    }

    /// As [`Settings::parse`], for a key that must be set: an error naming it when it
    /// is not, so a host refuses the plugin rather than run it unconfigured.
    pub fn require<T>(&self, key: &str) -> Result<T, String>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.parse(key)?.ok_or_else(|| {
            format!("setting `{key}` is required (set it in the manifest's [settings])")
        })
    }

    /// The comma-separated items of `key`, trimmed, empty ones left out (a manifest
    /// array `["a", "b"]` arrives as `"a,b"`); `None` when not set.
    pub fn list(&self, key: &str) -> Option<Vec<&str>> {
        self.get(key).map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .collect()
        })
    }

    /// As [`Settings::parse`], with a default for a key that is not set.
    pub fn parse_or<T>(&self, key: &str, default: T) -> Result<T, String>
    where
        T: FromStr,
        T::Err: Display,
    {
        Ok(self.parse(key)?.unwrap_or(default))
    }

    /// Refuses a key not in `known` (a typo would otherwise be silently ignored).
    pub fn only(&self, known: &[&str]) -> Result<(), String> {
        match self
            .pairs
            .iter()
            .find(|(k, _)| !known.contains(&k.as_str()))
        {
            None => Ok(()),
            Some((key, _)) if known.is_empty() => {
                Err(format!("unknown setting `{key}`: this plugin takes none"))
            }
            Some((key, _)) => Err(format!(
                "unknown setting `{key}` (known: {})",
                known.join(", ")
            )),
        }
    }

    /// Refuses any setting: for a plugin that takes none.
    pub fn none(&self) -> Result<(), String> {
        self.only(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        Settings::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn typed_lookups_name_the_key_and_value_they_refuse() {
        let s = settings(&[("max", " 5 "), ("ratio", "x"), ("max", "7")]);
        assert_eq!(s.parse::<u32>("max"), Ok(Some(7)));
        assert_eq!(s.parse_or::<u32>("min", 1), Ok(1));
        let err = s.parse::<f64>("ratio").unwrap_err();
        assert_eq!(
            err,
            "setting `ratio` = \"x\" is not a valid f64: invalid float literal"
        );
    }

    #[test]
    fn required_keys_and_lists() {
        let s = settings(&[("blocked", "a, b,,c"), ("max", "3")]);
        assert_eq!(s.require::<u32>("max"), Ok(3));
        assert_eq!(
            s.require::<u32>("min").unwrap_err(),
            "setting `min` is required (set it in the manifest's [settings])"
        );
        assert_eq!(s.list("blocked"), Some(vec!["a", "b", "c"]));
        assert_eq!(s.list("none"), None);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let s = settings(&[("max", "1"), ("mx", "2")]);
        assert_eq!(
            s.only(&["max", "min"]).unwrap_err(),
            "unknown setting `mx` (known: max, min)"
        );
        assert_eq!(
            s.none().unwrap_err(),
            "unknown setting `max`: this plugin takes none"
        );
        assert_eq!(settings(&[]).none(), Ok(()));
    }
}
