//! The plugin directory: every `*.wasm` file in it, in file-name order, is a chain member.
//!
//! Order by file name (`10-quality.wasm`, `20-enrich.wasm`) keeps deployment a matter of
//! copying files. Hidden files and editor/partial-copy leftovers are ignored.

use std::path::{Path, PathBuf};

use super::runtime::{LoadedPlugin, PluginError, PluginRuntime};

/// The `.wasm` files that make up the chain, sorted by file name.
pub fn plugin_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| is_plugin_file(path))
        .collect();
    files.sort();
    Ok(files)
}

/// `name.wasm`, not hidden (`.name.wasm.swp`, `.tmp-…`): partial writes must use another name.
pub fn is_plugin_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    !name.starts_with('.') && !name.starts_with('~') && name.ends_with(".wasm") && path.is_file()
}

/// Load every plugin file; the ones that fail are reported, not fatal.
pub fn load_all(
    runtime: &PluginRuntime,
    dir: &Path,
) -> std::io::Result<(Vec<LoadedPlugin>, Vec<PluginError>)> {
    let mut loaded = Vec::new();
    let mut failed = Vec::new();
    for file in plugin_files(dir)? {
        match runtime.load_file(&file) {
            Ok(plugin) => loaded.push(plugin),
            Err(error) => failed.push(error),
        }
    }
    Ok((loaded, failed))
}
