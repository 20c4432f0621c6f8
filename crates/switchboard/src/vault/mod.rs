//! Sealing of user secrets (OAuth tokens, PKCE verifiers, client secrets) at rest.
//!
//! Owns root keys ([`RootKeyring`], from `security.root_keys`), per-user data keys
//! ([`DataKey`], stored only as a [`WrappedKey`] under a root key: envelope encryption) and
//! AES-256-GCM. Every ciphertext's associated data binds it to where it belongs: a wrapped
//! data key to its user and root key, a sealed value to its user, provider and field
//! ([`SealContext`]), so a value copied onto another row does not open.
//!
//! What leaves this module is ciphertext, or plaintext inside a type that redacts itself
//! ([`SecretString`], `Zeroizing` buffers) and is wiped on drop.
//! Must not: touch the network or the store, log anything, or know what a provider is
//! (provider and field are opaque strings here).

mod aead;
mod data_key;
mod error;
mod root;
mod seal;
mod secret;

pub use data_key::{DataKey, WrappedKey};
pub use error::VaultError;
pub use root::{MIN_ROOT_KEY_CHARS, RootKeyring};
pub use seal::{SealContext, field};
pub use secret::{SecretString, serde_secret};

use crate::config::RootKeyConfig;

/// The vault: a root keyring and the operations on data keys. Cheap to share behind an
/// `Arc`; holds no per-user state (the store keeps the wrapped keys).
#[derive(Debug)]
pub struct Vault {
    keyring: RootKeyring,
}

impl Vault {
    pub fn new(keyring: RootKeyring) -> Self {
        Self { keyring }
    }

    /// [`RootKeyring::new`] then [`Vault::new`].
    pub fn from_config(root_keys: &[RootKeyConfig]) -> Result<Self, VaultError> {
        RootKeyring::new(root_keys).map(Self::new)
    }

    pub fn keyring(&self) -> &RootKeyring {
        &self.keyring
    }

    /// The root key new and re-wrapped data keys go under.
    pub fn default_root_key_id(&self) -> &str {
        self.keyring.default_id()
    }

    /// A fresh random data key for `user_id`, and the wrapped form to store.
    pub fn new_data_key(&self, user_id: &str) -> (DataKey, WrappedKey) {
        data_key::generate(&self.keyring, user_id)
    }

    /// Opens `user_id`'s stored data key with whichever configured root key wrapped it.
    pub fn open_data_key(
        &self,
        user_id: &str,
        wrapped: &WrappedKey,
    ) -> Result<DataKey, VaultError> {
        data_key::unwrap_bytes(&self.keyring, user_id, wrapped)
            .map(|bytes| data_key::from_bytes(&bytes))
    }

    /// The same data key wrapped under the current default root key, for
    /// `switchboard vault rotate`. Always re-encrypts (a fresh nonce), even when `wrapped`
    /// is already under the default; callers that want to skip those compare
    /// `wrapped.root_key_id` with [`default_root_key_id`](Self::default_root_key_id).
    pub fn rewrap(&self, user_id: &str, wrapped: &WrappedKey) -> Result<WrappedKey, VaultError> {
        let bytes = data_key::unwrap_bytes(&self.keyring, user_id, wrapped)?;
        Ok(data_key::wrap(self.keyring.default_key(), user_id, &*bytes))
    }
}

#[cfg(test)]
mod tests;
