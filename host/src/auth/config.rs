//! `[auth]`: how `/mcp` requests are authenticated. `embedded` (the default): tokens
//! from the host's own authorization server; `external`: access tokens from an
//! identity provider we trust, checked against its published keys; `off` (loopback
//! only, with a warning).

use super::embedded::config::EmbeddedConfig;
use crate::domain::{HumanDuration, Scope};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `[auth]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// `embedded` (default), `external` or `off`.
    #[serde(default)]
    pub mode: AuthMode,
    /// `embedded`: the authorization server's settings.
    #[serde(default)]
    pub embedded: EmbeddedConfig,
    /// `external`: the identity provider's issuer identifier, exactly as its tokens'
    /// `iss` and its metadata's `issuer` write it.
    #[serde(default)]
    pub issuer: Option<String>,
    /// `external`: the audience tokens must carry (default: this server's resource URI,
    /// `public_url` + `/mcp`).
    #[serde(default)]
    pub audience: Option<String>,
    /// `external`: where the provider publishes its keys (default: `jwks_uri` from its
    /// metadata at the issuer's well-known address).
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// `external`: a PEM file of CA certificates to trust for the provider's https, in
    /// addition to the web PKI (an internal CA).
    #[serde(default)]
    pub trusted_ca: Option<PathBuf>,
    /// Clock skew allowed on `exp` and `nbf` (default 30s, at most 5m).
    #[serde(default)]
    pub leeway: Option<HumanDuration>,
    /// The scopes the protected resource metadata advertises (default: every scope a
    /// tool needs). Keep it minimal: clients ask for these up front and for the rest
    /// when a call needs them.
    #[serde(default)]
    pub scopes_supported: Option<Vec<Scope>>,
}

/// How requests to `/mcp` are authenticated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Access tokens from the host's own authorization server.
    #[default]
    Embedded,
    /// Access tokens from an identity provider we trust.
    External,
    /// No authentication: anyone who reaches the listener (loopback only).
    Off,
}

/// Default clock skew allowed on `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Most clock skew an operator may allow.
const MAX_LEEWAY: Duration = Duration::from_secs(300);

impl AuthConfig {
    /// Checks the section and resolves `trusted_ca` against `base`.
    pub fn resolve(&mut self, base: &Path) -> Result<(), String> {
        if let Some(ca) = &mut self.trusted_ca {
            *ca = base.join(&*ca);
        }
        if self.leeway.is_some_and(|l| l.0 > MAX_LEEWAY) {
            return Err("[auth] leeway must be at most 5m".to_owned());
        }
        self.embedded.resolve(base)?;
        match self.mode {
            AuthMode::Embedded => {
                for (key, set) in [
                    ("issuer", self.issuer.is_some()),
                    ("jwks_url", self.jwks_url.is_some()),
                    ("audience", self.audience.is_some()),
                    ("trusted_ca", self.trusted_ca.is_some()),
                ] {
                    if set {
                        return Err(format!(
                            "[auth] {key} is for mode = \"external\"; the embedded \
                             authorization server is its own issuer"
                        ));
                    }
                }
            }
            AuthMode::Off => {
                for (key, set) in [
                    ("issuer", self.issuer.is_some()),
                    ("jwks_url", self.jwks_url.is_some()),
                    ("audience", self.audience.is_some()),
                ] {
                    if set {
                        return Err(format!(
                            "[auth] {key} is set but mode = \"off\": set mode = \"external\" \
                             to check tokens"
                        ));
                    }
                }
            }
            AuthMode::External => {
                let issuer = self.issuer.as_deref().ok_or(
                    "[auth] mode = \"external\" needs issuer (the identity provider's issuer \
                     identifier)",
                )?;
                check_url("issuer", issuer)?;
                if let Some(jwks) = &self.jwks_url {
                    check_url("jwks_url", jwks)?;
                }
                if let Some(audience) = &self.audience {
                    url::Url::parse(audience).map_err(|e| {
                        format!("[auth] audience = \"{audience}\" is not an absolute URI: {e}")
                    })?;
                }
            }
        }
        Ok(())
    }

    /// The clock skew allowed on `exp` and `nbf`.
    pub fn leeway(&self) -> Duration {
        self.leeway.map_or(DEFAULT_LEEWAY, |l| l.0)
    }
}

/// An identity provider URL must be https, except on a loopback address.
fn check_url(key: &str, text: &str) -> Result<(), String> {
    let url = url::Url::parse(text)
        .map_err(|e| format!("[auth] {key} = \"{text}\" is not a URL: {e}"))?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&url) => Ok(()),
        _ => Err(format!(
            "[auth] {key} = \"{text}\" must be https (plain http only on a loopback address)"
        )),
    }
}

/// Whether `url`'s host is a loopback address or `localhost`.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AuthConfig, String> {
        let mut config: AuthConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.resolve(Path::new("/etc/mcp"))?;
        Ok(config)
    }

    #[test]
    fn modes_and_their_keys() {
        let embedded = parse("").unwrap();
        assert_eq!(embedded.mode, AuthMode::Embedded);
        assert_eq!(embedded.leeway(), DEFAULT_LEEWAY);
        assert_eq!(
            embedded.embedded.database,
            crate::auth::embedded::config::Database::Sqlite("/etc/mcp/data/auth.sqlite".into())
        );
        assert_eq!(parse("mode = \"off\"").unwrap().mode, AuthMode::Off);
        let external = parse(
            "mode = \"external\"\nissuer = \"https://idp.example.com\"\nleeway = \"10s\"\n\
             trusted_ca = \"ca.pem\"\n",
        )
        .unwrap();
        assert_eq!(external.mode, AuthMode::External);
        assert_eq!(external.leeway(), Duration::from_secs(10));
        assert_eq!(external.trusted_ca.unwrap(), Path::new("/etc/mcp/ca.pem"));
        assert!(parse("mode = \"external\"\nissuer = \"http://127.0.0.1:9000\"\n").is_ok());
        assert!(parse("mode = \"external\"\nissuer = \"http://localhost:9000/realm\"\n").is_ok());
    }

    #[test]
    fn bad_settings_are_refused_with_a_reason() {
        for (text, needle) in [
            ("mode = \"external\"\n", "needs issuer"),
            (
                "mode = \"external\"\nissuer = \"http://idp.example.com\"\n",
                "must be https",
            ),
            ("mode = \"external\"\nissuer = \"not a url\"\n", "not a URL"),
            (
                "mode = \"external\"\nissuer = \"https://idp.example.com\"\njwks_url = \"http://10.0.0.1/jwks\"\n",
                "jwks_url",
            ),
            (
                "mode = \"off\"\nissuer = \"https://idp.example.com\"\n",
                "mode = \"off\"",
            ),
            ("issuer = \"https://idp.example.com\"\n", "embedded"),
            ("[embedded]\naccess_token_ttl = \"2d\"\n", "1m to 24h"),
            (
                "[embedded]\nclients = [{ client_id = \"c\", name = \"C\", redirect_uris = [\"http://example.com/cb\"] }]\n",
                "loopback",
            ),
            ("mode = \"vault\"\n", "unknown variant"),
            (
                "mode = \"external\"\nissuer = \"https://i.example\"\nleeway = \"1h\"\n",
                "at most 5m",
            ),
            ("scopes_supported = [\"a b\"]\n", "scope `a b`"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
