//! `plugin new`: writes a new plugin crate on the guest SDK: one tool, its unit test,
//! and the host config that serves it. The crate builds with
//! `cargo build --release --target wasm32-wasip2` and with `cargo component build`.

use crate::domain::PluginName;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Where the SDK is in the checkout this binary was built from.
pub fn default_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/sdk")
}

/// Why no crate was written.
#[derive(Debug, Error)]
pub enum ScaffoldError {
    /// Not a plugin name (it is also the crate's name).
    #[error("{0}")]
    Name(String),
    /// Something is already there; nothing is overwritten.
    #[error("{0} already exists; choose another name or folder")]
    Exists(PathBuf),
    /// The SDK is not where the crate would point.
    #[error(
        "the plugin SDK is not at {0} (no Cargo.toml there); pass --sdk with the path of \
         plugins/sdk in an mcp-wasm-host checkout"
    )]
    NoSdk(PathBuf),
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What was written.
#[derive(Debug)]
pub struct Scaffold {
    /// The crate's folder.
    pub dir: PathBuf,
    /// The `[plugins.NAME]` table that serves the built component.
    pub config: String,
}

const CARGO_TOML: &str = r#"[package]
name = "__NAME__"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
mcp-wasm-sdk = { path = "__SDK__" }
schemars = "1"
serde = { version = "1", features = ["derive"] }

# A crate of its own, even inside another project's folder.
[workspace]
"#;

const LIB_RS: &str = r#"//! __NAME__: an mcp-wasm-host plugin.
//!
//! Build: `cargo build --release --target wasm32-wasip2` (or `cargo component build
//! --release`). Check: `mcp-wasm-host plugin inspect
//! target/wasm32-wasip2/release/__FILE__.wasm`. Serve: add `host-snippet.toml` to the
//! host's config.

use mcp_wasm_sdk::{Error, JsonSchema, Plugin, Tool};
use serde::Deserialize;

/// The arguments of `greet`; the host checks calls against the schema derived from it.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Greet {
    /// Who to greet.
    #[schemars(length(min = 1, max = 100))]
    name: String,
}

/// The tool. `Error::Tool` is an answer the model reads and may act on; the other
/// errors say the call failed.
fn greet(args: Greet) -> Result<String, Error> {
    let name = args.name.trim();
    if name.is_empty() {
        return Err(Error::Tool("Give the name of someone to greet.".into()));
    }
    Ok(format!("Hello, {name}!"))
}

struct ThisPlugin;

impl Plugin for ThisPlugin {
    fn tools() -> Vec<Tool> {
        vec![Tool::new("greet", "Greets someone by name.", greet).title("Greet")]
    }
}

mcp_wasm_sdk::export!(ThisPlugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greets_by_name_and_asks_for_one_when_it_is_blank() {
        let greeting = greet(Greet { name: " Ada ".into() });
        assert_eq!(greeting, Ok("Hello, Ada!".to_owned()));
        assert!(matches!(greet(Greet { name: "  ".into() }), Err(Error::Tool(_))));
    }
}
"#;

const SNIPPET: &str = r#"# Serves the __NAME__ plugin: add this to the host's config.
[plugins.__NAME__]
path = "__WASM__"
# What the plugin may touch beyond its own memory (nothing unless granted):
# files = [{ host = "data", guest = "/data", mode = "ro" }]
# allowed_outbound_hosts = ["https://api.example.com"]
# credentials = ["api-key"]
limits = { memory = "32MiB", timeout = "5s" }
"#;

const GITIGNORE: &str = "/target\n";

