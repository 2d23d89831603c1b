//! Outgoing HTTP, the only way out of the sandbox to the network: the allowlist each
//! plugin is granted, the wasi:http hook that enforces it per call, and the dialer that
//! resolves, checks the resolved addresses, connects and speaks TLS.

pub mod allowlist;
pub mod dialer;
pub mod hooks;
