//! The plugin directory: every `NAME.wasm` in it is a chain member, with an optional
//! manifest `NAME.toml` beside it:
//!
//! ```toml
//! order = 10          # chain position (lower first; default 100, then file name)
//! enabled = true      # false: loaded and checked, but not run
//! required = true     # when its circuit breaker opens: true → events to the DLQ, false → skipped
//! [settings]          # strings passed to the plugin's `configure` (WIT 0.2+)
//! allowed_countries = "US,CA"
//! ```
//!
//! Hidden files (`.name.wasm.tmp`) are ignored: deploy by writing a hidden temporary
//! file and renaming it, which is atomic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Toml};
use figment::Figment;
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
    pub settings: BTreeMap<String, String>,
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
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// The manifest for `wasm` (`NAME.toml` beside `NAME.wasm`): its text, if any, and the
/// parsed manifest or a message naming the file and the problem.
pub fn manifest_for(wasm: &Path) -> (Option<String>, Result<Manifest, String>) {
    let path = wasm.with_extension("toml");
    let text = match std::fs::read_to_string(&path) {
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
        .map_err(|e| format!("{}: {e}", path.display()));
    (Some(text), parsed)
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
    !name.starts_with('.') && (name.ends_with(".wasm") || name.ends_with(".toml"))
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
        std::fs::write(dir.path().join("q.toml"), "ordr = 5\n").unwrap();
        let err = manifest_for(&wasm).1.unwrap_err();
        assert!(err.contains("q.toml") && err.contains("ordr"), "{err}");
        // There but unreadable (not UTF-8 here): an error, never the defaults.
        std::fs::write(dir.path().join("q.toml"), b"order = \xff\n").unwrap();
        let err = manifest_for(&wasm).1.unwrap_err();
        assert!(err.contains("q.toml: cannot read"), "{err}");
    }
}
