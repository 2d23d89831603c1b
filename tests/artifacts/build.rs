//! Builds the workspace's plugins (`weather`, `echo`, `notes`, and the test plugins
//! `fixture`, `conformance` and `legacy`) for `wasm32-wasip2` in release mode, in a target folder
//! of their own, and writes their paths into `artifacts.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The plugin packages, as `cargo -p` names them.
const PLUGINS: [&str; 6] = [
    "weather",
    "echo",
    "notes",
    "fixture",
    "conformance",
    "legacy",
];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.ancestors().nth(2).unwrap().to_owned();
    // The Rust plugins and what they build from (not all of `plugins/`: the Python
    // and JavaScript plugins keep their tools' installs there).
    let watched = [
        "plugins/weather",
        "plugins/echo",
        "plugins/notes",
        "plugins/sdk",
        "tests/plugins",
        "wit",
        "Cargo.lock",
    ];
    for watched in watched {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let target = plugin_target_dir(&out);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(&root)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .args(PLUGINS.iter().flat_map(|p| ["-p", p]))
        .arg("--target-dir")
        .arg(&target)
        // The host's flags and wrappers (clippy's, during `cargo clippy`) are not the
        // plugins': left set, they would also make each kind of build rebuild them.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CLIPPY_ARGS");
    let status = build.status().expect("cargo can be run");
    assert!(
        status.success(),
        "building the test plugins failed (is the target installed? `rustup target add \
         wasm32-wasip2`)"
    );
    let built = target.join("wasm32-wasip2").join("release");
    let mut code = String::from("/// Each plugin's name and the path of its component.\n");
    code.push_str("pub const PLUGINS: &[(&str, &str)] = &[\n");
    for plugin in PLUGINS {
        let path = built.join(format!("{plugin}.wasm"));
        assert!(path.exists(), "no plugin at {}", path.display());
        code.push_str(&format!(
            "    ({plugin:?}, {:?}),\n",
            path.display().to_string()
        ));
    }
    code.push_str("];\n");
    std::fs::write(out.join("artifacts.rs"), code).unwrap();
}

/// `<target>/plugin-artifacts`, where `<target>` is the folder that holds this build's
/// profile folders (OUT_DIR is `<target>/<profile>/build/<package>-<hash>/out`): one
/// plugin build shared by `cargo clippy`, `cargo test` and `cargo bench`.
fn plugin_target_dir(out: &Path) -> PathBuf {
    out.ancestors()
        .nth(4)
        .map(|target| target.join("plugin-artifacts"))
        .unwrap_or_else(|| out.join("plugin-artifacts"))
}
