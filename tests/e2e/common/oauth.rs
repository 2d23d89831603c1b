//! A client of the embedded authorization server, over plain HTTP as a browser and an
//! MCP client would use it: registration, the login form, the code exchange, refresh.
//! Each step returns what the server answered, so tests can also send what a client
//! should not.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The redirect URI test clients register (nothing listens there: the test reads the
/// code from the `Location` header).
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

/// One client talking to the server at `base` (`http://ADDR`).
pub struct OAuthClient {
    pub base: String,
    pub client_id: String,
    /// The resource it asks tokens for: `base` + `/mcp`, unless replicas behind one
    /// public URL serve it ([`OAuthClient::for_resource`]).
    pub resource: String,
    /// Keeps the CSRF cookie between the page and the form, like a browser.
    http: reqwest::Client,
}

/// A PKCE verifier and its S256 challenge.
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Self {
        let verifier = format!("verifier-{}", uuid::Uuid::new_v4().simple()).repeat(2);
        let challenge = B64.encode(Sha256::digest(verifier.as_bytes()));
        Self {
            verifier,
            challenge,
        }
    }
}

/// How the user logs in on the page.
pub enum Login<'a> {
    /// An existing user.
    Password(&'a str, &'a str),
    /// The first user, created with the setup code the host printed.
    Setup {
        code: &'a str,
        name: &'a str,
        password: &'a str,
    },
}

/// What the login page answered.
pub struct Page {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    /// The hidden form fields, unescaped.
    pub fn hidden_fields(&self) -> HashMap<String, String> {
        let mut fields = HashMap::new();
        for part in self.body.split("<input type=\"hidden\" name=\"").skip(1) {
            let Some((name, rest)) = part.split_once("\" value=\"") else {
                continue;
            };
            let value = rest.split('"').next().unwrap_or("");
            fields.insert(name.to_owned(), unescape(value));
        }
        fields
    }
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

impl OAuthClient {
    /// Registers a new client (RFC 7591) at `base`.
    pub async fn register(base: &str) -> Self {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let answer: Value = http
            .post(format!("{base}/oauth/register"))
            .json(&json!({
                "redirect_uris": [REDIRECT_URI],
                "client_name": "e2e client",
                "grant_types": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_method": "none",
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let client_id = answer["client_id"]
            .as_str()
            .expect("a client_id")
            .to_owned();
        Self::existing(base, &client_id)
    }

    /// A client that registered before (or never did).
    pub fn existing(base: &str, client_id: &str) -> Self {
        Self {
            base: base.to_owned(),
            client_id: client_id.to_owned(),
            resource: format!("{base}/mcp"),
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    /// The same client asking for tokens for `resource`.
    pub fn for_resource(mut self, resource: &str) -> Self {
        self.resource = resource.to_owned();
        self
    }

    /// The authorization request's parameters.
    pub fn authorize_params(&self, pkce: &Pkce, scope: &str) -> Vec<(String, String)> {
        [
            ("response_type", "code"),
            ("client_id", &self.client_id),
            ("redirect_uri", REDIRECT_URI),
            ("code_challenge", &pkce.challenge),
            ("code_challenge_method", "S256"),
            ("state", "state-123"),
            ("resource", &self.resource),
            ("scope", scope),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// `GET /oauth/authorize` with `params`.
    pub async fn open_page(&self, params: &[(String, String)]) -> Page {
        let response = self
            .http
            .get(format!("{}/oauth/authorize", self.base))
            .query(params)
            .send()
            .await
            .unwrap();
        Page {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap_or_default(),
        }
    }

    /// Posts the login form of `page` with `login` and `decision`; returns the answer
    /// (a 303 to the redirect URI on success).
    pub async fn submit(
        &self,
        page: &Page,
        login: &Login<'_>,
        decision: &str,
    ) -> reqwest::Response {
        let mut form = page.hidden_fields();
        let (name, password) = match login {
            Login::Password(name, password) => (*name, *password),
            Login::Setup {
                code,
                name,
                password,
            } => {
                form.insert("setup_code".into(), (*code).to_owned());
                (*name, *password)
            }
        };
        form.insert("username".into(), name.to_owned());
        form.insert("password".into(), password.to_owned());
        form.insert("decision".into(), decision.to_owned());
        self.http
            .post(format!("{}/oauth/authorize", self.base))
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    /// The whole front channel: page, login, approve; the code from the redirect.
    pub async fn authorize(&self, pkce: &Pkce, scope: &str, login: &Login<'_>) -> String {
        let page = self.open_page(&self.authorize_params(pkce, scope)).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let answer = self.submit(&page, login, "approve").await;
        assert_eq!(
            answer.status(),
            StatusCode::SEE_OTHER,
            "{:?}",
            answer.text().await
        );
        let location = answer.headers()["location"].to_str().unwrap().to_owned();
        redirect_param(&location, "code").expect("a code in the redirect")
    }

    /// `POST /oauth/token` with `form`: (status, JSON body).
    pub async fn token(&self, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}/oauth/token", self.base))
            .form(form)
            .send()
            .await
            .unwrap();
        (
            response.status(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    /// Exchanges `code`.
    pub async fn exchange(&self, code: &str, pkce: &Pkce) -> (StatusCode, Value) {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", &pkce.verifier),
            ("client_id", &self.client_id),
            ("redirect_uri", REDIRECT_URI),
            ("resource", &self.resource),
        ])
        .await
    }

    /// Refreshes with `refresh_token`.
    pub async fn refresh(&self, refresh_token: &str) -> (StatusCode, Value) {
        self.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", &self.client_id),
        ])
        .await
    }
}

/// A query parameter of a redirect `location`.
pub fn redirect_param(location: &str, name: &str) -> Option<String> {
    url::Url::parse(location)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The setup code the host printed at start, from its log.
pub fn setup_code(log: &str) -> Option<String> {
    let after = log.split("with the setup code").nth(1)?;
    after.split_whitespace().next().map(str::to_owned)
}
