//! Filesystem grants: `files = [{ host, guest, mode = "ro" | "rw" }]`. Each grant is a
//! directory preopened for the plugin with read-only or read-write permissions and
//! nothing else. Host paths are canonicalized and checked once at load; escapes from a
//! preopen (`..`, absolute paths, symlinks pointing outside) are refused inside the
//! plugin by wasmtime-wasi's capability-based filesystem (cap-std).

use serde::Deserialize;
use std::path::{Component, Path, PathBuf};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

/// Preopens a plugin may have: each is opened on every call.
const MAX_GRANTS: usize = 16;

/// One `files` entry as written in the config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileGrantConfig {
    /// A directory on the host (relative to the config file's folder).
    pub host: PathBuf,
    /// Where the plugin sees it: an absolute guest path such as `/data`.
    pub guest: String,
    pub mode: Mode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Ro,
    Rw,
}

/// A checked grant: canonical host directory, normalized guest path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileGrant {
    pub host: PathBuf,
    pub guest: String,
    pub mode: Mode,
}

/// Checks a plugin's `files` entries: each host path must be an existing directory
/// other than `/`; guest paths must be absolute, without `..`, and distinct; a
/// read-only grant may not lie inside a read-write one (the plugin could write it
/// through the other). `base` resolves relative host paths.
pub fn check(entries: &[FileGrantConfig], base: &Path) -> Result<Vec<FileGrant>, String> {
    if entries.len() > MAX_GRANTS {
        return Err(format!("files: at most {MAX_GRANTS} entries"));
    }
    let mut grants: Vec<FileGrant> = Vec::new();
    for entry in entries {
        let shown = entry.host.display();
        let host = base
            .join(&entry.host)
            .canonicalize()
            .map_err(|e| format!("files: host directory `{shown}`: {e}"))?;
        if !host.is_dir() {
            return Err(format!("files: host path `{shown}` is not a directory"));
        }
        if host.parent().is_none() {
            return Err(format!(
                "files: host path `{shown}` is the root directory; grant a folder inside it"
            ));
        }
        let guest = normalize_guest(&entry.guest)?;
        if grants.iter().any(|g| g.guest == guest) {
            return Err(format!("files: guest path `{guest}` is granted twice"));
        }
        grants.push(FileGrant {
            host,
            guest,
            mode: entry.mode,
        });
    }
    for ro in grants.iter().filter(|g| g.mode == Mode::Ro) {
        if let Some(rw) = grants
            .iter()
            .find(|g| g.mode == Mode::Rw && ro.host.starts_with(&g.host))
        {
            return Err(format!(
                "files: read-only `{}` is inside read-write `{}`; the plugin could write it \
                 through the read-write grant",
                ro.host.display(),
                rw.host.display()
            ));
        }
    }
    Ok(grants)
}

/// `/data/` -> `/data`; refuses relative paths and `..`.
fn normalize_guest(guest: &str) -> Result<String, String> {
    let path = Path::new(guest);
    if !path.is_absolute() {
        return Err(format!(
            "files: guest path `{guest}` must be absolute, e.g. `/data`"
        ));
    }
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(format!("files: guest path `{guest}` must not contain `..`"));
            }
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// Adds the grants to a call's WASI context (opens each directory).
pub fn preopen(builder: &mut WasiCtxBuilder, grants: &[FileGrant]) -> wasmtime::Result<()> {
    for grant in grants {
        let perms = match grant.mode {
            Mode::Ro => FsPerms::ReadOnly,
            Mode::Rw => FsPerms::ReadWrite,
        };
        builder.preopened_dir(&grant.host, &grant.guest, perms)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(host: &Path, guest: &str, mode: Mode) -> FileGrantConfig {
        FileGrantConfig {
            host: host.to_owned(),
            guest: guest.to_owned(),
            mode,
        }
    }

    #[test]
    fn grants_are_canonical_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(b.join("inner")).unwrap();
        let grants = check(
            &[
                entry(Path::new("a/../a"), "/data/", Mode::Ro),
                entry(&b, "/work", Mode::Rw),
            ],
            dir.path(),
        )
        .unwrap();
        assert_eq!(grants[0].host, a.canonicalize().unwrap());
        assert_eq!(grants[0].guest, "/data");
        assert_eq!(grants[1].mode, Mode::Rw);
    }

    #[test]
    fn bad_grants_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let rw = dir.path().join("rw");
        std::fs::create_dir_all(rw.join("ro")).unwrap();
        std::fs::write(dir.path().join("file"), b"x").unwrap();
        for (entries, needle) in [
            (
                vec![entry(Path::new("/"), "/root", Mode::Ro)],
                "root directory",
            ),
            (vec![entry(Path::new("missing"), "/m", Mode::Ro)], "missing"),
            (
                vec![entry(Path::new("file"), "/f", Mode::Ro)],
                "not a directory",
            ),
            (vec![entry(&rw, "data", Mode::Ro)], "must be absolute"),
            (vec![entry(&rw, "/a/../b", Mode::Ro)], "`..`"),
            (
                vec![entry(&rw, "/x", Mode::Ro), entry(&rw, "/x/", Mode::Rw)],
                "granted twice",
            ),
            (
                vec![
                    entry(&rw, "/w", Mode::Rw),
                    entry(&rw.join("ro"), "/r", Mode::Ro),
                ],
                "inside read-write",
            ),
        ] {
            let err = check(&entries, dir.path()).unwrap_err();
            assert!(err.contains(needle), "{entries:?}: {err}");
        }
    }
}
