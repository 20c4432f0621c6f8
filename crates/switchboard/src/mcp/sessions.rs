//! Handshake-era sessions in our store: rmcp keeps a live session in memory; the store
//! row binds its id to the user and gateway it was started for, and holds the client's
//! `initialize` so any replica (or this one, after the in-memory session idled out) can
//! restore it without the client noticing.
//!
//! Sessions are bounded three ways (an attacker's 300 `initialize`s of 1 MB each once took
//! 400 MB of memory and 300 MB of disk): a session keeps only a bounded digest of its
//! client's `initialize` (`bounded_initialize`); new sessions are refused past
//! `api.mcp_max_sessions_per_user` (per user and credential) and `api.mcp_max_sessions`
//! (`admit`); and sessions idle past `api.mcp_session_lifetime` are deleted by a
//! periodic sweep (`spawn_sweeper`), with or without traffic.
//!
//! Lifetimes and the binding cache's TTL are measured by the hub's [`Clock`] (tests
//! advance it); how often the sweep runs is real time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::Response;
use rmcp::model::InitializeRequestParams;
use rmcp::transport::streamable_http_server::session::store::{
    SessionState, SessionStore, SessionStoreError,
};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::{Ctx, Mcp, http_error};
use crate::clock::Clock;
use crate::identity::Caller;
use crate::store::{McpSessionRecord, Store, StoreError};

/// `last_seen` is written at most this often per session.
const TOUCH_EVERY_MS: i64 = 60 * 1000;
/// The sweep of expired sessions runs every quarter of their lifetime, within these.
const SWEEP_EVERY_MIN: Duration = Duration::from_millis(250);
const SWEEP_EVERY_MAX: Duration = Duration::from_secs(10 * 60);
/// Largest `initialize` request taken. Real ones are a few hundred bytes; anything
/// larger is refused before it is parsed again or reaches rmcp.
pub(super) const INITIALIZE_MAX_BYTES: usize = 64 * 1024;
/// Longest client name, title or version a session keeps, in bytes.
pub(super) const CLIENT_TEXT_MAX: usize = 256;
/// Longest protocol version kept (real ones are 10 bytes); a longer one is no version
/// rmcp knows either way.
const VERSION_MAX: usize = 32;
/// Most `capabilities.extensions` a session keeps, by name only, and their longest name.
const EXTENSIONS_MAX: usize = 16;
const EXTENSION_NAME_MAX: usize = 128;
/// How long a binding read from the store is trusted. A session's user and gateway never
/// change; a deleted session stops working on every replica within this time, as a revoked
/// key does (`identity::DEFAULT_KEY_CACHE_TTL`).
const BINDING_TTL_MS: i64 = 10 * 1000;

tokio::task_local! {
    /// Who the request being served acts for. rmcp persists a new session from inside
    /// the `initialize` request it is serving, on that request's task, so the binding is
    /// written in the same row as the session, with nothing to reconcile later.
    pub(super) static SERVING: Ctx;
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("no authenticated request to bind the session to")]
    Unbound,
    #[error("the session record does not hold a client initialize: {0}")]
    Unreadable(serde_json::Error),
}

/// rmcp's session store, over ours.
pub(super) struct StoredSessions {
    pub store: Arc<dyn Store>,
    pub bindings: Arc<Bindings>,
    /// Stamps a new session's creation and last use.
    pub clock: Clock,
}

/// Sessions' bindings recently read from (or written to) the store, so a session's
/// requests do not each pay a store read.
#[derive(Default)]
pub(super) struct Bindings {
    state: Mutex<BindingCache>,
}

#[derive(Default)]
struct BindingCache {
    by_session: HashMap<String, Binding>,
    swept_ms: i64,
}

struct Binding {
    user: String,
    gateway: Option<String>,
    facts: SessionFacts,
    read_ms: i64,
    /// When a request of this session last went through rmcp (0: not since this entry).
    rmcp_seen_ms: i64,
}

/// What a direct `tools/call` (`direct`) needs to know of a session's handshake.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct SessionFacts {
    /// The version the client asked for in its `initialize`.
    pub version: String,
    /// Whether the client declared URL elicitation.
    pub asks_by_url: bool,
}

impl SessionFacts {
    fn of(params: &InitializeRequestParams) -> Self {
        Self {
            version: params.protocol_version.to_string(),
            asks_by_url: super::server::asks_by_url(Some(&params.capabilities)),
        }
    }

