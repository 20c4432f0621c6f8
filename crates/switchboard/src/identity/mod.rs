//! Who is calling: API keys and user tokens (both stored as SHA-256, looked up through a
//! short cache), and dev mode's keyless loopback callers.
//! Must not: decide what a caller may do with a tool; it only says who they are.

mod keys;
pub mod user_id;
mod user_tokens;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clock::Clock;

pub use keys::{GeneratedKey, KEY_PREFIX, generate_key, hash_key, key_digest};
pub use user_id::InvalidUserId;
pub use user_tokens::{
    GeneratedUserToken, USER_TOKEN_PREFIX, UserTokenError, generate_user_token, is_user_token,
    mint_user_token,
};

use crate::store::{Store, StoreError};

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq)]
pub enum Caller {
    ApiKey {
        key_id: String,
        name: String,
    },
    /// A user token (`sbu_…`): may act for `user_id` only, on MCP endpoints.
    UserToken {
        token_id: String,
        user_id: String,
    },
    /// Dev mode, a loopback peer, no credential.
    DevLoopback,
}

impl Caller {
    /// Whether this caller may act for `user_id`: an API key or a dev-mode loopback caller
    /// for anyone, a user token for its own user only.
    pub fn may_act_for(&self, user_id: &str) -> bool {
        match self {
            Caller::ApiKey { .. } | Caller::DevLoopback => true,
            Caller::UserToken { user_id: own, .. } => own == user_id,
        }
    }

    /// The user a user token is bound to; `None` for callers that may act for anyone.
    pub fn bound_user(&self) -> Option<&str> {
        match self {
            Caller::UserToken { user_id, .. } => Some(user_id),
            Caller::ApiKey { .. } | Caller::DevLoopback => None,
        }
    }

    /// The user a request acts for, given the user it names (`None`: it names no one): the
    /// one may-act-for rule, for every door and the executor. An API key or a dev-mode
    /// loopback caller acts for whoever is named, or for no user; a user token for its own
    /// user, named or not, and never for another.
    pub fn acting_for<'a>(&'a self, named: Option<&'a str>) -> Result<Option<&'a str>, NotTheUser> {
        match named {
            Some(user) if self.may_act_for(user) => Ok(Some(user)),
            Some(_) => Err(NotTheUser),
            None => Ok(self.bound_user()),
        }
    }
}

/// A user token named a user other than its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this user token may not act for that user")]
pub struct NotTheUser;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("missing API key: send it in the Authorization header (raw or as 'Bearer <key>')")]
    Missing,
    #[error("invalid API key or user token (unknown, revoked or expired)")]
    Invalid,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How long a key or token lookup (hit or miss) is trusted before the store is asked
/// again (by the authenticator's [`Clock`]); a revoked key or token stops working on every
/// replica within this time.
pub const DEFAULT_KEY_CACHE_TTL: Duration = Duration::from_secs(10);

/// Cap on cached lookups, so a flood of random keys can't grow memory without bound.
const KEY_CACHE_MAX: usize = 10_000;

pub struct Authenticator {
    store: Arc<dyn Store>,
    development: bool,
    ttl: Duration,
    /// credential digest → (caller if valid, when looked up). A std Mutex: no `.await`
    /// inside. Keyed by the raw digest: hex-encoding it on every request was ~1.4 % of a
    /// call's instructions.
    cache: Mutex<Lookups>,
    /// User token expiry and the cache's TTL, by this clock.
    clock: Clock,
}

/// Credential digest → (caller if valid, when looked up, by [`Authenticator::clock`]).
type Lookups = HashMap<[u8; 32], (Option<Cached>, Instant)>;

/// A valid lookup, with the expiry to check on every hit (a cached user token must not
/// outlive its `expires_at`).
#[derive(Clone)]
struct Cached {
    caller: Caller,
    expires_at_ms: Option<i64>,
}

