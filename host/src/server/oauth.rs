//! The embedded authorization server's HTTP endpoints: metadata, keys, registration,
//! the login and consent page, and the token endpoint. What each checks is in
//! `auth::embedded::flow`; this module maps requests and answers, and sets the page's
//! protections (no framing, a CSRF token in a cookie and the form, no caching).

use crate::audit::{Audit, Record};
use crate::auth::embedded::AuthorizationServer;
use crate::auth::embedded::flow::{
    Authorization, AuthorizeError, AuthorizeParams, LoginError, OAuthError,
};
use crate::auth::embedded::page::{self, LoginPage};
use crate::auth::embedded::signing::random_token;
use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::collections::HashMap;
use std::sync::Arc;
use tower_http::cors::{Any, CorsLayer};

/// What the endpoints share.
struct Endpoints {
    server: Arc<AuthorizationServer>,
    /// Registrations, logins and consents are recorded here.
    audit: Arc<Audit>,
    /// The CSRF cookie's name: `__Host-` prefixed (and `Secure`) under https.
    cookie: &'static str,
    secure: bool,
}

/// The routes, for a server whose issuer is https when `secure`.
pub fn routes(server: Arc<AuthorizationServer>, audit: Arc<Audit>, secure: bool) -> Router {
    let state = Arc::new(Endpoints {
        server,
        audit,
        cookie: if secure {
            "__Host-mcp_csrf"
        } else {
            "mcp_csrf"
        },
        secure,
    });
    // Public clients in a browser call these from other origins; no cookies involved.
    let public = Router::new()
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/oauth/jwks.json", get(jwks))
        .route("/oauth/register", post(register))
        .route("/oauth/token", post(token))
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods([http::Method::GET, http::Method::POST])
                .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION]),
        );
    Router::new()
        .route(
            "/oauth/authorize",
            get(authorize_page).post(authorize_decision),
        )
        .merge(public)
        .with_state(state)
}

async fn metadata(State(state): State<Arc<Endpoints>>) -> Response {
    axum::Json(state.server.metadata()).into_response()
}

async fn jwks(State(state): State<Arc<Endpoints>>) -> Response {
    match state.server.jwks().await {
        Ok(jwks) => axum::Json(jwks).into_response(),
        Err(error) => oauth_error(&error),
    }
}

async fn register(State(state): State<Arc<Endpoints>>, body: axum::body::Bytes) -> Response {
    let request: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return oauth_error(&OAuthError {
                status: 400,
                error: "invalid_client_metadata",
                description: format!("the body is not JSON: {e}"),
            });
        }
    };
    match state.server.register(&request).await {
        Ok(client) => {
            let mut record = Record::now("client_registered");
            record.client_id = client["client_id"].as_str().map(ToOwned::to_owned);
            record.detail = Some(serde_json::json!({
                "client_name": client["client_name"],
                "redirect_uris": client["redirect_uris"],
            }));
            state.audit.enqueue(record);
            (StatusCode::CREATED, no_store(), axum::Json(client)).into_response()
        }
        Err(error) => oauth_error(&error),
    }
}

async fn token(
    State(state): State<Arc<Endpoints>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    match state.server.token(&form).await {
        Ok(tokens) => (no_store(), axum::Json(tokens)).into_response(),
        Err(error) => oauth_error(&error),
    }
}

/// `GET /oauth/authorize`: the login and consent page, or why there is none.
async fn authorize_page(
    State(state): State<Arc<Endpoints>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let params = AuthorizeParams::from_pairs(&query);
    match state.server.check_authorize(&params).await {
        Err(AuthorizeError::Show(message)) => {
            html(StatusCode::BAD_REQUEST, page::error(&message), None, &state)
        }
        Err(AuthorizeError::Redirect(url)) => redirect(&url),
        Ok(authorization) => {
            let csrf = cookie(&headers, state.cookie).unwrap_or_else(random_token);
            let body = page::login(&LoginPage {
                authorization: &authorization,
                params: &params,
                csrf: &csrf,
                setup: state.server.needs_setup().await,
                error: None,
                name: "",
            });
            html(StatusCode::OK, body, Some(&csrf), &state)
        }
    }
}