    /// From a store row: its version column and the client's `initialize` as JSON.
    fn of_record(record: &McpSessionRecord) -> Self {
        let asks_by_url = serde_json::from_str::<Value>(&record.client_json)
            .ok()
            .is_some_and(|v| v.pointer("/capabilities/elicitation/url").is_some());
        Self {
            version: record.protocol_version.clone(),
            asks_by_url,
        }
    }
}

/// A session a request may use, as `check_binding` found it.
pub(super) struct Admitted {
    pub facts: SessionFacts,
    /// When a request of this session last went through rmcp, as far as this replica
    /// remembers (0: not recently).
    pub rmcp_seen_ms: i64,
}

impl Bindings {
    fn state(&self) -> std::sync::MutexGuard<'_, BindingCache> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The binding of `session_id` if read within the TTL: `Some(Ok)` if it binds the
    /// session to `ctx`, `Some(Err)` if to someone else.
    fn fresh(&self, session_id: &str, ctx: &Ctx, now: i64) -> Option<Result<Admitted, ()>> {
        let mut state = self.state();
        if now - state.swept_ms > BINDING_TTL_MS {
            state.sweep(now);
        }
        let b = state.by_session.get(session_id)?;
        (now - b.read_ms < BINDING_TTL_MS).then(|| {
            if b.user == ctx.user && b.gateway.as_deref() == ctx.slug() {
                Ok(Admitted {
                    facts: b.facts.clone(),
                    rmcp_seen_ms: b.rmcp_seen_ms,
                })
            } else {
                Err(())
            }
        })
    }

    fn remember(
        &self,
        session_id: &str,
        user: &str,
        gateway: Option<&str>,
        facts: SessionFacts,
        now: i64,
    ) {
        let mut state = self.state();
        let rmcp_seen_ms = state
            .by_session
            .get(session_id)
            .map_or(0, |b| b.rmcp_seen_ms);
        state.by_session.insert(
            session_id.to_string(),
            Binding {
                user: user.to_string(),
                gateway: gateway.map(str::to_string),
                facts,
                read_ms: now,
                rmcp_seen_ms,
            },
        );
    }

    /// Notes that a request of `session_id` is going through rmcp.
    pub fn saw_rmcp(&self, session_id: &str, now: i64) {
        if let Some(b) = self.state().by_session.get_mut(session_id) {
            b.rmcp_seen_ms = now;
        }
    }

    fn forget(&self, session_id: &str) {
        self.state().by_session.remove(session_id);
    }

    /// Drops bindings past the TTL (those of parked sessions among them).
    pub fn sweep(&self, now: i64) {
        self.state().sweep(now);
    }
}

impl BindingCache {
    fn sweep(&mut self, now: i64) {
        self.by_session
            .retain(|_, b| now - b.read_ms < BINDING_TTL_MS);
        if self.by_session.is_empty() {
            // A map that once held every session keeps its table otherwise.
            self.by_session = HashMap::new();
        }
        self.swept_ms = now;
    }
}

#[async_trait::async_trait]
impl SessionStore for StoredSessions {
    async fn load(&self, session_id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        let Some(record) = self.store.get_mcp_session(session_id).await? else {
            return Ok(None);
        };
        let stored: Value =
            serde_json::from_str(&record.client_json).map_err(SessionError::Unreadable)?;
        // Rows written before sessions were bounded may hold a client's whole `initialize`.
        let mut initialize = bounded_initialize(&stored);
        // Rows written before sessions moved to rmcp hold capabilities and client info
        // without the version, which has its own column.
        if let Value::Object(fields) = &mut initialize {
            fields
                .entry("protocolVersion")
                .or_insert_with(|| Value::String(record.protocol_version.clone()));
        }
        let params: InitializeRequestParams =
            serde_json::from_value(initialize).map_err(SessionError::Unreadable)?;
        Ok(Some(SessionState::new(params)))
    }