impl Authenticator {
    /// Lookups (hits and misses) are trusted for `ttl`; `development` lets keyless loopback
    /// callers in.
    pub fn new(store: Arc<dyn Store>, development: bool, ttl: Duration, clock: Clock) -> Self {
        Self {
            store,
            development,
            ttl,
            cache: Mutex::new(HashMap::new()),
            clock,
        }
    }

    pub fn development(&self) -> bool {
        self.development
    }

    /// Authenticates from the `Authorization` header value (raw credential or
    /// `Bearer <credential>`) and the peer address. `sbu_…` is a user token, anything else
    /// an API key.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        peer: Option<SocketAddr>,
    ) -> Result<Caller, IdentityError> {
        let key = authorization.map(strip_bearer).filter(|k| !k.is_empty());
        let Some(key) = key else {
            if self.development && peer.is_some_and(|p| p.ip().is_loopback()) {
                return Ok(Caller::DevLoopback);
            }
            return Err(IdentityError::Missing);
        };
        let now_ms = self.clock.now_ms();
        let digest = key_digest(key);
        if let Some(hit) = self.cached(&digest) {
            return hit
                .filter(|c| c.expires_at_ms.is_none_or(|at| at > now_ms))
                .map(|c| c.caller)
                .ok_or(IdentityError::Invalid);
        }
        let hash = hex::encode(digest);
        let found = if is_user_token(key) {
            self.store
                .find_active_user_token(&hash, now_ms)
                .await?
                .map(|record| Cached {
                    expires_at_ms: record.expires_at_ms,
                    caller: Caller::UserToken {
                        token_id: record.id,
                        user_id: record.user_id,
                    },
                })
        } else {
            self.store
                .find_active_api_key(&hash)
                .await?
                .map(|record| Cached {
                    expires_at_ms: None,
                    caller: Caller::ApiKey {
                        key_id: record.id,
                        name: record.name,
                    },
                })
        };
        self.remember(digest, found.clone());
        found.map(|c| c.caller).ok_or(IdentityError::Invalid)
    }

    fn cached(&self, digest: &[u8; 32]) -> Option<Option<Cached>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.clock.instant();
        cache
            .get(digest)
            .filter(|(_, at)| now.saturating_duration_since(*at) < self.ttl)
            .map(|(c, _)| c.clone())
    }

    fn remember(&self, digest: [u8; 32], caller: Option<Cached>) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.clock.instant();
        if cache.len() >= KEY_CACHE_MAX {
            let ttl = self.ttl;
            cache.retain(|_, (_, at)| now.saturating_duration_since(*at) < ttl);
            if cache.len() >= KEY_CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(digest, (caller, now));
    }
}

fn strip_bearer(value: &str) -> &str {
    let value = value.trim();
    match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_prefix_is_optional_and_case_insensitive() {
        assert_eq!(strip_bearer("Bearer arc_x"), "arc_x");
        assert_eq!(strip_bearer("bearer  arc_x "), "arc_x");
        assert_eq!(strip_bearer("arc_x"), "arc_x");
    }

    #[test]
    fn a_user_token_acts_for_its_own_user_only_and_others_for_anyone() {
        let token = Caller::UserToken {
            token_id: "t1".into(),
            user_id: "alice".into(),
        };
        assert!(token.may_act_for("alice"));
        assert!(!token.may_act_for("bob"));
        assert_eq!(token.bound_user(), Some("alice"));
        assert_eq!(token.acting_for(None), Ok(Some("alice")));
        assert_eq!(token.acting_for(Some("bob")), Err(NotTheUser));
        let key = Caller::ApiKey {
            key_id: "k".into(),
            name: "ci".into(),
        };
        for anyone in [key, Caller::DevLoopback] {
            assert!(anyone.may_act_for("alice") && anyone.may_act_for("bob"));
            assert_eq!(anyone.bound_user(), None);
            assert_eq!(anyone.acting_for(Some("bob")), Ok(Some("bob")));
            assert_eq!(anyone.acting_for(None), Ok(None));
        }
    }
}
