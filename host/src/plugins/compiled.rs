//! Compiled components kept on disk, so a plugin file seen before (after a restart, on
//! a rollback, or after `streamhost plugin check` on this machine) loads in about a
//! millisecond instead of a compile. Each artifact is named by the SHA-256 of the
//! `.wasm` and by the engine's compatibility hash, which covers the wasmtime version
//! and every setting that changes the code: another build of the host never loads it.
//!
//! An artifact is loaded as native code, so the cache trusts nothing it has not
//! checked: every directory on its path must be safe from other users (as SSH checks
//! `~/.ssh`), and every file starts with a SHA-256 of its name and contents, checked
//! before wasmtime sees a byte of it. The checksum catches a torn, truncated,
//! corrupted or misplaced file (a mismatch is a warning and a compile, never a load);
//! the ownership checks are what keep another user from writing one.
//!
//! File layout: `MAGIC`, then SHA-256(file name ‖ artifact), then the artifact
//! (`Component::serialize`).

use std::hash::{Hash, Hasher};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

/// The first bytes of every artifact file (and its format's version).
const MAGIC: &[u8; 8] = b"shcwasm1";
/// `MAGIC` and the SHA-256 after it.
const HEADER: usize = MAGIC.len() + 32;

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
    /// Canonical: no symbolic link on the way, every directory checked in `open`.
    dir: PathBuf,
    engine: Engine,
    /// The engine's compatibility hash, as written into file names.
    engine_key: String,
    /// This user: the only owner an artifact may have.
    uid: u32,
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
    /// The file's name, part of what its checksum covers.
    name: String,
    path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{dir}: {reason}")]
    Unusable { dir: String, reason: String },
}

/// Why an artifact on disk is not loaded.
#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    #[error("owned by uid {owner}, not this user ({uid})")]
    Owner { owner: u32, uid: u32 },
    #[error("writable by group or others (mode {0:o})")]
    Writable(u32),
    #[error("not a regular file")]
    NotAFile,
    #[error("{0} bytes: shorter than the header")]
    Truncated(usize),
    #[error("not an artifact of this cache (unknown header)")]
    Magic,
    #[error("checksum mismatch (corrupted, truncated or not this entry's file)")]
    Checksum,
}

impl CompiledCache {
    /// The cache in `dir` (created, readable and writable by this user only). Refused,
    /// with the reason, if another user could put a file there: `dir` must be this
    /// user's, and every directory above it this user's or root's and not writable by
    /// group or others, unless sticky (as `/tmp` is).
    pub fn open(dir: &Path, engine: &Engine) -> Result<Self, CacheError> {
        let unusable = |reason: String| CacheError::Unusable {
            dir: dir.display().to_string(),
            reason,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| unusable(format!("cannot create: {e}")))?;
        let canonical = std::fs::canonicalize(dir).map_err(|e| unusable(e.to_string()))?;
        let uid = rustix::process::getuid().as_raw();
        let meta = std::fs::metadata(&canonical).map_err(|e| unusable(e.to_string()))?;
        // The safety of loading from the cache rests on this: only this user can put
        // files here, and no one else can rename a directory on the way.
        if meta.uid() != uid {
            return Err(unusable(format!(
                "owned by uid {}, not this user ({uid}); compiled plugins are not cached",
                meta.uid()
            )));
        }
        for above in canonical.ancestors().skip(1) {
            check_above(above, uid).map_err(|reason| {
                unusable(format!(
                    "{}: {reason}; compiled plugins are not cached",
                    above.display()
                ))
            })?;
        }
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(&canonical, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| unusable(format!("cannot make it private: {e}")))?;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Ok(Self {
            dir: canonical,
            engine: engine.clone(),
            engine_key: format!("{:016x}", h.finish()),
            uid,
        })
    }