    async fn store(&self, session_id: &str, state: &SessionState) -> Result<(), SessionStoreError> {
        let ctx = SERVING
            .try_with(Ctx::clone)
            .map_err(|_| SessionError::Unbound)?;
        let now = self.clock.now_ms();
        // `handle` already cut the `initialize` down; this keeps the row bounded whoever
        // calls.
        let client = bounded_initialize(&serde_json::to_value(&state.initialize_params)?);
        let record = McpSessionRecord {
            id: session_id.to_string(),
            user_id: ctx.user.clone(),
            gateway: ctx.slug().map(str::to_string),
            protocol_version: state.initialize_params.protocol_version.to_string(),
            client_json: serde_json::to_string(&client)?,
            created_at_ms: now,
            last_seen_ms: now,
        };
        let credential = ctx.credential.as_deref().unwrap_or_default();
        self.store.put_mcp_session_of(&record, credential).await?;
        self.bindings.remember(
            session_id,
            &record.user_id,
            record.gateway.as_deref(),
            SessionFacts::of(&state.initialize_params),
            now,
        );
        // The `initialize` storing it is going through rmcp.
        self.bindings.saw_rmcp(session_id, now);
        tracing::info!(user_id = %ctx.user, gateway = ?ctx.slug(),
            version = %record.protocol_version, "MCP session started");
        Ok(())
    }

    async fn delete(&self, session_id: &str) -> Result<(), SessionStoreError> {
        self.bindings.forget(session_id);
        self.store.delete_mcp_session(session_id).await?;
        Ok(())
    }
}

/// Why a request naming a session may not go on.
pub(super) enum Refused {
    /// Unknown, ended, or bound to another user or gateway: the client starts over.
    NotFound,
    Unavailable,
}

/// Lets a request with `Mcp-Session-Id` through only if the session was started for this
/// caller's user and gateway. A session id is a bearer of nothing on its own.
pub(super) async fn check_binding(
    mcp: &Mcp,
    ctx: &Ctx,
    session_id: &str,
) -> Result<Admitted, Refused> {
    let bindings = &mcp.hub.bindings;
    match bindings.fresh(session_id, ctx, mcp.hub.clock.now_ms()) {
        Some(Ok(admitted)) => return Ok(admitted),
        Some(Err(())) => {
            tracing::warn!(user_id = %ctx.user, "MCP session id used for another user or gateway");
            return Err(Refused::NotFound);
        }
        None => {}
    }
    let session = match mcp.app.store.get_mcp_session(session_id).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            bindings.forget(session_id);
            return Err(Refused::NotFound);
        }
        Err(e) => {
            tracing::error!(error = %e, "MCP session lookup failed");
            return Err(Refused::Unavailable);
        }
    };
    if session.user_id != ctx.user || session.gateway.as_deref() != ctx.slug() {
        tracing::warn!(user_id = %ctx.user, "MCP session id used for another user or gateway");
        return Err(Refused::NotFound);
    }
    let now = mcp.hub.clock.now_ms();
    if session.last_seen_ms < now - lifetime_ms(mcp.app.config.api.mcp_session_lifetime) {
        // Past its lifetime and not swept yet: over, as it will be once swept.
        return Err(Refused::NotFound);
    }
    let facts = SessionFacts::of_record(&session);
    bindings.remember(
        &session.id,
        &session.user_id,
        session.gateway.as_deref(),
        facts.clone(),
        now,
    );
    if now - session.last_seen_ms > TOUCH_EVERY_MS
        && let Err(e) = mcp.app.store.touch_mcp_session(&session.id, now).await
    {
        tracing::warn!(error = %e, "could not touch MCP session");
    }
    // Read from the store: this replica has not seen the session go through rmcp lately.
    Ok(Admitted {
        facts,
        rmcp_seen_ms: 0,
    })
}

fn lifetime_ms(lifetime: Duration) -> i64 {
    i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX)
}

/// Deletes the sessions not seen within `lifetime` before `now_ms`, live or parked;
/// returns how many. A live one's client starts over with its next request.
pub async fn sweep_expired(
    store: &dyn Store,
    lifetime: Duration,
    now_ms: i64,
) -> Result<u64, StoreError> {
    store
        .prune_mcp_sessions(now_ms.saturating_sub(lifetime_ms(lifetime)))
        .await
}

/// How often the sweep runs: a quarter of the lifetime, so an expired row lingers at
/// most that long (it is refused at once anyway, and no longer counted).
fn sweep_every(lifetime: Duration) -> Duration {
    (lifetime / 4).clamp(SWEEP_EVERY_MIN, SWEEP_EVERY_MAX)
}

/// Sweeps sessions expired by `clock` every [`sweep_every`] until `stopping`, traffic or
/// not. Every replica sweeps; the deletes are idempotent.
pub(super) fn spawn_sweeper(
    store: Arc<dyn Store>,
    lifetime: Duration,
    clock: Clock,
    stopping: CancellationToken,
) {
    let every = sweep_every(lifetime);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stopping.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            match sweep_expired(store.as_ref(), lifetime, clock.now_ms()).await {
                Ok(n) if n > 0 => tracing::info!(sessions = n, "expired MCP sessions deleted"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not delete expired MCP sessions"),
            }
        }
    });
}

