//! The transport guard: checks on each `/mcp` POST before rmcp parses it.
//!
//! rmcp answers a `tools/call` whose `arguments` is not an object with "method not
//! found" (its typed parse fails), which tells a client nothing. We catch that shape
//! here and answer the way a schema failure is answered: an `isError` tool result
//! naming the problem, so the model can correct itself. No plugin runs.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The JSON-RPC fields the guard looks at; everything else is left to rmcp.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    method: Option<&'a str>,
    #[serde(borrow)]
    params: Option<Params<'a>>,
}

#[derive(Deserialize)]
struct Params<'a> {
    name: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    arguments: Option<&'a RawValue>,
}

/// Why a request body was answered by the guard itself.
#[derive(Debug, PartialEq)]
struct BadArguments {
    tool: String,
    found: &'static str,
}

/// Looks at a JSON-RPC body: `Some` when it is a `tools/call` whose `arguments` is
/// present but neither an object nor null.
fn bad_arguments(body: &[u8]) -> Option<(BadArguments, Option<&RawValue>)> {
    let envelope: Envelope = serde_json::from_slice(body).ok()?;
    if envelope.method? != "tools/call" {
        return None;
    }
    let params = envelope.params?;
    let arguments = params.arguments?.get().trim_start();
    let found = match arguments.as_bytes().first()? {
        b'{' | b'n' => return None,
        b'[' => "an array",
        b'"' => "a string",
        b't' | b'f' => "a boolean",
        _ => "a number",
    };
    let tool = params
        .name
        .map(|n| n.chars().take(128).collect())
        .unwrap_or_default();
    Some((BadArguments { tool, found }, envelope.id))
}

/// Axum middleware for `/mcp`: buffers a POST body (rmcp does too; the size limit
/// applies first) and answers malformed `tools/call` arguments itself.
pub async fn check_tool_call_shape(request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let bytes: Bytes = match axum::body::to_bytes(body, crate::server::MAX_REQUEST_BODY_BYTES).await
    {
        Ok(bytes) => bytes,
        Err(_) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body is larger than {} bytes",
                    crate::server::MAX_REQUEST_BODY_BYTES
                ),
            )
                .into_response();
        }
    };
    if let Some((bad, id)) = bad_arguments(&bytes) {
        let modern = parts
            .headers
            .get("mcp-protocol-version")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v >= "2026-07-28");
        return tool_error_response(&bad, id, modern);
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn tool_error_response(bad: &BadArguments, id: Option<&RawValue>, modern: bool) -> Response {
    let text = format!(
        "Invalid arguments for `{}`: arguments must be a JSON object, got {}",
        bad.tool, bad.found
    );
    let mut result = serde_json::json!({
        "content": [{"type": "text", "text": text}],
        "isError": true,
    });
    if modern {
        result["resultType"] = "complete".into();
    }
    let id: serde_json::Value = id
        .and_then(|raw| serde_json::from_str(raw.get()).ok())
        .unwrap_or(serde_json::Value::Null);
    let body = serde_json::json!({"jsonrpc": "2.0", "id": id, "result": result});
    let mut response = Response::new(Body::from(body.to_string()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: &str) -> Option<&'static str> {
        bad_arguments(body.as_bytes()).map(|(bad, _)| bad.found)
    }

    #[test]
    fn non_object_arguments_are_caught() {
        let call = |args: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"t","arguments":{args}}}}}"#
            )
        };
        assert_eq!(check(&call("\"hello\"")), Some("a string"));
        assert_eq!(check(&call("[1,2]")), Some("an array"));
        assert_eq!(check(&call("42")), Some("a number"));
        assert_eq!(check(&call("-1.5")), Some("a number"));
        assert_eq!(check(&call("true")), Some("a boolean"));
        assert_eq!(check(&call("{\"a\":1}")), None);
        assert_eq!(check(&call("null")), None);
    }

    #[test]
    fn other_messages_pass_through() {
        assert_eq!(
            check(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#),
            None
        );
        assert_eq!(
            check(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}}"#),
            None
        );
        assert_eq!(check("not json"), None);
        assert_eq!(check("[]"), None);
    }

    #[tokio::test]
    async fn the_answer_is_an_is_error_result_with_the_request_id() {
        let body = r#"{"jsonrpc":"2.0","id":"abc","method":"tools/call","params":{"name":"get_weather","arguments":"x"}}"#;
        let (bad, id) = bad_arguments(body.as_bytes()).unwrap();
        assert_eq!(bad.tool, "get_weather");
        for modern in [true, false] {
            let response = tool_error_response(&bad, id, modern);
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(answer["jsonrpc"], "2.0");
            assert_eq!(answer["id"], "abc");
            assert_eq!(answer["result"]["isError"], true);
            assert_eq!(
                answer["result"]["content"][0]["text"],
                "Invalid arguments for `get_weather`: arguments must be a JSON object, got a string"
            );
            assert_eq!(
                answer["result"].get("resultType").is_some(),
                modern,
                "{answer}"
            );
        }
    }
}
