//! Authorization flows: start (or reuse) a flow and hand out the gateway's own short
//! link; on the click, mint `state` and the PKCE verifier and redirect to the provider;
//! on the callback, check `state` (random, single use, bound to its flow, expiring),
//! exchange the code, seal the tokens; then user verification when configured.

use std::time::Duration;

use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::grants::lifetime_ms;
use super::pending_grant::PendingGrant;
use super::provider::Provider;
use super::{
    AuthError, AuthService, Authorization, FlowStatus, MAX_STATUS_WAIT, Requirement,
    normalise_scopes,
};
use crate::store::{ConnectionRecord, FlowRecord, StoreError};
use crate::vault::{SealContext, field};

/// The seal field of a pending flow's link token, kept so a repeated call hands out the
/// same link.
const FLOW_LINK_FIELD: &str = "flow_link";
/// A flow is kept this long after it expired (or finished, if later), so clients polling
/// its status see how it ended; then the sweep deletes it.
pub const FLOW_RETENTION: Duration = Duration::from_secs(3600);
/// How often each gateway sweeps old flows.
const SWEEP_EVERY: Duration = Duration::from_secs(300);
/// Flows deleted per statement: a large backlog goes in short transactions.
const SWEEP_BATCH: u32 = 1000;
/// Inserting a flow loses to a concurrent caller's at most this many times in a row
/// before giving up (each loss means a reusable flow now exists).
const START_ATTEMPTS: usize = 3;

/// Query of `GET /v1/oauth/callback`.
#[derive(Debug, Default, Deserialize)]
pub struct CallbackParams {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// What the browser gets after the callback.
#[derive(Debug, PartialEq)]
pub enum CallbackOutcome {
    Redirect(String),
    Page {
        status: u16,
        title: String,
        message: String,
    },
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub(super) fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn page(status: u16, title: &str, message: impl Into<String>) -> CallbackOutcome {
    CallbackOutcome::Page {
        status,
        title: title.into(),
        message: message.into(),
    }
}

impl AuthService {
    /// `POST /v1/auth/authorize`: `completed` with the token at once when the user's grant
    /// covers the scopes (arcade-mcp-server relies on it), else a pending flow and its URL.
    pub async fn authorize(
        &self,
        user_id: &str,
        req: &Requirement,
        next_uri: Option<&str>,
    ) -> Result<Authorization, AuthError> {
        match self.grant(user_id, req).await {
            Ok(grant) => Ok(Authorization {
                id: Some(grant.connection_id.clone()),
                status: FlowStatus::Completed,
                url: None,
                scopes: grant.scopes.clone(),
                provider_id: grant.provider_id.clone(),
                user_id: user_id.to_string(),
                user_info: grant.user_info.clone(),
                token: Some(grant.token),
                failure_reason: None,
            }),
            Err(AuthError::NeedsAuthorization(mut pending)) => {
                if let Some(next) = next_uri.filter(|n| !n.is_empty())
                    && let Some(id) = pending.id.clone()
                    && let Some(mut flow) = self.store.get_flow(&id).await?
                    && flow.next_uri.is_none()
                {
                    flow.next_uri = Some(next.to_string());
                    self.store.update_flow(&flow).await?;
                }
                pending.token = None;
                Ok(*pending)
            }
            Err(e) => Err(e),
        }
    }

