//! The host as an OAuth protected resource with an identity provider we trust
//! (`[auth] mode = "external"`): tokens are required, checked and scoped per tool;
//! every refusal has the right status and challenge and leaves a record.

use crate::common::idp::{Idp, SigningKey, now};
use crate::common::{Host, plugin, start_refused, toml_path, toml_str};
use reqwest::StatusCode;
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};
use std::time::Duration;

/// A host trusting `idp`, serving the fixture plugin's `open` (no scope), `read`
/// (`fix:read`) and `admin` (`fix:admin`) tools.
fn host(idp: &Idp) -> Host {
    let tools = json!([
        {"name": "open", "input_schema": {"type": "object"}},
        {"name": "read", "input_schema": {"type": "object"}},
        {"name": "admin", "input_schema": {"type": "object"}},
    ]);
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{}\n[plugins.fix]\npath = {}\n\
         env = {{ FIXTURE_TOOLS = {} }}\nscopes = {{ read = \"fix:read\", admin = \"fix:admin\" }}\n",
        idp.auth_section(),
        toml_path(&plugin("fixture")),
        toml_str(&tools.to_string()),
    );
    Host::start(&config, &[])
}

fn resource(host: &Host) -> String {
    format!("http://{}/mcp", host.addr)
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"auth-test","version":"1"}}}"#;

/// POSTs `body` to `/mcp` with `authorization` (if any) and `query` appended to the URL.
async fn post(
    host: &Host,
    body: &str,
    authorization: Option<&str>,
    query: &str,
) -> (StatusCode, String, String) {
    let mut request = reqwest::Client::new()
        .post(format!("{}{query}", host.mcp_url()))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_owned());
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, challenge, response.text().await.unwrap())
}

/// An rmcp client sending `token` with every request.
async fn client_with(host: &Host, token: &str) -> crate::common::Client {
    crate::common::connect_with_token(&host.mcp_url(), token).await
}

