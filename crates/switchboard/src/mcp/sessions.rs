//! Handshake-era sessions in our store: rmcp keeps a live session in memory; the store
//! row binds its id to the user and gateway it was started for, and holds the client's
//! `initialize` so any replica (or this one, after the in-memory session idled out) can
//! restore it without the client noticing.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use rmcp::model::InitializeRequestParams;
use rmcp::transport::streamable_http_server::session::store::{
    SessionState, SessionStore, SessionStoreError,
};
use serde_json::Value;

use super::{Ctx, Mcp, now_ms};
use crate::store::{McpSessionRecord, Store};

/// Sessions unused this long are pruned from the store.
const SESSION_IDLE_MS: i64 = 24 * 3600 * 1000;
/// `last_seen` is written at most this often per session.
const TOUCH_EVERY_MS: i64 = 60 * 1000;
const PRUNE_EVERY_MS: i64 = 10 * 60 * 1000;
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
        let mut initialize: Value =
            serde_json::from_str(&record.client_json).map_err(SessionError::Unreadable)?;
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
        let now = now_ms();
        let record = McpSessionRecord {
            id: session_id.to_string(),
            user_id: ctx.user.clone(),
            gateway: ctx.slug().map(str::to_string),
            protocol_version: state.initialize_params.protocol_version.to_string(),
            client_json: serde_json::to_string(&state.initialize_params)?,
            created_at_ms: now,
            last_seen_ms: now,
        };
        self.store.put_mcp_session(&record).await?;
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
    match bindings.fresh(session_id, ctx, now_ms()) {
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
    let now = now_ms();
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

/// Drops sessions idle for a day, at most every ten minutes, off the request's path.
pub(super) fn prune_now_and_then(mcp: &Mcp) {
    let now = now_ms();
    let last = mcp.hub.last_prune_ms.load(Ordering::Relaxed);
    if now - last < PRUNE_EVERY_MS
        || mcp
            .hub
            .last_prune_ms
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    let store = mcp.app.store.clone();
    tokio::spawn(async move {
        match store.prune_mcp_sessions(now - SESSION_IDLE_MS).await {
            Ok(n) if n > 0 => tracing::info!(sessions = n, "idle MCP sessions pruned"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not prune MCP sessions"),
        }
    });
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
            gateway: None,
        };
        SERVING
            .scope(ctx, sessions.store("s1", &handshake()))
            .await
            .unwrap();
        let record = sessions.store.get_mcp_session("s1").await.unwrap().unwrap();
        assert_eq!(record.user_id, "alice");
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
            gateway: None,
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
}
