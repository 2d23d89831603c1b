//! `WWW-Authenticate: Bearer ...` challenges (RFC 6750 §3, RFC 9728 §5.1): where the
//! protected resource metadata is, which scopes the operation needs, and, when a token
//! was sent, what was wrong with it.

use crate::domain::Scope;

/// A challenge for a request without a usable token (HTTP 401). `error` is
/// `(code, description)` when a token was sent: `invalid_token` or `invalid_request`.
pub fn unauthorized(metadata_url: &str, scopes: &[Scope], error: Option<(&str, &str)>) -> String {
    let mut challenge = format!("Bearer resource_metadata=\"{}\"", quoted(metadata_url));
    if !scopes.is_empty() {
        challenge.push_str(&format!(", scope=\"{}\"", Scope::join(scopes)));
    }
    if let Some((code, description)) = error {
        challenge.push_str(&format!(
            ", error=\"{code}\", error_description=\"{}\"",
            quoted(description)
        ));
    }
    challenge
}

/// A challenge for a token that lacks what the operation needs (HTTP 403): `needed`
/// is every scope the operation needs, in one challenge.
pub fn insufficient_scope(metadata_url: &str, needed: &[Scope]) -> String {
    format!(
        "Bearer error=\"insufficient_scope\", scope=\"{}\", resource_metadata=\"{}\", \
         error_description=\"this operation needs the scope {}\"",
        Scope::join(needed),
        quoted(metadata_url),
        quoted(&Scope::join(needed)),
    )
}

/// `text` as the inside of a quoted-string: `"` and `\` escaped, control characters
/// dropped.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(list: &[&str]) -> Vec<Scope> {
        list.iter()
            .map(|s| Scope::try_from((*s).to_owned()).unwrap())
            .collect()
    }

    #[test]
    fn challenges() {
        let prm = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";
        assert_eq!(
            unauthorized(prm, &scopes(&["weather:read", "notes"]), None),
            format!("Bearer resource_metadata=\"{prm}\", scope=\"weather:read notes\"")
        );
        assert_eq!(
            unauthorized(prm, &[], Some(("invalid_token", "the token has expired"))),
            format!(
                "Bearer resource_metadata=\"{prm}\", error=\"invalid_token\", \
                 error_description=\"the token has expired\""
            )
        );
        assert_eq!(
            insufficient_scope(prm, &scopes(&["notes:write"])),
            format!(
                "Bearer error=\"insufficient_scope\", scope=\"notes:write\", \
                 resource_metadata=\"{prm}\", error_description=\"this operation needs the \
                 scope notes:write\""
            )
        );
        // Nothing a description carries can break out of its quotes or the header.
        let tricky = unauthorized(prm, &[], Some(("invalid_token", "a \"b\\\" c\r\nX: y")));
        assert!(
            tricky.ends_with("error_description=\"a \\\"b\\\\\\\" cX: y\""),
            "{tricky}"
        );
        assert!(http::HeaderValue::from_str(&tricky).is_ok());
    }
}