// --- What a session keeps -----------------------------------------------------------

/// What a session keeps of its client's `initialize` params: the protocol version, the
/// capabilities the gateway acts on (elicitation and its modes, roots, sampling, the names
/// of extensions) and the client's name, version and title cut to `CLIENT_TEXT_MAX`
/// bytes. Experimental capabilities, extension settings, `_meta`, icons and descriptions
/// are dropped: a client could make them any size, and rmcp would hold them in memory
/// for the session's life and the store on disk until it ends.
pub(super) fn bounded_initialize(params: &Value) -> Value {
    let text = |v: Option<&Value>, max: usize| {
        v.and_then(Value::as_str)
            .map(|s| Value::String(truncated(s, max).to_string()))
    };
    let mut kept = Map::new();
    if let Some(version) = text(params.get("protocolVersion"), VERSION_MAX) {
        kept.insert("protocolVersion".into(), version);
    }
    let mut client = Map::new();
    for field in ["name", "version", "title"] {
        if let Some(value) = text(
            params.pointer(&format!("/clientInfo/{field}")),
            CLIENT_TEXT_MAX,
        ) {
            client.insert(field.into(), value);
        }
    }
    kept.insert(
        "capabilities".into(),
        Value::Object(bounded_capabilities(params.get("capabilities"))),
    );
    kept.insert("clientInfo".into(), Value::Object(client));
    Value::Object(kept)
}

fn bounded_capabilities(capabilities: Option<&Value>) -> Map<String, Value> {
    fn object(v: Option<&Value>) -> Option<&Map<String, Value>> {
        v.and_then(Value::as_object)
    }
    let flag = |v: &Map<String, Value>, name: &str| v.get(name).and_then(Value::as_bool);
    let mut kept = Map::new();
    let Some(capabilities) = object(capabilities) else {
        return kept;
    };
    if let Some(elicitation) = object(capabilities.get("elicitation")) {
        // `{}` (2025-06-18) means form elicitation; kept as it came.
        let mut modes = Map::new();
        if let Some(form) = object(elicitation.get("form")) {
            let mut f = Map::new();
            if let Some(v) = flag(form, "schemaValidation") {
                f.insert("schemaValidation".into(), v.into());
            }
            modes.insert("form".into(), Value::Object(f));
        }
        if object(elicitation.get("url")).is_some() {
            modes.insert("url".into(), Value::Object(Map::new()));
        }
        kept.insert("elicitation".into(), Value::Object(modes));
    }
    if let Some(roots) = object(capabilities.get("roots")) {
        let mut r = Map::new();
        if let Some(v) = flag(roots, "listChanged") {
            r.insert("listChanged".into(), v.into());
        }
        kept.insert("roots".into(), Value::Object(r));
    }
    if let Some(sampling) = object(capabilities.get("sampling")) {
        let mut s = Map::new();
        for field in ["tools", "context"] {
            if object(sampling.get(field)).is_some() {
                s.insert(field.into(), Value::Object(Map::new()));
            }
        }
        kept.insert("sampling".into(), Value::Object(s));
    }
    if let Some(extensions) = object(capabilities.get("extensions")) {
        let names: Map<String, Value> = extensions
            .keys()
            .filter(|name| name.len() <= EXTENSION_NAME_MAX)
            .take(EXTENSIONS_MAX)
            .map(|name| (name.clone(), Value::Object(Map::new())))
            .collect();
        kept.insert("extensions".into(), Value::Object(names));
    }
    kept
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn truncated(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The `initialize` message rmcp gets in place of the client's: the same id, its params
/// cut down by [`bounded_initialize`], nothing else. rmcp keeps the params it is given
/// for the session's life (the peer's info) and hands them to the store.
pub(super) fn shrink_initialize(body: &[u8]) -> Result<Bytes, serde_json::Error> {
    let message: Value = serde_json::from_slice(body)?;
    let mut shrunk = Map::new();
    shrunk.insert("jsonrpc".into(), "2.0".into());
    if let Some(id) = message.get("id") {
        shrunk.insert("id".into(), id.clone());
    }
    shrunk.insert("method".into(), "initialize".into());
    let params = message.get("params").unwrap_or(&Value::Null);
    shrunk.insert("params".into(), bounded_initialize(params));
    serde_json::to_vec(&shrunk).map(Bytes::from)
}

/// Readies an `initialize` that starts a session, before rmcp sees it: refused past
/// `INITIALIZE_MAX_BYTES` or a cap (nothing is created); else counted in flight until the
/// returned admission drops, and cut down to what a session keeps. `ctx` gets the
/// caller's credential, which `StoredSessions::store` writes beside the session.
pub(super) async fn start<'a>(
    mcp: &'a Mcp,
    ctx: &mut Ctx,
    caller: &Caller,
    body: &[u8],
) -> Result<(Admission<'a>, Bytes), Response> {
    if body.len() > INITIALIZE_MAX_BYTES {
        return Err(http_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("initialize request larger than {INITIALIZE_MAX_BYTES} bytes"),
        ));
    }
    let credential = credential_of(caller);
    let admission = match admit(mcp, &ctx.user, &credential).await {
        Ok(admission) => admission,
        Err(Full::Caller(max)) => {
            return Err(http_error(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "too many MCP sessions for this user through this credential \
                     (api.mcp_max_sessions_per_user = {max}): end the sessions no longer \
                     in use with DELETE, or raise the limit"
                ),
            ));
        }
        Err(Full::Total(max)) => {
            return Err(http_error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!(
                    "the gateway holds its most MCP sessions (api.mcp_max_sessions = \
                     {max}): end the sessions no longer in use with DELETE, or raise the \
                     limit"
                ),
            ));
        }
        Err(Full::Unavailable) => {
            return Err(http_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
            ));
        }
    };
    // `check_message` has read it as an `initialize`; this cannot fail but is not assumed.
    let shrunk = shrink_initialize(body)
        .map_err(|e| http_error(StatusCode::BAD_REQUEST, &format!("invalid initialize: {e}")))?;
    ctx.credential = Some(credential);
    Ok((admission, shrunk))
}

