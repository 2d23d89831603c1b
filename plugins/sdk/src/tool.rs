//! One tool: its name and text, the schemas derived from its argument and output
//! types, and its handler behind one signature (JSON text in, a WIT result out).

use crate::Error;
use crate::bindings::mcp::tools::types::{self as wit, Annotations, CallResult, Content};
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

type Handler = Box<dyn Fn(&str) -> Result<CallResult, wit::CallError>>;

/// A tool a plugin offers.
pub struct Tool {
    name: &'static str,
    title: Option<&'static str>,
    description: &'static str,
    input_schema: fn() -> String,
    output_schema: Option<fn() -> String>,
    annotations: Option<Annotations>,
    handler: Handler,
}

/// What a tool's text result may be made from.
pub trait IntoContent {
    /// The content items.
    fn into_content(self) -> Vec<Content>;
}

impl IntoContent for String {
    fn into_content(self) -> Vec<Content> {
        vec![Content::Text(self)]
    }
}

impl IntoContent for &str {
    fn into_content(self) -> Vec<Content> {
        vec![Content::Text(self.to_owned())]
    }
}

impl IntoContent for Content {
    fn into_content(self) -> Vec<Content> {
        vec![self]
    }
}

impl IntoContent for Vec<Content> {
    fn into_content(self) -> Vec<Content> {
        self
    }
}

/// A structured result (checked by the host against the output schema derived from
/// `T`) and its text, for the model and for clients that read only text.
pub struct Structured<T> {
    /// The result as data.
    pub value: T,
    /// The same result in words.
    pub text: String,
}

impl Tool {
    /// A tool named `name` (unique across the host: 1-128 of `A-Z a-z 0-9 _ - .`) that
    /// calls `handler` with its arguments, parsed from JSON into `A`. The input schema
    /// is derived from `A`.
    pub fn new<A, R>(
        name: &'static str,
        description: &'static str,
        handler: fn(A) -> Result<R, Error>,
    ) -> Self
    where
        A: DeserializeOwned + JsonSchema + 'static,
        R: IntoContent + 'static,
    {
        Self {
            name,
            title: None,
            description,
            input_schema: schema_of::<A>,
            output_schema: None,
            annotations: None,
            handler: Box::new(move |arguments| {
                finish(
                    parse(arguments)
                        .and_then(handler)
                        .map(|r| (r.into_content(), None)),
                )
            }),
        }
    }

    /// A tool whose results are structured: the output schema is derived from `O`,
    /// and each result carries the value and its text.
    pub fn structured<A, O>(
        name: &'static str,
        description: &'static str,
        handler: fn(A) -> Result<Structured<O>, Error>,
    ) -> Self
    where
        A: DeserializeOwned + JsonSchema + 'static,
        O: Serialize + JsonSchema + 'static,
    {
        Self {
            name,
            title: None,
            description,
            input_schema: schema_of::<A>,
            output_schema: Some(schema_of::<O>),
            annotations: None,
            handler: Box::new(move |arguments| {
                let result = parse(arguments).and_then(handler).and_then(|out| {
                    let value = serde_json::to_string(&out.value).map_err(|e| {
                        Error::Internal(format!("the result does not serialize: {e}"))
                    })?;
                    Ok((out.text.into_content(), Some(value)))
                });
                finish(result)
            }),
        }
    }

    /// A human-friendly display name.
    pub fn title(mut self, title: &'static str) -> Self {
        self.title = Some(title);
        self
    }

    /// Hints for clients about what the tool does (MCP's tool annotations; not
    /// enforced): e.g. `Annotations { read_only: Some(true), ..Annotations::none() }`.
    pub fn annotations(mut self, annotations: Annotations) -> Self {
        self.annotations = Some(annotations);
        self
    }

    /// The tool as `list-tools` describes it.
    fn describe(&self) -> wit::Tool {
        wit::Tool {
            name: self.name.to_owned(),
            title: self.title.map(str::to_owned),
            description: self.description.to_owned(),
            input_schema: (self.input_schema)(),
            output_schema: self.output_schema.map(|schema| schema()),
            annotations: self.annotations,
        }
    }
}

/// The JSON Schema (draft 2020-12) of `T`, as JSON text, without the title and
/// description schemars takes from the Rust type's name and doc comment (they document
/// the code; clients show the tool's own title and description).
fn schema_of<T: JsonSchema>() -> String {
    let mut schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>();
    schema.remove("title");
    schema.remove("description");
    serde_json::to_string(&schema).expect("a schema is JSON")
}

/// The arguments as `A`. The host has checked them against the schema; this catches a
/// plugin run under a host that did not.
fn parse<A: DeserializeOwned>(arguments: &str) -> Result<A, Error> {
    serde_json::from_str(arguments).map_err(|e| Error::InvalidArguments(e.to_string()))
}

