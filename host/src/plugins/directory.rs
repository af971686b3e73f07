//! The plugin directory: every `NAME.wasm` in it is a chain member, with an optional
//! manifest `NAME.toml` beside it:
//!
//! ```toml
//! order = 10          # chain position (lower first; default 100, then file name)
//! enabled = true      # false: loaded and checked, but not run
//! required = true     # when its circuit breaker opens: true → events to the DLQ, false → skipped
//! [settings]          # passed to the plugin's `configure` (WIT 0.2+) as strings
//! allowed_countries = ["US", "CA"]   # → "US,CA"; numbers and booleans as written
//! ```
//!
//! Hidden files (`.name.wasm.tmp`) are ignored: deploy by writing a hidden temporary
//! file and renaming it, which is atomic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Toml};
use figment::Figment;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

pub const DEFAULT_ORDER: i64 = 100;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(default)]
    pub order: Option<i64>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "yes")]
    pub required: bool,
    #[serde(default)]
    pub settings: BTreeMap<String, Setting>,
}

/// A manifest setting in the form the contract passes it: a string. A TOML string is
/// passed as it is; an integer, float or boolean as TOML writes it (`10`, `0.5`,
/// `true`); an array of those joined with commas (`["US", "CA"]` → `"US,CA"`). A table,
/// a nested array, or an array element that itself holds a comma is refused, saying
/// what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting(pub String);

impl<'de> Deserialize<'de> for Setting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SettingVisitor { in_array: false })
    }
}

const SETTING_FORMS: &str = "a string, a number, a boolean, or an array of those \
     (passed to the plugin comma-joined)";

struct SettingVisitor {
    in_array: bool,
}

