//! Handshake-era sessions in our store: rmcp keeps a live session in memory; the store
//! row binds its id to the user and gateway it was started for, and holds the client's
//! `initialize` so any replica (or this one, after the in-memory session idled out) can
//! restore it without the client noticing.

use std::sync::Arc;
use std::sync::atomic::Ordering;

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
        tracing::info!(user_id = %ctx.user, gateway = ?ctx.slug(),
            version = %record.protocol_version, "MCP session started");
        Ok(())
    }

    async fn delete(&self, session_id: &str) -> Result<(), SessionStoreError> {
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
pub(super) async fn check_binding(mcp: &Mcp, ctx: &Ctx, session_id: &str) -> Result<(), Refused> {
    let session = match mcp.app.store.get_mcp_session(session_id).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(Refused::NotFound),
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
    if now - session.last_seen_ms > TOUCH_EVERY_MS
        && let Err(e) = mcp.app.store.touch_mcp_session(&session.id, now).await
    {
        tracing::warn!(error = %e, "could not touch MCP session");
    }
    Ok(())
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
        (dir, StoredSessions { store })
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