// --- How many sessions ----------------------------------------------------------------

/// The credential a session is counted under: which API key or user token started it, or
/// the dev-mode loopback caller. Ids, never secrets.
pub(super) fn credential_of(caller: &Caller) -> String {
    match caller {
        Caller::ApiKey { key_id, .. } => format!("key:{key_id}"),
        Caller::UserToken { token_id, .. } => format!("token:{token_id}"),
        Caller::DevLoopback => "loopback".into(),
    }
}

/// The `initialize` requests this process let through whose session may not be in the
/// store yet. Added to the store's counts, they keep a burst on one replica from passing
/// a cap; replicas see each other's sessions only once stored, so across replicas a burst
/// may pass it by as many `initialize`s as the others have in flight at that moment.
#[derive(Default)]
pub(super) struct Admissions {
    /// A std `Mutex`: held for a map update, never across an await.
    state: Mutex<InFlight>,
}

#[derive(Default)]
struct InFlight {
    /// By (user, credential).
    by_caller: HashMap<(String, String), u64>,
    total: u64,
}

/// One `initialize` in flight, counted until dropped (when rmcp has stored its session,
/// or failed to).
pub(super) struct Admission<'a> {
    admissions: &'a Admissions,
    key: (String, String),
}

impl Admissions {
    fn state(&self) -> std::sync::MutexGuard<'_, InFlight> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one more `initialize` of `user` through `credential`; returns it and the
    /// counts in flight (this one included) as they were when it entered. Whoever enters
    /// later counts this one, whoever entered earlier is counted here.
    fn enter(&self, user: &str, credential: &str) -> (Admission<'_>, u64, u64) {
        let key = (user.to_string(), credential.to_string());
        let mut state = self.state();
        state.total += 1;
        let total = state.total;
        let by_caller = state.by_caller.entry(key.clone()).or_default();
        *by_caller += 1;
        let caller = *by_caller;
        drop(state);
        let admission = Admission {
            admissions: self,
            key,
        };
        (admission, caller, total)
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        let mut state = self.admissions.state();
        state.total = state.total.saturating_sub(1);
        if let Some(n) = state.by_caller.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                state.by_caller.remove(&self.key);
            }
        }
    }
}

/// Why a new session is refused.
pub(super) enum Full {
    /// `api.mcp_max_sessions_per_user`, reached by this user through this credential.
    Caller(usize),
    /// `api.mcp_max_sessions`, reached by all callers together.
    Total(usize),
    /// The store could not count.
    Unavailable,
}