    /// A pending flow for `scopes`, as an `Authorization`. Repeated calls for the same
    /// user, provider and scope set get the same flow (id and link) while its link is
    /// unclicked and it has at least half its TTL left; a unique index makes concurrent
    /// callers, on any replica, meet on one flow. An older flow past that point is no
    /// longer handed out, but its link keeps working until it expires.
    pub(super) async fn start_flow(
        &self,
        user_id: &str,
        provider: &Provider,
        scopes: Vec<String>,
        next_uri: Option<&str>,
    ) -> Result<Authorization, AuthError> {
        let scopes = normalise_scopes(scopes);
        let ttl = self.settings.flow_ttl.as_millis() as i64;
        let key = self.keys.get_or_create(user_id).await?;
        let ctx = SealContext::new(user_id, &provider.id, FLOW_LINK_FIELD);
        for _ in 0..START_ATTEMPTS {
            let now = self.now();
            let fresh_until = now + ttl / 2;
            // Flows expiring by then stop being handed out; all of them if one's link
            // can't be opened (it would hold the slot).
            let mut retire_by = fresh_until;
            if let Some(flow) = self
                .store
                .find_reusable_flow(user_id, &provider.id, &scopes, fresh_until)
                .await?
                && let Some(sealed) = &flow.link_sealed
            {
                match key.open_string(&ctx, sealed) {
                    Ok(link) => return Ok(self.pending_authorization(flow, link.expose())),
                    Err(e) => {
                        tracing::warn!(flow = %flow.id, error = %e, "a pending flow's link cannot be opened; starting another");
                        retire_by = i64::MAX;
                    }
                }
            }
            self.store
                .retire_reusable_flows(user_id, &provider.id, &scopes, retire_by)
                .await?;
            // The link token is a bearer secret: the row keeps its hash for lookups and a
            // sealed copy for handing it out again.
            let link = random_token();
            let flow = FlowRecord {
                id: uuid::Uuid::now_v7().to_string(),
                user_id: user_id.to_string(),
                provider_id: provider.id.clone(),
                scopes: scopes.clone(),
                status: "pending".into(),
                link_hash: sha256_hex(&link),
                link_used: false,
                state_hash: None,
                state_used: false,
                pkce_verifier_sealed: None,
                next_uri: next_uri.map(str::to_string),
                failure_reason: None,
                pending_grant_sealed: None,
                created_at_ms: now,
                expires_at_ms: now + ttl,
                completed_at_ms: None,
                link_sealed: Some(key.seal_str(&ctx, &link)),
            };
            match self.store.insert_flow(&flow).await {
                Ok(()) => {
                    tracing::info!(flow = %flow.id, user_id, provider = %provider.id, "authorization flow started");
                    return Ok(self.pending_authorization(flow, &link));
                }
                // A concurrent caller's flow took the slot: the next round reuses it.
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AuthError::ProviderUnavailable(
            "could not start an authorization flow: too many at once; try again".into(),
        ))
    }

    fn pending_authorization(&self, flow: FlowRecord, link: &str) -> Authorization {
        Authorization {
            id: Some(flow.id),
            status: FlowStatus::Pending,
            url: Some(format!("{}/v1/oauth/link/{link}", self.public_url)),
            scopes: flow.scopes,
            provider_id: flow.provider_id,
            user_id: flow.user_id,
            token: None,
            user_info: None,
            failure_reason: None,
        }
    }

    /// Deletes flows that expired (or finished, if later) more than [`FLOW_RETENTION`]
    /// before `now_ms`; returns how many.
    pub async fn sweep_flows(&self, now_ms: i64) -> Result<u64, AuthError> {
        let before = now_ms - FLOW_RETENTION.as_millis() as i64;
        let mut total = 0;
        loop {
            let n = self.store.sweep_flows(before, SWEEP_BATCH).await?;
            total += n;
            if n < u64::from(SWEEP_BATCH) {
                return Ok(total);
            }
        }
    }

    /// [`AuthService::sweep_flows`] every few minutes, off the request path, until
    /// `shutdown` changes.
    pub(super) async fn sweep_flows_periodically(
        &self,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut ticker = tokio::time::interval(SWEEP_EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.changed() => break,
            }
            match self.sweep_flows(self.now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(flows = n, "swept old authorization flows"),
                Err(e) => tracing::warn!(error = %e, "could not sweep old authorization flows"),
            }
        }
    }

    /// `GET /v1/oauth/link/{token}`: works once, before the flow expires. Mints the
    /// state and PKCE verifier now and returns the provider's authorization URL.
    pub async fn follow_link(&self, link: &str) -> Result<String, CallbackOutcome> {
        let expired = || {
            page(
                400,
                "Link expired",
                "This authorization link has expired or was already used. Ask the application for a new one.",
            )
        };
        let Some(flow) = self
            .store
            .find_flow_by_link(&sha256_hex(link))
            .await
            .map_err(internal_page)?
        else {
            return Err(expired());
        };
        let Some(provider) = self.providers.by_id(&flow.provider_id) else {
            return Err(page(
                400,
                "Provider unavailable",
                "The account provider for this link is no longer configured.",
            ));
        };
        let state = random_token();
        let verifier = provider.pkce.then(random_token);
        let sealed_verifier = match &verifier {
            Some(v) => {
                let key = self
                    .keys
                    .get_or_create(&flow.user_id)
                    .await
                    .map_err(internal_page)?;
                Some(key.seal_str(
                    &SealContext::new(&flow.user_id, &flow.provider_id, field::PKCE_VERIFIER),
                    v,
                ))
            }
            None => None,
        };
        let claimed = self
            .store
            .claim_flow_link(
                &flow.id,
                &sha256_hex(&state),
                sealed_verifier.as_deref(),
                self.now(),
            )
            .await
            .map_err(internal_page)?;
        if !claimed {
            return Err(expired());
        }
        let challenge = verifier.as_deref().map(pkce_challenge);
        Ok(provider.authorization_url(
            &self.redirect_uri(),
            &state,
            &flow.scopes,
            challenge.as_deref(),
        ))
    }

