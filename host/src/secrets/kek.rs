//! The key-encryption key: 32 random bytes, written as base64, read from an environment
//! variable or a file that only its owner can read. It is never written by the host.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use std::path::Path;
use zeroize::Zeroizing;

const KEK_BYTES: usize = 32;

/// A loaded KEK and its public id (a short hash, safe to store and print).
pub struct Kek {
    bytes: Zeroizing<[u8; KEK_BYTES]>,
    id: String,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Why a KEK could not be loaded. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum KekError {
    /// The environment variable is not set.
    #[error(
        "the environment variable {0} (the key-encryption key) is not set; create one with `mcp-wasm-host keygen`"
    )]
    EnvMissing(String),
    /// The text is not base64 of 32 bytes.
    #[error("{0} is not base64 of 32 bytes; create a key with `mcp-wasm-host keygen`")]
    Malformed(String),
    /// The key file could not be read.
    #[error("cannot read the key file {path}: {source}")]
    FileRead {
        /// The key file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The key file is readable by others.
    #[error(
        "the key file {path} can be read by group or others (mode {mode:o}); run `chmod 600 {path}`"
    )]
    FileTooOpen {
        /// The key file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
}

impl Kek {
    /// Parses base64 text (surrounding whitespace ignored); `what` names the source in
    /// errors. The text itself never appears in an error.
    pub fn parse(text: &str, what: &str) -> Result<Self, KekError> {
        let decoded = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| KekError::Malformed(what.to_owned()))?,
        );
        let bytes: [u8; KEK_BYTES] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| KekError::Malformed(what.to_owned()))?;
        Ok(Self::from_bytes(Zeroizing::new(bytes)))
    }

    fn from_bytes(bytes: Zeroizing<[u8; KEK_BYTES]>) -> Self {
        let digest = Sha256::new()
            .chain_update(b"mcp-wasm-host/kek-id/v1\0")
            .chain_update(bytes.as_ref())
            .finalize();
        Self {
            id: hex::encode(&digest[..8]),
            bytes,
        }
    }

    /// Reads the KEK from the environment variable `var`.
    pub fn from_env(var: &str) -> Result<Self, KekError> {
        let text =
            Zeroizing::new(std::env::var(var).map_err(|_| KekError::EnvMissing(var.to_owned()))?);
        Self::parse(&text, &format!("the environment variable {var}"))
    }

    /// Reads the KEK from `path`, refusing a file that group or others can read.
    pub fn from_file(path: &Path) -> Result<Self, KekError> {
        let shown = path.display().to_string();
        let read_err = |source| KekError::FileRead {
            path: shown.clone(),
            source,
        };
        let metadata = std::fs::metadata(path).map_err(read_err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KekError::FileTooOpen { path: shown, mode });
            }
        }
        #[cfg(not(unix))]
        let _ = metadata;
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(read_err)?);
        Self::parse(&text, &format!("the key file {shown}"))
    }

    /// A new random KEK, as base64 text.
    pub fn generate() -> Zeroizing<String> {
        let mut bytes = Zeroizing::new([0u8; KEK_BYTES]);
        getrandom::fill(bytes.as_mut()).expect("the OS random number generator is available");
        Zeroizing::new(STANDARD.encode(bytes.as_ref()))
    }

    /// A short public id of the key (a hash prefix), stored with what it wraps.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub(super) fn bytes(&self) -> &[u8] {
        self.bytes.as_ref()
    }
}
