//! The plugin's filesystem, as linked: wasmtime-wasi's `wasi:filesystem` with a thin
//! layer in front that names refused path operations in the host log (plugin,
//! operation, guest path). cap-std refuses escapes (`..`, absolute paths, symlinks
//! leading out) and wasmtime-wasi refuses writes to read-only grants; both happen out of
//! the host's sight, so every path operation's error is looked at here. The layer also
//! caps what one call holds on the host: open files (each a host file descriptor,
//! whether a descriptor or a stream keeps it) and directory listings (each a whole
//! listing in host memory).

use super::OpenedDirs;
use crate::sandbox::denials::Denials;
use crate::sandbox::limits::Limits;
use crate::sandbox::state::CallState;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};
use wasmtime::component::{HasData, Linker, Resource};
use wasmtime_wasi::filesystem::{WasiFilesystemCtxView, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::filesystem::types::{HostDescriptor, HostDirectoryEntryStream};
use wasmtime_wasi::p2::bindings::filesystem::{preopens, types};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream};
use wasmtime_wasi::p2::{FsError, FsResult};

type Descriptor = types::Descriptor;

/// Characters of a guest path kept per open descriptor (its tail).
const MAX_KEPT_PATH: usize = 1024;

/// What one call holds through its filesystem, and how much it may.
pub struct OpenFiles {
    /// `limits.max_open_files`: files and directories held at once (besides preopens).
    max_open: usize,
    /// `limits.max_listings`: directory listings held at once.
    max_listings: usize,
    /// Guest paths of open descriptors, by handle, so a refused `open-at(fd, "../x")`
    /// is logged as `/ro/../x`.
    paths: HashMap<u32, String>,
    /// Host files this call opened; alive while a descriptor or stream holds them.
    held: Vec<Weak<std::fs::File>>,
    /// Handles of open directory listings.
    listings: HashSet<u32>,
}

impl Default for OpenFiles {
    fn default() -> Self {
        Self::new(&Limits::default())
    }
}

impl OpenFiles {
    /// Nothing open yet, within the caps of `limits`.
    pub fn new(limits: &Limits) -> Self {
        Self {
            max_open: limits.max_open_files as usize,
            max_listings: limits.max_listings as usize,
            paths: HashMap::new(),
            held: Vec::new(),
            listings: HashSet::new(),
        }
    }

    /// `path` as the plugin would write it from its root: joined to the directory `fd`
    /// was opened as, when known.
    fn shown(&self, fd: u32, path: &str) -> String {
        match self.paths.get(&fd) {
            Some(dir) if path.starts_with('/') => format!("{path} (from {dir})"),
            Some(dir) => format!("{}/{path}", dir.trim_end_matches('/')),
            None => path.to_owned(),
        }
    }

    /// Remembers the guest path of a new descriptor (its tail, if very long).
    fn remember(&mut self, fd: u32, path: String) {
        let path = match path.char_indices().rev().nth(MAX_KEPT_PATH) {
            // Longer than the cap: keep its last MAX_KEPT_PATH characters.
            Some((before, c)) => format!("...{}", &path[before + c.len_utf8()..]),
            None => path,
        };
        self.paths.insert(fd, path);
    }

    /// Host files this call still holds open.
    fn held(&mut self) -> usize {
        self.held.retain(|file| file.strong_count() > 0);
        self.held.len()
    }
}

/// Replaces wasmtime-wasi's `wasi:filesystem/types` and `wasi:filesystem/preopens`
/// in `linker` (already holding all of WASI) with the audited layer.
pub fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let linked = types::add_to_linker::<CallState, Audited>(linker, audited)
        .and_then(|()| preopens::add_to_linker::<CallState, Audited>(linker, audited));
    linker.allow_shadowing(false);
    linked
}

struct Audited;

impl HasData for Audited {
    type Data<'a> = AuditedFs<'a>;
}

