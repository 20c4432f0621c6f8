//! Sealing one secret value with a user's data key, bound to where it is stored.

use zeroize::Zeroizing;

use super::aead::{self, OpenFailure};
use super::{DataKey, SecretString, VaultError};

/// Format version byte of a sealed value.
const SEAL_VERSION: u8 = 1;
/// Domain of a sealed value's associated data.
const SEAL_DOMAIN: &str = "sb/v1";

/// Field names for [`SealContext::field`]: one per kind of secret column, so that an access
/// token pasted into the refresh-token column does not open either.
pub mod field {
    pub const ACCESS_TOKEN: &str = "access_token";
    pub const REFRESH_TOKEN: &str = "refresh_token";
    pub const PKCE_VERIFIER: &str = "pkce_verifier";
    pub const CLIENT_SECRET: &str = "client_secret";
}

/// Where a sealed value belongs. It becomes the ciphertext's associated data, so a value
/// opens only with the same user, provider and field it was sealed for. The parts are
/// opaque strings to the vault (it does not know what a provider is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealContext<'a> {
    pub user_id: &'a str,
    pub provider_id: &'a str,
    /// What the value is, e.g. [`field::ACCESS_TOKEN`].
    pub field: &'a str,
}

impl<'a> SealContext<'a> {
    pub fn new(user_id: &'a str, provider_id: &'a str, field: &'a str) -> Self {
        Self {
            user_id,
            provider_id,
            field,
        }
    }

    fn aad(&self) -> Vec<u8> {
        aead::aad(SEAL_DOMAIN, &[self.user_id, self.provider_id, self.field])
    }

    fn did_not_open(&self) -> VaultError {
        VaultError::SealedDidNotOpen {
            user_id: self.user_id.to_owned(),
            provider_id: self.provider_id.to_owned(),
            field: self.field.to_owned(),
        }
    }

    fn malformed(&self, reason: String) -> VaultError {
        VaultError::MalformedSealed {
            user_id: self.user_id.to_owned(),
            provider_id: self.provider_id.to_owned(),
            field: self.field.to_owned(),
            reason,
        }
    }
}

impl DataKey {
    /// `base64(version || random 96-bit nonce || AES-256-GCM ciphertext || tag)`; sealing
    /// the same plaintext twice gives different strings.
    pub fn seal(&self, context: &SealContext<'_>, plaintext: &[u8]) -> String {
        aead::seal(&self.cipher, SEAL_VERSION, &context.aad(), plaintext)
    }

    /// The plaintext of what [`seal`](Self::seal) produced for the same `context`; wiped
    /// when dropped.
    pub fn open(
        &self,
        context: &SealContext<'_>,
        sealed: &str,
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        aead::open(&self.cipher, SEAL_VERSION, &context.aad(), sealed).map_err(|failure| {
            match failure {
                OpenFailure::Malformed(reason) => context.malformed(reason),
                OpenFailure::DidNotOpen => context.did_not_open(),
            }
        })
    }

    /// [`open`](Self::open) for text secrets (tokens, client secrets).
    pub fn open_string(
        &self,
        context: &SealContext<'_>,
        sealed: &str,
    ) -> Result<SecretString, VaultError> {
        let mut bytes = self.open(context, sealed)?;
        // Moves the buffer into the String without copying it; on failure the bytes come
        // back and are wiped here.
        match String::from_utf8(std::mem::take(&mut *bytes)) {
            Ok(text) => Ok(SecretString::new(text)),
            Err(err) => {
                drop(Zeroizing::new(err.into_bytes()));
                Err(VaultError::SealedNotText {
                    user_id: context.user_id.to_owned(),
                    provider_id: context.provider_id.to_owned(),
                    field: context.field.to_owned(),
                })
            }
        }
    }

    /// Seals text; the counterpart of [`open_string`](Self::open_string).
    pub fn seal_str(&self, context: &SealContext<'_>, plaintext: &str) -> String {
        self.seal(context, plaintext.as_bytes())
    }
}
