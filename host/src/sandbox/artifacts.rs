//! Compiled plugins kept on disk between starts (`[cache]`), so a restart loads native
//! code in milliseconds instead of compiling every plugin again.
//!
//! An entry is named by the SHA-256 of the component's bytes and a hash of the engine's
//! compilation settings (wasmtime version, target, tunables): a changed plugin or a
//! changed engine misses and compiles. Each file holds the SHA-256 of its body before
//! the body, so a truncated or altered entry is recompiled and replaced, never loaded;
//! wasmtime checks the body's header and settings again when it deserializes.
//!
//! The entries are native code the host runs outside any sandbox, so the folder must be
//! the host user's own and writable by no one else (checked at start, like ssh checks
//! its keys); otherwise the cache is not used and the host says why.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// `[cache]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Keep compiled plugins on disk (on by default).
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// Where (default: `$XDG_CACHE_HOME/mcp-wasm-host`, else
    /// `$HOME/.cache/mcp-wasm-host`; with neither set, no cache).
    #[serde(default)]
    pub dir: Option<PathBuf>,
}

fn enabled_by_default() -> bool {
    true
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dir: None,
        }
    }
}

impl CacheConfig {
    /// Resolves a relative `dir` against the config's folder.
    pub fn resolve(&mut self, base: &Path) {
        if let Some(dir) = &self.dir
            && dir.is_relative()
        {
            self.dir = Some(base.join(dir));
        }
    }

    /// The folder to use: the configured one, or the user's cache folder.
    pub fn folder(&self) -> Option<PathBuf> {
        if !self.enabled {
            return None;
        }
        self.dir.clone().or_else(default_folder)
    }
}

fn default_folder() -> Option<PathBuf> {
    let from = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    from("XDG_CACHE_HOME")
        .or_else(|| from("HOME").map(|home| home.join(".cache")))
        .map(|base| base.join("mcp-wasm-host"))
}

/// Why the cache folder is not used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// It cannot be created or read.
    #[error("{path}: {source}")]
    Io {
        /// The folder.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// Someone else could put code in it.
    #[error(
        "{path} is {problem}: compiled plugins are native code the host runs, so the folder \
         must be the host user's own and writable by no one else (chmod 700)"
    )]
    Unsafe {
        /// The folder.
        path: PathBuf,
        /// Who else could write it.
        problem: String,
    },
}

/// The compiled-plugin cache in one folder.
pub struct ArtifactCache {
    dir: PathBuf,
    /// The engine's compilation settings, as a file name part.
    engine: String,
}

/// What [`ArtifactCache::load`] found.
pub enum Lookup {
    /// A good entry.
    Hit(Component),
    /// No entry (or one for other settings).
    Miss,
    /// An entry that failed its check or would not load; it will be replaced.
    Bad(String),
}

