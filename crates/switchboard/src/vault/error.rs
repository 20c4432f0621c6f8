//! The vault's one error type. Every message names keys, users, providers and fields by id
//! (none of them secret) and never carries key material, ciphertext or plaintext.

/// What went wrong in the vault. User, provider and root key ids are not secret and are
/// named so an operator can find the row or the config entry at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    #[error("no root keys are configured: add at least one under security.root_keys")]
    NoRootKeys,

    #[error("root key id '{id}' is configured twice under security.root_keys")]
    DuplicateRootKey { id: String },

    #[error("root keys '{first}' and '{second}' are both marked default; exactly one may be")]
    SeveralDefaultRootKeys { first: String, second: String },

    #[error(
        "root key '{id}' is too short: use at least {min_chars} characters \
         (32 random bytes, base64-encoded, are recommended)"
    )]
    RootKeyTooShort { id: String, min_chars: usize },

    /// The wrapped data key names a root key that is no longer in the config.
    #[error(
        "root key '{root_key_id}' is not configured; it wrapped the data key of user \
         '{user_id}'. Put it back under security.root_keys (it need not be the default) \
         and run `switchboard vault rotate` before removing it"
    )]
    UnknownRootKey {
        root_key_id: String,
        user_id: String,
    },

    /// The wrapped data key is not in the vault's format (not base64, wrong length,
    /// unknown version): a damaged row rather than a wrong key.
    #[error("the wrapped data key of user '{user_id}' is malformed: {reason}")]
    MalformedWrappedKey { user_id: String, reason: String },

    #[error(
        "the data key of user '{user_id}' did not open under root key '{root_key_id}' \
         (tampered, copied from another user, or the root key's value changed)"
    )]
    DataKeyDidNotOpen {
        user_id: String,
        root_key_id: String,
    },

    /// The sealed value is not in the vault's format: a damaged row rather than a wrong key.
    #[error(
        "sealed {field} for user '{user_id}' / provider '{provider_id}' is malformed: {reason}"
    )]
    MalformedSealed {
        user_id: String,
        provider_id: String,
        field: String,
        reason: String,
    },

    #[error(
        "sealed {field} for user '{user_id}' / provider '{provider_id}' did not open \
         (tampered, copied from another row, or sealed under another key)"
    )]
    SealedDidNotOpen {
        user_id: String,
        provider_id: String,
        field: String,
    },

    #[error("sealed {field} for user '{user_id}' / provider '{provider_id}' is not UTF-8 text")]
    SealedNotText {
        user_id: String,
        provider_id: String,
        field: String,
    },
}
