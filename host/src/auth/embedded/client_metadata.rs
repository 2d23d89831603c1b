//! OAuth Client ID Metadata Documents: a client whose `client_id` is an https URL is
//! described by the JSON document at that URL. The document is fetched through the
//! same address-checked client plugins use (loopback, private and metadata addresses
//! refused unless the operator names them), with a deadline and a size cap, cached as
//! its cache headers allow; its `client_id` must be the URL exactly and its
//! `redirect_uris` must be usable. The operator says which hosts may be clients.

use super::flow::check_redirect_uri;
use super::store::ClientRecord;
use crate::sandbox::http::dialer::{self, Reach};
use crate::sandbox::http::fetch::{Fetcher, tls_with_extra_roots};
use serde::Deserialize;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest document read.
const MAX_DOCUMENT_BYTES: usize = 64 * 1024;
/// Longest a document is cached, whatever its headers say.
const MAX_CACHE: Duration = Duration::from_secs(24 * 3600);
/// Documents cached at once (the oldest go first).
const MAX_CACHED: usize = 1000;

/// `[auth.embedded.client_metadata]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientMetadataConfig {
    /// Whether `client_id` URLs are accepted at all (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Hosts whose documents are accepted: exact names, `*.example.com`, or `*` for any
    /// (the default: a client needs no prior relationship).
    #[serde(default = "any_host")]
    pub allowed_hosts: Vec<String>,
    /// A PEM file of CA certificates to trust besides the web PKI.
    #[serde(default)]
    pub trusted_ca: Option<PathBuf>,
    /// Addresses a document may be fetched from although they are loopback or private
    /// (a client on the operator's own network).
    #[serde(default)]
    pub allow_addresses: Vec<IpAddr>,
}

fn yes() -> bool {
    true
}

fn any_host() -> Vec<String> {
    vec!["*".to_owned()]
}

impl Default for ClientMetadataConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            allowed_hosts: any_host(),
            trusted_ca: None,
            allow_addresses: Vec::new(),
        }
    }
}

impl ClientMetadataConfig {
    /// Resolves `trusted_ca` against `base`.
    pub fn resolve(&mut self, base: &Path) {
        if let Some(ca) = &mut self.trusted_ca {
            *ca = base.join(&*ca);
        }
    }
}

/// A cached document.
struct Cached {
    client: ClientRecord,
    until: Instant,
    at: Instant,
}

/// Fetches, checks and caches client metadata documents.
pub struct ClientMetadata {
    config: ClientMetadataConfig,
    fetcher: Fetcher,
    cache: Mutex<HashMap<String, Cached>>,
}

/// Whether `client_id` names a metadata document (an https URL with a path).
pub fn is_document_url(client_id: &str) -> bool {
    url::Url::parse(client_id)
        .is_ok_and(|u| u.scheme() == "https" && u.path() != "/" && !u.path().is_empty())
}

impl ClientMetadata {
    /// The resolver `config` describes.
    pub fn new(config: ClientMetadataConfig) -> Result<Self, String> {
        let tls = match &config.trusted_ca {
            None => dialer::tls_config(),
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("trusted_ca {}: {e}", path.display()))?;
                tls_with_extra_roots(&pem)
                    .map_err(|e| format!("trusted_ca {}: {e}", path.display()))?
            }
        };
        let reach = if config.allow_addresses.is_empty() {
            Reach::Public
        } else {
            Reach::Also(Arc::from(config.allow_addresses.clone()))
        };
        Ok(Self {
            fetcher: Fetcher::new(reach, tls, FETCH_TIMEOUT, MAX_DOCUMENT_BYTES),
            config,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Whether documents are accepted.
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// The client the document at `url` describes, or why it cannot be used (said on
    /// the authorization page).
    pub async fn client(&self, url: &str) -> Result<ClientRecord, String> {
        if !self.config.enabled {
            return Err("this server does not accept client metadata documents".into());
        }
        let host = url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            .ok_or("the client_id is not a URL")?;
        if !self.host_allowed(&host) {
            return Err(format!(
                "clients from `{host}` are not accepted by this server's policy"
            ));
        }
        if let Some(client) = self.cached(url) {
            return Ok(client);
        }
        let fetched = self
            .fetcher
            .get(url, "application/json")
            .await
            .map_err(|e| format!("its metadata document cannot be fetched: {e}"))?;
        if !fetched.status.is_success() {
            return Err(format!(
                "its metadata document answered HTTP {}",
                fetched.status.as_u16()
            ));
        }
        let client = parse_document(url, &fetched.body)?;
        let lifetime = cache_lifetime(&fetched.headers);
        if !lifetime.is_zero() {
            self.remember(url, &client, lifetime);
        }
        Ok(client)
    }

    fn host_allowed(&self, host: &str) -> bool {
        self.config.allowed_hosts.iter().any(|pattern| {
            let pattern = pattern.to_ascii_lowercase();
            pattern == "*"
                || pattern == host
                || pattern
                    .strip_prefix("*.")
                    .is_some_and(|suffix| host.ends_with(&format!(".{suffix}")))
        })
    }

    fn cached(&self, url: &str) -> Option<ClientRecord> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(url)
            .filter(|c| c.until > Instant::now())
            .map(|c| c.client.clone())
    }

    fn remember(&self, url: &str, client: &ClientRecord, lifetime: Duration) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        cache.retain(|_, c| c.until > now);
        if cache.len() >= MAX_CACHED
            && let Some(oldest) = cache
                .iter()
                .min_by_key(|(_, c)| c.at)
                .map(|(k, _)| k.clone())
        {
            cache.remove(&oldest);
        }
        cache.insert(
            url.to_owned(),
            Cached {
                client: client.clone(),
                until: now + lifetime,
                at: now,
            },
        );
    }
}

