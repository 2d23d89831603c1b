//! Filesystem grants: `files = [{ host, guest, mode = "ro" | "rw" }]`. Each grant is a
//! directory preopened for the plugin with read-only or read-write permissions and
//! nothing else. Host paths are canonicalized and checked when the config is loaded,
//! and each directory is opened once (cap-std) when the plugin is prepared: every call
//! gets a handle to that same open directory, so a grant swapped for a symlink after
//! load is never followed. Escapes from a preopen (`..`, absolute paths, symlinks
//! pointing outside) are refused inside the plugin by wasmtime-wasi's capability-based
//! filesystem; [`host`] names each refusal in the host log.

pub mod host;

use serde::Deserialize;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use wasmtime_wasi::filesystem::Dir;
use wasmtime_wasi::{FsPerms, OpenMode};

/// Directories a plugin may be granted: each is held open by every call.
pub const MAX_GRANTS: usize = 16;

/// One `files` entry as written in the config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileGrantConfig {
    /// A directory on the host (relative to the config file's folder).
    pub host: PathBuf,
    /// Where the plugin sees it: an absolute guest path such as `/data`.
    pub guest: String,
    /// `ro` or `rw`.
    pub mode: Mode,
}

/// What a plugin may do in a granted directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Read files and list directories.
    Ro,
    /// Also create, write, rename and remove.
    Rw,
}

/// A checked grant: canonical host directory, normalized guest path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileGrant {
    /// The canonical host directory.
    pub host: PathBuf,
    /// The guest path, normalized (`/data`).
    pub guest: String,
    /// Read-only or read-write.
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

/// A plugin's granted directories, opened once; every call of the plugin shares them
/// (cheap to clone).
#[derive(Clone, Default)]
pub struct OpenedDirs(Arc<[(Dir, String)]>);

impl std::fmt::Debug for OpenedDirs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(_, guest)| guest))
            .finish()
    }
}

impl OpenedDirs {
    /// Opens each granted directory (refusing one that is no longer a directory).
    pub fn open(grants: &[FileGrant]) -> std::io::Result<Self> {
        let mut opened = Vec::with_capacity(grants.len());
        for grant in grants {
            let dir = cap_std::fs::Dir::open_ambient_dir(&grant.host, cap_std::ambient_authority())
                .map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!("cannot open `{}`: {e}", grant.host.display()),
                    )
                })?;
            let (perms, mode) = match grant.mode {
                Mode::Ro => (FsPerms::ReadOnly, OpenMode::READ),
                Mode::Rw => (FsPerms::ReadWrite, OpenMode::READ | OpenMode::WRITE),
            };
            // Blocking file operations go to tokio's blocking pool, never a worker.
            let dir = Dir::new(dir.into_std_file(), perms, mode, false);
            opened.push((dir, grant.guest.clone()));
        }
        Ok(Self(opened.into()))
    }

    /// Each directory with its guest path.
    pub fn iter(&self) -> impl Iterator<Item = &(Dir, String)> {
        self.0.iter()
    }
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
        let opened = OpenedDirs::open(&grants).unwrap();
        let guests: Vec<&str> = opened.iter().map(|(_, g)| g.as_str()).collect();
        assert_eq!(guests, ["/data", "/work"]);
    }

    #[cfg(unix)]
    #[test]
    fn an_opened_grant_stays_the_directory_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let (granted, elsewhere) = (dir.path().join("granted"), dir.path().join("elsewhere"));
        std::fs::create_dir_all(&granted).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::fs::write(granted.join("inside.txt"), b"granted").unwrap();
        std::fs::write(elsewhere.join("secret.txt"), b"secret").unwrap();
        let grants = check(&[entry(&granted, "/data", Mode::Ro)], dir.path()).unwrap();
        let opened = OpenedDirs::open(&grants).unwrap();
        // After load the grant is moved away and a symlink to another folder takes its
        // place: the open directory is still the one the operator granted.
        std::fs::rename(&granted, dir.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &granted).unwrap();
        let (handle, _) = opened.iter().next().unwrap();
        let cap = cap_std::fs::Dir::from_std_file(handle.dir.try_clone().unwrap());
        assert_eq!(cap.read_to_string("inside.txt").unwrap(), "granted");
        assert!(cap.read_to_string("secret.txt").is_err());
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
