//! The login and consent page in a real browser: headless Chromium driven over WebDriver
//! (chromedriver, fantoccini) opens the authorization URL, logs in, approves, and
//! arrives at the client's redirect URI with a code that exchanges for a token.

use crate::common::oauth::{OAuthClient, Pkce, redirect_param};
use fantoccini::{ClientBuilder, Locator};
use serde_json::json;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free loopback port, killed on drop.
struct Driver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
}

impl Driver {
    fn start() -> Self {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(binary).exists(),
                "{binary} is missing: run the README's test command, which installs Debian's \
                 chromium and chromium-driver"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _profile: tempfile::tempdir().unwrap(),
        }
    }

    async fn browser(&self) -> fantoccini::Client {
        let profile = format!("--user-data-dir={}", self._profile.path().display());
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", profile,
                ],
            }
        });
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(capabilities.as_object().unwrap().clone())
            .connect(&self.url)
            .await
            .expect("a browser session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_logs_in_and_approves() {
    let state = crate::oauth::State::new();
    state.add_user("alice", "alice-password-1", &[]);
    let host = state.start("");
    let base = format!("http://{}", host.addr);
    let client = OAuthClient::register(&base).await;
    let pkce = Pkce::new();
    let mut url = url::Url::parse(&format!("{base}/oauth/authorize")).unwrap();
    url.query_pairs_mut()
        .extend_pairs(client.authorize_params(&pkce, "fix:read"));
    let driver = Driver::start();
    let browser = driver.browser().await;
    browser.goto(url.as_str()).await.unwrap();
    let heading = browser
        .find(Locator::Css("h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(heading.contains("e2e client"), "{heading}");
    let page = browser.source().await.unwrap();
    assert!(
        page.contains("fix:read") && page.contains("loopback address"),
        "{page}"
    );
    // A wrong password first: the page says so and keeps the form.
    browser
        .find(Locator::Css("#username"))
        .await
        .unwrap()
        .send_keys("alice")
        .await
        .unwrap();
    browser
        .find(Locator::Css("#password"))
        .await
        .unwrap()
        .send_keys("not-the-password")
        .await
        .unwrap();
    browser
        .find(Locator::Css("button[value=approve]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let alert = browser
        .find(Locator::Css("[role=alert]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(alert, "wrong user name or password");
    // Then the right one.
    browser
        .find(Locator::Css("#password"))
        .await
        .unwrap()
        .send_keys("alice-password-1")
        .await
        .unwrap();
    browser
        .find(Locator::Css("button[value=approve]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The browser is sent to the client's redirect URI (nothing listens there).
    let deadline = Instant::now() + Duration::from_secs(20);
    let landed = loop {
        let current = browser.current_url().await.unwrap().to_string();
        if current.starts_with(crate::common::oauth::REDIRECT_URI) {
            break current;
        }
        assert!(Instant::now() < deadline, "still at {current}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    browser.close().await.unwrap();
    assert_eq!(
        redirect_param(&landed, "state").as_deref(),
        Some("state-123")
    );
    assert_eq!(redirect_param(&landed, "iss"), Some(base.clone()));
    let code = redirect_param(&landed, "code").expect("a code");
    let (status, tokens) = client.exchange(&code, &pkce).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{tokens}");
    assert_eq!(tokens["scope"], "fix:read");
}
