//! Outgoing HTTP through `wasi:http`, which the host allows only to the operator's
//! `allowed_outbound_hosts`. A small blocking helper: a tool call is one request and
//! one answer, read whole up to a size the caller chooses.

use crate::Error;
use wstd::http::{Body, Client, Request};

/// Why a request got no usable answer. None of these includes the URL (it may carry a
/// key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The request could not be built (a malformed URL or header).
    Build(String),
    /// The host refused the request (not in `allowed_outbound_hosts`) or it failed.
    Unreachable,
    /// The answer is larger than the limit the caller gave.
    TooLarge(usize),
    /// The answer ended before its body did.
    CutShort,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Build(why) => write!(f, "the request could not be built: {why}"),
            HttpError::Unreachable => write!(f, "the request was refused or failed"),
            HttpError::TooLarge(max) => write!(f, "the answer is larger than {max} bytes"),
            HttpError::CutShort => write!(f, "the answer was cut short"),
        }
    }
}

impl From<HttpError> for Error {
    fn from(error: HttpError) -> Self {
        match error {
            HttpError::Build(_) => Error::Internal(error.to_string()),
            _ => Error::Upstream(error.to_string()),
        }
    }
}

/// An answer, read whole.
#[derive(Debug, Clone)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The body parsed as JSON into `T`; an [`Error::Upstream`] if it does not parse.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::Upstream(format!("the answer could not be read: {e}")))
    }
}

/// `GET url` with the given headers, reading at most `max_body` bytes of the answer.
///
/// `?` turns an [`HttpError`] into an [`Error`]; match on it to say more.
pub fn get(url: &str, headers: &[(&str, &str)], max_body: usize) -> Result<Response, HttpError> {
    let mut request = Request::get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Body::empty())
        .map_err(|e| HttpError::Build(e.to_string()))?;
    wstd::runtime::block_on(async move {
        let response = Client::new()
            .send(request)
            .await
            .map_err(|_| HttpError::Unreachable)?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        if body.content_length().is_some_and(|n| n > max_body as u64) {
            return Err(HttpError::TooLarge(max_body));
        }
        let bytes = body.contents().await.map_err(|_| HttpError::CutShort)?;
        if bytes.len() > max_body {
            return Err(HttpError::TooLarge(max_body));
        }
        Ok(Response {
            status,
            body: bytes.to_vec(),
        })
    })
}
