//! The outgoing-HTTP allowlist (`allowed_outbound_hosts`): each entry parsed into typed
//! parts (scheme, exact host or subdomain wildcard, port) with `parse` and `allows`.
//! Deny by default: a request matching no entry never leaves the host.

use super::dialer::Reach;
use serde::Deserialize;

/// One `allowed_outbound_hosts` entry: `scheme://host[:port]`.
///
/// `host` is an exact name or IP literal, or `*.example.com` for any subdomain of
/// `example.com` (not `example.com` itself). Without a port, only the scheme's default
/// port (80 or 443) is allowed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct AllowedHost {
    scheme: Scheme,
    host: HostPattern,
    port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// This name (lower-case, no trailing dot) or IP literal only.
    Exact(String),
    /// Any name ending in `.` + this suffix.
    Subdomains(String),
}

impl TryFrom<String> for AllowedHost {
    type Error = String;
    fn try_from(entry: String) -> Result<Self, String> {
        Self::parse(&entry).map_err(|why| format!("allowed_outbound_hosts entry `{entry}`: {why}"))
    }
}

impl std::fmt::Display for AllowedHost {
    /// The entry as an operator writes it: `https://*.example.com:8443`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        match &self.host {
            HostPattern::Exact(name) => write!(f, "{scheme}://{name}")?,
            HostPattern::Subdomains(suffix) => write!(f, "{scheme}://*.{suffix}")?,
        }
        if self.port != self.scheme.default_port() {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

impl AllowedHost {
    /// Parses `scheme://host[:port]`.
    pub fn parse(entry: &str) -> Result<Self, String> {
        let (scheme, rest) = entry
            .split_once("://")
            .ok_or("must start with http:// or https://")?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => return Err(format!("scheme `{other}` is not http or https")),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#', '@', ' ']) {
            return Err("must be only scheme://host[:port] (no path, query or user)".into());
        }
        let (host, port) = split_port(authority)?;
        let port = port.unwrap_or(scheme.default_port());
        let host = host.to_ascii_lowercase();
        let host = host.strip_suffix('.').unwrap_or(&host).to_owned();
        if host == "*" {
            return Err("`*` would allow every host; list the hosts the plugin needs".into());
        }
        let pattern = if let Some(suffix) = host.strip_prefix("*.") {
            check_dns_name(suffix)?;
            if !suffix.contains('.') {
                return Err(format!(
                    "`*.{suffix}` covers a whole top-level domain; name a registered domain"
                ));
            }
            HostPattern::Subdomains(suffix.to_owned())
        } else if host.starts_with('[') {
            let inner = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .ok_or("unbalanced `[` in IPv6 address")?;
            let ip: std::net::Ipv6Addr = inner
                .parse()
                .map_err(|_| format!("`{inner}` is not an IPv6 address"))?;
            HostPattern::Exact(format!("[{ip}]"))
        } else {
            check_dns_name(&host)?;
            HostPattern::Exact(host)
        };
        Ok(Self {
            scheme,
            host: pattern,
            port,
        })
    }

    /// Which special addresses a request matching this entry may reach after DNS:
    /// a literal IP names exactly itself, `localhost` allows loopback, anything else
    /// only public addresses.
    pub fn reach(&self) -> Reach {
        match &self.host {
            HostPattern::Exact(name) if name == "localhost" => Reach::Loopback,
            HostPattern::Exact(name) => name
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .map_or(Reach::Public, Reach::Literal),
            HostPattern::Subdomains(_) => Reach::Public,
        }
    }

    /// Whether the entry names every subdomain of a name (`*.example.com`) rather than
    /// one host.
    pub fn is_wildcard(&self) -> bool {
        matches!(self.host, HostPattern::Subdomains(_))
    }

    /// Whether requests to this entry travel unencrypted (`http://`).
    pub fn is_plain_http(&self) -> bool {
        self.scheme == Scheme::Http
    }

    /// Whether a request to `uri` matches this entry. A URI without a scheme or host
    /// never matches.
    pub fn allows(&self, uri: &http::Uri) -> bool {
        let scheme = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("http") => Scheme::Http,
            Some("https") => Scheme::Https,
            _ => return false,
        };
        let Some(host) = uri.host() else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        let host = host.strip_suffix('.').unwrap_or(&host);
        let port = uri.port_u16().unwrap_or(scheme.default_port());
        let host_ok = match &self.host {
            HostPattern::Exact(name) => host == name,
            HostPattern::Subdomains(suffix) => host
                .strip_suffix(suffix.as_str())
                .and_then(|label| label.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty()),
        };
        scheme == self.scheme && host_ok && port == self.port
    }
}

