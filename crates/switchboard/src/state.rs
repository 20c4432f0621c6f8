//! The gateway's shared state: the parts a request may use, each named by what it is.
//! `server` builds one [`AppState`] per process; `api` and `mcp` both serve from it.
//!
//! Owns nothing itself: every part is an `Arc` (or a token) built and owned by `server`.
//! Must not: import `api`, `mcp`, `server` or anything else above it. MCP's live sessions
//! are not here: they are the MCP endpoint's own (`mcp::Endpoint`), built from this state.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::Config;
use crate::exec::Executor;
use crate::identity::Authenticator;
use crate::oauth::AuthService;
use crate::store::Store;
use crate::workers::WorkerRegistry;

/// Everything a handler may use. Cheap to clone (each part is shared).
#[derive(Clone)]
pub struct AppState {
    /// The resolved configuration, read-only while the process runs.
    pub config: Arc<Config>,
    /// Who is calling: API keys, user tokens, dev-mode loopback.
    pub identity: Arc<Authenticator>,
    /// Users' OAuth grants and their flows (the executor asks it for grants too).
    pub oauth: Arc<AuthService>,
    /// The configured workers and the catalog of tools they and the built-ins serve.
    pub workers: Arc<WorkerRegistry>,
    /// Runs every tool call, whichever door it came through.
    pub executor: Arc<Executor>,
    /// Keys, executions, MCP sessions and everything else kept across restarts.
    pub store: Arc<dyn Store>,
    /// What time it is, for everything that expires (a manual one in tests).
    pub clock: Clock,
    /// Cancelled when the gateway stops taking requests: long-lived MCP streams end, so
    /// the calls in flight are all that shutdown waits for.
    pub stopping: CancellationToken,
}