/// Lets a new session start if neither cap is reached, counting the store's sessions
/// (every replica's, live and parked, not expired) and this process's `initialize`s in
/// flight. Only an `initialize` pays this: one indexed count query.
pub(super) async fn admit<'a>(
    mcp: &'a Mcp,
    user: &str,
    credential: &str,
) -> Result<Admission<'a>, Full> {
    let api = &mcp.app.config.api;
    let (admission, caller_in_flight, total_in_flight) = mcp.hub.admissions.enter(user, credential);
    let since = mcp.hub.clock.now_ms() - lifetime_ms(api.mcp_session_lifetime);
    let stored = match mcp
        .app
        .store
        .count_mcp_sessions(user, credential, since)
        .await
    {
        Ok(count) => count,
        Err(e) => {
            tracing::error!(error = %e, "MCP session count failed");
            return Err(Full::Unavailable);
        }
    };
    let over = |stored: u64, in_flight: u64, max: usize| {
        stored.saturating_add(in_flight) > u64::try_from(max).unwrap_or(u64::MAX)
    };
    if over(
        stored.caller,
        caller_in_flight,
        api.mcp_max_sessions_per_user,
    ) {
        tracing::warn!(user_id = %user, limit = api.mcp_max_sessions_per_user,
            "MCP session refused: per-user limit reached");
        return Err(Full::Caller(api.mcp_max_sessions_per_user));
    }
    if over(stored.total, total_in_flight, api.mcp_max_sessions) {
        tracing::warn!(
            limit = api.mcp_max_sessions,
            "MCP session refused: limit reached"
        );
        return Err(Full::Total(api.mcp_max_sessions));
    }
    Ok(admission)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    async fn sessions() -> (tempfile::TempDir, StoredSessions) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("sb.db")).await.unwrap());
        (
            dir,
            StoredSessions {
                store,
                bindings: Arc::default(),
                clock: Clock::system(),
            },
        )
    }

    fn handshake() -> SessionState {
        let params: InitializeRequestParams = serde_json::from_value(serde_json::json!({
            "protocolVersion": "2025-11-25",
            "capabilities": {"elicitation": {"url": {}}},
            "clientInfo": {"name": "test", "version": "1"},
        }))
        .unwrap();
        SessionState::new(params)
    }

    #[tokio::test]
    async fn a_session_is_stored_with_the_caller_it_was_started_for_and_restores() {
        let (_dir, sessions) = sessions().await;
        let ctx = Ctx {
            user: "alice".into(),
            caller: Caller::DevLoopback,
            gateway: None,
            credential: Some("key:k1".into()),
        };
        SERVING
            .scope(ctx, sessions.store("s1", &handshake()))
            .await
            .unwrap();
        let record = sessions.store.get_mcp_session("s1").await.unwrap().unwrap();
        assert_eq!(record.user_id, "alice");
        let counted = sessions.store.count_mcp_sessions("alice", "key:k1", 0);
        assert_eq!(
            counted.await.unwrap().caller,
            1,
            "counted under its credential"
        );
        assert_eq!(record.protocol_version, "2025-11-25");
        let restored = sessions.load("s1").await.unwrap().unwrap();
        assert!(
            restored
                .initialize_params
                .capabilities
                .elicitation
                .is_some()
        );
        sessions.delete("s1").await.unwrap();
        assert!(sessions.load("s1").await.unwrap().is_none());
    }

    /// What `fresh` says, without the facts: `Some(bound to ctx?)`.
    fn bound(bindings: &Bindings, session: &str, ctx: &Ctx, now: i64) -> Option<bool> {
        bindings.fresh(session, ctx, now).map(|r| r.is_ok())
    }

    fn caller(user: &str) -> Ctx {
        Ctx {
            user: user.into(),
            caller: Caller::DevLoopback,
            gateway: None,
            credential: None,
        }
    }

    fn facts() -> SessionFacts {
        SessionFacts {
            version: "2025-11-25".into(),
            asks_by_url: true,
        }
    }

    #[test]
    fn a_binding_is_trusted_for_its_ttl_then_read_again() {
        let bindings = Bindings::default();
        let (alice, bob) = (caller("alice"), caller("bob"));
        assert_eq!(bound(&bindings, "s1", &alice, 1_000), None, "never read");
        bindings.remember("s1", "alice", None, facts(), 1_000);
        assert_eq!(
            bound(&bindings, "s1", &alice, 1_000 + BINDING_TTL_MS - 1),
            Some(true)
        );
        assert_eq!(
            bound(&bindings, "s1", &bob, 1_000 + BINDING_TTL_MS - 1),
            Some(false)
        );
        // Past the TTL the store decides again (a deleted session ends within it).
        assert_eq!(bound(&bindings, "s1", &alice, 1_000 + BINDING_TTL_MS), None);
        bindings.remember("s2", "alice", Some("dev"), facts(), 50_000);
        assert_eq!(
            bound(&bindings, "s2", &alice, 50_001),
            Some(false),
            "another gateway"
        );
        bindings.forget("s2");
        assert_eq!(bound(&bindings, "s2", &alice, 50_001), None);
        // Stale entries are swept, so parked sessions leave nothing behind here.
        bindings.fresh("s3", &alice, 200_000);
        assert!(bindings.state().by_session.is_empty());
    }

    #[test]
    fn a_binding_carries_the_handshake_and_when_rmcp_last_saw_the_session() {
        let bindings = Bindings::default();
        let alice = caller("alice");
        bindings.remember("s1", "alice", None, facts(), 1_000);
        let admitted = bindings.fresh("s1", &alice, 1_001).unwrap().unwrap();
        assert_eq!(admitted.facts, facts());
        assert_eq!(admitted.rmcp_seen_ms, 0, "not seen by rmcp yet");
        bindings.saw_rmcp("s1", 1_500);
        // Read again from the store, the entry keeps when rmcp last saw the session.
        bindings.remember("s1", "alice", None, facts(), 2_000);
        let admitted = bindings.fresh("s1", &alice, 2_001).unwrap().unwrap();
        assert_eq!(admitted.rmcp_seen_ms, 1_500);
    }

    #[test]
    fn a_stored_handshake_tells_its_version_and_whether_it_takes_url_elicitation() {
        let record = |client_json: &str| McpSessionRecord {
            id: "s".into(),
            user_id: "u".into(),
            gateway: None,
            protocol_version: "2025-06-18".into(),
            client_json: client_json.into(),
            created_at_ms: 1,
            last_seen_ms: 1,
        };
        let with_url = SessionFacts::of_record(&record(
            r#"{"capabilities":{"elicitation":{"url":{}}},"clientInfo":{"name":"c","version":"0"}}"#,
        ));
        assert_eq!(with_url.version, "2025-06-18");
        assert!(with_url.asks_by_url);
        let form_only = SessionFacts::of_record(&record(
            r#"{"capabilities":{"elicitation":{"form":{}}},"clientInfo":{"name":"c","version":"0"}}"#,
        ));
        assert!(!form_only.asks_by_url);
        assert!(!SessionFacts::of_record(&record("not json")).asks_by_url);
        assert!(SessionFacts::of(&handshake().initialize_params).asks_by_url);
    }

    #[tokio::test]
    async fn a_session_outside_an_authenticated_request_is_refused() {
        let (_dir, sessions) = sessions().await;
        assert!(sessions.store("s1", &handshake()).await.is_err());
        assert!(
            sessions
                .store
                .get_mcp_session("s1")
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_row_written_before_rmcp_restores_with_its_version_column() {
        let (_dir, sessions) = sessions().await;
        let old = McpSessionRecord {
            id: "old".into(),
            user_id: "bob".into(),
            gateway: None,
            protocol_version: "2025-06-18".into(),
            client_json: r#"{"capabilities":{},"clientInfo":{"name":"c","version":"0"}}"#.into(),
            created_at_ms: 1,
            last_seen_ms: 1,
        };
        sessions.store.put_mcp_session(&old).await.unwrap();
        let restored = sessions.load("old").await.unwrap().unwrap();
        assert_eq!(
            restored.initialize_params.protocol_version.to_string(),
            "2025-06-18"
        );
    }

    #[test]
    fn a_session_keeps_its_version_the_capabilities_that_matter_and_a_bounded_client_info() {
        let blob = "x".repeat(1 << 20);
        let long = format!("{}é", "n".repeat(CLIENT_TEXT_MAX - 1));
        let params = serde_json::json!({
            "_meta": {"junk": blob},
            "protocolVersion": "2025-11-25",
            "capabilities": {
                "experimental": {"blob": {"x": blob}},
                "elicitation": {"form": {"schemaValidation": true, "x": blob}, "url": {}},
                "roots": {"listChanged": true, "x": blob},
                "sampling": {"tools": {"x": blob}},
                "extensions": {"io.modelcontextprotocol/tasks": {"x": blob}},
            },
            "clientInfo": {
                "name": long, "version": blob, "title": "t",
                "description": blob, "icons": [{"src": blob}],
            },
        });
        let kept = bounded_initialize(&params);
        assert_eq!(
            kept["capabilities"],
            serde_json::json!({
                "elicitation": {"form": {"schemaValidation": true}, "url": {}},
                "roots": {"listChanged": true},
                "sampling": {"tools": {}},
                "extensions": {"io.modelcontextprotocol/tasks": {}},
            })
        );
        assert_eq!(kept["protocolVersion"], "2025-11-25");
        // Cut on a character boundary: the two-byte `é` does not fit.
        assert_eq!(kept["clientInfo"]["name"], "n".repeat(CLIENT_TEXT_MAX - 1));
        assert_eq!(kept["clientInfo"]["version"], "x".repeat(CLIENT_TEXT_MAX));
        assert_eq!(kept["clientInfo"]["title"], "t");
        assert!(kept.get("_meta").is_none());
        let text = serde_json::to_string(&kept).unwrap();
        assert!(text.len() < 1024, "{} bytes", text.len());
        // rmcp still reads it as an `initialize`, with URL elicitation.
        let typed: InitializeRequestParams = serde_json::from_value(kept).unwrap();
        assert!(SessionFacts::of(&typed).asks_by_url);
        assert!(typed.capabilities.supports_tasks());
    }

    #[test]
    fn the_initialize_rmcp_gets_keeps_its_id_and_the_bounded_params_only() {
        let body = serde_json::json!({
            "jsonrpc": "2.0", "id": "a-1", "method": "initialize", "extra": "x".repeat(5000),
            "params": {"protocolVersion": "2025-06-18", "capabilities": {"elicitation": {}},
                       "clientInfo": {"name": "c", "version": "1"}},
        });
        let shrunk = shrink_initialize(&serde_json::to_vec(&body).unwrap()).unwrap();
        let shrunk: Value = serde_json::from_slice(&shrunk).unwrap();
        assert_eq!(
            shrunk,
            serde_json::json!({
                "jsonrpc": "2.0", "id": "a-1", "method": "initialize",
                "params": {"protocolVersion": "2025-06-18",
                           "capabilities": {"elicitation": {}},
                           "clientInfo": {"name": "c", "version": "1"}},
            })
        );
    }

    #[tokio::test]
    async fn a_row_holding_a_whole_initialize_restores_bounded() {
        let (_dir, sessions) = sessions().await;
        let old = McpSessionRecord {
            id: "big".into(),
            user_id: "bob".into(),
            gateway: None,
            protocol_version: "2025-11-25".into(),
            client_json: serde_json::json!({
                "capabilities": {"experimental": {"x": {"y": "z".repeat(100_000)}}},
                "clientInfo": {"name": "c", "version": "0"},
            })
            .to_string(),
            created_at_ms: 1,
            last_seen_ms: 1,
        };
        sessions.store.put_mcp_session(&old).await.unwrap();
        let restored = sessions.load("big").await.unwrap().unwrap();
        assert!(
            restored
                .initialize_params
                .capabilities
                .experimental
                .is_none()
        );
    }

    #[test]
    fn the_sweep_runs_every_quarter_lifetime_within_bounds() {
        assert_eq!(sweep_every(Duration::from_secs(24 * 3600)), SWEEP_EVERY_MAX);
        assert_eq!(
            sweep_every(Duration::from_secs(60)),
            Duration::from_secs(15)
        );
        assert_eq!(sweep_every(Duration::from_millis(10)), SWEEP_EVERY_MIN);
    }

    #[test]
    fn initializes_in_flight_are_counted_until_dropped() {
        let admissions = Admissions::default();
        let (a, caller, total) = admissions.enter("alice", "key:1");
        assert_eq!((caller, total), (1, 1));
        let (b, caller, total) = admissions.enter("alice", "key:2");
        assert_eq!(
            (caller, total),
            (1, 2),
            "another credential is another bucket"
        );
        let (c, caller, total) = admissions.enter("alice", "key:1");
        assert_eq!((caller, total), (2, 3));
        drop((a, b, c));
        let state = admissions.state();
        assert_eq!(state.total, 0);
        assert!(state.by_caller.is_empty());
    }

    #[test]
    fn each_kind_of_caller_is_its_own_credential() {
        let key = Caller::ApiKey {
            key_id: "k1".into(),
            name: "n".into(),
        };
        let token = Caller::UserToken {
            token_id: "k1".into(),
            user_id: "alice".into(),
        };
        assert_eq!(credential_of(&key), "key:k1");
        assert_eq!(credential_of(&token), "token:k1");
        assert_eq!(credential_of(&Caller::DevLoopback), "loopback");
    }
}
