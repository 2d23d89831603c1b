//! Outgoing HTTP, the only way out of the sandbox to the network: the allowlist each
//! plugin is granted, the wasi:http hook that enforces it per call, and the dialer that
//! resolves, checks the resolved addresses, connects and speaks TLS. The host's own
//! fetches (identity provider keys, client metadata documents) use the same dialer.

pub mod allowlist;
pub mod dialer;
pub mod fetch;
pub mod hooks;
