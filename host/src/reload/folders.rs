//! Watching folders for files written, created, renamed or removed. On Linux this asks
//! inotify for exactly those events, so a write to a file kept open in a watched folder
//! (the audit log, the host log or a SQLite database beside the config) wakes nothing;
//! elsewhere it uses `notify`.

use std::path::Path;

/// Called with the path of each file written (and closed), created, renamed or removed
/// in a watched folder.
pub type OnChange = Box<dyn Fn(&Path) + Send + Sync>;

#[cfg(target_os = "linux")]
pub use inotify_folders::Folders;
#[cfg(not(target_os = "linux"))]
pub use notify_folders::Folders;

#[cfg(target_os = "linux")]
mod inotify_folders {
    use super::OnChange;
    use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    /// A file's contents or name changed: closed after writing, renamed in or out,
    /// created, removed, or its permissions changed. Not a write to a file that stays
    /// open, nor an open: those come with every append to a log.
    const CHANGES: WatchMask = WatchMask::CLOSE_WRITE
        .union(WatchMask::MOVED_TO)
        .union(WatchMask::MOVED_FROM)
        .union(WatchMask::CREATE)
        .union(WatchMask::DELETE)
        .union(WatchMask::ATTRIB);

    /// Watched folders, by the descriptor their events carry.
    type Watched = Arc<Mutex<HashMap<WatchDescriptor, PathBuf>>>;

    /// The folders watched, and the thread reading their events.
    pub struct Folders {
        watches: Watches,
        watched: Watched,
        stopped: Arc<AtomicBool>,
    }

    impl Folders {
        /// Starts the thread that calls `on_change` (no folder is watched yet).
        pub fn new(on_change: OnChange) -> std::io::Result<Self> {
            let mut inotify = Inotify::init()?;
            let watches = inotify.watches();
            let watched = Watched::default();
            let stopped = Arc::new(AtomicBool::new(false));
            let (folders, stop) = (watched.clone(), stopped.clone());
            std::thread::Builder::new()
                .name("file-watch".into())
                .spawn(move || {
                    let mut buffer = [0u8; 4096];
                    loop {
                        let events = match inotify.read_events_blocking(&mut buffer) {
                            Ok(events) => events,
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                            Err(error) => {
                                tracing::warn!(%error, "cannot read file changes; reload with SIGHUP");
                                return;
                            }
                        };
                        if stop.load(Ordering::Acquire) {
                            return;
                        }
                        for event in events {
                            if event.mask.contains(EventMask::IGNORED) {
                                continue;
                            }
                            let Some(name) = event.name else { continue };
                            let folder = folders
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .get(&event.wd)
                                .cloned();
                            if let Some(folder) = folder {
                                on_change(&folder.join(name));
                            }
                        }
                    }
                })?;
            Ok(Self {
                watches,
                watched,
                stopped,
            })
        }

        /// Watches `folder` (not its subfolders).
        pub fn watch(&mut self, folder: &Path) -> std::io::Result<()> {
            let wd = self.watches.add(folder, CHANGES)?;
            self.watched
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(wd, folder.to_owned());
            Ok(())
        }

        /// Stops watching `folder`.
        pub fn unwatch(&mut self, folder: &Path) {
            let mut watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
            let gone: Vec<WatchDescriptor> = watched
                .iter()
                .filter(|(_, watched)| watched.as_path() == folder)
                .map(|(wd, _)| wd.clone())
                .collect();
            for wd in gone {
                watched.remove(&wd);
                let _ = self.watches.remove(wd);
            }
        }
    }

    /// Removing the watches wakes the thread (each removal is an event), which then
    /// sees it is stopped and ends.
    impl Drop for Folders {
        fn drop(&mut self) {
            self.stopped.store(true, Ordering::Release);
            let watched: Vec<WatchDescriptor> = self
                .watched
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .drain()
                .map(|(wd, _)| wd)
                .collect();
            for wd in watched {
                let _ = self.watches.remove(wd);
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod notify_folders {
    use super::OnChange;
    use notify::Watcher as _;
    use std::path::Path;

    /// The folders watched.
    pub struct Folders {
        watcher: notify::RecommendedWatcher,
    }

    impl Folders {
        /// Starts watching (no folder yet) and calls `on_change` for each change.
        pub fn new(on_change: OnChange) -> std::io::Result<Self> {
            let watcher =
                notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                    let Ok(event) = event else { return };
                    if matches!(event.kind, notify::EventKind::Access(_)) {
                        return;
                    }
                    for path in &event.paths {
                        on_change(path);
                    }
                })
                .map_err(std::io::Error::other)?;
            Ok(Self { watcher })
        }

        /// Watches `folder` (not its subfolders).
        pub fn watch(&mut self, folder: &Path) -> std::io::Result<()> {
            self.watcher
                .watch(folder, notify::RecursiveMode::NonRecursive)
                .map_err(std::io::Error::other)
        }

        /// Stops watching `folder`.
        pub fn unwatch(&mut self, folder: &Path) {
            let _ = self.watcher.unwatch(folder);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::mpsc;
    use std::time::Duration;

    fn watching(folder: &Path) -> (Folders, mpsc::Receiver<std::path::PathBuf>) {
        let (tx, rx) = mpsc::channel();
        let tx = std::sync::Mutex::new(tx);
        let mut folders = Folders::new(Box::new(move |path| {
            let _ = tx.lock().unwrap().send(path.to_owned());
        }))
        .unwrap();
        folders.watch(folder).unwrap();
        (folders, rx)
    }

    #[test]
    fn files_written_renamed_or_removed_are_seen_and_appends_to_open_files_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().canonicalize().unwrap();
        let (_folders, changes) = watching(&folder);
        let wait = Duration::from_secs(5);
        // A log kept open: its creation is a change, its appends are not.
        let log = folder.join("audit.jsonl");
        let mut open = std::fs::File::create(&log).unwrap();
        assert_eq!(changes.recv_timeout(wait).unwrap(), log);
        for _ in 0..50 {
            writeln!(open, "a record").unwrap();
            open.flush().unwrap();
        }
        // Written and closed, then a rename onto it: each is seen, and nothing else
        // came before them.
        let config = folder.join("host.toml");
        std::fs::write(&config, "[plugins]\n").unwrap();
        let seen: Vec<_> = std::iter::from_fn(|| changes.recv_timeout(wait).ok())
            .take_while(|path| path != &config)
            .collect();
        assert!(
            seen.is_empty(),
            "appends to an open file were reported: {seen:?}"
        );
        let next = folder.join("host.toml.next");
        std::fs::write(&next, "[plugins]\n").unwrap();
        std::fs::rename(&next, &config).unwrap();
        let renamed =
            std::iter::from_fn(|| changes.recv_timeout(wait).ok()).any(|path| path == config);
        assert!(renamed, "a rename onto the file was not reported");
        std::fs::remove_file(&config).unwrap();
        let removed =
            std::iter::from_fn(|| changes.recv_timeout(wait).ok()).any(|path| path == config);
        assert!(removed, "a removal was not reported");
        drop(open);
    }

    #[test]
    fn a_folder_no_longer_watched_is_quiet() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().canonicalize().unwrap();
        let (mut folders, changes) = watching(&folder);
        folders.unwatch(&folder);
        std::fs::write(folder.join("host.toml"), "").unwrap();
        assert!(
            changes.recv_timeout(Duration::from_millis(300)).is_err(),
            "a change in an unwatched folder was reported"
        );
    }
}
