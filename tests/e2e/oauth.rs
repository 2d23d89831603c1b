//! The embedded authorization server (`[auth] mode = "embedded"`) on the real host:
//! metadata, registration, the login and consent page, codes, tokens, refresh, and
//! the attacks each step must refuse.

use crate::common::oauth::{Login, OAuthClient, Pkce, REDIRECT_URI, redirect_param, setup_code};
use crate::common::tls::TlsServer;
use crate::common::{Host, plugin, run_host, toml_path, toml_str};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

/// A KEK and a database folder that outlive one host (for restarts).
pub struct State {
    pub dir: tempfile::TempDir,
    pub kek: String,
}

impl State {
    pub fn new() -> Self {
        let (_, kek, _) = run_host(&["keygen"]);
        Self {
            dir: tempfile::tempdir().unwrap(),
            kek: kek.trim().to_owned(),
        }
    }

    fn database(&self) -> std::path::PathBuf {
        self.dir.path().join("auth.sqlite")
    }

    /// The config of a host with the embedded server, its fixture plugin offering
    /// `open` (no scope), `read` (`fix:read`) and `admin` (`fix:admin`).
    pub fn config(&self, extra_auth: &str) -> String {
        let tools = json!([
            {"name": "open", "input_schema": {"type": "object"}},
            {"name": "read", "input_schema": {"type": "object"}},
            {"name": "admin", "input_schema": {"type": "object"}},
        ]);
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[auth]\nmode = \"embedded\"\n{extra_auth}\n\
             [auth.embedded]\ndatabase = {}\n[plugins.fix]\npath = {}\n\
             env = {{ FIXTURE_TOOLS = {} }}\n\
             scopes = {{ read = \"fix:read\", admin = \"fix:admin\" }}\n",
            toml_path(&self.database()),
            toml_path(&plugin("fixture")),
            toml_str(&tools.to_string()),
        )
    }

    pub fn start(&self, extra_auth: &str) -> Host {
        Host::start(&self.config(extra_auth), &[("MCP_HOST_KEK", &self.kek)])
    }

    /// A host that trusts `documents`' CA and may fetch client metadata documents from
    /// 127.0.0.1 (`trust_loopback`), as the operator of a test network would configure.
    pub fn start_with_documents(
        &self,
        extra_auth: &str,
        documents: &TlsServer,
        trust_loopback: bool,
    ) -> Host {
        let ca = self.dir.path().join("documents-ca.pem");
        std::fs::write(&ca, &documents.ca_pem).unwrap();
        let addresses = if trust_loopback {
            "[\"127.0.0.1\"]"
        } else {
            "[]"
        };
        let config = format!(
            "{}\n[auth.embedded.client_metadata]\ntrusted_ca = {}\nallow_addresses = {addresses}\n",
            self.config(extra_auth),
            toml_path(&ca),
        );
        Host::start(&config, &[("MCP_HOST_KEK", &self.kek)])
    }

    /// `users add NAME` through the CLI (password on stdin).
    pub fn add_user(&self, name: &str, password: &str, scopes: &[&str]) {
        let config = self.dir.path().join("users.toml");
        std::fs::write(&config, self.config("")).unwrap();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-wasm-host"));
        command.args(["users", "add", name]);
        for scope in scopes {
            command.args(["--scope", scope]);
        }
        command.arg("--config").arg(&config);
        let (status, _, stderr) =
            crate::common::host::run_with_input(command, &format!("{password}\n"));
        assert!(status.success(), "{stderr}");
    }
}

fn base(host: &Host) -> String {
    format!("http://{}", host.addr)
}

/// A token for a user of `host`'s embedded server, the first user made with the
/// setup code the host printed when none exists.
pub async fn token_for(host: &Host, user: &str) -> String {
    let client = OAuthClient::register(&base(host)).await;
    let pkce = Pkce::new();
    let log = host.log();
    let password = "a-long-test-password";
    let code = setup_code(&log);
    let login = match &code {
        Some(code) => Login::Setup {
            code,
            name: user,
            password,
        },
        None => Login::Password(user, password),
    };
    let code = client.authorize(&pkce, "", &login).await;
    let (status, tokens) = client.exchange(&code, &pkce).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    tokens["access_token"].as_str().unwrap().to_owned()
}

