//! `gateways:`: named tool views served at `/mcp/{slug}`.

use crate::config::model::GatewayConfig;
use crate::config::reader::{Map, Reader, Unset};

/// `gateways: [{slug, description, tools: [...], toolkits: [...]}]`.
pub(super) fn gateways(r: &mut Reader<'_>, root: &Map<'_>) -> Vec<GatewayConfig> {
    let mut out: Vec<GatewayConfig> = Vec::new();
    for item in r.list(root, "gateways") {
        r.check_keys(&item, &["slug", "description", "tools", "toolkits"], &[]);
        let Some(slug) = r
            .text(&item, "slug", Unset::Error)
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
        else {
            r.error(item.child("slug"), "a gateway needs a slug");
            continue;
        };
        if !slug
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            r.error(
                item.child("slug"),
                format!("slug {slug:?} may use only letters, digits, '-' and '_'"),
            );
            continue;
        }
        if out.iter().any(|g| g.slug == slug) {
            r.error(
                item.child("slug"),
                format!("duplicate gateway slug {slug:?}"),
            );
            continue;
        }
        out.push(GatewayConfig {
            description: r.text(&item, "description", Unset::UseDefault),
            tools: r.strings(&item, "tools"),
            toolkits: r.strings(&item, "toolkits"),
            slug,
        });
    }
    out
}
