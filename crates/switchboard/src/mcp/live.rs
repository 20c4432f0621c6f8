//! The live handshake-era sessions of this process. One task watches the catalog and sends
//! `notifications/tools/list_changed` to each live session whose view of it changed. A session costs one entry here, not a task
//! of its own; the task stops when no session is left and starts again with the next.
//! As it drops the entries of parked sessions, it forgets their cached bindings and, once
//! their memory has been freed, has it returned (`memory`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::Peer;
use rmcp::RoleServer;

use super::memory;
use super::sessions::Bindings;
use crate::catalog::Catalog;
use crate::clock::Clock;
use crate::config::GatewayConfig;
use crate::exec::ToolView;
use crate::workers::WorkerRegistry;

/// How often the catalog is looked at.
const CATALOG_POLL: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(super) struct LiveSessions {
    state: Mutex<Watching>,
    bindings: Arc<Bindings>,
    /// What the bindings of parked sessions age by.
    clock: Clock,
}

#[derive(Default)]
struct Watching {
    sessions: Vec<Watched>,
    running: bool,
    /// Sessions parked (or ended) since free memory was last returned.
    parked_since_trim: usize,
}

struct Watched {
    gateway: Option<Arc<GatewayConfig>>,
    peer: Peer<RoleServer>,
}

impl LiveSessions {
    pub fn new(bindings: Arc<Bindings>, clock: Clock) -> Self {
        Self {
            state: Mutex::default(),
            bindings,
            clock,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Watching> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tell `peer` when the tools `gateway` exposes change, for as long as it is open.
    pub fn watch(
        self: &Arc<Self>,
        workers: &Arc<WorkerRegistry>,
        gateway: Option<Arc<GatewayConfig>>,
        peer: Peer<RoleServer>,
    ) {
        let mut state = self.state();
        state.sessions.push(Watched { gateway, peer });
        if !state.running {
            state.running = true;
            tokio::spawn(Arc::clone(self).run(Arc::clone(workers)));
        }
    }

    async fn run(self: Arc<Self>, workers: Arc<WorkerRegistry>) {
        // This process's catalog: a session served by another replica hears from that one.
        let mut last = workers.catalog().snapshot();
        loop {
            tokio::time::sleep(CATALOG_POLL).await;
            let now = workers.catalog().snapshot();
            let changed = if Arc::ptr_eq(&now, &last) {
                Vec::new()
            } else {
                self.sessions_whose_view_changed(&last, &now)
            };
            last = now;
            for peer in changed {
                if let Err(e) = peer.notify_tool_list_changed().await {
                    tracing::debug!(error = %e, "MCP list_changed not delivered");
                }
            }
            let mut state = self.state();
            let before = state.sessions.len();
            state.sessions.retain(|w| !w.peer.is_transport_closed());
            let parked = before - state.sessions.len();
            state.parked_since_trim += parked;
            let done = state.sessions.is_empty();
            if parked > 0 {
                self.bindings.sweep(self.clock.now_ms());
            }
            if state.parked_since_trim >= memory::TRIM_AFTER_PARKED
                || done && state.parked_since_trim > 0
            {
                state.parked_since_trim = 0;
                // A closed transport is seen before rmcp has dropped the rest of the
                // session (its worker, handle and buffers): trim once that has happened.
                tokio::spawn(async {
                    tokio::time::sleep(memory::TRIM_DELAY).await;
                    let _ = tokio::task::spawn_blocking(memory::release_free_pages).await;
                });
            }
            if done {
                state.running = false;
                return;
            }
        }
    }

    fn sessions_whose_view_changed(&self, last: &Catalog, now: &Catalog) -> Vec<Peer<RoleServer>> {
        let names = |catalog: &Catalog, gateway: Option<&GatewayConfig>| {
            ToolView::of(gateway).names(catalog)
        };
        let mut verdicts: HashMap<Option<String>, bool> = HashMap::new();
        let state = self.state();
        state
            .sessions
            .iter()
            .filter(|w| {
                let gateway = w.gateway.as_deref();
                *verdicts
                    .entry(gateway.map(|g| g.slug.clone()))
                    .or_insert_with(|| names(last, gateway) != names(now, gateway))
            })
            .map(|w| w.peer.clone())
            .collect()
    }
}
