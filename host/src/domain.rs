//! Names and quantities every layer shares: plugin and credential names, a SHA-256 pin,
//! byte sizes and durations as operators write them. The leaf of the module order:
//! it uses no other module of the crate.

use serde::Deserialize;
use std::time::Duration;

/// A plugin's name in the config: 1-64 of `a-z 0-9 _ -`, used in logs and errors.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct PluginName(String);

/// Longest plugin name.
const MAX_PLUGIN_NAME: usize = 64;

impl TryFrom<String> for PluginName {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        let ok = (1..=MAX_PLUGIN_NAME).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(name))
        } else {
            Err(format!(
                "plugin name `{name}` must be 1-{MAX_PLUGIN_NAME} characters of a-z, 0-9, `_` and `-`"
            ))
        }
    }
}

impl PluginName {
    /// The name as written in the config.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PluginName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A credential name: 1-128 of `A-Z a-z 0-9 _ - .`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct CredentialName(String);

/// Longest credential name.
const MAX_CREDENTIAL_NAME: usize = 128;

impl TryFrom<String> for CredentialName {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        let ok = (1..=MAX_CREDENTIAL_NAME).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if ok {
            Ok(Self(name))
        } else {
            Err(format!(
                "credential name `{name}` must be 1-{MAX_CREDENTIAL_NAME} characters of A-Z, a-z, \
                 0-9, `_`, `-` and `.`"
            ))
        }
    }
}

impl CredentialName {
    /// The name as plugins ask for it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CredentialName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A SHA-256 digest written as 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Sha256Pin(pub [u8; 32]);

impl TryFrom<String> for Sha256Pin {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let mut digest = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut digest)
            .map_err(|_| format!("sha256 `{text}` must be 64 hex digits"))?;
        Ok(Self(digest))
    }
}

/// An OAuth scope: 1-128 of the characters RFC 6749 allows in a scope token (printable
/// ASCII but space, `"` and `\`). A scope made of `:`-separated parts is covered by
/// each of its prefixes: a token holding `weather` may do what `weather:read` allows.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct Scope(String);

impl From<Scope> for String {
    fn from(scope: Scope) -> String {
        scope.0
    }
}

/// Longest scope.
const MAX_SCOPE: usize = 128;

impl TryFrom<String> for Scope {
    type Error = String;
    fn try_from(scope: String) -> Result<Self, String> {
        let ok = (1..=MAX_SCOPE).contains(&scope.len())
            && scope
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
        if ok {
            Ok(Self(scope))
        } else {
            Err(format!(
                "scope `{scope}` must be 1-{MAX_SCOPE} printable ASCII characters without \
                 spaces, `\"` or `\\`"
            ))
        }
    }
}

impl Scope {
    /// The scope as tokens and challenges write it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether holding `self` allows what `needed` allows: the same scope, or a broader
    /// one (`weather` covers `weather:read` and `weather:read:hourly`).
    pub fn covers(&self, needed: &Scope) -> bool {
        needed.0 == self.0
            || needed
                .0
                .strip_prefix(self.0.as_str())
                .is_some_and(|rest| rest.starts_with(':'))
    }

    /// `scopes` as a space-separated list, the way `scope` parameters write them.
    pub fn join(scopes: &[Scope]) -> String {
        scopes
            .iter()
            .map(Scope::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        Self::try_from(text.to_owned())
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One mebibyte.
pub const MIB: u64 = 1024 * 1024;

/// A number of bytes, written `"64MiB"`, `"512 KiB"`, `"1GiB"` or as a plain number.
/// Only binary units: `MB` would be ambiguous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "SizeText")]
pub struct ByteSize(pub u64);

/// A size as TOML may hold it: a string with a unit, or an integer of bytes.
#[derive(Deserialize)]
#[serde(untagged)]
enum SizeText {
    Text(String),
    Bytes(u64),
}

impl TryFrom<SizeText> for ByteSize {
    type Error = String;
    fn try_from(raw: SizeText) -> Result<Self, String> {
        match raw {
            SizeText::Text(text) => ByteSize::parse(&text),
            SizeText::Bytes(bytes) => Ok(ByteSize(bytes)),
        }
    }
}

impl ByteSize {
    /// Parses `"64MiB"`, `"512 KiB"`, `"1GiB"` or a plain number of bytes.
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (digits, unit) = trimmed.split_at(split);
        let number: u64 = digits
            .parse()
            .map_err(|_| format!("`{text}` is not a size like \"64MiB\""))?;
        let factor = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1024,
            "MiB" => MIB,
            "GiB" => 1024 * MIB,
            other => {
                return Err(format!(
                    "`{text}`: unknown unit `{other}`; use B, KiB, MiB or GiB"
                ));
            }
        };
        number
            .checked_mul(factor)
            .map(ByteSize)
            .ok_or_else(|| format!("`{text}` is too large"))
    }
}

impl std::fmt::Display for ByteSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bytes = self.0;
        for (unit, factor) in [("GiB", 1024 * MIB), ("MiB", MIB), ("KiB", 1024)] {
            if bytes >= factor && bytes.is_multiple_of(factor) {
                return write!(f, "{}{unit}", bytes / factor);
            }
        }
        write!(f, "{bytes}B")
    }
}

/// A duration, written the way people write them: `"250ms"`, `"5s"`, `"10m"`, `"1h 30m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct HumanDuration(pub Duration);

impl TryFrom<String> for HumanDuration {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Self::parse(&text)
    }
}

impl HumanDuration {
    /// Parses `"250ms"`, `"5s"`, `"10m"`, `"1h 30m"`.
    pub fn parse(text: &str) -> Result<Self, String> {
        humantime::parse_duration(text.trim())
            .map(HumanDuration)
            .map_err(|e| format!("`{text}`: {e} (write e.g. \"5s\" or \"10m\")"))
    }
}