impl<'de> Visitor<'de> for SettingVisitor {
    type Value = Setting;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        if self.in_array {
            f.write_str("a string, a number or a boolean")
        } else {
            f.write_str(SETTING_FORMS)
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Setting, E> {
        if self.in_array && v.contains(',') {
            return Err(E::custom(format!(
                "the array element {v:?} holds a comma, which would split it in two: \
                 write the whole setting as one string instead"
            )));
        }
        Ok(Setting(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Setting, E> {
        self.visit_str(&v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Setting, E> {
        Ok(Setting(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Setting, E> {
        Ok(Setting(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Setting, E> {
        Ok(Setting(v.to_string()))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Setting, E> {
        Ok(Setting(v.to_string()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Setting, A::Error> {
        if self.in_array {
            return Err(de::Error::custom(format!(
                "an array inside an array is not a setting: write {SETTING_FORMS}"
            )));
        }
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(InArray)? {
            items.push(item.0);
        }
        Ok(Setting(items.join(",")))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, _map: A) -> Result<Setting, A::Error> {
        Err(de::Error::custom(format!(
            "a table is not a setting: write {SETTING_FORMS}"
        )))
    }
}

/// An array element of a setting.
struct InArray;

impl<'de> de::DeserializeSeed<'de> for InArray {
    type Value = Setting;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Setting, D::Error> {
        d.deserialize_any(SettingVisitor { in_array: true })
    }
}

fn yes() -> bool {
    true
}

impl Default for Manifest {
    fn default() -> Self {
        Self {
            order: None,
            enabled: true,
            required: true,
            settings: BTreeMap::new(),
        }
    }
}

impl Manifest {
    pub fn order(&self) -> i64 {
        self.order.unwrap_or(DEFAULT_ORDER)
    }

    pub fn settings(&self) -> Vec<(String, String)> {
        self.settings
            .iter()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect()
    }
}

/// The manifest for `wasm` (`NAME.toml` beside `NAME.wasm`): its text, if any, and the
/// parsed manifest or a message naming the file and the problem.
pub fn manifest_for(wasm: &Path) -> (Option<String>, Result<Manifest, String>) {
    manifest_at(&wasm.with_extension("toml"))
}

/// The manifest in the file `path`, as [`manifest_for`]: no text (and the defaults) when
/// there is no such file.
pub fn manifest_at(path: &Path) -> (Option<String>, Result<Manifest, String>) {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return (None, Ok(Manifest::default()))
        }
        // A manifest that is there but cannot be read is not "no manifest": running the
        // plugin with defaults could drop its settings or make it required or not.
        Err(e) => {
            return (
                Some(format!("unreadable: {e}")),
                Err(format!("{}: cannot read: {e}", path.display())),
            )
        }
    };
    let parsed = Figment::from(Toml::string(&text))
        .extract::<Manifest>()
        .map_err(|e| format!("{}: {}", path.display(), manifest_error(e)));
    (Some(text), parsed)
}

/// A manifest error as `key.path: what`, without figment's profile prefix
/// (`default.settings.x`), every error if there are several.
fn manifest_error(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| match e.path.is_empty() {
            true => e.kind.to_string(),
            false => format!("{}: {}", e.path.join("."), e.kind),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The `.wasm` files of the directory, sorted by file name.
pub fn plugin_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| is_plugin_file(path))
        .collect();
    files.sort();
    Ok(files)
}

/// `name.wasm`, not hidden (`.name.wasm.swp`, `.tmp-…`) and not an editor backup.
pub fn is_plugin_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    !name.starts_with('.') && !name.starts_with('~') && name.ends_with(".wasm") && path.is_file()
}

/// Whether a change to `path` can matter to the chain (a plugin or a manifest).
pub fn is_relevant(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    // `..data` and its siblings: a Kubernetes ConfigMap volume swaps its files at once
    // by renaming the `..data` symlink their names point through.
    name.starts_with("..")
        || (!name.starts_with('.') && (name.ends_with(".wasm") || name.ends_with(".toml")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignores_hidden_temporary_and_other_files() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "20-b.wasm",
            "10-a.wasm",
            ".10-a.wasm.tmp",
            ".x.wasm",
            "notes.txt",
            "~c.wasm",
            "10-a.toml",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let names: Vec<String> = plugin_files(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["10-a.wasm", "20-b.wasm"]);
    }

    #[test]
    fn a_configmap_swap_is_relevant_other_hidden_names_are_not() {
        for (name, relevant) in [
            ("20-a.wasm", true),
            ("20-a.toml", true),
            ("..data", true),
            ("..data_tmp", true),
            ("..2026_12_07_10_00_00.123", true),
            (".20-a.wasm.tmp", false),
            ("notes.txt", false),
        ] {
            assert_eq!(is_relevant(Path::new(name)), relevant, "{name}");
        }
    }

    #[test]
    fn manifest_defaults_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("q.wasm");
        assert_eq!(manifest_for(&wasm).1, Ok(Manifest::default()));
        std::fs::write(
            dir.path().join("q.toml"),
            "order = 5\nrequired = false\n[settings]\nallowed = \"US\"\n",
        )
        .unwrap();
        let m = manifest_for(&wasm).1.unwrap();
        assert_eq!((m.order(), m.enabled, m.required), (5, true, false));
        assert_eq!(
            m.settings(),
            vec![("allowed".to_string(), "US".to_string())]
        );
        // Numbers, booleans and arrays reach the plugin in their documented string form.
        std::fs::write(
            dir.path().join("q.toml"),
            "[settings]\nlist = [\"US\", \"CA\", 3]\nmax = 10\nratio = 0.5\nstrict = true\n",
        )
        .unwrap();
        let m = manifest_for(&wasm).1.unwrap();
        let pairs: Vec<(&str, &str)> = m
            .settings
            .iter()
            .map(|(k, v)| (k.as_str(), v.0.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("list", "US,CA,3"),
                ("max", "10"),
                ("ratio", "0.5"),
                ("strict", "true")
            ]
        );
        // What cannot be passed as a string says what to write, and where (no profile).
        for (text, says) in [
            (
                "[settings.sub]\na = \"1\"\n",
                "settings.sub: a table is not a setting: write a string",
            ),
            ("[settings]\nx = [[\"a\"]]\n", "an array inside an array"),
            ("[settings]\nx = [\"a,b\", \"c\"]\n", "holds a comma"),
        ] {
            std::fs::write(dir.path().join("q.toml"), text).unwrap();
            let err = manifest_for(&wasm).1.unwrap_err();
            assert!(
                err.contains(says) && !err.contains("default."),
                "{text}: {err}"
            );
        }
        std::fs::write(dir.path().join("q.toml"), "ordr = 5\n").unwrap();
        let err = manifest_for(&wasm).1.unwrap_err();
        assert!(err.contains("q.toml") && err.contains("ordr"), "{err}");
        // There but unreadable (not UTF-8 here): an error, never the defaults.
        std::fs::write(dir.path().join("q.toml"), b"order = \xff\n").unwrap();
        let err = manifest_for(&wasm).1.unwrap_err();
        assert!(err.contains("q.toml: cannot read"), "{err}");
    }
}
