//! An encrypted secret store for a test host, filled through the real CLI.

use super::config::toml_path;
use super::host::run_host;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};

/// An encrypted secret store in a temp folder, filled through the real CLI.
pub struct Secrets {
    dir: tempfile::TempDir,
    /// The KEK (base64), as `MCP_HOST_KEK` must hold it.
    pub kek: String,
}

impl Secrets {
    /// A new store with a fresh KEK holding `values`.
    pub fn new(values: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (status, kek, stderr) = run_host(&["keygen"]);
        assert!(status.success(), "{stderr}");
        let secrets = Self {
            dir,
            kek: kek.trim().to_owned(),
        };
        std::fs::write(secrets.config_path(), secrets.section()).unwrap();
        for (name, value) in values {
            secrets.set(name, value).unwrap();
        }
        secrets
    }

    /// The `[secrets]` section naming this store (KEK from `MCP_HOST_KEK`).
    pub fn section(&self) -> String {
        format!(
            "[secrets]\nstore = {}\nkek_env = \"MCP_HOST_KEK\"\n",
            toml_path(&self.store_path())
        )
    }

    pub fn store_path(&self) -> PathBuf {
        self.dir.path().join("data").join("secrets.json")
    }

    /// A config file holding only [`Self::section`], for the `secrets` commands.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("secrets.toml")
    }

    /// The environment a host or CLI using this store needs.
    pub fn env(&self) -> [(&str, &str); 1] {
        [("MCP_HOST_KEK", self.kek.as_str())]
    }

    /// `mcp-wasm-host secrets ARGS --config ...`, with `stdin` as standard input.
    pub fn cli(&self, args: &[&str], stdin: &str) -> (ExitStatus, String, String) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mcp-wasm-host"));
        command
            .arg("secrets")
            .args(args)
            .arg("--config")
            .arg(self.config_path())
            .env_clear()
            .envs(self.env());
        super::host::run_with_input(command, stdin)
    }

    /// Stores `value` as `name` through `secrets set`; `Err(stderr)` if refused.
    pub fn set(&self, name: &str, value: &str) -> Result<(), String> {
        let (status, _, stderr) = self.cli(&["set", name], &format!("{value}\n"));
        if status.success() {
            Ok(())
        } else {
            Err(stderr)
        }
    }
}