/// Checks a document fetched from `url`.
fn parse_document(url: &str, body: &[u8]) -> Result<ClientRecord, String> {
    let document: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| format!("its metadata document is not JSON: {e}"))?;
    if document["client_id"].as_str() != Some(url) {
        return Err(format!(
            "its metadata document names client_id {}, not its own URL",
            document["client_id"]
        ));
    }
    let uris: Vec<String> = document["redirect_uris"]
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or("its metadata document has no redirect_uris")?
        .iter()
        .map(|u| {
            u.as_str()
                .map(str::to_owned)
                .ok_or("redirect_uris must be strings")
        })
        .collect::<Result<_, _>>()?;
    for uri in &uris {
        check_redirect_uri(uri).map_err(|why| format!("its redirect URI `{uri}`: {why}"))?;
    }
    if let Some(method) = document["token_endpoint_auth_method"].as_str()
        && method != "none"
    {
        return Err(format!(
            "it asks for token_endpoint_auth_method `{method}`; this server has public clients only"
        ));
    }
    let host = url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    let name = document["client_name"]
        .as_str()
        .map(|n| {
            n.chars()
                .filter(|c| !c.is_control())
                .take(128)
                .collect::<String>()
        })
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| host.clone());
    Ok(ClientRecord {
        client_id: url.to_owned(),
        // The domain is part of what the user sees: the name alone is the client's claim.
        client_name: format!("{name} ({host})"),
        redirect_uris: uris,
        source: "metadata".into(),
    })
}

/// How long the response may be cached: `Cache-Control: max-age` (none for
/// `no-store`/`no-cache`), five minutes when it says nothing, at most a day.
fn cache_lifetime(headers: &http::HeaderMap) -> Duration {
    let Some(control) = headers
        .get(http::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
    else {
        return Duration::from_secs(300);
    };
    let directives: Vec<String> = control
        .split(',')
        .map(|d| d.trim().to_ascii_lowercase())
        .collect();
    if directives
        .iter()
        .any(|d| d == "no-store" || d == "no-cache")
    {
        return Duration::ZERO;
    }
    directives
        .iter()
        .find_map(|d| d.strip_prefix("max-age=")?.parse::<u64>().ok())
        .map_or(Duration::from_secs(300), |s| {
            Duration::from_secs(s).min(MAX_CACHE)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://app.example.com/oauth/client.json";

    #[test]
    fn documents_are_checked() {
        let good = serde_json::json!({
            "client_id": URL, "client_name": "App", "redirect_uris": ["http://127.0.0.1:3000/cb"],
        });
        let client = parse_document(URL, good.to_string().as_bytes()).unwrap();
        assert_eq!(client.client_name, "App (app.example.com)");
        assert_eq!(client.source, "metadata");
        for (document, needle) in [
            (
                serde_json::json!({"client_id": "https://evil.example/x.json", "redirect_uris": ["https://a.example/cb"]}),
                "not its own URL",
            ),
            (serde_json::json!({"client_id": URL}), "no redirect_uris"),
            (
                serde_json::json!({"client_id": URL, "redirect_uris": ["http://evil.example/cb"]}),
                "loopback",
            ),
            (
                serde_json::json!({"client_id": URL, "redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "private_key_jwt"}),
                "public clients only",
            ),
        ] {
            let err = parse_document(URL, document.to_string().as_bytes()).unwrap_err();
            assert!(err.contains(needle), "{document}: {err}");
        }
        assert!(
            parse_document(URL, b"<html>")
                .unwrap_err()
                .contains("not JSON")
        );
    }

    #[test]
    fn cache_headers_and_urls() {
        let lifetime = |value: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert(http::header::CACHE_CONTROL, value.parse().unwrap());
            cache_lifetime(&headers)
        };
        assert_eq!(lifetime("public, max-age=60"), Duration::from_secs(60));
        assert_eq!(lifetime("no-store"), Duration::ZERO);
        assert_eq!(lifetime("max-age=9999999"), MAX_CACHE);
        assert_eq!(
            cache_lifetime(&http::HeaderMap::new()),
            Duration::from_secs(300)
        );
        assert!(is_document_url(URL));
        assert!(!is_document_url("https://app.example.com/"));
        assert!(!is_document_url("http://app.example.com/client.json"));
        assert!(!is_document_url("c-abc123"));
    }

    #[test]
    fn host_policy() {
        let metadata = ClientMetadata::new(ClientMetadataConfig {
            allowed_hosts: vec!["*.example.com".into(), "tools.example.org".into()],
            ..ClientMetadataConfig::default()
        })
        .unwrap();
        assert!(metadata.host_allowed("app.example.com"));
        assert!(metadata.host_allowed("tools.example.org"));
        assert!(!metadata.host_allowed("example.com"));
        assert!(!metadata.host_allowed("evilexample.com"));
        assert!(!metadata.host_allowed("app.example.com.evil.net"));
    }
}
