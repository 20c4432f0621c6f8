//! Which tools a caller sees: all of them (REST, `/mcp`, `/v1/mcps/{user}/mcp`), or the
//! selection a configured gateway serves (`/mcp/{gateway}`). Listing and calling read the
//! same view, so a tool a gateway hides is unknown there in both.

use std::sync::Arc;

use crate::catalog::{Catalog, ToolEntry};
use crate::config::GatewayConfig;

/// The tools a request may list and call.
#[derive(Debug, Clone, Copy)]
pub enum ToolView<'a> {
    /// Every tool in the catalog.
    All,
    /// The tools and toolkits this gateway names (both lists empty: every tool).
    Gateway(&'a GatewayConfig),
}

impl<'a> ToolView<'a> {
    /// A gateway's view, or every tool when there is none.
    pub fn of(gateway: Option<&'a GatewayConfig>) -> Self {
        gateway.map_or(ToolView::All, ToolView::Gateway)
    }

    /// Whether `tool` is in this view.
    pub fn shows(self, tool: &ToolEntry) -> bool {
        let ToolView::Gateway(g) = self else {
            return true;
        };
        if g.tools.is_empty() && g.toolkits.is_empty() {
            return true;
        }
        g.toolkits
            .iter()
            .any(|k| k.eq_ignore_ascii_case(&tool.toolkit))
            || g.tools.iter().any(|name| {
                let base = name.split('@').next().unwrap_or(name).trim();
                base.eq_ignore_ascii_case(&tool.qualified_name)
                    || base.eq_ignore_ascii_case(&tool.underscore_name)
            })
    }

    /// The tools of `catalog` in this view, in the catalog's stable order.
    pub fn list(self, catalog: &Catalog) -> Vec<Arc<ToolEntry>> {
        let mut all = catalog.sorted();
        if let ToolView::Gateway(_) = self {
            all.retain(|t| self.shows(t));
        }
        all
    }

    /// The fully qualified names (`Toolkit.Tool@version`) of the tools in this view, in
    /// order: what a client's list holds, so two catalogs with the same names look alike.
    pub fn names(self, catalog: &Catalog) -> Vec<String> {
        self.list(catalog)
            .iter()
            .map(|t| t.fully_qualified_name())
            .collect()
    }
}