/// `POST /oauth/authorize`: the form. The request is checked again (the hidden fields
/// are the client's), then the CSRF token, then the decision and the login.
async fn authorize_decision(
    State(state): State<Arc<Endpoints>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let params = AuthorizeParams::from_pairs(&form);
    let authorization = match state.server.check_authorize(&params).await {
        Err(AuthorizeError::Show(message)) => {
            return html(StatusCode::BAD_REQUEST, page::error(&message), None, &state);
        }
        Err(AuthorizeError::Redirect(url)) => return redirect(&url),
        Ok(authorization) => authorization,
    };
    let sent = form.get("csrf").map(String::as_str).unwrap_or("");
    let expected = cookie(&headers, state.cookie);
    if sent.is_empty()
        || !expected
            .as_deref()
            .is_some_and(|e| constant_time_eq(e, sent))
    {
        return html(
            StatusCode::FORBIDDEN,
            page::error(
                "The form's security token is missing or does not match. Reload the page and try again.",
            ),
            None,
            &state,
        );
    }
    if form.get("decision").map(String::as_str) != Some("approve") {
        return redirect(&state.server.deny(&authorization));
    }
    let name = form.get("username").map(String::as_str).unwrap_or("");
    let password = form.get("password").map(String::as_str).unwrap_or("");
    let setup = state.server.needs_setup().await;
    let user = match form.get("setup_code").filter(|_| setup) {
        Some(code) => {
            let created = state.server.create_first_user(code, name, password).await;
            if let Ok(user) = &created {
                let mut record = login_record("user_added", &authorization, &user.name);
                record.reason = Some("the first user, created with the setup code".into());
                state.audit.enqueue(record);
            }
            created
        }
        None => state.server.login(name, password).await,
    };
    match user {
        Ok(user) => match state.server.approve(&authorization, &user).await {
            Ok(url) => {
                let mut record = login_record("consent", &authorization, &user.name);
                record.detail = Some(serde_json::json!({
                    "scope": authorization.scopes.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "resource": authorization.resource,
                }));
                state.audit.enqueue(record);
                redirect(&url)
            }
            Err(error) => oauth_error(&error),
        },
        Err(error) => {
            let attempted: String = name.chars().take(64).collect();
            if error == LoginError::Wrong {
                tracing::warn!(user = ?attempted, client_id = %authorization.client.client_id, "login failed");
            }
            let mut record = login_record("request_refused", &authorization, &attempted);
            record.step = Some("login".into());
            record.outcome = Some("unauthenticated".into());
            record.reason = Some(error.to_string());
            state.audit.enqueue(record);
            let body = page::login(&LoginPage {
                authorization: &authorization,
                params: &params,
                csrf: sent,
                setup,
                error: Some(&error.to_string()),
                name,
            });
            html(StatusCode::UNAUTHORIZED, body, Some(sent), &state)
        }
    }
}

/// An audit record of a login-page `event` by `user` for `authorization`'s client.
fn login_record(event: &str, authorization: &Authorization, user: &str) -> Record {
    let mut record = Record::now(event);
    record.subject = Some(user.to_owned());
    record.client_id = Some(authorization.client.client_id.clone());
    record
}

/// An HTML page that may not be framed or cached, setting the CSRF cookie if given.
fn html(status: StatusCode, body: String, csrf: Option<&str>, state: &Endpoints) -> Response {
    let mut response = (status, axum::response::Html(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if let Some(csrf) = csrf {
        let secure = if state.secure { "; Secure" } else { "" };
        let cookie = format!(
            "{}={csrf}; Path=/; HttpOnly; SameSite=Lax{secure}",
            state.cookie
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            headers.insert(header::SET_COOKIE, value);
        }
    }
    response
}

/// A 303 to `url` (the client's redirect URI, already checked).
fn redirect(url: &str) -> Response {
    match HeaderValue::from_str(url) {
        Ok(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, "the redirect URI cannot be used").into_response(),
    }
}

fn oauth_error(error: &OAuthError) -> Response {
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, no_store(), axum::Json(error.body())).into_response()
}

fn no_store() -> [(header::HeaderName, &'static str); 2] {
    [
        (header::CACHE_CONTROL, "no-store"),
        (header::PRAGMA, "no-cache"),
    ]
}

/// The value of cookie `name`.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}
