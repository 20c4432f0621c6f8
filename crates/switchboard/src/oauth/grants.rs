//! Grants for calls, and refresh: ahead of expiry (skew, jittered) or when a worker says
//! the token was refused. One refresh at a time per connection: a tokio mutex within the
//! process, and a lease in the store across replicas; whoever waits re-reads the row and
//! reuses a refresh someone else just did.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use serde_json::Value;

use super::provider::{OAuthError, Provider};
use super::{AuthError, AuthService, Requirement, normalise_scopes};
use crate::store::{ConnectionRecord, TokenUpdate};
use crate::vault::{SealContext, SecretString, field};

/// How long a replica may hold a connection's refresh lease; a crashed holder's lease
/// lapses after this.
const LEASE: Duration = Duration::from_secs(30);
/// How long a caller waits for another replica's refresh before giving up (retryable).
const WAIT_FOR_OTHER_REFRESH: Duration = Duration::from_secs(15);
const LEASE_POLL: Duration = Duration::from_millis(50);

/// A usable token for one call. Dropped (and wiped) when the call is done.
#[derive(Debug)]
pub struct Grant {
    pub connection_id: String,
    pub provider_id: String,
    pub token: SecretString,
    pub user_info: Option<Value>,
    pub scopes: Vec<String>,
    /// The connection version the token came from; a rejection refreshes only if nobody
    /// has refreshed since.
    pub version: i64,
}

pub(super) struct RefreshCoordinator {
    /// Connection id → the in-process refresh lock. A std Mutex guards the map only;
    /// the tokio mutex inside is held across the provider call.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// This process's lease owner id.
    owner: String,
}

impl RefreshCoordinator {
    pub(super) fn new() -> Self {
        Self {
            locks: Mutex::new(HashMap::new()),
            owner: uuid::Uuid::new_v4().to_string(),
        }
    }

    fn lock_for(&self, connection_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, l| Arc::strong_count(l) > 1);
        }
        map.entry(connection_id.to_string()).or_default().clone()
    }

    pub(super) fn forget(&self, connection_id: &str) {
        let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if map
            .get(connection_id)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            map.remove(connection_id);
        }
    }
}

fn covers(granted: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|w| granted.iter().any(|g| g == w))
}

impl AuthService {
    fn needs_refresh(&self, c: &ConnectionRecord, now_ms: i64) -> bool {
        let Some(expires) = c.expires_at_ms else {
            return false;
        };
        let skew = self.settings.refresh_skew.as_millis() as i64;
        // Up to a quarter of the skew earlier, at random, so many connections issued
        // together don't all refresh in the same second.
        let jitter = if skew > 0 {
            rand::rng().random_range(0..=skew / 4)
        } else {
            0
        };
        expires - now_ms <= skew + jitter
    }

