//! Per-user data keys (envelope encryption): each user's secrets are sealed with their own
//! random key, stored only wrapped (encrypted) under a root key.

use std::fmt;

use aes_gcm::{Aes256Gcm, KeyInit};
use zeroize::Zeroizing;

use super::VaultError;
use super::aead::{self, OpenFailure};
use super::root::{RootKey, RootKeyring};

/// Format version byte of a wrapped data key.
const WRAP_VERSION: u8 = 1;
/// Domain of the wrapping's associated data; see [`wrap_aad`].
const WRAP_DOMAIN: &str = "sb/dk/v1";
const DATA_KEY_LEN: usize = 32;

/// One user's data key, ready to seal and open. Holds only the AES-256-GCM instance (key
/// schedule computed once, at unwrap), never the raw bytes.
///
/// `Debug` is redacted; there is no `Display` or `Serialize`. Drop it once the call that
/// needed it is done: the AES round keys and GHASH key are wiped on drop when the `aes`
/// and `polyval` crates' `zeroize` features are on (aes-gcm's own `zeroize` feature does
/// not turn them on).
#[derive(Clone)]
pub struct DataKey {
    pub(super) cipher: Aes256Gcm,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(***)")
    }
}

/// A data key as stored: encrypted under the root key `root_key_id`. Not secret by itself
/// (useless without that root key), so it derives `Debug`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub root_key_id: String,
    /// `base64(version || nonce || ciphertext || tag)`.
    pub blob: String,
}

/// A fresh random data key for `user_id`, and its wrapping under the default root key.
pub(super) fn generate(keyring: &RootKeyring, user_id: &str) -> (DataKey, WrappedKey) {
    let mut bytes = Zeroizing::new([0u8; DATA_KEY_LEN]);
    rand::fill(&mut *bytes);
    let wrapped = wrap(keyring.default_key(), user_id, &*bytes);
    (from_bytes(&bytes), wrapped)
}

/// Opens `wrapped` with the root key it names; the raw bytes are wiped when dropped.
pub(super) fn unwrap_bytes(
    keyring: &RootKeyring,
    user_id: &str,
    wrapped: &WrappedKey,
) -> Result<Zeroizing<[u8; DATA_KEY_LEN]>, VaultError> {
    let root = keyring
        .get(&wrapped.root_key_id)
        .ok_or_else(|| VaultError::UnknownRootKey {
            root_key_id: wrapped.root_key_id.clone(),
            user_id: user_id.to_owned(),
        })?;
    let aad = wrap_aad(&root.id, user_id);
    let bytes =
        aead::open(&root.cipher, WRAP_VERSION, &aad, &wrapped.blob).map_err(
            |failure| match failure {
                OpenFailure::Malformed(reason) => VaultError::MalformedWrappedKey {
                    user_id: user_id.to_owned(),
                    reason,
                },
                OpenFailure::DidNotOpen => VaultError::DataKeyDidNotOpen {
                    user_id: user_id.to_owned(),
                    root_key_id: root.id.clone(),
                },
            },
        )?;
    let mut key = Zeroizing::new([0u8; DATA_KEY_LEN]);
    if bytes.len() != DATA_KEY_LEN {
        // Authentic yet the wrong size: only a bug or a foreign writer could produce it.
        return Err(VaultError::MalformedWrappedKey {
            user_id: user_id.to_owned(),
            reason: format!("{} key bytes, expected {DATA_KEY_LEN}", bytes.len()),
        });
    }
    key.copy_from_slice(&bytes);
    Ok(key)
}

pub(super) fn from_bytes(bytes: &[u8; DATA_KEY_LEN]) -> DataKey {
    DataKey {
        cipher: Aes256Gcm::new(bytes.into()),
    }
}

pub(super) fn wrap(root: &RootKey, user_id: &str, bytes: &[u8]) -> WrappedKey {
    WrappedKey {
        root_key_id: root.id.clone(),
        blob: aead::seal(
            &root.cipher,
            WRAP_VERSION,
            &wrap_aad(&root.id, user_id),
            bytes,
        ),
    }
}

/// Binds a wrapped key to its user and root key: copied onto another user's row, or
/// relabelled with another root key id, it does not open.
fn wrap_aad(root_key_id: &str, user_id: &str) -> Vec<u8> {
    aead::aad(WRAP_DOMAIN, &[root_key_id, user_id])
}