    /// Where the component compiled from exactly `wasm` is kept.
    pub fn entry(&self, wasm: &[u8]) -> Entry<'_> {
        let digest = Sha256::digest(wasm);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let name = format!("{hex}-{}.cwasm", self.engine_key);
        Entry {
            cache: self,
            path: self.dir.join(&name),
            name,
        }
    }

    /// A new file of this cache's, under a name no other writer uses (this host, this
    /// process, a counter and the time: two containers sharing the directory have the
    /// same pid), created exclusively and private.
    fn create_temp(&self, name: &str) -> std::io::Result<(PathBuf, std::fs::File)> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut last = None;
        for _ in 0..8 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or_default();
            let tmp = self.dir.join(format!(
                ".{name}.{}.{}.{}.{nanos}.tmp",
                hostname(),
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
            {
                Ok(file) => return Ok((tmp, file)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no free temporary name")))
    }
}

/// A directory above the cache: this user's or root's, and not writable by others
/// unless sticky (where others cannot rename or remove what is not theirs).
fn check_above(path: &Path, uid: u32) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.uid() != uid && meta.uid() != 0 {
        return Err(format!(
            "owned by uid {}, neither this user ({uid}) nor root",
            meta.uid()
        ));
    }
    let mode = meta.mode();
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(format!(
            "writable by group or others (mode {:o}) and not sticky: another user could \
             replace the directories below it",
            mode & 0o7777
        ));
    }
    Ok(())
}

/// This machine's name, for temporary file names (`host` if it cannot be read).
fn hostname() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        let name: String = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap_or_default()
            .trim()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .take(64)
            .collect();
        if name.is_empty() {
            "host".into()
        } else {
            name
        }
    })
}