    fn open_grant(
        &self,
        c: &ConnectionRecord,
        key: &crate::vault::DataKey,
    ) -> Result<Grant, AuthError> {
        let token = key.open_string(
            &SealContext::new(&c.user_id, &c.provider_id, field::ACCESS_TOKEN),
            &c.access_token_sealed,
        )?;
        Ok(Grant {
            connection_id: c.id.clone(),
            provider_id: c.provider_id.clone(),
            token,
            user_info: c
                .user_info
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok()),
            scopes: c.scopes.clone(),
            version: c.version,
        })
    }

    /// The user's token for `req`, refreshed first if it is about to expire. Without a
    /// usable grant covering the scopes: `NeedsAuthorization` with a flow for the union of
    /// the scopes held and wanted (incremental authorization).
    pub async fn grant(&self, user_id: &str, req: &Requirement) -> Result<Grant, AuthError> {
        let provider = self.provider_for_fresh(req).await?;
        let wanted = normalise_scopes(
            provider
                .default_scopes
                .iter()
                .chain(req.scopes.iter())
                .cloned(),
        );
        let cached = self.connections.get(user_id, &provider.id);
        let conn = match cached {
            Some(row) => Some(row),
            None => {
                let generation = self.connections.generation();
                let row = self
                    .store
                    .get_connection(user_id, &provider.id)
                    .await?
                    .map(Arc::new);
                if let Some(row) = &row {
                    self.connections.put_read(row, generation);
                }
                row
            }
        };
        let Some(conn) = conn else {
            return Err(self.needs_authorization(user_id, &provider, wanted).await);
        };
        if conn.status != "active" || !covers(&conn.scopes, &wanted) {
            let union = normalise_scopes(conn.scopes.iter().chain(wanted.iter()).cloned());
            return Err(self.needs_authorization(user_id, &provider, union).await);
        }
        let now = Self::now_ms();
        let conn = if self.needs_refresh(&conn, now) {
            match self
                .refresh_connection(user_id, &provider, conn.version, &conn.id, false)
                .await
            {
                Ok(refreshed) => refreshed,
                // Refreshing ahead of expiry failed for now, but the token still works.
                Err(AuthError::ProviderUnavailable(reason))
                    if conn.expires_at_ms.is_some_and(|t| t > now + 5_000) =>
                {
                    tracing::warn!(connection = %conn.id, reason, "early refresh failed; using the current token");
                    conn
                }
                Err(e) => return Err(e),
            }
        } else {
            conn
        };
        let key = self.keys.get_or_create(user_id).await?;
        self.open_grant(&conn, &key)
    }

    /// After the worker reported the token refused: refresh (unless someone already did
    /// since `rejected` was issued) and return the new grant.
    pub async fn grant_after_rejection(
        &self,
        user_id: &str,
        req: &Requirement,
        rejected: &Grant,
    ) -> Result<Grant, AuthError> {
        let provider = self.provider_for_fresh(req).await?;
        let conn = self
            .refresh_connection(
                user_id,
                &provider,
                rejected.version,
                &rejected.connection_id,
                true,
            )
            .await?;
        let key = self.keys.get_or_create(user_id).await?;
        self.open_grant(&conn, &key)
    }

    async fn needs_authorization(
        &self,
        user_id: &str,
        provider: &Provider,
        scopes: Vec<String>,
    ) -> AuthError {
        match self.start_flow(user_id, provider, scopes, None).await {
            Ok(auth) => AuthError::NeedsAuthorization(Box::new(auth)),
            Err(e) => e,
        }
    }

    /// Refreshes connection `id` whose caller saw `seen_version`. Returns the row to use:
    /// the refreshed one, or one another task or replica refreshed meanwhile.
    async fn refresh_connection(
        &self,
        user_id: &str,
        provider: &Provider,
        seen_version: i64,
        id: &str,
        force: bool,
    ) -> Result<Arc<ConnectionRecord>, AuthError> {
        let result = self
            .refresh_connection_uncached(provider, seen_version, id, force)
            .await
            .map(Arc::new);
        match &result {
            Ok(row) => self.connections.put(row),
            Err(_) => self.connections.forget(user_id, &provider.id),
        }
        result
    }

    async fn refresh_connection_uncached(
        &self,
        provider: &Provider,
        seen_version: i64,
        id: &str,
        force: bool,
    ) -> Result<ConnectionRecord, AuthError> {
        let local = self.refresh.lock_for(id);
        let _local = local.lock().await;

        let reread = |id: String| async move {
            self.store
                .get_connection_by_id(&id)
                .await?
                .ok_or_else(|| AuthError::BadRequest("the connection was removed".into()))
        };
        let current = reread(id.to_string()).await?;
        if current.version != seen_version
            || (!force && !self.needs_refresh(&current, Self::now_ms()))
        {
            return Ok(current);
        }

        // Across replicas: take the store lease, or wait for whoever holds it.
        let deadline = tokio::time::Instant::now() + WAIT_FOR_OTHER_REFRESH;
        loop {
            let now = Self::now_ms();
            if self
                .store
                .try_lock_refresh(id, &self.refresh.owner, now, now + LEASE.as_millis() as i64)
                .await?
            {
                break;
            }
            tokio::time::sleep(LEASE_POLL).await;
            let row = reread(id.to_string()).await?;
            if row.version != seen_version {
                return Ok(row);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(AuthError::ProviderUnavailable(
                    "another replica is still refreshing this token".into(),
                ));
            }
        }
        let result = self.refresh_locked(provider, seen_version, id).await;
        if let Err(e) = self.store.unlock_refresh(id, &self.refresh.owner).await {
            tracing::warn!(connection = %id, error = %e, "could not release the refresh lease; it lapses by itself");
        }
        result
    }

    async fn refresh_locked(
        &self,
        provider: &Provider,
        seen_version: i64,
        id: &str,
    ) -> Result<ConnectionRecord, AuthError> {
        let current = self
            .store
            .get_connection_by_id(id)
            .await?
            .ok_or_else(|| AuthError::BadRequest("the connection was removed".into()))?;
        if current.version != seen_version {
            return Ok(current);
        }
        let user_id = current.user_id.clone();
        let key = self.keys.get_or_create(&user_id).await?;
        let ctx = |f: &'static str| SealContext::new(&current.user_id, &current.provider_id, f);
        let Some(sealed_rt) = &current.refresh_token_sealed else {
            // Nothing to refresh with: only a new authorization helps once it expires.
            if current.expires_at_ms.is_some_and(|t| t <= Self::now_ms()) {
                self.store
                    .set_connection_status(id, "needs_reauth", Self::now_ms())
                    .await?;
                return Err(self
                    .needs_authorization(&user_id, provider, current.scopes.clone())
                    .await);
            }
            return Ok(current);
        };
        let refresh_token = key.open_string(&ctx(field::REFRESH_TOKEN), sealed_rt)?;
        tracing::info!(connection = %id, provider = %provider.id, "refreshing token");
        match provider.refresh(&self.http, refresh_token.expose()).await {
            Ok(tokens) => {
                let now = Self::now_ms();
                let update = TokenUpdate {
                    access_token_sealed: key
                        .seal_str(&ctx(field::ACCESS_TOKEN), &tokens.access_token),
                    // Providers that don't rotate send no new refresh token: keep the old.
                    refresh_token_sealed: match &tokens.refresh_token {
                        Some(rt) => Some(key.seal_str(&ctx(field::REFRESH_TOKEN), rt)),
                        None => current.refresh_token_sealed.clone(),
                    },
                    expires_at_ms: tokens.expires_in.map(|s| now + (s as i64) * 1000),
                    scopes: match &tokens.scopes {
                        Some(granted) if !granted.is_empty() => normalise_scopes(
                            granted
                                .iter()
                                .cloned()
                                .chain(current.scopes.iter().cloned()),
                        ),
                        _ => current.scopes.clone(),
                    },
                    updated_at_ms: now,
                };
                if !self
                    .store
                    .update_connection_tokens(id, current.version, &update)
                    .await?
                {
                    tracing::warn!(connection = %id, "connection changed during refresh; using the newer row");
                }
                self.store
                    .get_connection_by_id(id)
                    .await?
                    .ok_or_else(|| AuthError::BadRequest("the connection was removed".into()))
            }
            Err(OAuthError::InvalidGrant(reason)) => {
                tracing::warn!(connection = %id, provider = %provider.id, reason = %reason, "refresh token refused; the user must re-authorize");
                self.store
                    .set_connection_status(id, "needs_reauth", Self::now_ms())
                    .await?;
                Err(self
                    .needs_authorization(&user_id, provider, current.scopes.clone())
                    .await)
            }
            Err(e) => {
                tracing::warn!(connection = %id, provider = %provider.id, error = %e, "refresh failed; tokens kept");
                Err(AuthError::ProviderUnavailable(e.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::covers;

    #[test]
    fn scopes_cover_only_when_every_wanted_scope_is_held() {
        let held = vec!["a".to_string(), "b".to_string()];
        assert!(covers(&held, &["a".to_string()]));
        assert!(covers(&held, &[]));
        assert!(!covers(&held, &["c".to_string()]));
    }
}
