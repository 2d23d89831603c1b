//! A client written by others: the official Python MCP SDK (pinned in
//! tests/python/requirements.txt, installed by the README's test command) lists and
//! calls the weather tool, in its default 2026-07-28 mode and in legacy mode.

use crate::common::{check_sdk_client, python, sdk_client_output, workspace_root};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

fn run_sdk(url: &str, mode: &str, city: &str) -> Value {
    let mut command = Command::new(python());
    command
        .arg(workspace_root().join("tests/python/sdk_client.py"))
        .args([url, mode, city]);
    sdk_client_output(command, &format!("python sdk client ({mode})"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_lists_and_calls_in_both_modes() {
    check_sdk_client(
        run_sdk,
        &[
            ("auto", "2026-07-28", "Zürich"),
            ("legacy", "2025-11-25", "Oslo"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_walks_the_oauth_flow_with_step_up_and_refresh() {
    let state = crate::oauth::State::new();
    state.add_user("alice", "alice-password-1", &[]);
    // Clients are told to ask for fix:read up front; fix:admin comes by step-up.
    let host = state.start("scopes_supported = [\"fix:read\"]\n");
    for (mode, version) in [("auto", "2026-07-28"), ("legacy", "2025-11-25")] {
        let url = host.mcp_url();
        let seen = tokio::task::spawn_blocking(move || {
            let mut command = Command::new(python());
            command
                .arg(workspace_root().join("tests/python/oauth_client.py"))
                .args([url.as_str(), mode, "alice", "alice-password-1"]);
            sdk_client_output(command, &format!("python oauth client ({mode})"))
        })
        .await
        .unwrap();
        assert_eq!(seen["protocol_version"], version, "{seen}");
        // The first token holds fix:read: tools/list shows what it may call.
        assert_eq!(seen["first_scope"], "fix:read", "{seen}");
        assert_eq!(seen["tools"], serde_json::json!(["open", "read"]), "{seen}");
        assert_eq!(seen["read"], serde_json::json!(["first"]), "{seen}");
        // admin needed fix:admin: a 403, then a second authorization with both scopes.
        assert_eq!(seen["admin_is_error"], false, "{seen}");
        assert_eq!(seen["admin"], serde_json::json!(["stepped up"]), "{seen}");
        let second = seen["authorizations"][1].as_str().unwrap_or_default();
        assert!(
            second.contains("fix:read") && second.contains("fix:admin"),
            "the step-up asked for the union: {seen}"
        );
        assert_eq!(
            seen["authorizations"].as_array().unwrap().len(),
            2,
            "{seen}"
        );
        // Then a refresh: a third access token and refresh token, no third login.
        assert_eq!(
            seen["refreshed"],
            serde_json::json!(["after refresh"]),
            "{seen}"
        );
        assert_eq!(seen["access_tokens"], 3, "{seen}");
        assert_eq!(seen["refresh_tokens"], 3, "{seen}");
        let client_id = seen["client_id"].as_str().unwrap();
        let log = host.wait_for_line(
            |l| l.contains("outcome=forbidden") && l.contains(client_id),
            Duration::from_secs(5),
        );
        let forbidden = log
            .lines()
            .find(|l| l.contains("outcome=forbidden") && l.contains(client_id))
            .unwrap_or_else(|| panic!("no forbidden record for {client_id}:\n{log}"));
        assert!(forbidden.contains("tool=\"admin\"") && forbidden.contains("subject=\"alice\""));
        assert!(
            log.lines().any(|l| l.contains("tool call")
                && l.contains("outcome=ok")
                && l.contains("tool=\"admin\"")
                && l.contains(client_id)),
            "{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_uses_a_client_id_metadata_document() {
    let documents = crate::common::tls::TlsServer::start().await;
    let url = documents.url("mcp/client.json");
    documents.serve(
        "mcp/client.json",
        serde_json::json!({
            "client_id": url,
            "client_name": "python-sdk-cimd",
            "redirect_uris": [crate::common::oauth::REDIRECT_URI],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }),
        "max-age=600",
    );
    let state = crate::oauth::State::new();
    state.add_user("alice", "alice-password-1", &[]);
    let host = state.start_with_documents("scopes_supported = [\"fix:read\"]\n", &documents, true);
    let (mcp_url, document_url) = (host.mcp_url(), url.clone());
    let seen = tokio::task::spawn_blocking(move || {
        let mut command = Command::new(python());
        command
            .arg(workspace_root().join("tests/python/oauth_client.py"))
            .args([
                mcp_url.as_str(),
                "auto",
                "alice",
                "alice-password-1",
                document_url.as_str(),
            ]);
        sdk_client_output(command, "python oauth client (metadata document)")
    })
    .await
    .unwrap();
    // No registration: the client_id is the document's URL, and the flow completes.
    assert_eq!(seen["client_id"], url, "{seen}");
    assert_eq!(seen["admin"], serde_json::json!(["stepped up"]), "{seen}");
    assert_eq!(
        seen["refreshed"],
        serde_json::json!(["after refresh"]),
        "{seen}"
    );
    assert_eq!(
        documents.hits("mcp/client.json"),
        1,
        "fetched once, then cached"
    );
    let named = format!("client_id=\"{url}\"");
    assert!(
        host.wait_for_log(&named, Duration::from_secs(5))
            .contains(&named)
    );
}
