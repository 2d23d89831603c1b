//! The versions of the plugin contract a component may speak: the current one
//! (`mcp:tools@0.2.0`, `wit/`) and 0.1.0 (`wit/v0.1.0`). A 0.1.0 plugin is linked
//! against its own imports and its answers are converted into the current types, so
//! the rest of the host knows one contract.

use super::bindings::exports::mcp::tools::tools::{CallError, CallResult, Tool};
use super::bindings::mcp::tools::types::{Content, Image, ResourceLink};
use super::bindings::{Plugin, PluginPre, v0_1};
use super::state::CallState;
use wasmtime::Store;
use wasmtime::component::{HasSelf, InstancePre, Linker};

/// A contract version, as its WIT package names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `mcp:tools@0.2.0`.
    Current,
    /// `mcp:tools@0.1.0`.
    V0_1,
}

impl Version {
    /// The WIT package and version.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Current => "mcp:tools@0.2.0",
            Self::V0_1 => "mcp:tools@0.1.0",
        }
    }

    /// The version whose `tools` export a component with these export names has.
    pub fn of_exports<'a>(mut names: impl Iterator<Item = &'a str>) -> Option<Self> {
        names.find_map(|name| match name {
            "mcp:tools/tools@0.2.0" => Some(Self::Current),
            "mcp:tools/tools@0.1.0" => Some(Self::V0_1),
            _ => None,
        })
    }
}

/// Adds every version's imports (credentials, the types) to `linker`.
pub fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    Plugin::add_to_linker::<_, HasSelf<_>>(linker, |state| state)?;
    v0_1::Plugin::add_to_linker::<_, HasSelf<_>>(linker, |state| state)
}

/// A pre-linked component of either version.
pub enum Prepared {
    /// Speaks the current contract.
    Current(PluginPre<CallState>),
    /// Speaks 0.1.0.
    V0_1(v0_1::PluginPre<CallState>),
}

/// One instance of either version.
pub enum Instance {
    /// Speaks the current contract.
    Current(Plugin),
    /// Speaks 0.1.0.
    V0_1(v0_1::Plugin),
}

impl Prepared {
    /// Checks the component's `tools` export against the version it names.
    pub fn new(pre: InstancePre<CallState>, names: Vec<String>) -> Result<Self, String> {
        match Version::of_exports(names.iter().map(String::as_str)) {
            Some(Version::Current) => PluginPre::new(pre)
                .map(Self::Current)
                .map_err(|e| format!("{e:#}")),
            Some(Version::V0_1) => v0_1::PluginPre::new(pre)
                .map(Self::V0_1)
                .map_err(|e| format!("{e:#}")),
            None => Err(no_contract(&names)),
        }
    }

    /// The version the component speaks.
    pub fn version(&self) -> Version {
        match self {
            Self::Current(_) => Version::Current,
            Self::V0_1(_) => Version::V0_1,
        }
    }

    /// A fresh instance in `store`.
    pub async fn instantiate(&self, store: &mut Store<CallState>) -> wasmtime::Result<Instance> {
        Ok(match self {
            Self::Current(pre) => Instance::Current(pre.instantiate_async(store).await?),
            Self::V0_1(pre) => Instance::V0_1(pre.instantiate_async(store).await?),
        })
    }
}

impl Instance {
    /// `list-tools`, in the current types.
    pub async fn list_tools(&self, store: &mut Store<CallState>) -> wasmtime::Result<Vec<Tool>> {
        Ok(match self {
            Self::Current(plugin) => plugin.mcp_tools_tools().call_list_tools(store).await?,
            Self::V0_1(plugin) => plugin
                .mcp_tools_tools()
                .call_list_tools(store)
                .await?
                .into_iter()
                .map(tool)
                .collect(),
        })
    }

    /// `call-tool`, in the current types.
    pub async fn call_tool(
        &self,
        store: &mut Store<CallState>,
        name: &str,
        arguments: &str,
    ) -> wasmtime::Result<Result<CallResult, CallError>> {
        Ok(match self {
            Self::Current(plugin) => {
                plugin
                    .mcp_tools_tools()
                    .call_call_tool(store, name, arguments)
                    .await?
            }
            Self::V0_1(plugin) => plugin
                .mcp_tools_tools()
                .call_call_tool(store, name, arguments)
                .await?
                .map(call_result)
                .map_err(call_error),
        })
    }
}

/// Why a component that exports no `tools` interface this host knows is refused.
fn no_contract(exports: &[String]) -> String {
    let exported = if exports.is_empty() {
        "nothing".to_owned()
    } else {
        exports.join(", ")
    };
    format!(
        "the component exports no `tools` interface of a contract this host speaks ({} or \
         {}); it exports: {exported}",
        Version::Current.as_str(),
        Version::V0_1.as_str(),
    )
}

fn tool(old: v0_1::exports::mcp::tools::tools::Tool) -> Tool {
    Tool {
        name: old.name,
        title: old.title,
        description: old.description,
        input_schema: old.input_schema,
        output_schema: old.output_schema,
        annotations: None,
    }
}

fn call_result(old: v0_1::exports::mcp::tools::tools::CallResult) -> CallResult {
    use v0_1::mcp::tools::types::Content as Old;
    CallResult {
        content: old
            .content
            .into_iter()
            .map(|content| match content {
                Old::Text(text) => Content::Text(text),
                Old::Image(image) => Content::Image(Image {
                    mime_type: image.mime_type,
                    data: image.data,
                }),
                // 0.1.0 links had a URI only; it is their name too.
                Old::ResourceLink(uri) => Content::ResourceLink(ResourceLink {
                    name: uri.clone(),
                    uri,
                    title: None,
                    description: None,
                    mime_type: None,
                }),
            })
            .collect(),
        structured: old.structured,
        is_error: old.is_error,
    }
}

fn call_error(old: v0_1::exports::mcp::tools::tools::CallError) -> CallError {
    use v0_1::exports::mcp::tools::tools::CallError as Old;
    match old {
        Old::InvalidArguments(m) => CallError::InvalidArguments(m),
        Old::UnknownTool(m) => CallError::UnknownTool(m),
        Old::Upstream(m) => CallError::Upstream(m),
        Old::Internal(m) => CallError::Internal(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_read_from_the_tools_export() {
        let names = |list: &'static [&'static str]| list.iter().copied();
        assert_eq!(
            Version::of_exports(names(&["mcp:tools/tools@0.2.0"])),
            Some(Version::Current)
        );
        assert_eq!(
            Version::of_exports(names(&["wasi:cli/run@0.2.0", "mcp:tools/tools@0.1.0"])),
            Some(Version::V0_1)
        );
        assert_eq!(Version::of_exports(names(&["mcp:tools/tools@0.9.0"])), None);
        assert_eq!(Version::of_exports(names(&[])), None);
        let refusal = no_contract(&["wasi:cli/run@0.2.0".to_owned()]);
        assert!(
            refusal.contains("mcp:tools@0.2.0 or mcp:tools@0.1.0"),
            "{refusal}"
        );
        assert!(
            refusal.ends_with("it exports: wasi:cli/run@0.2.0"),
            "{refusal}"
        );
        assert!(no_contract(&[]).ends_with("it exports: nothing"));
    }
}
