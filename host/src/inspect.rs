//! `plugin inspect`: what a component offers (its tools and their schemas) and what it
//! asks for (its imports, each with the grant it would need), before an operator
//! grants it anything. The component runs once, with no grants at all.

use crate::config::PluginName;
use crate::sandbox::bindings::exports::mcp::tools::tools::Tool;
use crate::sandbox::credentials::CredentialSource;
use crate::sandbox::limits::Limits;
use crate::sandbox::state::Grants;
use crate::sandbox::{PoolSize, Sandbox, SandboxError};
use crate::schema::CompiledSchema;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum InspectError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Sandbox { path: String, source: SandboxError },
}

/// What `plugin inspect` found.
pub struct Inspection {
    pub sha256: String,
    pub imports: Vec<String>,
    pub tools: Vec<Tool>,
}

/// A credential source that has nothing: inspection grants no credentials.
struct NoCredentials;

impl CredentialSource for NoCredentials {
    fn get(
        &self,
        _name: &str,
    ) -> Result<Option<zeroize::Zeroizing<String>>, crate::sandbox::credentials::SourceUnavailable>
    {
        Ok(None)
    }

    fn describe(&self, _name: &str) -> String {
        "inspection grants no credentials".to_owned()
    }
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
    let grants = Arc::new(Grants {
        plugin: PluginName::try_from("inspect".to_owned()).expect("a valid plugin name"),
        env: Vec::new(),
        credentials: Vec::new(),
        outbound: Vec::new(),
        limits: Limits::default(),
        files: Vec::new(),
    });
    let prepared = sandbox.prepare(&component, grants).map_err(sandbox_err)?;
    let tools = sandbox.list_tools(&prepared).await.map_err(sandbox_err)?;
    Ok(Inspection {
        sha256,
        imports,
        tools,
    })
}

/// What granting an import means, for the operator reading `plugin inspect`.
fn import_meaning(import: &str) -> &'static str {
    let interface = import.split('@').next().unwrap_or(import);
    match interface {
        "mcp:tools/credentials" => "credentials: only names listed in `credentials`",
        "mcp:tools/types" => "plugin contract types",
        "wasi:http/outgoing-handler" => "outgoing HTTP: only `allowed_outbound_hosts`",
        "wasi:http/types" => "HTTP types",
        "wasi:cli/environment" => "environment: only the config's `env`",
        "wasi:filesystem/types" | "wasi:filesystem/preopens" => {
            "files: only the directories in `files`"
        }
        i if i.starts_with("wasi:sockets/") => "raw sockets: always denied",
        i if i.starts_with("wasi:cli/std") || i.starts_with("wasi:cli/terminal") => {
            "stdio: stdin closed, output discarded"
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
        assert!(import_meaning("acme:evil/thing").contains("unknown"));
    }
}
