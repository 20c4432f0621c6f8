//! User tokens: bearer tokens bound to one user, for MCP clients. `sbu_` + 40 alphanumeric
//! characters (238 bits), stored as SHA-256 like API keys.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use super::keys::hash_key;
use crate::store::{Store, StoreError, UserTokenRecord};

pub const USER_TOKEN_PREFIX: &str = "sbu_";

/// A newly minted user token: the plaintext (shown once) and the row to store.
pub struct GeneratedUserToken {
    pub plaintext: String,
    pub record: UserTokenRecord,
}

impl std::fmt::Debug for GeneratedUserToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedUserToken")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UserTokenError {
    #[error(transparent)]
    InvalidUser(#[from] super::user_id::InvalidUserId),
    #[error("the token lifetime is too long")]
    TtlTooLong,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A token for `user_id`, expiring `ttl` after `now_ms` (never, without a ttl).
pub fn generate_user_token(
    user_id: &str,
    ttl: Option<Duration>,
    now_ms: i64,
) -> Result<GeneratedUserToken, UserTokenError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    // Exactly the id given: a token for "alice " must not act for "alice".
    let user_id = super::user_id::check(user_id)?;
    let expires_at_ms = match ttl {
        None => None,
        Some(ttl) => Some(
            i64::try_from(ttl.as_millis())
                .ok()
                .and_then(|ms| now_ms.checked_add(ms))
                .ok_or(UserTokenError::TtlTooLong)?,
        ),
    };
    let mut rng = rand::rng();
    let body: String = (0..40)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    let plaintext = format!("{USER_TOKEN_PREFIX}{body}");
    let record = UserTokenRecord {
        id: uuid::Uuid::now_v7().to_string(),
        user_id: user_id.to_string(),
        token_hash: hash_key(&plaintext),
        hint: format!("{}…", &plaintext[..8]),
        created_at_ms: now_ms,
        expires_at_ms,
        revoked_at_ms: None,
    };
    Ok(GeneratedUserToken { plaintext, record })
}

/// Generates and stores a token for `user_id`: what `users token create`, the admin route
/// and `configure` all do.
pub async fn mint_user_token(
    store: &Arc<dyn Store>,
    user_id: &str,
    ttl: Option<Duration>,
    now_ms: i64,
) -> Result<GeneratedUserToken, UserTokenError> {
    let token = generate_user_token(user_id, ttl, now_ms)?;
    store.insert_user_token(&token.record).await?;
    Ok(token)
}

/// Whether a presented credential is a user token (by its prefix) rather than an API key.
pub fn is_user_token(credential: &str) -> bool {
    credential.starts_with(USER_TOKEN_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_tokens_are_unique_prefixed_hashed_and_never_debug_printed() {
        let a = generate_user_token("alice", None, 1).unwrap();
        let b = generate_user_token("alice", None, 1).unwrap();
        assert_ne!(a.plaintext, b.plaintext);
        assert!(a.plaintext.starts_with("sbu_"));
        assert_eq!(a.plaintext.len(), 44);
        assert!(a.plaintext[4..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(a.record.token_hash, hash_key(&a.plaintext));
        assert_eq!(a.record.user_id, "alice");
        assert_eq!(a.record.expires_at_ms, None);
        assert!(!a.record.hint.contains(&a.plaintext[8..]));
        assert!(!format!("{a:?}").contains(&a.plaintext));
    }

    #[test]
    fn a_ttl_sets_the_expiry_and_an_invalid_user_is_refused() {
        let t = generate_user_token("bob", Some(Duration::from_secs(60)), 1_000).unwrap();
        assert_eq!(t.record.expires_at_ms, Some(61_000));
        for user in ["", "  ", "bob ", "b\nob"] {
            assert!(matches!(
                generate_user_token(user, None, 0),
                Err(UserTokenError::InvalidUser(_))
            ));
        }
        assert!(matches!(
            generate_user_token("bob", Some(Duration::MAX), 0),
            Err(UserTokenError::TtlTooLong)
        ));
    }
}
