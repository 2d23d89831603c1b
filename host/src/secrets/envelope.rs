//! Envelope encryption of one secret: a fresh 256-bit data key (DEK) encrypts the value
//! with AES-256-GCM; the key-encryption key (KEK) wraps the DEK with AES-256-GCM. The
//! secret's name is bound into both as associated data, and the KEK's id into the
//! wrapped DEK, so a ciphertext moved to another name, a wrapped DEK moved to another
//! secret, or an altered KEK id does not decrypt. Rotating the KEK re-wraps DEKs only.

use super::kek::Kek;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// AES-GCM nonces are 96 bits; each is random and used once.
const NONCE_BYTES: usize = 12;
/// Data keys are AES-256 keys.
const DEK_BYTES: usize = 32;

/// One sealed secret as stored (all binary fields base64).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sealed {
    /// Id of the KEK that wrapped `wrapped_dek`.
    pub kek_id: String,
    /// Nonce of the DEK's wrapping.
    #[serde(with = "b64")]
    pub dek_nonce: Vec<u8>,
    /// The data key, encrypted under the KEK.
    #[serde(with = "b64")]
    pub wrapped_dek: Vec<u8>,
    /// Nonce of the value's encryption.
    #[serde(with = "b64")]
    pub nonce: Vec<u8>,
    /// The value, encrypted under the DEK.
    #[serde(with = "b64")]
    pub ciphertext: Vec<u8>,
}

/// Why a sealed secret could not be opened. Never carries key or value material.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OpenError {
    /// Sealed under another KEK.
    #[error("it was sealed with KEK {found}, but the configured KEK is {expected}")]
    WrongKek {
        /// The KEK id it was sealed with.
        found: String,
        /// The configured KEK's id.
        expected: String,
    },
    /// The wrapped data key fails authentication.
    #[error("its data key does not decrypt: the store was altered or belongs to another secret")]
    BadDek,
    /// The value fails authentication.
    #[error("its value does not decrypt: the store was altered or belongs to another secret")]
    BadValue,
    /// A field has the wrong length.
    #[error("a nonce or key field has the wrong length: the store was altered")]
    Malformed,
}

fn random<const N: usize>() -> Zeroizing<[u8; N]> {
    let mut bytes = Zeroizing::new([0u8; N]);
    getrandom::fill(bytes.as_mut()).expect("the OS random number generator is available");
    bytes
}

fn dek_aad(name: &str, kek_id: &str) -> Vec<u8> {
    [
        b"mcp-wasm-host/dek/v1\0",
        name.as_bytes(),
        b"\0",
        kek_id.as_bytes(),
    ]
    .concat()
}

fn value_aad(name: &str) -> Vec<u8> {
    [b"mcp-wasm-host/value/v1\0", name.as_bytes()].concat()
}

fn cipher(key: &[u8]) -> Result<Aes256Gcm, OpenError> {
    let key = Key::<Aes256Gcm>::try_from(key).map_err(|_| OpenError::Malformed)?;
    Ok(Aes256Gcm::new(&key))
}

fn nonce(bytes: &[u8]) -> Result<Nonce<aes_gcm::aead::consts::U12>, OpenError> {
    Nonce::try_from(bytes).map_err(|_| OpenError::Malformed)
}

/// Seals `value` under a fresh DEK wrapped by `kek`.
pub fn seal(kek: &Kek, name: &str, value: &[u8]) -> Sealed {
    let dek = random::<DEK_BYTES>();
    let nonce_bytes = random::<NONCE_BYTES>();
    let dek_nonce = random::<NONCE_BYTES>();
    let value_cipher = cipher(dek.as_ref()).expect("a 32-byte key");
    let ciphertext = value_cipher
        .encrypt(
            &nonce(nonce_bytes.as_ref()).expect("a 12-byte nonce"),
            Payload {
                msg: value,
                aad: &value_aad(name),
            },
        )
        .expect("AES-GCM encryption of a small value cannot fail");
    let wrapped_dek = rewrap(kek, name, dek.as_ref(), dek_nonce.as_ref());
    Sealed {
        kek_id: kek.id().to_owned(),
        dek_nonce: dek_nonce.to_vec(),
        wrapped_dek,
        nonce: nonce_bytes.to_vec(),
        ciphertext,
    }
}

fn rewrap(kek: &Kek, name: &str, dek: &[u8], dek_nonce: &[u8]) -> Vec<u8> {
    cipher(kek.bytes())
        .expect("a 32-byte KEK")
        .encrypt(
            &nonce(dek_nonce).expect("a 12-byte nonce"),
            Payload {
                msg: dek,
                aad: &dek_aad(name, kek.id()),
            },
        )
        .expect("AES-GCM encryption of a key cannot fail")
}

/// Unwraps the DEK of `sealed` (stored as secret `name`) with `kek`.
fn unwrap_dek(kek: &Kek, name: &str, sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    if sealed.kek_id != kek.id() {
        return Err(OpenError::WrongKek {
            found: sealed.kek_id.clone(),
            expected: kek.id().to_owned(),
        });
    }
    let dek = cipher(kek.bytes())?
        .decrypt(
            &nonce(&sealed.dek_nonce)?,
            Payload {
                msg: &sealed.wrapped_dek,
                aad: &dek_aad(name, &sealed.kek_id),
            },
        )
        .map_err(|_| OpenError::BadDek)?;
    Ok(Zeroizing::new(dek))
}

/// Opens `sealed`, stored as secret `name`, with `kek`.
pub fn open(kek: &Kek, name: &str, sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    let dek = unwrap_dek(kek, name, sealed)?;
    let value = cipher(&dek)?
        .decrypt(
            &nonce(&sealed.nonce)?,
            Payload {
                msg: &sealed.ciphertext,
                aad: &value_aad(name),
            },
        )
        .map_err(|_| OpenError::BadValue)?;
    Ok(Zeroizing::new(value))
}

/// Re-wraps the DEK of `sealed` from `old` to `new` with a fresh nonce; the value's
/// ciphertext is left as it is.
pub fn rotate(old: &Kek, new: &Kek, name: &str, sealed: &Sealed) -> Result<Sealed, OpenError> {
    // Opening the value first proves the whole envelope is intact before it is re-wrapped.
    open(old, name, sealed)?;
    let dek = unwrap_dek(old, name, sealed)?;
    let dek_nonce = random::<NONCE_BYTES>();
    Ok(Sealed {
        kek_id: new.id().to_owned(),
        dek_nonce: dek_nonce.to_vec(),
        wrapped_dek: rewrap(new, name, &dek, dek_nonce.as_ref()),
        nonce: sealed.nonce.clone(),
        ciphertext: sealed.ciphertext.clone(),
    })
}

/// Base64 (standard, padded) for binary fields.
mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD
            .decode(text)
            .map_err(|_| serde::de::Error::custom("not valid base64"))
    }
}