    /// `GET /v1/oauth/callback`.
    pub async fn callback(&self, params: CallbackParams) -> CallbackOutcome {
        match self.handle_callback(params).await {
            Ok(outcome) | Err(outcome) => outcome,
        }
    }

    async fn handle_callback(
        &self,
        params: CallbackParams,
    ) -> Result<CallbackOutcome, CallbackOutcome> {
        let invalid = || {
            page(
                400,
                "Invalid or replayed request",
                "This sign-in response is not valid: it was already used, has expired, or was not started here. Start again from the application.",
            )
        };
        let Some(state) = params.state.as_deref().filter(|s| !s.is_empty()) else {
            return Err(invalid());
        };
        let Some(mut flow) = self
            .store
            .find_flow_by_state(&sha256_hex(state))
            .await
            .map_err(internal_page)?
        else {
            return Err(invalid());
        };
        if !self
            .store
            .claim_flow_state(&flow.id)
            .await
            .map_err(internal_page)?
        {
            tracing::warn!(flow = %flow.id, "replayed OAuth state refused");
            return Err(invalid());
        }
        if flow.status != "pending" {
            return Err(invalid());
        }
        let now = self.now();
        if flow.expires_at_ms <= now {
            self.fail_flow(&mut flow, "the authorization flow expired")
                .await;
            return Err(page(
                400,
                "Authorization expired",
                "This authorization took too long and has expired. Start again from the application.",
            ));
        }
        if let Some(error) = params.error.as_deref() {
            let reason = match error {
                "access_denied" => "access_denied: the user declined access".to_string(),
                other => format!(
                    "{}: {}",
                    sanitize(other),
                    params
                        .error_description
                        .as_deref()
                        .map(sanitize)
                        .unwrap_or_default()
                ),
            };
            // Provider text reaches the page, the flow and the log: never unfiltered.
            let reason = self.scrub_provider_text(&flow.provider_id, &reason);
            self.fail_flow(&mut flow, &reason).await;
            return Err(page(
                400,
                "Authorization not completed",
                format!("The provider did not grant access ({reason}). You can close this window."),
            ));
        }
        let Some(code) = params.code.as_deref().filter(|c| !c.is_empty()) else {
            self.fail_flow(&mut flow, "the provider sent no code").await;
            return Err(page(
                400,
                "Authorization not completed",
                "The provider sent no authorization code.",
            ));
        };
        let Some(provider) = self.providers.by_id(&flow.provider_id) else {
            self.fail_flow(&mut flow, "the provider is no longer configured")
                .await;
            return Err(page(
                400,
                "Provider unavailable",
                "The account provider is no longer configured.",
            ));
        };
        let key = self
            .keys
            .get_or_create(&flow.user_id)
            .await
            .map_err(internal_page)?;
        let verifier = match &flow.pkce_verifier_sealed {
            Some(sealed) => Some(
                key.open_string(
                    &SealContext::new(&flow.user_id, &flow.provider_id, field::PKCE_VERIFIER),
                    sealed,
                )
                .map_err(internal_page)?,
            ),
            None => None,
        };
        let tokens = match provider
            .exchange_code(
                &self.http,
                &self.redirect_uri(),
                code,
                verifier.as_ref().map(|v| v.expose()),
            )
            .await
        {
            Ok(t) => t,
            Err(e) => {
                let reason = format!("code exchange failed: {e}");
                self.fail_flow(&mut flow, &reason).await;
                return Err(page(
                    502,
                    "Authorization not completed",
                    format!("The provider did not accept the sign-in ({e})."),
                ));
            }
        };
        let user_info = match provider
            .user_info(&self.http, tokens.access_token.expose())
            .await
        {
            Ok(info) => info,
            Err(e) => {
                tracing::warn!(provider = %provider.id, error = %e, "user info request failed; continuing without it");
                None
            }
        };
        let grant = PendingGrant {
            expires_at_ms: lifetime_ms(tokens.expires_in).map(|l| now.saturating_add(l)),
            lifetime_ms: lifetime_ms(tokens.expires_in),
            scopes: normalise_scopes(
                flow.scopes
                    .iter()
                    .cloned()
                    .chain(tokens.scopes.clone().unwrap_or_default()),
            ),
            user_info: user_info.as_ref().map(|v| v.to_string()),
            provider_user_id: tokens
                .provider_user_id
                .clone()
                .or_else(|| user_info.as_ref().and_then(user_id_hint)),
            // Moved, not copied: the grant is now the only holder of the tokens.
            refresh_token: tokens.refresh_token,
            access_token: tokens.access_token,
        };

        if let Some(verifier_url) = self.verifier_url() {
            let sealed = grant
                .seal(&key, &flow.user_id, &flow.provider_id)
                .map_err(internal_page)?;
            flow.status = "awaiting_verification".into();
            flow.pending_grant_sealed = Some(sealed);
            self.store.update_flow(&flow).await.map_err(internal_page)?;
            self.flow_changed.notify_waiters();
            let mut url = url::Url::parse(verifier_url).map_err(internal_page)?;
            url.query_pairs_mut().append_pair("flow_id", &flow.id);
            return Ok(CallbackOutcome::Redirect(url.to_string()));
        }
        self.save_grant(&flow, &provider, grant)
            .await
            .map_err(internal_page)?;
        self.complete_flow(&mut flow).await.map_err(internal_page)?;
        Ok(match &flow.next_uri {
            Some(next) => CallbackOutcome::Redirect(next.clone()),
            None => page(
                200,
                "Account connected",
                format!(
                    "Your {} account is connected. You can close this window and return to the application.",
                    provider
                        .description
                        .clone()
                        .unwrap_or_else(|| provider.provider_id.clone())
                ),
            ),
        })
    }

