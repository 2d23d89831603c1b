//! The direct path for the request that matters most: a stateless (2026-07-28)
//! `tools/call` over Streamable HTTP, parsed once and answered as JSON here. For each
//! such request rmcp builds a whole service (a serve loop and a handler on spawned
//! tasks, a oneshot transport, the message parsed again); that cost more than the
//! plugin's sandbox. This path takes only a request whose every part it can vouch for
//! and hands anything else to rmcp untouched, so rmcp stays the referee of the
//! protocol's errors. A test sends the same requests both ways and compares answers.

use super::McpHandler;
use super::context::http_context;
use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use rmcp::ErrorData as McpError;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ErrorCode, JsonObject, JsonRpcVersion2_0,
    ProtocolVersion, RequestId, RequestMetaObject, ServerJsonRpcMessage, ServerResult,
};
use serde::Deserialize;
use std::borrow::Cow;
use std::ops::ControlFlow;

/// The one protocol version served here: the first without sessions.
const VERSION: ProtocolVersion = ProtocolVersion::V_2026_07_28;

/// The prefix of a Base64-wrapped SEP-2243 header value.
const BASE64_HEADER_PREFIX: &str = "=?base64?";

/// The direct path, in front of rmcp: the answer to a request [`admit`] takes, or the
/// request as it came (to go on to rmcp).
pub async fn try_serve(handler: &McpHandler, request: Request) -> ControlFlow<Response, Request> {
    if request.method() != Method::POST || !plain_headers(request.headers()) {
        return ControlFlow::Continue(request);
    }
    let (parts, body) = request.into_parts();
    // The JSON-RPC peek in front has read the whole body into one buffer already.
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return ControlFlow::Break(
            (
                StatusCode::BAD_REQUEST,
                "the request body could not be read",
            )
                .into_response(),
        );
    };
    match admit(handler, &parts.headers, &bytes) {
        Some((id, params)) => {
            let mut ctx = http_context(&parts.headers, &parts.extensions);
            ctx.client = Some(super::client::Stateless::shared());
            let capabilities = params
                .meta
                .as_ref()
                .and_then(|meta| meta.client_capabilities())
                .unwrap_or_default();
            ControlFlow::Break(answer(
                id,
                handler.call(ctx, params, Some(capabilities)).await,
            ))
        }
        None => ControlFlow::Continue(Request::from_parts(parts, Body::from(bytes))),
    }
}

/// The headers of a request served here: one `MCP-Protocol-Version` naming
/// [`VERSION`], one `Mcp-Method: tools/call`, one plain `Mcp-Name`, a JSON
/// `Content-Type`, and an `Accept` listing JSON and SSE without parameters (a
/// quality weight could exclude one of them; rmcp weighs those).
fn plain_headers(headers: &HeaderMap) -> bool {
    only(headers, "mcp-protocol-version") == Some(VERSION.as_str())
        && only(headers, "mcp-method") == Some("tools/call")
        && only(headers, "mcp-name").is_some_and(|name| !name.starts_with(BASE64_HEADER_PREFIX))
        && only(headers, CONTENT_TYPE.as_str()).is_some_and(|value| {
            let essence = value.split_once(';').map_or(value, |(essence, _)| essence);
            essence.trim().eq_ignore_ascii_case("application/json")
        })
        && accepts_json_and_sse(headers)
}

/// The header's value when it is sent exactly once, as visible ASCII.
fn only<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    value.to_str().ok()
}

/// `Accept` lists `application/json` and `text/event-stream`, and no entry has
/// parameters.
fn accepts_json_and_sse(headers: &HeaderMap) -> bool {
    let (mut json, mut sse) = (false, false);
    for value in headers.get_all(ACCEPT) {
        let Ok(value) = value.to_str() else {
            return false;
        };
        for entry in value.split(',') {
            let entry = entry.trim();
            if entry.contains([';', '"']) {
                return false;
            }
            json |= entry.eq_ignore_ascii_case("application/json");
            sse |= entry.eq_ignore_ascii_case("text/event-stream");
        }
    }
    json && sse
}

/// A JSON-RPC `tools/call` request with nothing in it this path does not know (the
/// fields of an input-required retry, say): read straight into its parts, where
/// rmcp's own message type goes through a buffered copy of the whole body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallMessage<'a> {
    #[allow(dead_code, reason = "read to check it says 2.0")]
    jsonrpc: JsonRpcVersion2_0,
    id: RequestId,
    #[serde(borrow)]
    method: Cow<'a, str>,
    params: CallParams,
}

/// `params` of a [`CallMessage`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallParams {
    name: String,
    #[serde(default)]
    arguments: Option<JsonObject>,
    #[serde(rename = "_meta")]
    meta: RequestMetaObject,
}

/// The call in `body` when this path can serve it: a [`CallMessage`] whose `_meta`
/// carries the 2026-07-28 fields (the same version as the header) and neither a
/// progress token nor a log level (their notifications need a stream), naming a tool
/// that exists, as `Mcp-Name` does, and whose schema asks for no `Mcp-Param-*`
/// headers.
fn admit(
    handler: &McpHandler,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<(RequestId, CallToolRequestParams)> {
    let message: CallMessage = serde_json::from_slice(body).ok()?;
    let meta = &message.params.meta;
    if message.method != "tools/call"
        || meta.protocol_version()? != VERSION
        || !meta.missing_required_keys(&VERSION).is_empty()
        || meta.contains_key("progressToken")
        || meta.contains_key("io.modelcontextprotocol/logLevel")
        || only(headers, "mcp-name")? != message.params.name
        || handler
            .pipeline()
            .mirrors_params_in_headers(&message.params.name)?
    {
        return None;
    }
    let mut params = CallToolRequestParams::new(message.params.name);
    params.arguments = message.params.arguments;
    params.meta = Some(message.params.meta);
    Some((message.id, params))
}

/// The JSON answer, shaped as rmcp shapes it for a 2026-07-28 peer (its cache hints
/// filled in), with the HTTP status the transport gives a JSON-RPC error.
fn answer(id: RequestId, result: Result<CallToolResponse, McpError>) -> Response {
    let (message, status) = match result {
        Ok(result) => {
            let mut result = ServerResult::from(result);
            result.fill_missing_cache_hints();
            (ServerJsonRpcMessage::response(result, id), StatusCode::OK)
        }
        Err(error) => {
            let status = error_status(error.code);
            (ServerJsonRpcMessage::error(error, Some(id)), status)
        }
    };
    match serde_json::to_vec(&message) {
        Ok(body) => {
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = status;
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        Err(error) => {
            tracing::error!(%error, "a tool result could not be serialized");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the tool's result could not be serialized",
            )
                .into_response()
        }
    }
}

/// The HTTP status of a JSON-RPC error under 2026-07-28: a request the server cannot
/// take as sent is 400, an unknown method 404, any other error travels in a 200.
fn error_status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::UNSUPPORTED_PROTOCOL_VERSION
        | ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY
        | ErrorCode::HEADER_MISMATCH => StatusCode::BAD_REQUEST,
        ErrorCode::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        _ => StatusCode::OK,
    }
}
