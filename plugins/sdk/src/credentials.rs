//! Credentials the operator granted to this plugin, read through the `credentials`
//! import. A value never belongs in a result or an error: the helpers' errors name the
//! credential, never its value.

use crate::Error;
use crate::bindings::mcp::tools::credentials::{self, Error as Denied};

/// The value of the credential `name`, or an [`Error::Internal`] that tells the operator
/// what to configure.
pub fn get(name: &str) -> Result<String, Error> {
    credentials::get(name).map_err(|denied| {
        let why = match denied {
            Denied::NotGranted => "is not granted to this plugin",
            Denied::NotFound => "has no value on the host",
            Denied::Unavailable => "could not be read by the host",
        };
        Error::Internal(format!(
            "the credential `{name}` {why}; the operator must configure it"
        ))
    })
}
