//! Grants for calls, and refresh: ahead of expiry (skew, scaled to the token's lifetime
//! and jittered) or when a worker says the token was refused. One refresh at a time per
//! connection: a tokio mutex within the process, and a lease in the store across replicas;
//! whoever waits re-reads the row and reuses a refresh someone else just did.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use serde_json::Value;

use super::provider::{OAuthError, Provider};
use super::{AuthError, AuthService, Requirement, normalise_scopes};
use crate::clock::Clock;
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

/// How long before its expiry a token is refreshed: the configured skew, but at most half
/// the token's lifetime, less up to a quarter at random (so many connections issued
/// together don't all refresh in the same second). Without the cap a token that lives less
/// than the skew (Keycloak's 5 minutes under the default 5-minute skew) would need a
/// refresh from the moment it is issued, and every call would refresh it again. The jitter
/// only ever shortens the window, so a token just refreshed is never due.
fn refresh_window_ms(skew_ms: i64, lifetime_ms: Option<i64>, rng: &mut impl Rng) -> i64 {
    let window = match lifetime_ms {
        Some(lifetime) => skew_ms.min(lifetime.max(0) / 2),
        None => skew_ms,
    };
    if window <= 0 {
        return 0;
    }
    window - rng.random_range(0..=window / 4)
}

/// A token answer's `expires_in` (seconds) in milliseconds.
pub(super) fn lifetime_ms(expires_in: Option<u64>) -> Option<i64> {
    expires_in.map(|s| i64::try_from(s).unwrap_or(i64::MAX).saturating_mul(1000))
}

fn covers(granted: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|w| granted.iter().any(|g| g == w))
}

impl AuthService {
    fn needs_refresh(&self, c: &ConnectionRecord, now_ms: i64) -> bool {
        let Some(expires) = c.expires_at_ms else {
            return false;
        };
        // Rows from before lifetimes were stored: the time since the last token change
        // is a lower bound of the lifetime.
        let lifetime = c
            .token_lifetime_ms
            .or_else(|| Some(expires - c.updated_at_ms).filter(|l| *l > 0));
        let skew = self.settings.refresh_skew.as_millis() as i64;
        expires - now_ms <= refresh_window_ms(skew, lifetime, &mut rand::rng())
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
        let now = self.now();
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
        if current.version != seen_version || (!force && !self.needs_refresh(&current, self.now()))
        {
            return Ok(current);
        }

        // Across replicas: take the store lease, or wait for whoever holds it.
        let deadline = tokio::time::Instant::now() + WAIT_FOR_OTHER_REFRESH;
        loop {
            // The lease is between replicas: real time, not this service's clock.
            let now = Clock::system().now_ms();
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
            if current.expires_at_ms.is_some_and(|t| t <= self.now()) {
                self.store
                    .set_connection_status(id, "needs_reauth", self.now())
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
                let now = self.now();
                let update = TokenUpdate {
                    access_token_sealed: key
                        .seal_str(&ctx(field::ACCESS_TOKEN), tokens.access_token.expose()),
                    // Providers that don't rotate send no new refresh token: keep the old.
                    refresh_token_sealed: match &tokens.refresh_token {
                        Some(rt) => Some(key.seal_str(&ctx(field::REFRESH_TOKEN), rt.expose())),
                        None => current.refresh_token_sealed.clone(),
                    },
                    expires_at_ms: lifetime_ms(tokens.expires_in).map(|l| now.saturating_add(l)),
                    token_lifetime_ms: lifetime_ms(tokens.expires_in),
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
                    .set_connection_status(id, "needs_reauth", self.now())
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
    use super::{covers, refresh_window_ms};

    /// The window over many jitter draws: (shortest, longest).
    fn window_range(skew_ms: i64, lifetime_ms: Option<i64>) -> (i64, i64) {
        let mut rng = rand::rng();
        (0..2_000)
            .map(|_| refresh_window_ms(skew_ms, lifetime_ms, &mut rng))
            .fold((i64::MAX, i64::MIN), |(lo, hi), w| (lo.min(w), hi.max(w)))
    }

    #[test]
    fn the_refresh_skew_is_at_most_half_the_token_lifetime_and_jitter_only_shortens_it() {
        let five_minutes = 300_000;
        // A 5-second token under the default 5-minute skew: due in its last 2.5 s at most.
        let (lo, hi) = window_range(five_minutes, Some(5_000));
        assert!(hi <= 2_500 && lo >= 1_875, "{lo}..{hi}");
        // Keycloak's 5-minute token: due in its last 2.5 minutes at most, not from the start.
        let (lo, hi) = window_range(five_minutes, Some(five_minutes));
        assert!(hi <= 150_000 && lo >= 112_500, "{lo}..{hi}");
        // A long-lived token keeps the configured skew.
        let (lo, hi) = window_range(five_minutes, Some(3_600_000));
        assert!(hi <= five_minutes && lo >= 225_000, "{lo}..{hi}");
        // Unknown lifetime: the configured skew.
        let (lo, hi) = window_range(five_minutes, None);
        assert!(hi <= five_minutes && lo >= 225_000, "{lo}..{hi}");
        // No skew, or a lifetime too short to halve: due only once expired.
        assert_eq!(window_range(0, Some(5_000)), (0, 0));
        assert_eq!(window_range(five_minutes, Some(1)), (0, 0));
        assert_eq!(window_range(five_minutes, Some(-5)), (0, 0));
    }

    #[test]
    fn scopes_cover_only_when_every_wanted_scope_is_held() {
        let held = vec!["a".to_string(), "b".to_string()];
        assert!(covers(&held, &["a".to_string()]));
        assert!(covers(&held, &[]));
        assert!(!covers(&held, &["c".to_string()]));
    }
}