fn audited(state: &mut CallState) -> AuditedFs<'_> {
    AuditedFs {
        inner: state.wasi.filesystem(),
        files: &mut state.open_files,
        denials: &state.denials,
        dirs: &state.dirs,
    }
}

/// wasmtime-wasi's filesystem for one call, plus where to record paths and refusals.
pub struct AuditedFs<'a> {
    inner: WasiFilesystemCtxView<'a>,
    files: &'a mut OpenFiles,
    denials: &'a Denials,
    /// The plugin's granted directories, opened at load.
    dirs: &'a OpenedDirs,
}

impl AuditedFs<'_> {
    /// Logs `result`'s error if it is a refusal (`not-permitted`: outside the grants or
    /// a write to a read-only grant; `access`: refused by the host's own permissions).
    fn check<T>(&self, op: &str, target: impl FnOnce() -> String, result: &FsResult<T>) {
        let Err(error) = result else { return };
        let why = match error.downcast_ref() {
            Some(types::ErrorCode::NotPermitted) => {
                "outside the granted directories or not writable"
            }
            Some(types::ErrorCode::Access) => "refused by the host's file permissions",
            _ => return,
        };
        self.denials
            .refuse("file", target(), &format!("file access: {op}: {why}"));
    }

    fn at(&self, fd: &Resource<Descriptor>, path: &str) -> String {
        self.files.shown(fd.rep(), path)
    }
}

impl preopens::Host for AuditedFs<'_> {
    /// The granted directories: each a handle to the directory opened at load (never
    /// opened again by path).
    fn get_directories(&mut self) -> wasmtime::Result<Vec<(Resource<Descriptor>, String)>> {
        let mut directories = Vec::new();
        for (dir, guest) in self.dirs.iter() {
            let fd = self
                .inner
                .table
                .push(wasmtime_wasi::filesystem::Descriptor::Dir(dir.clone()))?;
            self.files.remember(fd.rep(), guest.clone());
            directories.push((fd, guest.clone()));
        }
        Ok(directories)
    }
}

impl types::Host for AuditedFs<'_> {
    fn convert_error_code(&mut self, err: FsError) -> wasmtime::Result<types::ErrorCode> {
        types::Host::convert_error_code(&mut self.inner, err)
    }

    fn filesystem_error_code(
        &mut self,
        err: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<types::ErrorCode>> {
        types::Host::filesystem_error_code(&mut self.inner, err)
    }
}