impl ArtifactCache {
    /// Opens (creating it, private, if absent) the cache folder for `engine`.
    pub fn open(dir: &Path, engine: &Engine) -> Result<Self, CacheError> {
        let io = |source| CacheError::Io {
            path: dir.to_owned(),
            source,
        };
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(io)?;
        let dir = dir.canonicalize().map_err(io)?;
        check_private(&dir)?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Self {
            dir,
            engine: format!("{:016x}", hasher.finish()),
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry(&self, wasm: &[u8]) -> PathBuf {
        let digest = hex::encode(Sha256::digest(wasm));
        self.dir.join(format!("{digest}-{}.cwasm", self.engine))
    }

    /// The compiled form of `wasm`, if a good one is kept.
    pub fn load(&self, engine: &Engine, wasm: &[u8]) -> Lookup {
        let bytes = match std::fs::read(self.entry(wasm)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Lookup::Miss,
            Err(e) => return Lookup::Bad(format!("cannot read it: {e}")),
        };
        let Some((sum, body)) = bytes.split_first_chunk::<32>() else {
            return Lookup::Bad("it is truncated".into());
        };
        if Sha256::digest(body).as_slice() != sum {
            return Lookup::Bad("its checksum does not match (truncated or altered)".into());
        }
        // SAFETY: `body` is what `Component::serialize` wrote for this engine's
        // settings, read back intact (its SHA-256 matches) from a folder only this
        // user can write (checked at open). wasmtime checks its header, version and
        // settings and refuses anything else.
        match unsafe { Component::deserialize(engine, body) } {
            Ok(component) => Lookup::Hit(component),
            Err(e) => Lookup::Bad(format!("wasmtime refused it: {e:#}")),
        }
    }

    /// Keeps `component`, compiled from `wasm`. Written to a temporary file and renamed,
    /// so a reader never sees half an entry.
    pub fn store(&self, wasm: &[u8], component: &Component) -> std::io::Result<()> {
        let body = component.serialize().map_err(std::io::Error::other)?;
        let path = self.entry(wasm);
        let temporary = path.with_extension(format!("tmp{}", std::process::id()));
        let written = (|| {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&temporary)?;
            file.write_all(&Sha256::digest(&body))?;
            file.write_all(&body)?;
            file.sync_data()?;
            std::fs::rename(&temporary, &path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        written
    }
}

/// The folder must be ours and writable by no one else.
#[cfg(unix)]
fn check_private(dir: &Path) -> Result<(), CacheError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir).map_err(|source| CacheError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let unsafe_because = |problem: String| CacheError::Unsafe {
        path: dir.to_owned(),
        problem,
    };
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(unsafe_because(format!(
            "owned by user {}, not by the host's user ({me})",
            meta.uid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(unsafe_because(format!(
            "writable by its group or by everyone (mode {:o})",
            meta.mode() & 0o777
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_dir: &Path) -> Result<(), CacheError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        Engine::default()
    }

    /// An empty component, and the same with a custom section (other bytes).
    fn components() -> (Vec<u8>, Vec<u8>) {
        let one = b"\0asm\x0d\x00\x01\x00".to_vec();
        let mut two = one.clone();
        two.extend_from_slice(b"\x00\x03\x02hi");
        (one, two)
    }

    fn private_dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    fn entries(dir: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    }

    #[test]
    fn a_stored_component_loads_and_other_bytes_miss() {
        let (engine, dir) = (engine(), private_dir());
        let cache = ArtifactCache::open(&dir.path().join("cache"), &engine).unwrap();
        let (one, two) = components();
        assert!(matches!(cache.load(&engine, &one), Lookup::Miss));
        let compiled = Component::new(&engine, &one).unwrap();
        cache.store(&one, &compiled).unwrap();
        assert!(matches!(cache.load(&engine, &one), Lookup::Hit(_)));
        assert!(matches!(cache.load(&engine, &two), Lookup::Miss));
        // One entry, no temporary file left behind, private to the user.
        let files = entries(cache.dir());
        assert_eq!(files.len(), 1, "{files:?}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&files[0]), 0o600);
            assert_eq!(mode(cache.dir()), 0o700);
        }
    }

    #[test]
    fn a_truncated_or_altered_entry_is_refused_then_replaced() {
        let (engine, dir) = (engine(), private_dir());
        let cache = ArtifactCache::open(dir.path(), &engine).unwrap();
        let (one, _) = components();
        let compiled = Component::new(&engine, &one).unwrap();
        cache.store(&one, &compiled).unwrap();
        let entry = entries(cache.dir()).remove(0);
        let good = std::fs::read(&entry).unwrap();

        let mut altered = good.clone();
        let last = altered.len() - 1;
        altered[last] ^= 0x01;
        std::fs::write(&entry, &altered).unwrap();
        let Lookup::Bad(problem) = cache.load(&engine, &one) else {
            panic!("an altered entry loaded");
        };
        assert!(problem.contains("checksum"), "{problem}");

        std::fs::write(&entry, &good[..good.len() / 2]).unwrap();
        assert!(matches!(cache.load(&engine, &one), Lookup::Bad(_)));
        std::fs::write(&entry, &good[..10]).unwrap();
        let Lookup::Bad(problem) = cache.load(&engine, &one) else {
            panic!("a truncated entry loaded");
        };
        assert!(problem.contains("truncated"), "{problem}");

        // Compiling again replaces it.
        assert!(crate::sandbox::compile_or_load(&engine, Some(&cache), &one).is_ok());
        assert!(matches!(cache.load(&engine, &one), Lookup::Hit(_)));
    }

    #[test]
    fn an_entry_from_other_engine_settings_is_not_used() {
        let dir = private_dir();
        let (one, _) = components();
        let plain = engine();
        let cache = ArtifactCache::open(dir.path(), &plain).unwrap();
        cache
            .store(&one, &Component::new(&plain, &one).unwrap())
            .unwrap();
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let other = Engine::new(&config).unwrap();
        let for_other = ArtifactCache::open(dir.path(), &other).unwrap();
        assert!(matches!(for_other.load(&other, &one), Lookup::Miss));
    }

    #[cfg(unix)]
    #[test]
    fn a_folder_others_can_write_is_not_used() {
        use std::os::unix::fs::PermissionsExt;
        let (engine, dir) = (engine(), private_dir());
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let error = ArtifactCache::open(&shared, &engine).err().unwrap();
        let message = error.to_string();
        assert!(
            message.contains("writable by its group or by everyone") && message.contains("777"),
            "{message}"
        );
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(ArtifactCache::open(&shared, &engine).is_ok());
    }

    #[test]
    fn a_folder_that_cannot_be_made_is_named_in_the_error() {
        let (engine, dir) = (engine(), private_dir());
        let file = dir.path().join("a-file");
        std::fs::write(&file, "not a folder").unwrap();
        let error = ArtifactCache::open(&file.join("cache"), &engine)
            .err()
            .unwrap();
        assert!(matches!(error, CacheError::Io { .. }), "{error}");
        assert!(error.to_string().contains("a-file/cache"), "{error}");
    }

    #[test]
    fn the_configured_folder_is_used_resolved_and_can_be_turned_off() {
        let config = CacheConfig {
            enabled: false,
            dir: Some("/somewhere".into()),
        };
        assert_eq!(config.folder(), None);
        let config = CacheConfig {
            enabled: true,
            dir: Some("/somewhere".into()),
        };
        assert_eq!(config.folder(), Some(PathBuf::from("/somewhere")));
        let mut relative = CacheConfig {
            enabled: true,
            dir: Some("cache".into()),
        };
        relative.resolve(Path::new("/etc/mcp"));
        assert_eq!(relative.dir, Some(PathBuf::from("/etc/mcp/cache")));
    }
}