/// Writes the crate `name` into `parent/name`, its SDK dependency pointing at `sdk`.
pub fn create(name: &str, parent: &Path, sdk: &Path) -> Result<Scaffold, ScaffoldError> {
    let plugin = PluginName::try_from(name.to_owned()).map_err(ScaffoldError::Name)?;
    if !plugin
        .as_str()
        .starts_with(|c: char| c.is_ascii_lowercase())
    {
        return Err(ScaffoldError::Name(format!(
            "plugin name `{name}` must start with a letter (it is also the crate's name)"
        )));
    }
    if !sdk.join("Cargo.toml").is_file() {
        return Err(ScaffoldError::NoSdk(sdk.to_owned()));
    }
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| ScaffoldError::Write { path, source }
    };
    let sdk = std::path::absolute(sdk).map_err(write_err(sdk))?;
    let dir = std::path::absolute(parent.join(name)).map_err(write_err(parent))?;
    if dir.exists() {
        return Err(ScaffoldError::Exists(dir));
    }
    let file = name.replace('-', "_");
    let wasm = dir
        .join("target/wasm32-wasip2/release")
        .join(format!("{file}.wasm"));
    let fill = |template: &str| {
        template
            .replace("__NAME__", name)
            .replace("__FILE__", &file)
            .replace("__SDK__", &toml_text(&sdk))
            .replace("__WASM__", &toml_text(&wasm))
    };
    let config = fill(SNIPPET);
    // Created with `create_dir` (not `_all`) last of all checks: a folder made between
    // the check and here is refused, not written into.
    std::fs::create_dir_all(parent).map_err(write_err(parent))?;
    std::fs::create_dir(&dir).map_err(write_err(&dir))?;
    std::fs::create_dir(dir.join("src")).map_err(write_err(&dir.join("src")))?;
    for (path, text) in [
        ("Cargo.toml", fill(CARGO_TOML)),
        ("src/lib.rs", fill(LIB_RS)),
        ("host-snippet.toml", config.clone()),
        (".gitignore", GITIGNORE.to_owned()),
    ] {
        let path = dir.join(path);
        std::fs::write(&path, text).map_err(write_err(&path))?;
    }
    Ok(Scaffold { dir, config })
}

/// A path inside a TOML basic string: backslashes and quotes escaped.
fn toml_text(path: &Path) -> String {
    path.display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crate_is_written_with_its_config_and_nothing_is_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let made = create("my-tool", dir.path(), &default_sdk()).unwrap();
        assert_eq!(made.dir, dir.path().join("my-tool"));
        let cargo = std::fs::read_to_string(made.dir.join("Cargo.toml")).unwrap();
        let manifest: toml::Table = toml::from_str(&cargo).unwrap();
        assert_eq!(manifest["package"]["name"].as_str(), Some("my-tool"));
        let sdk = manifest["dependencies"]["mcp-wasm-sdk"]["path"]
            .as_str()
            .unwrap();
        assert!(Path::new(sdk).join("Cargo.toml").is_file(), "{sdk}");
        let snippet: toml::Table = toml::from_str(&made.config).unwrap();
        let path = snippet["plugins"]["my-tool"]["path"].as_str().unwrap();
        assert!(
            path.ends_with("target/wasm32-wasip2/release/my_tool.wasm"),
            "{path}"
        );
        let lib = std::fs::read_to_string(made.dir.join("src/lib.rs")).unwrap();
        assert!(lib.contains("mcp_wasm_sdk::export!(ThisPlugin);"));
        assert!(!lib.contains("__"), "a placeholder is left:\n{lib}");

        // Again: refused, and what is there is untouched.
        std::fs::write(made.dir.join("src/lib.rs"), "// mine").unwrap();
        let again = create("my-tool", dir.path(), &default_sdk()).unwrap_err();
        assert!(matches!(again, ScaffoldError::Exists(_)), "{again}");
        let kept = std::fs::read_to_string(made.dir.join("src/lib.rs")).unwrap();
        assert_eq!(kept, "// mine");
    }

    #[test]
    fn bad_names_and_a_missing_sdk_are_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["", "Caps", "has space", "../escape", "9lives", "-dash"] {
            let error = create(name, dir.path(), &default_sdk()).unwrap_err();
            assert!(matches!(error, ScaffoldError::Name(_)), "{name:?}: {error}");
        }
        let nowhere = dir.path().join("no-sdk");
        let error = create("fine", dir.path(), &nowhere).unwrap_err();
        assert!(error.to_string().contains("--sdk"), "{error}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