impl HostDescriptor for AuditedFs<'_> {
    async fn open_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: types::PathFlags,
        path: String,
        oflags: types::OpenFlags,
        flags: types::DescriptorFlags,
    ) -> FsResult<Resource<Descriptor>> {
        let shown = self.at(&fd, &path);
        // Each open file holds one of the host's file descriptors.
        if self.files.held() >= self.files.max_open {
            let most = self.files.max_open;
            self.denials.refuse(
                "file",
                &shown,
                &format!(
                    "file access: open: more than {most} files open in one call \
                     (limits.max_open_files)"
                ),
            );
            return Err(types::ErrorCode::InsufficientMemory.into());
        }
        let result = self
            .inner
            .open_at(fd, path_flags, path, oflags, flags)
            .await;
        self.check("open", || shown.clone(), &result);
        if let Ok(opened) = &result {
            let host_file = match self.inner.table.get(opened)? {
                Descriptor::File(file) => Arc::downgrade(&file.file),
                Descriptor::Dir(dir) => Arc::downgrade(&dir.dir),
            };
            self.files.held.push(host_file);
            self.files.remember(opened.rep(), shown);
        }
        result
    }

    fn drop(&mut self, fd: Resource<Descriptor>) -> wasmtime::Result<()> {
        self.files.paths.remove(&fd.rep());
        HostDescriptor::drop(&mut self.inner, fd)
    }

    async fn stat_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: types::PathFlags,
        path: String,
    ) -> FsResult<types::DescriptorStat> {
        let shown = self.at(&fd, &path);
        let result = self.inner.stat_at(fd, path_flags, path).await;
        self.check("stat", || shown, &result);
        result
    }

    async fn set_times_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: types::PathFlags,
        path: String,
        atim: types::NewTimestamp,
        mtim: types::NewTimestamp,
    ) -> FsResult<()> {
        let shown = self.at(&fd, &path);
        let result = self
            .inner
            .set_times_at(fd, path_flags, path, atim, mtim)
            .await;
        self.check("set times", || shown, &result);
        result
    }

    async fn link_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_path_flags: types::PathFlags,
        old_path: String,
        new_descriptor: Resource<Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        let shown = format!(
            "{} -> {}",
            self.at(&fd, &old_path),
            self.at(&new_descriptor, &new_path)
        );
        let result = self
            .inner
            .link_at(fd, old_path_flags, old_path, new_descriptor, new_path)
            .await;
        self.check("hard link", || shown, &result);
        result
    }

    async fn create_directory_at(
        &mut self,
        fd: Resource<Descriptor>,
        path: String,
    ) -> FsResult<()> {
        let shown = self.at(&fd, &path);
        let result = self.inner.create_directory_at(fd, path).await;
        self.check("create directory", || shown, &result);
        result
    }

    async fn readlink_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<String> {
        let shown = self.at(&fd, &path);
        let result = self.inner.readlink_at(fd, path).await;
        self.check("read link", || shown, &result);
        result
    }

    async fn remove_directory_at(
        &mut self,
        fd: Resource<Descriptor>,
        path: String,
    ) -> FsResult<()> {
        let shown = self.at(&fd, &path);
        let result = self.inner.remove_directory_at(fd, path).await;
        self.check("remove directory", || shown, &result);
        result
    }

    async fn rename_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_path: String,
        new_fd: Resource<Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        let shown = format!(
            "{} -> {}",
            self.at(&fd, &old_path),
            self.at(&new_fd, &new_path)
        );
        let result = self.inner.rename_at(fd, old_path, new_fd, new_path).await;
        self.check("rename", || shown, &result);
        result
    }

    async fn symlink_at(
        &mut self,
        fd: Resource<Descriptor>,
        src_path: String,
        dest_path: String,
    ) -> FsResult<()> {
        let shown = format!("{} -> {src_path}", self.at(&fd, &dest_path));
        let result = self.inner.symlink_at(fd, src_path, dest_path).await;
        self.check("symlink", || shown, &result);
        result
    }

    async fn unlink_file_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<()> {
        let shown = self.at(&fd, &path);
        let result = self.inner.unlink_file_at(fd, path).await;
        self.check("unlink", || shown, &result);
        result
    }

    async fn metadata_hash_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: types::PathFlags,
        path: String,
    ) -> FsResult<types::MetadataHashValue> {
        let shown = self.at(&fd, &path);
        let result = self.inner.metadata_hash_at(fd, path_flags, path).await;
        self.check("stat", || shown, &result);
        result
    }

    // Operations on a descriptor the plugin already holds: passed through.

    async fn advise(
        &mut self,
        fd: Resource<Descriptor>,
        offset: types::Filesize,
        len: types::Filesize,
        advice: types::Advice,
    ) -> FsResult<()> {
        self.inner.advise(fd, offset, len, advice).await
    }

    async fn sync_data(&mut self, fd: Resource<Descriptor>) -> FsResult<()> {
        self.inner.sync_data(fd).await
    }

    async fn get_flags(&mut self, fd: Resource<Descriptor>) -> FsResult<types::DescriptorFlags> {
        self.inner.get_flags(fd).await
    }

    async fn get_type(&mut self, fd: Resource<Descriptor>) -> FsResult<types::DescriptorType> {
        self.inner.get_type(fd).await
    }

    async fn set_size(&mut self, fd: Resource<Descriptor>, size: types::Filesize) -> FsResult<()> {
        self.inner.set_size(fd, size).await
    }

    async fn set_times(
        &mut self,
        fd: Resource<Descriptor>,
        atim: types::NewTimestamp,
        mtim: types::NewTimestamp,
    ) -> FsResult<()> {
        self.inner.set_times(fd, atim, mtim).await
    }

    async fn read(
        &mut self,
        fd: Resource<Descriptor>,
        len: types::Filesize,
        offset: types::Filesize,
    ) -> FsResult<(Vec<u8>, bool)> {
        self.inner.read(fd, len, offset).await
    }

    async fn write(
        &mut self,
        fd: Resource<Descriptor>,
        buf: Vec<u8>,
        offset: types::Filesize,
    ) -> FsResult<types::Filesize> {
        self.inner.write(fd, buf, offset).await
    }

    async fn read_directory(
        &mut self,
        fd: Resource<Descriptor>,
    ) -> FsResult<Resource<types::DirectoryEntryStream>> {
        // A listing is read whole into host memory when it is opened.
        if self.files.listings.len() >= self.files.max_listings {
            let most = self.files.max_listings;
            self.denials.refuse(
                "file",
                self.at(&fd, "."),
                &format!(
                    "file access: list: more than {most} listings open in one call \
                     (limits.max_listings)"
                ),
            );
            return Err(types::ErrorCode::InsufficientMemory.into());
        }
        let listing = self.inner.read_directory(fd).await?;
        self.files.listings.insert(listing.rep());
        Ok(listing)
    }

    async fn sync(&mut self, fd: Resource<Descriptor>) -> FsResult<()> {
        self.inner.sync(fd).await
    }

    async fn stat(&mut self, fd: Resource<Descriptor>) -> FsResult<types::DescriptorStat> {
        self.inner.stat(fd).await
    }

    fn read_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
        offset: types::Filesize,
    ) -> FsResult<Resource<DynInputStream>> {
        self.inner.read_via_stream(fd, offset)
    }

    fn write_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
        offset: types::Filesize,
    ) -> FsResult<Resource<DynOutputStream>> {
        self.inner.write_via_stream(fd, offset)
    }

    fn append_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
    ) -> FsResult<Resource<DynOutputStream>> {
        self.inner.append_via_stream(fd)
    }

    async fn is_same_object(
        &mut self,
        a: Resource<Descriptor>,
        b: Resource<Descriptor>,
    ) -> wasmtime::Result<bool> {
        self.inner.is_same_object(a, b).await
    }

    async fn metadata_hash(
        &mut self,
        fd: Resource<Descriptor>,
    ) -> FsResult<types::MetadataHashValue> {
        self.inner.metadata_hash(fd).await
    }
}