/// A token for an existing user of `host` (made by [`token_for`]).
pub async fn token_for_existing(host: &Host, user: &str) -> String {
    let client = OAuthClient::register(&base(host)).await;
    let pkce = Pkce::new();
    let code = client
        .authorize(&pkce, "", &Login::Password(user, "a-long-test-password"))
        .await;
    let (status, tokens) = client.exchange(&code, &pkce).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    tokens["access_token"].as_str().unwrap().to_owned()
}

/// An rmcp client sending `token`.
pub async fn client_with(host: &Host, token: &str) -> crate::common::Client {
    crate::common::connect_with_token(&host.mcp_url(), token).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_documents_agree_with_each_other() {
    let state = State::new();
    let host = state.start("");
    let base = base(&host);
    let get = |path: &str| {
        let url = format!("{base}{path}");
        async move {
            let response = reqwest::get(url).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<Value>().await.unwrap()
        }
    };
    let resource = get("/.well-known/oauth-protected-resource/mcp").await;
    let server = get("/.well-known/oauth-authorization-server").await;
    // The resource's first authorization server is, byte for byte, the issuer.
    assert_eq!(resource["authorization_servers"][0], server["issuer"]);
    assert_eq!(server["issuer"], base);
    assert_eq!(resource["resource"], format!("{base}/mcp"));
    assert!(
        !resource["scopes_supported"]
            .to_string()
            .contains("offline_access")
    );
    for (key, value) in [
        (
            "authorization_endpoint",
            json!(format!("{base}/oauth/authorize")),
        ),
        ("token_endpoint", json!(format!("{base}/oauth/token"))),
        (
            "registration_endpoint",
            json!(format!("{base}/oauth/register")),
        ),
        ("jwks_uri", json!(format!("{base}/oauth/jwks.json"))),
        ("response_types_supported", json!(["code"])),
        (
            "grant_types_supported",
            json!(["authorization_code", "refresh_token"]),
        ),
        ("code_challenge_methods_supported", json!(["S256"])),
        ("token_endpoint_auth_methods_supported", json!(["none"])),
        (
            "authorization_response_iss_parameter_supported",
            json!(true),
        ),
    ] {
        assert_eq!(server[key], value, "{key}");
    }
    let jwks = get("/oauth/jwks.json").await;
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA");
    assert!(
        jwks["keys"][0].get("d").is_none(),
        "no private part published"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_flow_then_a_refresh_and_a_replayed_refresh() {
    let state = State::new();
    state.add_user("alice", "alice-password-1", &[]);
    let host = state.start("");
    let client = OAuthClient::register(&base(&host)).await;
    let pkce = Pkce::new();
    let page = client
        .open_page(&client.authorize_params(&pkce, "fix:read"))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    // The page shows who asks and where the code goes, and cannot be framed or cached.
    assert!(page.body.contains("e2e client") && page.body.contains("127.0.0.1"));
    assert!(
        page.body.contains("loopback address"),
        "the loopback warning"
    );
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert!(
        page.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(page.headers["cache-control"], "no-store");
    let cookie = page.headers["set-cookie"].to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let answer = client
        .submit(
            &page,
            &Login::Password("alice", "alice-password-1"),
            "approve",
        )
        .await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let location = answer.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    assert_eq!(
        redirect_param(&location, "state").as_deref(),
        Some("state-123")
    );
    assert_eq!(redirect_param(&location, "iss"), Some(base(&host)));
    let code = redirect_param(&location, "code").unwrap();
    let (status, tokens) = client.exchange(&code, &pkce).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "fix:read");
    assert_eq!(tokens["expires_in"], 600);
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    // The token works at /mcp, as alice, for what its scope allows.
    let mcp = client_with(&host, &access).await;
    let tools = crate::common::tool_names(&mcp).await;
    assert_eq!(tools, ["open", "read"]);
    let result = mcp
        .call_tool(
            rmcp::model::CallToolRequestParams::new("read")
                .with_arguments(json!({"text": "hi"}).as_object().unwrap().clone()),
        )
        .await
        .unwrap();
    assert_eq!(result.is_error, Some(false), "{result:?}");
    mcp.cancel().await.ok();
    let log = host.wait_for_log("subject=\"alice\"", Duration::from_secs(5));
    assert!(
        log.contains(&format!("client_id=\"{}\"", client.client_id)),
        "{log}"
    );
    // A refresh rotates: a new pair, same grant.
    let (status, refreshed) = client.refresh(&refresh).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let next = refreshed["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(next, refresh);
    assert_eq!(refreshed["scope"], "fix:read");
    // The old refresh token again: refused, and the whole family with it.
    let (status, replay) = client.refresh(&refresh).await;
    assert_eq!(
        (status, replay["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (status, after) = client.refresh(&next).await;
    assert_eq!(
        (status, after["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_are_single_use_and_bound_to_their_client_and_verifier() {
    let state = State::new();
    state.add_user("alice", "alice-password-1", &[]);
    let host = state.start("");
    let login = Login::Password("alice", "alice-password-1");
    let client = OAuthClient::register(&base(&host)).await;
    let other = OAuthClient::register(&base(&host)).await;
    // (what is wrong, how the exchange is made, the error)
    let pkce = Pkce::new();
    let code = client.authorize(&pkce, "", &login).await;
    let wrong = Pkce::new();
    let (status, answer) = client.exchange(&code, &wrong).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "wrong verifier: {answer}"
    );
    assert!(
        answer["error_description"]
            .as_str()
            .unwrap()
            .contains("code_verifier")
    );
    // The code was used by that failed attempt: single use means single use.
    let (status, _) = client.exchange(&code, &pkce).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "code reused");

    let pkce = Pkce::new();
    let code = client.authorize(&pkce, "", &login).await;
    let (status, answer) = other.exchange(&code, &pkce).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["error_description"]
            .as_str()
            .unwrap()
            .contains("another client"),
        "{answer}"
    );

    let pkce = Pkce::new();
    let code = client.authorize(&pkce, "", &login).await;
    let (status, tokens) = client.exchange(&code, &pkce).await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = client.exchange(&code, &pkce).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "code replayed"
    );
    // ...and the replay revoked what the code was exchanged for.
    let (status, _) = client
        .refresh(tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the replayed code's tokens are revoked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_authorization_requests_are_shown_or_sent_back() {
    let state = State::new();
    state.add_user("alice", "alice-password-1", &[]);
    let host = state.start("");
    let client = OAuthClient::register(&base(&host)).await;
    let pkce = Pkce::new();
    let with = |key: &str, value: Option<&str>| {
        let mut params: Vec<(String, String)> = client
            .authorize_params(&pkce, "")
            .into_iter()
            .filter(|(k, _)| k != key)
            .collect();
        if let Some(value) = value {
            params.push((key.to_owned(), value.to_owned()));
        }
        params
    };
    // Before the redirect URI is trusted: an error page, never a redirect.
    for (name, params, says) in [
        (
            "unregistered client",
            with("client_id", Some("c-nobody")),
            "is not registered",
        ),
        (
            "redirect mismatch",
            with("redirect_uri", Some("http://127.0.0.1:9/elsewhere")),
            "is not one the client",
        ),
        (
            "evil redirect",
            with("redirect_uri", Some("https://evil.example/cb")),
            "is not one the client",
        ),
    ] {
        let page = client.open_page(&params).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{name}");
        assert!(page.body.contains(says), "{name}: {}", page.body);
        assert!(page.headers.get("location").is_none(), "{name}");
    }
    // After: sent back to the client with an error.
    for (name, params, error) in [
        (
            "plain challenge",
            with("code_challenge_method", Some("plain")),
            "invalid_request",
        ),
        (
            "no challenge",
            with("code_challenge", None),
            "invalid_request",
        ),
        (
            "token response type",
            with("response_type", Some("token")),
            "unsupported_response_type",
        ),
        (
            "another resource",
            with("resource", Some("https://other.example/mcp")),
            "invalid_target",
        ),
    ] {
        let response = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(format!("{}/oauth/authorize", base(&host)))
            .query(&params)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{name}");
        let location = response.headers()["location"].to_str().unwrap();
        assert_eq!(
            redirect_param(location, "error").as_deref(),
            Some(error),
            "{name}: {location}"
        );
        assert_eq!(redirect_param(location, "iss"), Some(base(&host)), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_form_refuses_wrong_passwords_and_forged_posts() {
    let state = State::new();
    state.add_user("alice", "alice-password-1", &[]);
    let host = state.start("");
    let client = OAuthClient::register(&base(&host)).await;
    let pkce = Pkce::new();
    let page = client.open_page(&client.authorize_params(&pkce, "")).await;
    let wrong = client
        .submit(
            &page,
            &Login::Password("alice", "not-her-password"),
            "approve",
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("wrong user name or password")
    );
    let nobody = client
        .submit(
            &page,
            &Login::Password("mallory", "whatever-password"),
            "approve",
        )
        .await;
    assert_eq!(nobody.status(), StatusCode::UNAUTHORIZED);
    // The form without its CSRF token, or from a browser without the cookie.
    let mut form = page.hidden_fields();
    form.remove("csrf");
    form.insert("username".into(), "alice".into());
    form.insert("password".into(), "alice-password-1".into());
    form.insert("decision".into(), "approve".into());
    let forged = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/oauth/authorize", base(&host)))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(forged.text().await.unwrap().contains("security token"));
    let mut with_token = page.hidden_fields();
    with_token.extend(form.clone());
    let cookieless = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/oauth/authorize", base(&host)))
        .form(&with_token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        cookieless.status(),
        StatusCode::FORBIDDEN,
        "a CSRF token without its cookie"
    );
    // Deny sends the user back with access_denied, and no code.
    let denied = client.submit(&page, &Login::Password("", ""), "deny").await;
    let location = denied.headers()["location"].to_str().unwrap();
    assert_eq!(
        redirect_param(location, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(redirect_param(location, "code"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_refuses_unsafe_clients() {
    let state = State::new();
    let host = state.start("");
    let http = reqwest::Client::new();
    for (body, error) in [
        (json!({}), "invalid_redirect_uri"),
        (
            json!({"redirect_uris": ["http://evil.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["https://app.example/cb#frag"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": [REDIRECT_URI], "grant_types": ["client_credentials"]}),
            "invalid_client_metadata",
        ),
    ] {
        let response = http
            .post(format!("{}/oauth/register", base(&host)))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"], error, "{body}: {answer}");
    }
    // A confidential client is registered as a public one (PKCE, no secret).
    let answer: Value = http
        .post(format!("{}/oauth/register", base(&host)))
        .json(&json!({"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "client_secret_post"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["token_endpoint_auth_method"], "none");
    assert!(answer.get("client_secret").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_between_registration_and_token_use_loses_nothing() {
    let state = State::new();
    state.add_user("alice", "alice-password-1", &[]);
    let host = state.start("");
    let base_before = base(&host);
    let client_id = OAuthClient::register(&base_before).await.client_id;
    let port = host.addr.port();
    drop(host);
    // Same database and KEK, same port (the resource URI and issuer stay the same).
    let config = state.config("").replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    let host = Host::start(&config, &[("MCP_HOST_KEK", &state.kek)]);
    let client = OAuthClient::existing(&base(&host), &client_id);
    let pkce = Pkce::new();
    let code = client
        .authorize(
            &pkce,
            "fix:admin",
            &Login::Password("alice", "alice-password-1"),
        )
        .await;
    let (status, tokens) = client.exchange(&code, &pkce).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let mcp = client_with(&host, tokens["access_token"].as_str().unwrap()).await;
    let result = mcp
        .call_tool(
            rmcp::model::CallToolRequestParams::new("admin").with_arguments(
                json!({"text": "after restart"})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(result.is_error, Some(false), "{result:?}");
    mcp.cancel().await.ok();
}

#[test]
fn without_a_kek_the_embedded_server_says_what_to_set() {
    let state = State::new();
    let (status, stderr) = crate::common::start_refused(&state.config(""), &[]);
    assert!(!status.success());
    assert!(
        stderr.contains("keeps its signing key sealed under the KEK"),
        "{stderr}"
    );
    assert!(stderr.contains("MCP_HOST_KEK"), "{stderr}");
    // A KEK other than the one that sealed the key is refused, naming the problem.
    let host = state.start("");
    drop(host);
    let (_, other, _) = run_host(&["keygen"]);
    let (status, stderr) =
        crate::common::start_refused(&state.config(""), &[("MCP_HOST_KEK", other.trim())]);
    assert!(!status.success());
    assert!(stderr.contains("does not open with this KEK"), "{stderr}");
}

/// A client metadata document for `url` with `redirect_uris`.
fn document(url: &str, redirect_uris: &[&str]) -> Value {
    json!({
        "client_id": url,
        "client_name": "Metadata Client",
        "redirect_uris": redirect_uris,
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "none",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_known_by_its_metadata_document() {
    let documents = TlsServer::start().await;
    let state = State::new();
    state.add_user("alice", "alice-password-1", &[]);
    let host = state.start_with_documents("", &documents, true);
    let server: Value = reqwest::get(format!(
        "{}/.well-known/oauth-authorization-server",
        base(&host)
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(server["client_id_metadata_document_supported"], true);
    let url = documents.url("clients/good.json");
    documents.serve(
        "clients/good.json",
        document(&url, &[REDIRECT_URI]),
        "max-age=300",
    );
    let client = OAuthClient::existing(&base(&host), &url);
    let pkce = Pkce::new();
    let page = client.open_page(&client.authorize_params(&pkce, "")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    // The page names the client and the domain its document lives on.
    assert!(
        page.body.contains("Metadata Client (127.0.0.1)"),
        "{}",
        page.body
    );
    let code = client
        .authorize(&pkce, "", &Login::Password("alice", "alice-password-1"))
        .await;
    let (status, tokens) = client.exchange(&code, &pkce).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    // Two authorizations, one fetch: the document is cached as its headers allow.
    assert_eq!(documents.hits("clients/good.json"), 1);

    // Documents that do not hold up are refused on the page, never redirected.
    let liar = documents.url("clients/liar.json");
    documents.serve(
        "clients/liar.json",
        document("https://other.example/client.json", &[REDIRECT_URI]),
        "no-store",
    );
    let elsewhere = documents.url("clients/elsewhere.json");
    documents.serve(
        "clients/elsewhere.json",
        document(&elsewhere, &["http://127.0.0.1:7/other"]),
        "no-store",
    );
    for (client_id, says) in [
        (liar.as_str(), "not its own URL"),
        (elsewhere.as_str(), "is not one the client"),
        (&documents.url("clients/missing.json"), "HTTP 404"),
    ] {
        let client = OAuthClient::existing(&base(&host), client_id);
        let page = client
            .open_page(&client.authorize_params(&Pkce::new(), ""))
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{client_id}");
        assert!(page.body.contains(says), "{client_id}: {}", page.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metadata_document_on_a_private_address_is_not_fetched() {
    let documents = TlsServer::start().await;
    let state = State::new();
    // The CA is trusted, but loopback is not among the addresses the operator named.
    let host = state.start_with_documents("", &documents, false);
    let url = documents.url("clients/inside.json");
    documents.serve(
        "clients/inside.json",
        document(&url, &[REDIRECT_URI]),
        "max-age=300",
    );
    let client = OAuthClient::existing(&base(&host), &url);
    let page = client
        .open_page(&client.authorize_params(&Pkce::new(), ""))
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(
        page.body.contains("blocked address (127.0.0.1, loopback)"),
        "{}",
        page.body
    );
    assert_eq!(
        documents.hits("clients/inside.json"),
        0,
        "nothing was sent there"
    );
}

/// What `scripts/run.sh` does: a config given by a relative path whose database is
/// `../data/...` from the config's folder.
#[test]
fn a_relative_config_path_opens_the_database_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("conf")).unwrap();
    std::fs::write(
        dir.path().join("conf/host.toml"),
        "[auth.embedded]\ndatabase = \"../data/auth.sqlite\"\n",
    )
    .unwrap();
    let users = |args: &[&str], input: &str| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-wasm-host"));
        command
            .current_dir(dir.path())
            .arg("users")
            .args(args)
            .args(["--config", "conf/host.toml"]);
        let (status, stdout, stderr) =
            crate::common::host::run_with_input(command, &format!("{input}\n"));
        assert!(status.success(), "{args:?}: {stderr}");
        format!("{stdout}{stderr}")
    };
    users(&["add", "zed"], "zed-password-123");
    assert!(dir.path().join("data/auth.sqlite").is_file());
    assert!(users(&["list"], "").contains("zed"));
}
