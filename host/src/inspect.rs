//! `plugin inspect`: what a component offers (its tools and their schemas) and what it
//! asks for (its imports, each with the grant it would need), before an operator
//! grants it anything. The component runs once, with no grants at all.

use crate::domain::PluginName;
use crate::sandbox::bindings::exports::mcp::tools::tools::Tool;
use crate::sandbox::bindings::mcp::tools::types::Annotations;
use crate::sandbox::contract::Version;
use crate::sandbox::pool::PoolSize;
use crate::sandbox::state::Grants;
use crate::sandbox::{Sandbox, SandboxError};
use crate::schema::CompiledSchema;
use crate::secrets::sources::NoCredentials;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use thiserror::Error;

/// Why a component could not be inspected.
#[derive(Debug, Error)]
pub enum InspectError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The component could not be compiled, linked or run.
    #[error("{path}: {source}")]
    Sandbox {
        /// The file.
        path: String,
        /// Why.
        source: SandboxError,
    },
}

/// What `plugin inspect` found.
pub struct Inspection {
    /// SHA-256 of the file, for the config's `sha256` pin.
    pub sha256: String,
    /// The version of the plugin contract it speaks.
    pub contract: Version,
    /// Every import the component asks for.
    pub imports: Vec<String>,
    /// The tools it offers.
    pub tools: Vec<Tool>,
}

/// Compiles the component, lists its imports and asks it for its tools.
pub async fn inspect(path: &Path) -> Result<Inspection, InspectError> {
    let shown = path.display().to_string();
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|source| InspectError::Read {
            path: shown.clone(),
            source,
        })?;
    let sandbox_err = |source| InspectError::Sandbox {
        path: shown.clone(),
        source,
    };
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let sandbox =
        Sandbox::new(Arc::new(NoCredentials), PoolSize::default()).map_err(sandbox_err)?;
    let component = sandbox.compile(bytes).await.map_err(sandbox_err)?;
    let imports = component
        .component_type()
        .imports(sandbox.engine())
        .map(|(name, _)| name.to_owned())
        .collect();
    let grants = Arc::new(Grants::none(
        PluginName::try_from("inspect".to_owned()).expect("a valid plugin name"),
    ));
    let prepared = sandbox.prepare(&component, grants).map_err(sandbox_err)?;
    let tools = sandbox.list_tools(&prepared).await.map_err(sandbox_err)?;
    Ok(Inspection {
        sha256,
        contract: prepared.contract(),
        imports,
        tools,
    })
}

/// A tool's annotations as `read-only, not destructive, ...`, the unset ones left out.
fn hint_list(hints: &Annotations) -> String {
    [
        (hints.read_only, "read-only"),
        (hints.destructive, "destructive"),
        (hints.idempotent, "idempotent"),
        (hints.open_world, "open-world"),
    ]
    .iter()
    .filter_map(|(set, hint)| {
        set.map(|on| {
            if on {
                (*hint).to_owned()
            } else {
                format!("not {hint}")
            }
        })
    })
    .collect::<Vec<_>>()
    .join(", ")
}

/// What granting an import means, for the operator reading `plugin inspect`.
fn import_meaning(import: &str) -> &'static str {
    let interface = import.split('@').next().unwrap_or(import);
    match interface {
        "mcp:tools/credentials" => "credentials: only names listed in `credentials`",
        "mcp:tools/client" => {
            "the MCP client: log and progress always; sampling and elicitation only if in \
             `client_features`"
        }
        "mcp:tools/types" => "plugin contract types",
        "wasi:http/outgoing-handler" => "outgoing HTTP: only `allowed_outbound_hosts`",
        "wasi:http/types" => "HTTP types",
        "wasi:cli/environment" => "environment: only the config's `env`",
        "wasi:filesystem/types" | "wasi:filesystem/preopens" => {
            "files: only the directories in `files`"
        }
        i if i.starts_with("wasi:sockets/") => "raw sockets: always denied",
        i if i.starts_with("wasi:cli/std") || i.starts_with("wasi:cli/terminal") => {
            "stdio: stdin closed, output to the host log"
        }
        i if i.starts_with("wasi:cli/exit") => "exit",
        i if i.starts_with("wasi:clocks/") => "clocks",
        i if i.starts_with("wasi:random/") => "random numbers",
        i if i.starts_with("wasi:io/") => "streams and polling",
        _ => "unknown to this host: the plugin will not load",
    }
}

impl Inspection {
    /// The human-readable report.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "sha256: {}", self.sha256);
        let contract = match self.contract {
            Version::Current => "the current version",
            Version::V0_1 => "an earlier version, still served",
        };
        let _ = writeln!(out, "contract: {} ({contract})", self.contract.as_str());
        let _ = writeln!(out, "\nimports ({}):", self.imports.len());
        for import in &self.imports {
            let _ = writeln!(out, "  {import:<45} {}", import_meaning(import));
        }
        let _ = writeln!(out, "\ntools ({}):", self.tools.len());
        for tool in &self.tools {
            let _ = writeln!(out, "\n  {}", tool.name);
            if let Some(title) = &tool.title {
                let _ = writeln!(out, "    title: {title}");
            }
            let _ = writeln!(out, "    description: {}", tool.description);
            if let Some(hints) = &tool.annotations {
                let _ = writeln!(out, "    annotations: {}", hint_list(hints));
            }
            for (label, schema) in [
                ("input-schema", Some(&tool.input_schema)),
                ("output-schema", tool.output_schema.as_ref()),
            ] {
                let Some(schema) = schema else { continue };
                match CompiledSchema::compile_object_schema(schema) {
                    Ok(compiled) => {
                        let pretty = serde_json::to_string_pretty(&compiled.json)
                            .unwrap_or_else(|_| schema.clone());
                        let _ = writeln!(out, "    {label}:");
                        for line in pretty.lines() {
                            let _ = writeln!(out, "      {line}");
                        }
                    }
                    Err(problem) => {
                        let _ = writeln!(out, "    {label}: INVALID ({problem})");
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_are_explained() {
        assert!(import_meaning("wasi:http/outgoing-handler@0.2.4").contains("allowed_outbound"));
        assert!(import_meaning("wasi:sockets/tcp@0.2.0").contains("denied"));
        assert!(import_meaning("mcp:tools/credentials@0.1.0").contains("credentials"));
        assert!(import_meaning("mcp:tools/client@0.2.0").contains("client_features"));
        assert!(import_meaning("acme:evil/thing").contains("unknown"));
    }
}