impl HostDirectoryEntryStream for AuditedFs<'_> {
    async fn read_directory_entry(
        &mut self,
        stream: Resource<types::DirectoryEntryStream>,
    ) -> FsResult<Option<types::DirectoryEntry>> {
        self.inner.read_directory_entry(stream).await
    }

    fn drop(&mut self, stream: Resource<types::DirectoryEntryStream>) -> wasmtime::Result<()> {
        self.files.listings.remove(&stream.rep());
        HostDirectoryEntryStream::drop(&mut self.inner, stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_shown_from_the_plugins_root() {
        let mut paths = OpenFiles::default();
        paths.remember(3, "/ro".to_owned());
        paths.remember(4, "/".to_owned());
        assert_eq!(paths.shown(3, "../outside/x"), "/ro/../outside/x");
        assert_eq!(paths.shown(3, "/etc/passwd"), "/etc/passwd (from /ro)");
        assert_eq!(paths.shown(4, "etc"), "/etc");
        assert_eq!(paths.shown(9, "a/b"), "a/b");
    }

    #[test]
    fn kept_paths_are_bounded_to_their_tail() {
        let mut paths = OpenFiles::default();
        let deep = format!("/rw/{}end", "./".repeat(5000));
        paths.remember(5, deep);
        let kept = &paths.paths[&5];
        assert_eq!(kept.chars().count(), MAX_KEPT_PATH + 3);
        assert!(kept.starts_with("...") && kept.ends_with("./end"), "{kept}");
    }
}