/// The WIT result for a handler's outcome: [`Error::Tool`] is a result the model reads,
/// the other errors are call errors.
fn finish(
    outcome: Result<(Vec<Content>, Option<String>), Error>,
) -> Result<CallResult, wit::CallError> {
    match outcome {
        Ok((content, structured)) => Ok(CallResult {
            content,
            structured,
            is_error: false,
        }),
        Err(Error::Tool(text)) => Ok(CallResult {
            content: vec![Content::Text(text)],
            structured: None,
            is_error: true,
        }),
        Err(Error::InvalidArguments(m)) => Err(wit::CallError::InvalidArguments(m)),
        Err(Error::Upstream(m)) => Err(wit::CallError::Upstream(m)),
        Err(Error::Internal(m)) => Err(wit::CallError::Internal(m)),
    }
}

/// `list-tools` for a plugin's tools.
pub fn list_tools(tools: Vec<Tool>) -> Vec<wit::Tool> {
    tools.iter().map(Tool::describe).collect()
}

/// `call-tool` for a plugin's tools.
pub fn call_tool(
    tools: Vec<Tool>,
    name: &str,
    arguments: &str,
) -> Result<CallResult, wit::CallError> {
    match tools.iter().find(|tool| tool.name == name) {
        Some(tool) => (tool.handler)(arguments),
        None => Err(wit::CallError::UnknownTool(name.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// The arguments (this comment documents the code, not the schema).
    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Args {
        /// Who to greet.
        #[schemars(length(min = 1, max = 10), pattern(r"^[a-z]+$"))]
        name: String,
        #[serde(default)]
        loud: bool,
    }

    #[derive(Serialize, JsonSchema)]
    struct Out {
        greeting: String,
    }

    fn greet(args: Args) -> Result<String, Error> {
        match args.name.as_str() {
            "nobody" => Err(Error::Tool("nobody is here".into())),
            "bug" => Err(Error::Internal("a bug".into())),
            name if args.loud => Ok(format!("HELLO, {}", name.to_uppercase())),
            name => Ok(format!("hello, {name}")),
        }
    }

    fn greet_structured(args: Args) -> Result<Structured<Out>, Error> {
        let text = greet(args)?;
        Ok(Structured {
            value: Out {
                greeting: text.clone(),
            },
            text,
        })
    }

    fn tools() -> Vec<Tool> {
        vec![
            Tool::new("greet", "Greets.", greet).title("Greet"),
            Tool::structured("greet_data", "Greets, as data.", greet_structured),
        ]
    }

    fn text(result: &CallResult) -> &str {
        match &result.content[0] {
            Content::Text(text) => text,
            _ => panic!("not text"),
        }
    }

    #[test]
    fn the_input_schema_comes_from_the_argument_type() {
        let listed = list_tools(tools());
        assert_eq!(listed[0].name, "greet");
        assert_eq!(listed[0].title.as_deref(), Some("Greet"));
        assert_eq!(listed[0].output_schema, None);
        let schema: serde_json::Value = serde_json::from_str(&listed[0].input_schema).unwrap();
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(schema["required"], serde_json::json!(["name"]));
        let name = &schema["properties"]["name"];
        assert_eq!(name["minLength"], 1);
        assert_eq!(name["maxLength"], 10);
        assert_eq!(name["pattern"], "^[a-z]+$");
        assert_eq!(name["description"], "Who to greet.");
        assert_eq!(schema["properties"]["loud"]["default"], false);
        assert!(schema.get("title").is_none(), "{schema}");
        assert!(schema.get("description").is_none(), "{schema}");
        assert!(schema["$schema"].as_str().unwrap().contains("2020-12"));
        let output: serde_json::Value =
            serde_json::from_str(listed[1].output_schema.as_ref().unwrap()).unwrap();
        assert_eq!(output["properties"]["greeting"]["type"], "string");
    }

    #[test]
    fn calls_reach_their_handler_and_errors_map_to_the_contract() {
        let ok = call_tool(tools(), "greet", r#"{"name":"ada","loud":true}"#).unwrap();
        assert_eq!(text(&ok), "HELLO, ADA");
        assert!(!ok.is_error);
        let refused = call_tool(tools(), "greet", r#"{"name":"nobody"}"#).unwrap();
        assert!(refused.is_error);
        assert_eq!(text(&refused), "nobody is here");
        assert_eq!(
            call_tool(tools(), "greet", r#"{"name":"bug"}"#),
            Err(wit::CallError::Internal("a bug".into()))
        );
        match call_tool(tools(), "greet", r#"{"name":"ada","extra":1}"#) {
            Err(wit::CallError::InvalidArguments(m)) => assert!(m.contains("extra"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            call_tool(tools(), "nope", "{}"),
            Err(wit::CallError::UnknownTool("nope".into()))
        );
        let data = call_tool(tools(), "greet_data", r#"{"name":"ada"}"#).unwrap();
        assert_eq!(text(&data), "hello, ada");
        assert_eq!(
            data.structured.as_deref(),
            Some(r#"{"greeting":"hello, ada"}"#)
        );
    }
}
