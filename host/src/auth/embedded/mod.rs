//! The embedded OAuth 2.1 authorization server (`[auth] mode = "embedded"`): it issues
//! the access tokens `/mcp` accepts. Clients are described by a metadata document at
//! their `client_id` URL ([`client_metadata`]), register dynamically (RFC 7591), or are
//! configured; users log in on a server-rendered page and approve the client; codes
//! are single-use and PKCE-bound (S256 only); refresh tokens rotate, and a reused one
//! revokes its whole family. Its state lives in a database ([`store`]), its signing
//! keys are sealed under the KEK ([`signing`]).
//!
//! What each endpoint checks is in [`flow`]; the HTML is in [`page`]; the HTTP side is
//! `server::oauth`.

pub mod admin;
pub mod client_metadata;
pub mod config;
pub mod flow;
pub mod page;
pub mod signing;
pub mod store;

pub use flow::AuthorizationServer;
