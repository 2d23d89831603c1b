//! The plugins the tests run: built once per `cargo test` by the `test-artifacts`
//! crate's build script, shared by every test.

use std::path::{Path, PathBuf};

/// The workspace's root folder.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_owned()
}

/// Path of a plugin component (`weather`, `echo` or `fixture`).
pub fn plugin(name: &str) -> PathBuf {
    PathBuf::from(test_artifacts::plugin(name))
}