    async fn save_grant(
        &self,
        flow: &FlowRecord,
        provider: &Provider,
        grant: PendingGrant,
    ) -> Result<ConnectionRecord, AuthError> {
        let key = self.keys.get_or_create(&flow.user_id).await?;
        let ctx = |f: &'static str| SealContext::new(&flow.user_id, &flow.provider_id, f);
        let now = self.now();
        let record = ConnectionRecord {
            id: uuid::Uuid::now_v7().to_string(),
            user_id: flow.user_id.clone(),
            provider_id: provider.id.clone(),
            provider_service: provider.provider_id.clone(),
            status: "active".into(),
            scopes: grant.scopes,
            access_token_sealed: key
                .seal_str(&ctx(field::ACCESS_TOKEN), grant.access_token.expose()),
            refresh_token_sealed: grant
                .refresh_token
                .as_ref()
                .map(|rt| key.seal_str(&ctx(field::REFRESH_TOKEN), rt.expose())),
            expires_at_ms: grant.expires_at_ms,
            user_info: grant.user_info,
            provider_user_id: grant.provider_user_id,
            created_at_ms: now,
            updated_at_ms: now,
            version: 0,
            token_lifetime_ms: grant.lifetime_ms,
        };
        let stored = self.store.upsert_connection(&record).await?;
        self.connections
            .forget(&stored.user_id, &stored.provider_id);
        self.refresh.forget(&stored.id);
        tracing::info!(user_id = %flow.user_id, provider = %provider.id, connection = %stored.id, "connection saved");
        Ok(stored)
    }

    async fn complete_flow(&self, flow: &mut FlowRecord) -> Result<(), AuthError> {
        flow.status = "completed".into();
        flow.completed_at_ms = Some(self.now());
        flow.pending_grant_sealed = None;
        flow.pkce_verifier_sealed = None;
        self.store.update_flow(flow).await?;
        self.flow_changed.notify_waiters();
        Ok(())
    }

    /// Text that may hold what a provider said, fit to store, show and log: the
    /// provider's client secret (every encoding) replaced and the length capped.
    fn scrub_provider_text(&self, provider_id: &str, text: &str) -> String {
        match self.providers.by_id(provider_id) {
            Some(provider) => provider.scrub(text),
            None => sanitize(text),
        }
    }

