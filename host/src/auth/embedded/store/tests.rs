//! The store on a real SQLite file: what single use means under a race, what reuse
//! revokes, what a restart keeps, what purging removes.

use super::*;

fn grant(family: &str) -> CodeGrant {
    CodeGrant {
        client_id: "c1".into(),
        redirect_uri: "http://127.0.0.1:3000/cb".into(),
        code_challenge: "challenge".into(),
        resource: "http://127.0.0.1:8080/mcp".into(),
        scope: "notes".into(),
        subject: "alice".into(),
        family: family.into(),
    }
}

fn refresh(family: &str) -> RefreshGrant {
    RefreshGrant {
        family: family.into(),
        client_id: "c1".into(),
        subject: "alice".into(),
        scope: "notes".into(),
        resource: "http://127.0.0.1:8080/mcp".into(),
    }
}

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("data/auth.sqlite"))
        .await
        .unwrap();
    (dir, store)
}

#[tokio::test]
async fn a_code_is_redeemed_once_even_when_raced() {
    let (_dir, store) = store().await;
    store
        .put_code("the-code", &grant("f1"), 1_000)
        .await
        .unwrap();
    store
        .put_refresh("r1", &refresh("f1"), 10_000)
        .await
        .unwrap();
    let (a, b) = tokio::join!(
        store.redeem_code("the-code", 500),
        store.redeem_code("the-code", 500)
    );
    let wins = [a.unwrap(), b.unwrap()].into_iter().flatten().count();
    assert_eq!(wins, 1, "exactly one redemption wins");
    // The loser's attempt was a replay: what the code was exchanged for is revoked.
    assert_eq!(
        store.use_refresh("r1", 600).await.unwrap(),
        Refresh::Invalid
    );
    // Unknown and expired codes redeem nothing.
    assert_eq!(store.redeem_code("no-such-code", 500).await.unwrap(), None);
    store.put_code("late", &grant("f2"), 1_000).await.unwrap();
    assert_eq!(store.redeem_code("late", 1_000).await.unwrap(), None);
}

#[tokio::test]
async fn a_reused_refresh_token_revokes_its_family() {
    let (_dir, store) = store().await;
    store
        .put_refresh("first", &refresh("fam"), 10_000)
        .await
        .unwrap();
    store
        .put_refresh("other", &refresh("other-fam"), 10_000)
        .await
        .unwrap();
    assert_eq!(
        store.use_refresh("first", 100).await.unwrap(),
        Refresh::Rotated(refresh("fam"))
    );
    store
        .put_refresh("second", &refresh("fam"), 10_000)
        .await
        .unwrap();
    // The first token again (stolen): refused, and the family's live token dies too.
    assert_eq!(
        store.use_refresh("first", 200).await.unwrap(),
        Refresh::Reused
    );
    assert_eq!(
        store.use_refresh("second", 200).await.unwrap(),
        Refresh::Invalid
    );
    // Other grants are untouched; expired tokens are invalid.
    assert!(matches!(
        store.use_refresh("other", 200).await.unwrap(),
        Refresh::Rotated(_)
    ));
    store.put_refresh("old", &refresh("f3"), 300).await.unwrap();
    assert_eq!(
        store.use_refresh("old", 300).await.unwrap(),
        Refresh::Invalid
    );
}