impl std::fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let parse = |t: &str| ByteSize::parse(t).map(|s| s.0);
        assert_eq!(parse("64MiB"), Ok(64 * MIB));
        assert_eq!(parse(" 512 KiB "), Ok(512 * 1024));
        assert_eq!(parse("1GiB"), Ok(1024 * MIB));
        assert_eq!(parse("4096"), Ok(4096));
        assert!(parse("64MB").unwrap_err().contains("unknown unit"));
        assert!(parse("lots").unwrap_err().contains("not a size"));
        assert!(parse("-1MiB").is_err());
        assert!(
            parse("99999999999999GiB")
                .unwrap_err()
                .contains("too large")
        );
        assert_eq!(ByteSize(64 * MIB).to_string(), "64MiB");
        assert_eq!(ByteSize(1536).to_string(), "1536B");
    }

    #[test]
    fn sizes_in_toml_take_text_or_integers() {
        #[derive(Deserialize)]
        struct Wrapper {
            size: ByteSize,
        }
        let parse = |t: &str| toml::from_str::<Wrapper>(t).map(|w| w.size.0);
        assert_eq!(parse("size = \"2KiB\"").unwrap(), 2048);
        assert_eq!(parse("size = 2048").unwrap(), 2048);
        let err = parse("size = \"2 KB\"").unwrap_err().to_string();
        assert!(
            err.contains("unknown unit") && err.contains("line 1"),
            "{err}"
        );
    }

    #[test]
    fn durations() {
        let parse = |t: &str| HumanDuration::parse(t).map(|d| d.0);
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse(" 1h 30m "), Ok(Duration::from_secs(5400)));
        assert!(parse("soon").unwrap_err().contains("\"5s\""));
        assert!(parse("5").is_err());
        assert_eq!(HumanDuration(Duration::from_secs(90)).to_string(), "1m 30s");
    }

    #[test]
    fn scopes_and_their_hierarchy() {
        let scope = |s: &str| Scope::try_from(s.to_owned()).unwrap();
        assert!(scope("weather").covers(&scope("weather")));
        assert!(scope("weather").covers(&scope("weather:read")));
        assert!(scope("weather:read").covers(&scope("weather:read:hourly")));
        assert!(!scope("weather:read").covers(&scope("weather")));
        assert!(!scope("weather").covers(&scope("weatherman")));
        assert!(!scope("weather:read").covers(&scope("weather:write")));
        for bad in ["", "two words", "quo\"te", "back\\slash", "tab\t", "é"] {
            let err = Scope::try_from(bad.to_owned()).unwrap_err();
            assert!(err.contains("scope"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn names() {
        assert!(PluginName::try_from("weather-2".to_owned()).is_ok());
        for bad in ["", "Weather", "a b", &"a".repeat(65)] {
            let err = PluginName::try_from(bad.to_owned()).unwrap_err();
            assert!(err.contains("plugin name"), "{bad}: {err}");
        }
        assert!(CredentialName::try_from("weather.api-key_2".to_owned()).is_ok());
        for bad in ["", "bad name!", &"k".repeat(129)] {
            let err = CredentialName::try_from(bad.to_owned()).unwrap_err();
            assert!(err.contains("credential name"), "{bad}: {err}");
        }
        assert!(Sha256Pin::try_from("ab".repeat(32)).is_ok());
        assert!(Sha256Pin::try_from("abc".to_owned()).is_err());
    }
}

/// A URL as logs and errors may show it: its password (if any) replaced by `***`. Text
/// that is not a URL is not shown at all: it may be a secret that failed to parse.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                // Only URLs that cannot have a password refuse one, and this one has.
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "(a value that is not a URL)".to_owned(),
    }
}

/// `text` with the password of every `scheme://user:password@host` in it replaced by
/// `***`, for messages that quote what an operator wrote (a config line).
pub fn redact_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        // The authority: up to the path, query, fragment, a quote or whitespace.
        let end = after
            .find(|c: char| matches!(c, '/' | '?' | '#' | '"' | '\'' | '`') || c.is_whitespace())
            .unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rfind('@') {
            Some(userinfo_end) if authority[..userinfo_end].contains(':') => {
                let colon = authority[..userinfo_end].find(':').unwrap_or(0);
                out.push_str(&authority[..=colon]);
                out.push_str("***");
                out.push_str(&authority[userinfo_end..]);
            }
            _ => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod redact_tests {
    use super::{redact_passwords, redact_url};

    #[test]
    fn passwords_in_quoted_lines_are_hidden() {
        let line = "8 | store = \"redis://:hunter2@127.0.0.1:notaport/0\"";
        assert_eq!(
            redact_passwords(line),
            "8 | store = \"redis://:***@127.0.0.1:notaport/0\""
        );
        let two = "a postgres://u:p1@db/x and redis://h:1/0 and http://u@h";
        assert_eq!(
            redact_passwords(two),
            "a postgres://u:***@db/x and redis://h:1/0 and http://u@h"
        );
        assert_eq!(redact_passwords("no urls: a://"), "no urls: a://");
    }

    #[test]
    fn passwords_in_urls_are_never_shown() {
        let shown = redact_url("postgres://app:s3cret@db.internal:5432/auth");
        assert_eq!(shown, "postgres://app:***@db.internal:5432/auth");
        assert_eq!(
            redact_url("redis://10.0.0.5:6379/2"),
            "redis://10.0.0.5:6379/2"
        );
        assert!(!redact_url("postgres://app:s3cret@[bad").contains("s3cret"));
    }
}