    async fn fail_flow(&self, flow: &mut FlowRecord, reason: &str) {
        // Every failure reason is stored, returned by /v1/auth/status and logged.
        let reason = self.scrub_provider_text(&flow.provider_id, reason);
        let reason = reason.as_str();
        flow.status = "failed".into();
        flow.failure_reason = Some(reason.to_string());
        flow.pending_grant_sealed = None;
        flow.pkce_verifier_sealed = None;
        flow.completed_at_ms = Some(self.now());
        if let Err(e) = self.store.update_flow(flow).await {
            tracing::error!(flow = %flow.id, error = %e, "could not mark flow failed");
        }
        tracing::info!(flow = %flow.id, reason, "authorization flow failed");
        self.flow_changed.notify_waiters();
    }

    /// `POST /v1/auth/confirm_user`: the application says who is signed in on its side.
    /// Only the flow's own user makes the grant usable; anyone else fails the flow and
    /// the pending grant is erased, so a shared link cannot bind a victim's account.
    pub async fn confirm_user(
        &self,
        flow_id: &str,
        user_id: &str,
    ) -> Result<(String, Option<String>), AuthError> {
        let mut flow = self
            .store
            .get_flow(flow_id)
            .await?
            .ok_or_else(|| AuthError::UnknownFlow(flow_id.to_string()))?;
        if flow.status != "awaiting_verification" {
            return Err(AuthError::BadRequest(format!(
                "authorization '{flow_id}' is not awaiting user verification (status: {})",
                FlowStatus::from_stored(&flow.status).as_str()
            )));
        }
        if flow.user_id != user_id {
            self.fail_flow(
                &mut flow,
                "user verification failed: confirmed by a different user",
            )
            .await;
            return Err(AuthError::Forbidden(format!(
                "authorization '{flow_id}' was started for a different user; it has been cancelled"
            )));
        }
        let provider = self
            .providers
            .by_id(&flow.provider_id)
            .ok_or_else(|| AuthError::UnknownProvider(format!("'{}'", flow.provider_id)))?;
        let sealed = flow
            .pending_grant_sealed
            .clone()
            .ok_or_else(|| AuthError::BadRequest("nothing to confirm".into()))?;
        let key = self.keys.get_or_create(&flow.user_id).await?;
        let grant = PendingGrant::open(&key, &flow.user_id, &flow.provider_id, &sealed)?;
        self.save_grant(&flow, &provider, grant).await?;
        self.complete_flow(&mut flow).await?;
        Ok((flow.id.clone(), flow.next_uri.clone()))
    }

    /// `GET /v1/auth/status?id=&wait=`: answers at once, or holds until the flow
    /// completes or fails, at most `wait` (capped at 59 s).
    pub async fn status(&self, flow_id: &str, wait: Duration) -> Result<Authorization, AuthError> {
        let deadline = tokio::time::Instant::now() + wait.min(MAX_STATUS_WAIT);
        loop {
            let notified = self.flow_changed.notified();
            let flow = self
                .store
                .get_flow(flow_id)
                .await?
                .ok_or_else(|| AuthError::UnknownFlow(flow_id.to_string()))?;
            let mut status = FlowStatus::from_stored(&flow.status);
            let mut reason = flow.failure_reason.clone();
            if status == FlowStatus::Pending && flow.expires_at_ms <= self.now() && !flow.state_used
            {
                status = FlowStatus::Failed;
                reason = Some("the authorization flow expired".into());
            }
            if status != FlowStatus::Pending || tokio::time::Instant::now() >= deadline {
                return Ok(Authorization {
                    id: Some(flow.id),
                    status,
                    url: None,
                    scopes: flow.scopes,
                    provider_id: flow.provider_id,
                    user_id: flow.user_id,
                    token: None,
                    user_info: None,
                    failure_reason: reason,
                });
            }
            // Another replica's change is seen by the next store read.
            let poll = tokio::time::sleep(Duration::from_millis(250));
            tokio::select! {
                _ = notified => {}
                _ = poll => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
}

/// A provider's error text goes into a page and a stored reason: keep it short and plain.
fn sanitize(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(200).collect()
}

fn internal_page(e: impl std::fmt::Display) -> CallbackOutcome {
    tracing::error!(error = %e, "authorization callback failed");
    page(
        500,
        "Something went wrong",
        "The gateway could not complete the authorization. Try again from the application.",
    )
}

fn user_id_hint(info: &serde_json::Value) -> Option<String> {
    ["sub", "id", "user_id", "account_id"]
        .iter()
        .find_map(|k| match info.get(*k) {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
}