#[tokio::test]
async fn nothing_is_lost_across_a_restart_and_secrets_are_stored_hashed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.sqlite");
    {
        let store = Store::open_sqlite(&path).await.unwrap();
        let client = ClientRecord {
            client_id: "c1".into(),
            client_name: "Client".into(),
            redirect_uris: vec!["http://127.0.0.1:3000/cb".into()],
            source: "registered".into(),
        };
        store.put_client(&client, 1).await.unwrap();
        let user = UserRecord {
            name: "alice".into(),
            password_hash: "$argon2id$...".into(),
            scopes: Some(vec!["notes".into()]),
        };
        assert!(store.add_user(&user, 1).await.unwrap());
        assert!(!store.add_user(&user, 1).await.unwrap(), "names are unique");
        store
            .put_code("plain-code-value", &grant("f"), 1_000)
            .await
            .unwrap();
    }
    // Opened again (migrations run once; the schema is already there).
    let store = Store::open_sqlite(&path).await.unwrap();
    assert_eq!(
        store.client("c1").await.unwrap().unwrap().client_name,
        "Client"
    );
    assert_eq!(
        store.user("alice").await.unwrap().unwrap().scopes,
        Some(vec!["notes".to_owned()])
    );
    assert!(
        store
            .redeem_code("plain-code-value", 10)
            .await
            .unwrap()
            .is_some()
    );
    let bytes = std::fs::read(&path).unwrap();
    let wal = std::fs::read(dir.path().join("auth.sqlite-wal")).unwrap_or_default();
    let haystack = [bytes, wal].concat();
    assert!(
        !haystack.windows(16).any(|w| w == b"plain-code-value"),
        "the code is in the database file"
    );
}

#[tokio::test]
async fn purging_removes_only_what_is_dead() {
    let (_dir, store) = store().await;
    store.put_code("dead", &grant("f"), 100).await.unwrap();
    store.put_code("live", &grant("g"), 10_000).await.unwrap();
    store
        .put_refresh("dead-r", &refresh("f"), 100)
        .await
        .unwrap();
    store.put_setup_code("setup", 100).await.unwrap();
    assert_eq!(store.purge(500).await.unwrap(), 3);
    assert!(store.redeem_code("live", 500).await.unwrap().is_some());
}

#[tokio::test]
async fn setup_codes_work_once() {
    let (_dir, store) = store().await;
    store.put_setup_code("abc", 1_000).await.unwrap();
    assert!(!store.use_setup_code("abd", 10).await.unwrap());
    assert!(store.use_setup_code("abc", 10).await.unwrap());
    assert!(!store.use_setup_code("abc", 10).await.unwrap());
}

#[tokio::test]
async fn a_path_with_dot_dot_and_url_characters_opens_the_file_it_names() {
    let dir = tempfile::tempdir().unwrap();
    // What `examples/host.toml` gives: a folder, `..`, then the database; names with
    // characters a URL would read as its query, fragment or an escape.
    std::fs::create_dir(dir.path().join("examples")).unwrap();
    let path = dir.path().join("examples/../da?ta #1%41/auth.sqlite");
    Store::open_sqlite(&path).await.unwrap();
    assert!(dir.path().join("da?ta #1%41/auth.sqlite").is_file());
    assert!(!dir.path().join("examples/auth.sqlite").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_registering_the_same_client_or_user_at_once_both_succeed() {
    // Two stores on one file: two replicas starting together, each registering the
    // configured clients, or two admins adding one user.
    let (dir, first) = store().await;
    let second = Store::open_sqlite(&dir.path().join("data/auth.sqlite"))
        .await
        .unwrap();
    let client = |name: &str| ClientRecord {
        client_id: "my-app".into(),
        client_name: name.into(),
        redirect_uris: vec!["https://app.example.com/cb".into()],
        source: "configured".into(),
    };
    for round in 0..20 {
        let (a, b) = (client(&format!("a{round}")), client(&format!("b{round}")));
        let (one, two) = tokio::join!(first.put_client(&a, round), second.put_client(&b, round));
        one.unwrap();
        two.unwrap();
    }
    let stored = first.client("my-app").await.unwrap().unwrap();
    assert!(["a19", "b19"].contains(&stored.client_name.as_str()));
    let user = UserRecord {
        name: "alice".into(),
        password_hash: "$argon2id$...".into(),
        scopes: None,
    };
    let (one, two) = tokio::join!(first.add_user(&user, 1), second.add_user(&user, 1));
    let added = [one.unwrap(), two.unwrap()];
    assert_eq!(added.iter().filter(|a| **a).count(), 1, "{added:?}");
}