fn call(tool: &str) -> CallToolRequestParams {
    CallToolRequestParams::new(tool.to_owned())
        .with_arguments(json!({"text": "hi"}).as_object().unwrap().clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_protected_resource_metadata_names_the_issuer() {
    let idp = Idp::start().await;
    let host = host(&idp);
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let response = reqwest::get(format!("http://{}{path}", host.addr))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let metadata: Value = response.json().await.unwrap();
        assert_eq!(metadata["resource"], resource(&host), "{path}");
        assert_eq!(metadata["authorization_servers"], json!([idp.issuer()]));
        assert_eq!(metadata["bearer_methods_supported"], json!(["header"]));
        assert_eq!(
            metadata["scopes_supported"],
            json!(["fix:admin", "fix:read"])
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_token_calls_the_tools_its_scopes_allow() {
    let idp = Idp::start().await;
    let host = host(&idp);
    let client = client_with(&host, &idp.token(&resource(&host), "fix:read")).await;
    // tools/list shows only what the token may call.
    let listed = crate::common::tool_names(&client).await;
    assert_eq!(listed, ["open", "read"]);
    for tool in ["open", "read"] {
        let result = client.call_tool(call(tool)).await.unwrap();
        assert_eq!(result.is_error, Some(false), "{tool}: {result:?}");
    }
    let log = host.wait_for_log("outcome=ok", Duration::from_secs(5));
    let record = log
        .lines()
        .find(|l| l.contains("tool call") && l.contains("outcome=ok"))
        .unwrap();
    assert!(
        record.contains("subject=\"alice\" client_id=\"test-client\""),
        "{record}"
    );
    // A broader scope covers its narrower ones: `fix` may call `fix:admin`'s tool.
    let broad = client_with(&host, &idp.token(&resource(&host), "fix")).await;
    let result = broad.call_tool(call("admin")).await.unwrap();
    assert_eq!(result.is_error, Some(false), "{result:?}");
    client.cancel().await.ok();
    broad.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_scope_is_a_403_naming_it() {
    let idp = Idp::start().await;
    let host = host(&idp);
    let token = idp.token(&resource(&host), "fix:read");
    let body = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"admin","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    let mark = host.log_mark();
    let (status, challenge, _) = post(&host, body, Some(&format!("Bearer {token}")), "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        challenge.starts_with("Bearer error=\"insufficient_scope\", scope=\"fix:admin\""),
        "{challenge}"
    );
    assert!(
        challenge.contains(&format!(
            "resource_metadata=\"http://{}/.well-known/oauth-protected-resource/mcp\"",
            host.addr
        )),
        "{challenge}"
    );
    let log = host.wait_for_log_since(mark, "outcome=forbidden", Duration::from_secs(5));
    let record = log
        .lines()
        .find(|l| l.contains("outcome=forbidden"))
        .expect("a record");
    assert!(
        record.contains("tool call") && record.contains("tool=\"admin\""),
        "{record}"
    );
    assert!(
        record.contains("subject=\"alice\"") && record.contains("step=\"authorize\""),
        "{record}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_with_their_reason_and_recorded() {
    let idp = Idp::start().await;
    let host = host(&idp);
    let resource = resource(&host);
    let good = idp.claims(&resource, "fix:read");
    let with = |change: &dyn Fn(&mut Value)| {
        let mut claims = good.clone();
        change(&mut claims);
        idp.key.sign(&claims)
    };
    let stranger = SigningKey::ed25519("idp-key-1");
    let (head, rest) = idp
        .key
        .sign(&good)
        .split_once('.')
        .map(|(h, r)| (h.to_owned(), r.to_owned()))
        .unwrap();
    let signature = rest.split_once('.').unwrap().1.to_owned();
    let mut evil = good.clone();
    evil["scope"] = json!("fix:admin");
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let tampered = format!("{head}.{}.{signature}", b64.encode(evil.to_string()));
    let none = format!(
        "{}.{}.",
        b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(good.to_string())
    );
    // (name, Authorization header, status, what the challenge or body must say)
    let cases: Vec<(&str, Option<String>, StatusCode, &str)> = vec![
        (
            "no token",
            None,
            StatusCode::UNAUTHORIZED,
            "no access token",
        ),
        (
            "not bearer",
            Some("Basic YWxpY2U6cHc=".into()),
            StatusCode::UNAUTHORIZED,
            "invalid_request",
        ),
        (
            "malformed",
            Some("Bearer abc.def".into()),
            StatusCode::UNAUTHORIZED,
            "not a well-formed JWT",
        ),
        (
            "alg none",
            Some(format!("Bearer {none}")),
            StatusCode::UNAUTHORIZED,
            "algorithm is not accepted",
        ),
        (
            "tampered",
            Some(format!("Bearer {tampered}")),
            StatusCode::UNAUTHORIZED,
            "signature does not verify",
        ),
        (
            "another key",
            Some(format!("Bearer {}", stranger.sign(&good))),
            StatusCode::UNAUTHORIZED,
            "signature does not verify",
        ),
        (
            "wrong issuer",
            Some(format!(
                "Bearer {}",
                with(&|c| c["iss"] = json!("http://evil.example"))
            )),
            StatusCode::UNAUTHORIZED,
            "another issuer",
        ),
        (
            "another resource",
            Some(format!(
                "Bearer {}",
                with(&|c| c["aud"] = json!("https://other.example.com/mcp"))
            )),
            StatusCode::UNAUTHORIZED,
            "another resource",
        ),
        (
            "expired",
            Some(format!(
                "Bearer {}",
                with(&|c| c["exp"] = json!(now() - 300))
            )),
            StatusCode::UNAUTHORIZED,
            "expired",
        ),
        (
            "not yet valid",
            Some(format!(
                "Bearer {}",
                with(&|c| c["nbf"] = json!(now() + 3600))
            )),
            StatusCode::UNAUTHORIZED,
            "not valid yet",
        ),
    ];
    for (name, authorization, status, says) in cases {
        let mark = host.log_mark();
        let (got, challenge, body) = post(&host, INITIALIZE, authorization.as_deref(), "").await;
        assert_eq!(got, status, "{name}: {body}");
        assert!(
            challenge.contains(says) || body.contains(says),
            "{name}: {challenge} / {body}"
        );
        assert!(
            challenge.starts_with("Bearer resource_metadata=\"http://"),
            "{name}: {challenge}"
        );
        assert!(
            challenge.contains("scope=\"fix:admin fix:read\""),
            "{name}: {challenge}"
        );
        if authorization.is_some() && name != "not bearer" {
            assert!(
                challenge.contains("error=\"invalid_token\""),
                "{name}: {challenge}"
            );
        }
        assert!(!body.contains("protocolVersion"), "{name}: {body}");
        let log = host.wait_for_log_since(mark, "request refused", Duration::from_secs(5));
        let record = log
            .lines()
            .find(|l| l.contains("request refused"))
            .unwrap_or_else(|| panic!("{name}: no record in {log}"));
        assert!(
            record.contains("outcome=unauthenticated") && record.contains("method=\"initialize\""),
            "{name}: {record}"
        );
        // The token is never logged.
        if let Some(authorization) = &authorization {
            let token = authorization.split(' ').nth(1).unwrap();
            assert!(
                !host.log().contains(token),
                "{name}: the token is in the log"
            );
        }
    }
    // A token in the query string is refused before it is looked at, even a good one.
    let (status, challenge, _) = post(
        &host,
        INITIALIZE,
        None,
        &format!("?access_token={}", idp.key.sign(&good)),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        challenge.contains("error=\"invalid_request\""),
        "{challenge}"
    );
    // An upper-case scheme and host name the same resource.
    let shouting = resource.replace("http://127.0.0.1", "HTTP://127.0.0.1");
    let token = with(&|c| c["aud"] = json!(shouting));
    let (status, _, body) = post(&host, INITIALIZE, Some(&format!("Bearer {token}")), "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_key_ids_cannot_make_the_host_hammer_the_provider() {
    let idp = Idp::start().await;
    let host = host(&idp);
    let at_start = idp.jwks_fetches();
    assert_eq!(at_start, 1, "the keys are fetched once at start");
    let stranger = SigningKey::ed25519("rotated-key");
    let claims = idp.claims(&resource(&host), "fix:read");
    for _ in 0..20 {
        let (status, challenge, _) = post(
            &host,
            INITIALIZE,
            Some(&format!("Bearer {}", stranger.sign(&claims))),
            "",
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(challenge.contains("no key `rotated-key`"), "{challenge}");
    }
    // At most one fetch a minute, whatever the flood: none yet, the start's is recent.
    assert_eq!(idp.jwks_fetches(), at_start);
}

#[test]
fn auth_settings_are_checked_at_start() {
    let fixture = toml_path(&plugin("fixture"));
    for (section, needle) in [
        ("[auth]\nmode = \"external\"\n", "needs issuer"),
        (
            "[auth]\nmode = \"external\"\nissuer = \"http://idp.example.com\"\n",
            "must be https",
        ),
        (
            "[auth]\nmode = \"sometimes\"\n",
            "unknown variant `sometimes`",
        ),
    ] {
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n{section}[plugins.fix]\npath = {fixture}\n"
        );
        let (status, stderr) = start_refused(&config, &[]);
        assert!(!status.success());
        assert!(stderr.contains(needle), "{section}: {stderr}");
    }
    // A scope for a tool the plugin does not offer is a mistake worth stopping for.
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[plugins.fix]\npath = {fixture}\nscopes = {{ fixtur = \"x\" }}\n"
    );
    let (status, stderr) = start_refused(&config, &[]);
    assert!(!status.success());
    assert!(
        stderr.contains(
            "scopes names the tool `fixtur`, which the plugin does not offer (it offers: fixture)"
        ),
        "{stderr}"
    );
    // An identity provider that cannot be found stops the start, saying what to set.
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[auth]\nmode = \"external\"\nissuer = \"http://127.0.0.1:9\"\n[plugins.fix]\npath = {fixture}\n"
    );
    let (status, stderr) = start_refused(&config, &[]);
    assert!(!status.success());
    assert!(stderr.contains("set jwks_url"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_authentication_off_the_host_says_so() {
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[plugins.fix]\npath = {}\n",
        toml_path(&plugin("fixture"))
    );
    let host = Host::start(&config, &[]);
    let log = host.wait_for_log("authentication is off", Duration::from_secs(5));
    assert!(log.contains("anyone who can reach"), "{log}");
    // ...and serves no protected resource metadata.
    let response = reqwest::get(format!(
        "http://{}/.well-known/oauth-protected-resource/mcp",
        host.addr
    ))
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

/// oidc-provider (npm), a certified OpenID provider we did not write, on 127.0.0.1.
struct OidcProvider {
    child: std::process::Child,
    issuer: String,
}

impl OidcProvider {
    fn start() -> Self {
        use std::io::BufRead as _;
        let folder = crate::common::workspace_root().join("tests/typescript");
        assert!(
            folder.join("node_modules/oidc-provider").exists(),
            "oidc-provider is missing: run the README's test command (npm ci in {})",
            folder.display()
        );
        let mut child = std::process::Command::new("node")
            .current_dir(&folder)
            .arg("oidc_provider.mjs")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("node runs");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready: Value = serde_json::from_str(&line).expect("the provider prints its issuer");
        Self {
            child,
            issuer: ready["issuer"].as_str().unwrap().to_owned(),
        }
    }

    /// An access token for `resource` with `scope`, by client credentials.
    async fn token(&self, resource: &str, scope: &str) -> String {
        let answer: Value = reqwest::Client::new()
            .post(format!("{}/token", self.issuer))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "machine"),
                ("client_secret", "machine-secret"),
                ("resource", resource),
                ("scope", scope),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token: {answer}"))
            .to_owned()
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_from_a_certified_openid_provider() {
    let provider = OidcProvider::start();
    let tools = json!([
        {"name": "open", "input_schema": {"type": "object"}},
        {"name": "read", "input_schema": {"type": "object"}},
        {"name": "admin", "input_schema": {"type": "object"}},
    ]);
    // Discovery: the provider publishes OpenID Connect metadata, not RFC 8414's.
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[auth]\nmode = \"external\"\nissuer = \"{}\"\n\
         [plugins.fix]\npath = {}\nenv = {{ FIXTURE_TOOLS = {} }}\n\
         scopes = {{ read = \"fix:read\", admin = \"fix:admin\" }}\n",
        provider.issuer,
        toml_path(&plugin("fixture")),
        toml_str(&tools.to_string()),
    );
    let host = Host::start(&config, &[]);
    let ours = provider.token(&resource(&host), "fix:read").await;
    let client = client_with(&host, &ours).await;
    let listed = crate::common::tool_names(&client).await;
    assert_eq!(listed, ["open", "read"]);
    let result = client.call_tool(call("read")).await.unwrap();
    assert_eq!(result.is_error, Some(false), "{result:?}");
    client.cancel().await.ok();
    // The same provider's token for another resource is refused.
    let theirs = provider
        .token("https://other.example.com/mcp", "fix:read")
        .await;
    let (status, challenge, _) =
        post(&host, INITIALIZE, Some(&format!("Bearer {theirs}")), "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        challenge.contains("issued for another resource"),
        "{challenge}"
    );
}
