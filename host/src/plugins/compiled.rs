//! Compiled components kept on disk, so a plugin file seen before (after a restart, on
//! a rollback, or after `streamhost plugin check` on this machine) loads in about a
//! millisecond instead of a compile. Each artifact is named by the SHA-256 of the
//! `.wasm` and by the engine's compatibility hash, which covers the wasmtime version
//! and every setting that changes the code: another build of the host never loads it.

use std::hash::{Hash, Hasher};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

/// Where artifacts are kept when the config names no directory:
/// `$XDG_CACHE_HOME/streamhost/compiled`, else `$HOME/.cache/streamhost/compiled`.
pub fn default_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("streamhost").join("compiled"))
}

/// A directory of compiled components for one engine.
#[derive(Clone)]
pub struct CompiledCache {
    dir: PathBuf,
    engine: Engine,
    /// The engine's compatibility hash, as written into file names.
    engine_key: String,
}

impl std::fmt::Debug for CompiledCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledCache")
            .field("dir", &self.dir)
            .field("engine_key", &self.engine_key)
            .finish_non_exhaustive()
    }
}

/// The place of one `.wasm`'s compiled component in the cache (its bytes hashed once).
#[derive(Debug)]
pub struct Entry<'c> {
    cache: &'c CompiledCache,
    path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{dir}: {reason}")]
    Unusable { dir: String, reason: String },
}

impl CompiledCache {
    /// The cache in `dir` (created, readable and writable by this user only). A
    /// directory that others can write to is refused: its files are loaded as native code.
    pub fn open(dir: &Path, engine: &Engine) -> Result<Self, CacheError> {
        let unusable = |reason: String| CacheError::Unusable {
            dir: dir.display().to_string(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|e| unusable(format!("cannot create: {e}")))?;
        let meta = std::fs::metadata(dir).map_err(|e| unusable(e.to_string()))?;
        // The safety of loading from the cache rests on this: only this user can put
        // files here.
        let uid = rustix::process::getuid().as_raw();
        if meta.uid() != uid {
            return Err(unusable(format!(
                "owned by uid {}, not this user ({uid}); compiled plugins are not cached",
                meta.uid()
            )));
        }
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| unusable(format!("cannot make it private: {e}")))?;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Ok(Self {
            dir: dir.to_path_buf(),
            engine: engine.clone(),
            engine_key: format!("{:016x}", h.finish()),
        })
    }

    /// Where the component compiled from exactly `wasm` is kept.
    pub fn entry(&self, wasm: &[u8]) -> Entry<'_> {
        let digest = Sha256::digest(wasm);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        Entry {
            cache: self,
            path: self.dir.join(format!("{hex}-{}.cwasm", self.engine_key)),
        }
    }
}

impl Entry<'_> {
    /// The component, if it was kept.
    pub fn load(&self) -> Option<Component> {
        let path = &self.path;
        if !path.is_file() {
            return None;
        }
        match deserialize(&self.cache.engine, path) {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %format!("{e:#}"), "compiled plugin unreadable; compiling again");
                let _ = std::fs::remove_file(path);
                None
            }
        }
    }

    /// Keep `component`, compiled from this entry's bytes. Written to a temporary name
    /// and renamed, so a reader never sees half a file; a failure only costs a compile
    /// later.
    pub fn store(&self, component: &Component) {
        let path = &self.path;
        let written = component.serialize().and_then(|bytes| {
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, path)?;
            Ok(())
        });
        if let Err(e) = written {
            tracing::warn!(file = %path.display(), error = %format!("{e:#}"), "cannot keep the compiled plugin");
        }
    }
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: `Component::deserialize_file` runs the file's code as native code, so it
    // must be wasmtime's own output for this engine. The file is: it is named by this
    // engine's compatibility hash, and it lies in a directory that only this user can
    // write to (checked in `open`), where only `store` puts files. wasmtime also checks
    // the header (version, target, settings) and refuses a mismatch.
    unsafe { Component::deserialize_file(engine, path) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        Engine::new(&config).unwrap()
    }

    #[test]
    fn a_component_compiled_once_loads_from_the_cache_and_only_for_its_own_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let cache = CompiledCache::open(&dir.path().join("compiled"), &engine).unwrap();
        let wasm = wat::parse_str("(component (core module))").unwrap();
        assert!(cache.entry(&wasm).load().is_none());
        let component = Component::new(&engine, &wasm).unwrap();
        cache.entry(&wasm).store(&component);
        assert!(cache.entry(&wasm).load().is_some());
        let other = wat::parse_str("(component (core module (func)))").unwrap();
        assert!(cache.entry(&other).load().is_none());
        let files: Vec<_> = std::fs::read_dir(dir.path().join("compiled"))
            .unwrap()
            .collect();
        assert_eq!(files.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn a_damaged_artifact_is_dropped_and_compiled_again() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let cache = CompiledCache::open(dir.path(), &engine).unwrap();
        let wasm = wat::parse_str("(component)").unwrap();
        let entry = cache.entry(&wasm);
        entry.store(&Component::new(&engine, &wasm).unwrap());
        std::fs::write(&entry.path, b"not an artifact").unwrap();
        assert!(entry.load().is_none());
        assert!(!entry.path.exists());
    }

    #[test]
    fn the_directory_is_made_private() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        CompiledCache::open(dir.path(), &engine()).unwrap();
        let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn another_engine_configuration_does_not_share_artifacts() {
        let dir = tempfile::tempdir().unwrap();
        let a = engine();
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        let b = Engine::new(&config).unwrap();
        let wasm = wat::parse_str("(component)").unwrap();
        CompiledCache::open(dir.path(), &a)
            .unwrap()
            .entry(&wasm)
            .store(&Component::new(&a, &wasm).unwrap());
        assert!(CompiledCache::open(dir.path(), &b)
            .unwrap()
            .entry(&wasm)
            .load()
            .is_none());
    }
}
