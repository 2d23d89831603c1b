//! A look at each `/mcp` POST's JSON-RPC envelope before rmcp parses it: the method and
//! tool name are put in the request's extensions ([`Peeked`]) for the layers that
//! decide on them, and a `tools/call` whose `arguments` is not an object is answered
//! here.
//!
//! rmcp answers a `tools/call` whose `arguments` is not an object with "method not
//! found" (its typed parse fails), which tells a client nothing. We catch that shape
//! here and answer the way a schema failure is answered: an `isError` tool result
//! naming the problem, so the model can correct itself. No plugin runs.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::ops::ControlFlow;
use std::sync::Arc;

use super::MAX_REQUEST_BODY_BYTES;

/// The JSON-RPC fields looked at here; everything else is left to rmcp.
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

/// What the envelope of a JSON-RPC request says (put in the request's extensions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peeked {
    /// `method`, if the body is a JSON-RPC message with one.
    pub method: Option<String>,
    /// `params.name` of a `tools/call` (cut to 128 characters).
    pub tool: Option<String>,
}

/// A `tools/call` whose `arguments` is not an object, kept in the request's
/// extensions for [`answer_malformed_arguments`]: the answer, ready to send.
#[derive(Clone)]
struct Malformed(Arc<Response<String>>);

/// Longest tool name kept from a request (the MCP spec's limit).
const MAX_TOOL_NAME: usize = 128;

/// A JSON-RPC body's envelope, if it is a JSON object.
fn envelope(body: &[u8]) -> Option<Envelope<'_>> {
    serde_json::from_slice(body).ok()
}

/// The method and tool name of a JSON-RPC envelope.
fn peek(envelope: Option<&Envelope>) -> Peeked {
    let Some(envelope) = envelope else {
        return Peeked {
            method: None,
            tool: None,
        };
    };
    let tool = match (envelope.method, &envelope.params) {
        (Some("tools/call"), Some(params)) => params
            .name
            .as_ref()
            .map(|n| n.chars().take(MAX_TOOL_NAME).collect()),
        _ => None,
    };
    Peeked {
        method: envelope.method.map(str::to_owned),
        tool,
    }
}

/// Why a request body was answered here.
#[derive(Debug, PartialEq)]
struct BadArguments {
    tool: String,
    found: &'static str,
}

/// Looks at a JSON-RPC envelope: `Some` when it is a `tools/call` whose `arguments`
/// is present but neither an object nor null.
fn bad_arguments<'a>(envelope: &Envelope<'a>) -> Option<(BadArguments, Option<&'a RawValue>)> {
    if envelope.method? != "tools/call" {
        return None;
    }
    let params = envelope.params.as_ref()?;
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
        .as_ref()
        .map(|n| n.chars().take(MAX_TOOL_NAME).collect())
        .unwrap_or_default();
    Some((BadArguments { tool, found }, envelope.id))
}

/// Step 10, the JSON-RPC peek: buffers a POST body (rmcp does too; the body limit
/// layer has capped it) and records what it asks for in [`Peeked`] for the steps after
/// it. It answers nothing itself (but a body it cannot read): authentication comes
/// next.
pub async fn peek_request(request: Request) -> ControlFlow<Response, Request> {
    if request.method() != Method::POST {
        return ControlFlow::Continue(request);
    }
    let (mut parts, body) = request.into_parts();
    let bytes: Bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(error) => return ControlFlow::Break(unreadable_body(&error)),
    };
    let envelope = envelope(&bytes);
    parts.extensions.insert(peek(envelope.as_ref()));
    if let Some((bad, id)) = envelope.as_ref().and_then(bad_arguments) {
        let modern = parts
            .headers
            .get("mcp-protocol-version")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v >= "2026-07-28");
        let answer = tool_error_response(&bad, id, modern);
        parts.extensions.insert(Malformed(Arc::new(answer)));
    }
    ControlFlow::Continue(Request::from_parts(parts, Body::from(bytes)))
}

/// Step 13: a `tools/call` whose `arguments` is not an object (found by the peek) is
/// answered with a tool error, after the caller was authenticated and authorized.
pub fn answer_malformed_arguments(request: Request) -> ControlFlow<Response, Request> {
    match request.extensions().get::<Malformed>() {
        Some(Malformed(answer)) => {
            let mut response = Response::new(Body::from(answer.body().clone()));
            *response.headers_mut() = answer.headers().clone();
            ControlFlow::Break(response)
        }
        None => ControlFlow::Continue(request),
    }
}

/// The answer when the body could not be read: too large (the body limit layer cut
/// it off), or the client went away.
fn unreadable_body(error: &axum::Error) -> Response {
    let too_large = std::iter::successors(Some(error as &(dyn std::error::Error + 'static)), |e| {
        e.source()
    })
    .any(|e| e.is::<http_body_util::LengthLimitError>());
    if too_large {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than {MAX_REQUEST_BODY_BYTES} bytes"),
        )
            .into_response()
    } else {
        (
            StatusCode::BAD_REQUEST,
            "the request body could not be read",
        )
            .into_response()
    }
}

fn tool_error_response(
    bad: &BadArguments,
    id: Option<&RawValue>,
    modern: bool,
) -> Response<String> {
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
    let mut response = Response::new(body.to_string());
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
        envelope(body.as_bytes())
            .as_ref()
            .and_then(bad_arguments)
            .map(|(bad, _)| bad.found)
    }

    fn peek_body(body: &[u8]) -> Peeked {
        peek(envelope(body).as_ref())
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
    fn the_envelope_is_peeked() {
        assert_eq!(
            peek_body(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather","arguments":{}}}"#),
            Peeked {
                method: Some("tools/call".into()),
                tool: Some("get_weather".into())
            }
        );
        assert_eq!(
            peek_body(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#),
            Peeked {
                method: Some("tools/list".into()),
                tool: None
            }
        );
        assert_eq!(
            peek_body(b"not json"),
            Peeked {
                method: None,
                tool: None
            }
        );
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
        let envelope = envelope(body.as_bytes()).unwrap();
        let (bad, id) = bad_arguments(&envelope).unwrap();
        assert_eq!(bad.tool, "get_weather");
        for modern in [true, false] {
            let response = tool_error_response(&bad, id, modern);
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
            let answer: serde_json::Value = serde_json::from_str(response.body()).unwrap();
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