impl Entry<'_> {
    /// The checksum of this entry's file holding `artifact`.
    fn checksum(&self, artifact: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.name.as_bytes());
        h.update(artifact);
        h.finalize().into()
    }

    /// The component, if it was kept and its file passes every check.
    pub fn load(&self) -> Option<Component> {
        let path = &self.path;
        let loaded = match self.read() {
            Ok(None) => return None,
            Ok(Some(bytes)) => {
                deserialize(&self.cache.engine, &bytes[HEADER..]).map_err(|e| format!("{e:#}"))
            }
            Err(refused) => Err(refused.to_string()),
        };
        match loaded {
            Ok(component) => Some(component),
            Err(reason) => {
                tracing::warn!(file = %path.display(), %reason,
                    "compiled plugin not loaded; compiling again");
                let _ = std::fs::remove_file(path);
                None
            }
        }
    }

    /// The file's bytes (header included), checked; `None` if there is no file.
    fn read(&self) -> Result<Option<Vec<u8>>, Refused> {
        let mut file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        // The file as opened, so what is checked is what is read.
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(Refused::NotAFile);
        }
        if meta.uid() != self.cache.uid {
            return Err(Refused::Owner {
                owner: meta.uid(),
                uid: self.cache.uid,
            });
        }
        if meta.mode() & 0o022 != 0 {
            return Err(Refused::Writable(meta.mode() & 0o777));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        file.read_to_end(&mut bytes)?;
        if bytes.len() < HEADER {
            return Err(Refused::Truncated(bytes.len()));
        }
        if &bytes[..MAGIC.len()] != MAGIC {
            return Err(Refused::Magic);
        }
        if bytes[MAGIC.len()..HEADER] != self.checksum(&bytes[HEADER..]) {
            return Err(Refused::Checksum);
        }
        Ok(Some(bytes))
    }

    /// Keep `component`, compiled from this entry's bytes: written to an exclusive
    /// temporary file, synced, renamed over the entry and the directory synced, so a
    /// reader sees the whole file or none, also after a crash. A failure only costs a
    /// compile later.
    pub fn store(&self, component: &Component) {
        let written = component
            .serialize()
            .map_err(|e| format!("{e:#}"))
            .and_then(|artifact| self.write(&artifact).map_err(|e| e.to_string()));
        if let Err(reason) = written {
            tracing::warn!(file = %self.path.display(), %reason, "cannot keep the compiled plugin");
        }
    }

    fn write(&self, artifact: &[u8]) -> std::io::Result<()> {
        let (tmp, mut file) = self.cache.create_temp(&self.name)?;
        let written = (|| {
            file.write_all(MAGIC)?;
            file.write_all(&self.checksum(artifact))?;
            file.write_all(artifact)?;
            // The contents on disk before the name points at them...
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            // ...and the new name on disk before this counts as done.
            std::fs::File::open(&self.cache.dir)?.sync_all()
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, artifact: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `Component::deserialize` runs `artifact` as native code, so it must be
    // wasmtime's own output for this engine. It is: the bytes were read once, into
    // memory, from a file this user owns, that no one else can write, in a directory
    // no other user can write to or replace (checked in `open`), where only `store`
    // puts files; and its checksum, over its name (the `.wasm`'s hash and this engine's
    // compatibility hash) and these very bytes, matched. wasmtime also checks the header
    // (version, target, settings) and refuses a mismatch.
    unsafe { Component::deserialize(engine, artifact) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        Engine::new(&config).unwrap()
    }

    fn compiled(engine: &Engine, wat: &str) -> (Vec<u8>, Component) {
        let wasm = wat::parse_str(wat).unwrap();
        let component = Component::new(engine, &wasm).unwrap();
        (wasm, component)
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_component_compiled_once_loads_from_the_cache_and_only_for_its_own_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let cache = CompiledCache::open(&dir.path().join("compiled"), &engine).unwrap();
        let (wasm, component) = compiled(&engine, "(component (core module))");
        assert!(cache.entry(&wasm).load().is_none());
        cache.entry(&wasm).store(&component);
        assert!(cache.entry(&wasm).load().is_some());
        let other = wat::parse_str("(component (core module (func)))").unwrap();
        assert!(cache.entry(&other).load().is_none());
        let files = names(&dir.path().join("compiled"));
        assert_eq!(
            files.len(),
            1,
            "no temporary file is left behind: {files:?}"
        );
        let bytes = std::fs::read(&cache.entry(&wasm).path).unwrap();
        assert_eq!(&bytes[..MAGIC.len()], MAGIC);
    }

    /// Store `wasm`'s component, damage its file with `damage`, and check that it is
    /// not loaded, is removed, and is kept again after the next compile.
    fn refused_then_recompiled(damage: impl FnOnce(&Entry<'_>, Vec<u8>) -> Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let cache = CompiledCache::open(dir.path(), &engine).unwrap();
        let (wasm, component) = compiled(&engine, "(component (core module (func)))");
        let entry = cache.entry(&wasm);
        entry.store(&component);
        let bytes = std::fs::read(&entry.path).unwrap();
        std::fs::write(&entry.path, damage(&entry, bytes)).unwrap();
        assert!(entry.load().is_none(), "a damaged artifact is never loaded");
        assert!(!entry.path.exists(), "and it is removed");
        entry.store(&component);
        assert!(entry.load().is_some(), "the next compile is kept again");
    }

    #[test]
    fn a_corrupted_artifact_is_refused_and_compiled_again() {
        refused_then_recompiled(|_, mut bytes| {
            // One bit of the native code, past the header: what wasmtime would not see.
            let at = HEADER + (bytes.len() - HEADER) / 2;
            bytes[at] ^= 0x01;
            bytes
        });
    }

    #[test]
    fn a_truncated_artifact_is_refused_and_compiled_again() {
        refused_then_recompiled(|_, mut bytes| {
            bytes.truncate(bytes.len() - 100);
            bytes
        });
        refused_then_recompiled(|_, mut bytes| {
            bytes.truncate(HEADER - 1);
            bytes
        });
        refused_then_recompiled(|_, _| Vec::new());
    }

    #[test]
    fn an_artifact_under_another_entrys_name_is_refused() {
        // Another component's file, complete and with a valid checksum for its own
        // name, copied to this entry's name: loading it would run the wrong plugin.
        refused_then_recompiled(|entry, _| {
            let engine = entry.cache.engine.clone();
            let (other_wasm, other) = compiled(&engine, "(component (core module (func) (func)))");
            let other_entry = entry.cache.entry(&other_wasm);
            other_entry.store(&other);
            std::fs::read(&other_entry.path).unwrap()
        });
        // The checksum of another artifact in this entry's header.
        refused_then_recompiled(|entry, mut bytes| {
            let engine = entry.cache.engine.clone();
            let (other_wasm, other) = compiled(&engine, "(component (core module (func) (func)))");
            let other_entry = entry.cache.entry(&other_wasm);
            other_entry.store(&other);
            let other_bytes = std::fs::read(&other_entry.path).unwrap();
            bytes[MAGIC.len()..HEADER].copy_from_slice(&other_bytes[MAGIC.len()..HEADER]);
            bytes
        });
    }

    #[test]
    fn an_artifact_others_can_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let cache = CompiledCache::open(dir.path(), &engine).unwrap();
        let (wasm, component) = compiled(&engine, "(component)");
        let entry = cache.entry(&wasm);
        entry.store(&component);
        std::fs::set_permissions(&entry.path, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(entry.load().is_none());
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
    fn a_path_through_a_directory_others_can_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        for mode in [0o777, 0o775] {
            std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = CompiledCache::open(&shared.join("a").join("compiled"), &engine())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("shared") && err.contains("writable by group or others"),
                "{err}"
            );
        }
        // Sticky, as /tmp: others cannot replace what is ours in it.
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        CompiledCache::open(&shared.join("b").join("compiled"), &engine()).unwrap();
        // A symbolic link is followed to the real path, and that is what is checked.
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(shared.join("a"), &link).unwrap();
        assert!(CompiledCache::open(&link, &engine()).is_err());
    }

    #[test]
    fn directories_of_other_users_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let theirs = dir.path().join("theirs");
        std::fs::create_dir_all(theirs.join("compiled")).unwrap();
        if rustix::process::getuid().as_raw() != 0 {
            eprintln!("skipped: only root can give a directory away");
            return;
        }
        std::os::unix::fs::chown(&theirs, Some(4242), None).unwrap();
        let err = CompiledCache::open(&theirs.join("compiled"), &engine())
            .unwrap_err()
            .to_string();
        assert!(err.contains("uid 4242"), "{err}");
        std::os::unix::fs::chown(theirs.join("compiled"), Some(4242), None).unwrap();
        std::os::unix::fs::chown(&theirs, Some(0), None).unwrap();
        let err = CompiledCache::open(&theirs.join("compiled"), &engine())
            .unwrap_err()
            .to_string();
        assert!(err.contains("owned by uid 4242"), "{err}");
    }

    #[test]
    fn writers_at_once_each_write_a_whole_file_under_their_own_temporary_name() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let (wasm, component) = compiled(&engine, "(component (core module (func) (func)))");
        let writers = 8;
        let start = std::sync::Barrier::new(writers);
        std::thread::scope(|s| {
            for _ in 0..writers {
                s.spawn(|| {
                    // Each its own cache, as two processes sharing the directory.
                    let cache = CompiledCache::open(dir.path(), &engine).unwrap();
                    start.wait();
                    for _ in 0..5 {
                        cache.entry(&wasm).store(&component);
                        assert!(cache.entry(&wasm).load().is_some());
                    }
                });
            }
        });
        let cache = CompiledCache::open(dir.path(), &engine).unwrap();
        assert!(cache.entry(&wasm).load().is_some());
        let files = names(dir.path());
        assert_eq!(files.len(), 1, "only the artifact is left: {files:?}");
    }

    #[test]
    fn temporary_names_are_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompiledCache::open(dir.path(), &engine()).unwrap();
        let (a, _) = cache.create_temp("x").unwrap();
        let (b, _) = cache.create_temp("x").unwrap();
        assert_ne!(a, b);
        let name = a.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with(".x.") && name.contains(hostname()),
            "{name}"
        );
        assert!(name.contains(&std::process::id().to_string()), "{name}");
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