fn split_port(authority: &str) -> Result<(&str, Option<u16>), String> {
    let colon = if authority.starts_with('[') {
        authority
            .find(']')
            .and_then(|end| authority[end + 1..].starts_with(':').then_some(end + 1))
    } else {
        authority.rfind(':')
    };
    match colon {
        None => Ok((authority, None)),
        Some(at) => {
            let port = &authority[at + 1..];
            let port: u16 = port
                .parse()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("port `{port}` is not a number from 1 to 65535"))?;
            Ok((&authority[..at], Some(port)))
        }
    }
}

fn check_dns_name(host: &str) -> Result<(), String> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(format!("`{host}` is not a valid host name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(entry: &str, uri: &str) -> bool {
        AllowedHost::parse(entry)
            .unwrap()
            .allows(&uri.parse().unwrap())
    }

    #[test]
    fn entries_print_as_written_and_say_how_wide_they_are() {
        let entry = |text: &str| AllowedHost::parse(text).unwrap();
        assert_eq!(
            entry("HTTPS://API.example.com:443").to_string(),
            "https://api.example.com"
        );
        assert_eq!(
            entry("https://*.example.com:8443").to_string(),
            "https://*.example.com:8443"
        );
        assert_eq!(
            entry("http://127.0.0.1:8080").to_string(),
            "http://127.0.0.1:8080"
        );
        assert!(entry("https://*.example.com").is_wildcard());
        assert!(!entry("https://example.com").is_wildcard());
        assert!(entry("http://example.com").is_plain_http());
        assert!(!entry("https://example.com").is_plain_http());
    }

    #[test]
    fn exact_host_matches_scheme_host_and_default_port() {
        assert!(allows(
            "https://api.example.com",
            "https://api.example.com/x?q=1"
        ));
        assert!(allows(
            "https://api.example.com",
            "https://API.example.com./x"
        ));
        assert!(allows(
            "https://api.example.com",
            "https://api.example.com:443/"
        ));
        assert!(!allows(
            "https://api.example.com",
            "http://api.example.com/"
        ));
        assert!(!allows(
            "https://api.example.com",
            "https://api.example.com:8443/"
        ));
        assert!(!allows("https://api.example.com", "https://example.com/"));
    }

    #[test]
    fn explicit_port_must_match() {
        assert!(allows("http://127.0.0.1:8080", "http://127.0.0.1:8080/a"));
        assert!(!allows("http://127.0.0.1:8080", "http://127.0.0.1:8081/a"));
        assert!(!allows("http://127.0.0.1:8080", "http://127.0.0.1/a"));
    }

    #[test]
    fn wildcard_matches_subdomains_only_and_not_lookalikes() {
        let entry = "https://*.example.com";
        assert!(allows(entry, "https://a.example.com/"));
        assert!(allows(entry, "https://a.b.example.com/"));
        assert!(!allows(entry, "https://example.com/"));
        assert!(!allows(entry, "https://evilexample.com/"));
        assert!(!allows(entry, "https://example.com.evil.net/"));
        assert!(!allows(entry, "https://.example.com/"));
    }

    #[test]
    fn userinfo_does_not_fool_the_host_check() {
        assert!(!allows(
            "https://example.com",
            "https://example.com@evil.net/"
        ));
        assert!(!allows(
            "https://example.com",
            "https://evil.net/?example.com"
        ));
    }

    #[test]
    fn ipv6_literals() {
        assert!(allows("http://[::1]:9000", "http://[::1]:9000/"));
        assert!(!allows("http://[::1]:9000", "http://[::2]:9000/"));
    }

    #[test]
    fn bad_entries_are_refused_with_a_reason() {
        for (entry, needle) in [
            ("*", "http:// or https://"),
            ("https://*", "every host"),
            ("https://*.com", "top-level"),
            ("ftp://example.com", "scheme"),
            ("example.com", "http:// or https://"),
            ("https://example.com/path", "no path"),
            ("https://user@example.com", "no path"),
            ("https://example.com:0", "port"),
            ("https://example.com:99999", "port"),
            ("https://exa_mple.com", "valid host"),
            ("https://", "valid host"),
            ("https://[::1", "IPv6"),
        ] {
            let err = AllowedHost::parse(entry).unwrap_err();
            assert!(err.contains(needle), "{entry}: {err}");
        }
    }
}
