//! The authorization server's pages, rendered on the server as plain HTML forms (no
//! JavaScript): login and consent in one page, and the error page for requests that
//! cannot be sent back to the client. Every value is HTML-escaped.

use super::flow::{Authorization, AuthorizeParams};
use std::fmt::Write as _;

/// Text with `& < > " '` escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;\
padding:0 1rem;color:#222}h1{font-size:1.3rem}.warn{background:#fff3cd;border:1px solid #e0c060;\
padding:.6rem;border-radius:4px}.error{color:#a00}label{display:block;margin:.6rem 0 .2rem}\
input[type=text],input[type=password]{width:100%;padding:.4rem;box-sizing:border-box}\
button{margin:1rem .5rem 0 0;padding:.5rem 1.2rem}code{background:#f3f3f3;padding:0 .2rem}";

fn document(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>",
        escape(title)
    )
}

/// What the login and consent page shows besides the request.
pub struct LoginPage<'a> {
    /// The checked request.
    pub authorization: &'a Authorization,
    /// The request's parameters, carried in hidden fields.
    pub params: &'a AuthorizeParams,
    /// The CSRF token (also in a cookie).
    pub csrf: &'a str,
    /// No user exists yet: ask for the setup code printed at start.
    pub setup: bool,
    /// A previous attempt's error.
    pub error: Option<&'a str>,
    /// The user name typed before (kept on error).
    pub name: &'a str,
}

/// The login and consent page.
pub fn login(page: &LoginPage) -> String {
    let auth = page.authorization;
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>Allow <strong>{}</strong> to use your tools?</h1>",
        escape(&auth.client.client_name)
    );
    let _ = write!(
        body,
        "<p>After you approve, you will be sent back to <code>{}</code>.</p>",
        escape(&auth.redirect_host())
    );
    if auth.loopback_only() {
        body.push_str(
            "<p class=\"warn\">This client receives its authorization on this computer \
             (a loopback address). Any program running here could register under this \
             name: approve only if you just started this client yourself.</p>",
        );
    }
    if auth.scopes.is_empty() {
        body.push_str("<p>It asks for no particular scope: only tools that need none.</p>");
    } else {
        body.push_str("<p>It asks for:</p><ul>");
        for scope in &auth.scopes {
            let _ = write!(body, "<li><code>{}</code></li>", escape(scope.as_str()));
        }
        body.push_str("</ul>");
    }
    if let Some(error) = page.error {
        let _ = write!(
            body,
            "<p class=\"error\" role=\"alert\">{}</p>",
            escape(error)
        );
    }
    body.push_str("<form method=\"post\" action=\"/oauth/authorize\">");
    for (name, value) in page.params.pairs() {
        let _ = write!(
            body,
            "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
            escape(value)
        );
    }
    let _ = write!(
        body,
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(page.csrf)
    );
    if page.setup {
        body.push_str(
            "<p>No user exists yet. Create the first one with the setup code the host \
             printed when it started.</p>\
             <label for=\"setup_code\">Setup code</label>\
             <input type=\"text\" id=\"setup_code\" name=\"setup_code\" autocomplete=\"off\" required>",
        );
    }
    let _ = write!(
        body,
        "<label for=\"username\">User name</label>\
         <input type=\"text\" id=\"username\" name=\"username\" value=\"{}\" autocomplete=\"username\" required>\
         <label for=\"password\">Password</label>\
         <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button>\
         <button type=\"submit\" name=\"decision\" value=\"deny\" formnovalidate>Deny</button></form>",
        escape(page.name)
    );
    document("Authorize", &body)
}

/// The page for a request that cannot go back to its client.
pub fn error(message: &str) -> String {
    document(
        "Authorization error",
        &format!(
            "<h1>This authorization request cannot be completed</h1><p class=\"error\">{}</p>\
             <p>Nothing was sent to the client. Start again from the client.</p>",
            escape(message)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_shown_is_escaped() {
        assert_eq!(
            escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
        let page = error("client `<img src=x onerror=alert(1)>` is unknown");
        assert!(!page.contains("<img"), "{page}");
        assert!(page.contains("&lt;img"), "{page}");
    }
}
