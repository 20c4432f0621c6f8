//! Who is calling: API keys (stored as SHA-256, looked up through a short cache), and
//! dev mode's keyless loopback callers.
//! Must not: decide what a caller may do with a tool; it only says who they are.

mod keys;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use keys::{GeneratedKey, KEY_PREFIX, generate_key, hash_key};

use crate::store::{Store, StoreError};

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq)]
pub enum Caller {
    ApiKey {
        key_id: String,
        name: String,
    },
    /// Dev mode, a loopback peer, no credential.
    DevLoopback,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("missing API key: send it in the Authorization header (raw or as 'Bearer <key>')")]
    Missing,
    #[error("invalid API key")]
    Invalid,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How long a key lookup (hit or miss) is trusted before the store is asked again; a
/// revoked key stops working on every replica within this time.
pub const DEFAULT_KEY_CACHE_TTL: Duration = Duration::from_secs(10);

/// Cap on cached lookups, so a flood of random keys can't grow memory without bound.
const KEY_CACHE_MAX: usize = 10_000;

pub struct Authenticator {
    store: Arc<dyn Store>,
    development: bool,
    ttl: Duration,
    /// key hash → (caller if valid, when looked up). A std Mutex: no `.await` inside.
    cache: Mutex<HashMap<String, (Option<Caller>, Instant)>>,
}

impl Authenticator {
    pub fn new(store: Arc<dyn Store>, development: bool, ttl: Duration) -> Self {
        Self {
            store,
            development,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn development(&self) -> bool {
        self.development
    }

    /// Authenticates from the `Authorization` header value (raw key or `Bearer <key>`)
    /// and the peer address.
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
        let hash = hash_key(key);
        if let Some(hit) = self.cached(&hash) {
            return hit.ok_or(IdentityError::Invalid);
        }
        let found = self
            .store
            .find_active_api_key(&hash)
            .await?
            .map(|record| Caller::ApiKey {
                key_id: record.id,
                name: record.name,
            });
        self.remember(hash, found.clone());
        found.ok_or(IdentityError::Invalid)
    }

    fn cached(&self, hash: &str) -> Option<Option<Caller>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(hash)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(c, _)| c.clone())
    }

    fn remember(&self, hash: String, caller: Option<Caller>) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= KEY_CACHE_MAX {
            let ttl = self.ttl;
            cache.retain(|_, (_, at)| at.elapsed() < ttl);
            if cache.len() >= KEY_CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(hash, (caller, Instant::now()));
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
}
