//! `subscriptions/listen` (2026-07-28): the stateless era's stream of change
//! notifications. The gateway has one kind of change to tell, its tools: a listener that
//! asked for `toolsListChanged` hears `notifications/tools/list_changed` when the tools its
//! endpoint exposes change. rmcp sends the acknowledgement first and tags every
//! notification with the subscription's id; the filter is what the client asked for,
//! cut down to what the gateway advertises.

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::SubscriptionFilter;
use rmcp::service::SubscriptionContext;
use tokio_util::sync::CancellationToken;

use crate::catalog::Catalog;
use crate::config::GatewayConfig;
use crate::exec::ToolView;
use crate::workers::WorkerRegistry;

/// How often a listener's catalog is looked at: a pointer compare when nothing changed.
const CATALOG_POLL: Duration = Duration::from_millis(250);

/// The part of a requested filter the gateway can serve: tool list changes only.
pub(super) fn accepted(requested: &SubscriptionFilter) -> SubscriptionFilter {
    let mut offered = SubscriptionFilter::new();
    offered.tools_list_changed = Some(true);
    requested.intersection(&offered)
}

/// Runs one listener until its client goes away or the gateway stops.
pub(super) async fn listen(
    subscription: SubscriptionContext,
    workers: Arc<WorkerRegistry>,
    gateway: Option<Arc<GatewayConfig>>,
    stopping: CancellationToken,
) {
    let wants_tools = subscription.accepted().tools_list_changed == Some(true);
    let mut last = workers.catalog().snapshot();
    loop {
        tokio::select! {
            () = subscription.cancelled() => return,
            () = stopping.cancelled() => return,
            () = tokio::time::sleep(CATALOG_POLL) => {}
        }
        let now = workers.catalog().snapshot();
        if Arc::ptr_eq(&now, &last) {
            continue;
        }
        let changed = view(&last, gateway.as_deref()) != view(&now, gateway.as_deref());
        last = now;
        if changed
            && wants_tools
            && let Err(e) = subscription.sink().notify_tool_list_changed().await
        {
            tracing::debug!(error = %e, "MCP listener gone");
            return;
        }
    }
}

fn view(catalog: &Catalog, gateway: Option<&GatewayConfig>) -> Vec<String> {
    ToolView::of(gateway).names(catalog)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tool_list_changes_are_accepted_and_only_when_asked() {
        let mut requested = SubscriptionFilter::new();
        requested.prompts_list_changed = Some(true);
        assert_eq!(accepted(&requested), SubscriptionFilter::new());
        requested.tools_list_changed = Some(true);
        let got = accepted(&requested);
        assert_eq!(got.tools_list_changed, Some(true));
        assert_eq!(got.prompts_list_changed, None);
    }
}
