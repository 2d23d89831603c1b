//! JSON Schema: a plugin's schemas are checked and compiled once at load; arguments and
//! structured results are validated against them on every call.

use jsonschema::Validator;
use serde_json::{Map, Value};

/// Largest schema a plugin may declare: real tool schemas are a few KiB, and a schema
/// is compiled and sent to every client on `tools/list`.
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;

/// How many violations one error message lists.
const MAX_REPORTED_ERRORS: usize = 5;

/// A violation message is cut to this many characters: it may quote client input.
const MAX_MESSAGE_CHARS: usize = 200;

/// A checked, compiled schema and its JSON form (as sent in `tools/list`).
pub struct CompiledSchema {
    /// The schema as the plugin declared it.
    pub json: Map<String, Value>,
    validator: Validator,
}

impl std::fmt::Debug for CompiledSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledSchema").finish_non_exhaustive()
    }
}

impl CompiledSchema {
    /// Checks `text` is a valid JSON Schema (draft 2020-12 unless it names another
    /// draft) whose top level describes an object, and compiles it.
    pub fn compile_object_schema(text: &str) -> Result<Self, String> {
        if text.len() > MAX_SCHEMA_BYTES {
            return Err(format!(
                "schema is {} bytes, more than the {MAX_SCHEMA_BYTES} allowed",
                text.len()
            ));
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("schema is not JSON: {e}"))?;
        let Value::Object(json) = value else {
            return Err("schema must be a JSON object".into());
        };
        if json.get("type") != Some(&Value::String("object".into())) {
            return Err("schema must have \"type\": \"object\" at the top level".into());
        }
        let schema = Value::Object(json);
        let meta = jsonschema::meta::validator_for(&schema)
            .map_err(|e| format!("schema names an unknown meta-schema: {e}"))?;
        if let Err(e) = meta.validate(&schema) {
            return Err(format!(
                "not a valid JSON Schema: at `{}`: {}",
                pointer_or_root(e.instance_path().as_str()),
                truncate(&e.to_string())
            ));
        }
        let validator = jsonschema::validator_for(&schema)
            .map_err(|e| format!("schema cannot be compiled: {}", truncate(&e.to_string())))?;
        let Value::Object(json) = schema else {
            unreachable!("checked to be an object above")
        };
        Ok(Self { json, validator })
    }

    /// Validates `instance`; the error lists which fields are wrong and why.
    pub fn check(&self, instance: &Value) -> Result<(), String> {
        let mut problems = Vec::new();
        let mut total = 0usize;
        for error in self.validator.iter_errors(instance) {
            total += 1;
            if problems.len() < MAX_REPORTED_ERRORS {
                problems.push(format!(
                    "{}: {}",
                    pointer_or_root(error.instance_path().as_str()),
                    truncate(&error.to_string())
                ));
            }
        }
        match total {
            0 => Ok(()),
            n if n > problems.len() => Err(format!(
                "{} (and {} more)",
                problems.join("; "),
                n - problems.len()
            )),
            _ => Err(problems.join("; ")),
        }
    }
}

fn pointer_or_root(pointer: &str) -> String {
    if pointer.is_empty() {
        "(root)".to_owned()
    } else {
        pointer.to_owned()
    }
}

fn truncate(message: &str) -> String {
    if message.chars().count() <= MAX_MESSAGE_CHARS {
        return message.to_owned();
    }
    let mut cut: String = message.chars().take(MAX_MESSAGE_CHARS).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CITY: &str = r#"{"type":"object","properties":{"city":{"type":"string","maxLength":5}},
        "required":["city"],"additionalProperties":false}"#;

    #[test]
    fn valid_arguments_pass() {
        let schema = CompiledSchema::compile_object_schema(CITY).unwrap();
        assert!(schema.check(&json!({"city": "Oslo"})).is_ok());
    }

    #[test]
    fn errors_name_the_field_and_reason() {
        let schema = CompiledSchema::compile_object_schema(CITY).unwrap();
        let err = schema.check(&json!({"city": "Reykjavik"})).unwrap_err();
        assert!(err.starts_with("/city:"), "{err}");
        assert!(err.contains("longer than 5"), "{err}");
        let err = schema.check(&json!({})).unwrap_err();
        assert!(err.contains("(root)") && err.contains("city"), "{err}");
        let err = schema.check(&json!({"city": "a", "x": 1})).unwrap_err();
        assert!(err.contains("'x'"), "{err}");
    }

    #[test]
    fn long_values_are_truncated_in_messages() {
        let schema = CompiledSchema::compile_object_schema(CITY).unwrap();
        let err = schema
            .check(&json!({"city": "x".repeat(10_000)}))
            .unwrap_err();
        assert!(err.len() < 400, "{} bytes", err.len());
    }

    #[test]
    fn bad_schemas_are_refused() {
        for (text, needle) in [
            ("not json", "not JSON"),
            ("[1]", "JSON object"),
            (r#"{"type":"string"}"#, "\"type\": \"object\""),
            (r#"{"properties":{}}"#, "\"type\": \"object\""),
            (
                r#"{"type":"object","properties":{"a":{"type":"strin"}}}"#,
                "not a valid JSON Schema",
            ),
            (
                r#"{"type":"object","properties":{"a":{"minLength":-1}}}"#,
                "not a valid JSON Schema",
            ),
        ] {
            let err = CompiledSchema::compile_object_schema(text).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
        let huge = format!(
            r#"{{"type":"object","description":"{}"}}"#,
            "x".repeat(MAX_SCHEMA_BYTES)
        );
        let err = CompiledSchema::compile_object_schema(&huge).unwrap_err();
        assert!(err.contains("bytes"), "{err}");
    }
}
