//! The tool catalog: every tool the gateway can run, where it comes from, and how a name a
//! client sends (`Toolkit.Tool`, `Toolkit_Tool`, any case, `@version`) resolves to it.
//!
//! A [`Catalog`] is an immutable snapshot; [`CatalogHandle`] swaps in a new one when a
//! worker returns or changes its tools, so a lookup never waits on a refresh.
//! Must not: call workers or know users; per-user views are computed by callers.

mod definition;
mod format;
mod upstream;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde_json::Value;
use switchboard_wire::ToolDefinition;

pub use definition::{EngineToolOptions, RequirementsView, engine_tool_definition};
pub use format::{ToolFormat, formatted_tool, input_json_schema};
/// Input is checked by the same code a `switchboard-tdk` worker runs.
pub use switchboard_wire::{InputError, validate_input};
pub use upstream::{MCP_NAME_LIMIT, upstream_tool_entry};

/// Where a tool runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ToolSource {
    Worker(Arc<str>),
    /// An upstream MCP server, by its config id (which is also the tool's toolkit).
    Upstream(Arc<str>),
    Builtin,
}

impl ToolSource {
    pub fn label(&self) -> &str {
        match self {
            ToolSource::Worker(id) | ToolSource::Upstream(id) => id,
            ToolSource::Builtin => "builtin",
        }
    }
}

/// One tool, normalised: the definition the worker gave, plus names computed once.
#[derive(Debug)]
pub struct ToolEntry {
    pub definition: ToolDefinition,
    /// `Toolkit.Tool`.
    pub qualified_name: String,
    /// `Toolkit_Tool`, the MCP and OpenAI/Anthropic name.
    pub underscore_name: String,
    pub toolkit: String,
    pub version: Option<String>,
    pub source: ToolSource,
    /// For an upstream tool: the MCP `tools/list` object as the upstream sent it, so MCP
    /// clients see its own schemas, title and annotations. `definition.name` is its name
    /// there.
    pub mcp_tool: Option<Value>,
}

impl ToolEntry {
    pub fn new(mut definition: ToolDefinition, source: ToolSource) -> Self {
        let toolkit = definition.toolkit.name.clone();
        let name = definition.name.clone();
        if definition.fully_qualified_name.is_empty() {
            definition.fully_qualified_name = format!("{toolkit}.{name}");
        }
        definition::normalise_parameters(&mut definition);
        let version = definition.toolkit.version.clone().filter(|v| !v.is_empty());
        Self {
            qualified_name: format!("{toolkit}.{name}"),
            underscore_name: format!("{toolkit}_{name}"),
            toolkit,
            version,
            source,
            definition,
            mcp_tool: None,
        }
    }

    /// `Toolkit.Tool@version` when the toolkit has a version.
    pub fn fully_qualified_name(&self) -> String {
        match &self.version {
            Some(v) => format!("{}@{v}", self.qualified_name),
            None => self.qualified_name.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ResolveError {
    #[error("tool '{0}' not found")]
    UnknownTool(String),
    #[error("tool '{name}' has no version '{version}' (available: {available})")]
    UnknownVersion {
        name: String,
        version: String,
        available: String,
    },
}

/// An immutable set of tools with a case-insensitive name index.
#[derive(Debug, Default)]
pub struct Catalog {
    tools: Vec<Arc<ToolEntry>>,
    /// Lowercased `toolkit.tool` and `toolkit_tool` → indexes into `tools`, in insertion
    /// order (the first is the default when no version is asked for).
    index: HashMap<String, Vec<usize>>,
}

impl Catalog {
    /// Builds a catalog; a tool whose name and version repeat an earlier one is dropped,
    /// so the first source declared wins. So is one whose `_` name is another tool's
    /// (`a.b_c` and `a_b.c`): MCP clients could not tell them apart.
    pub fn new(entries: impl IntoIterator<Item = ToolEntry>) -> Self {
        let mut catalog = Catalog::default();
        for entry in entries {
            let key = entry.qualified_name.to_lowercase();
            let underscore = entry.underscore_name.to_lowercase();
            let clash = catalog.index.get(&underscore).and_then(|ids| {
                ids.iter()
                    .map(|&i| &catalog.tools[i])
                    .find(|t| !t.qualified_name.eq_ignore_ascii_case(&entry.qualified_name))
            });
            if let Some(first) = clash {
                tracing::warn!(
                    tool = %entry.qualified_name,
                    source = entry.source.label(),
                    kept = %first.qualified_name,
                    name = %entry.underscore_name,
                    "two tools have the same MCP name; keeping the first"
                );
                continue;
            }
            // Versions tell a worker's releases of one tool apart. An upstream's tools have
            // none: one named like a tool already here (an upstream id equal to a worker's
            // toolkit) would be listed twice under one name, so it is dropped instead.
            let upstream = matches!(entry.source, ToolSource::Upstream(_));
            let duplicate = catalog.index.get(&key).is_some_and(|ids| {
                upstream
                    || ids
                        .iter()
                        .any(|&i| catalog.tools[i].version == entry.version)
            });
            if duplicate {
                tracing::warn!(
                    tool = %entry.qualified_name,
                    source = entry.source.label(),
                    "tool is served by more than one source; keeping the first"
                );
                continue;
            }
            let at = catalog.tools.len();
            catalog.index.entry(key).or_default().push(at);
            catalog.index.entry(underscore).or_default().push(at);
            catalog.tools.push(Arc::new(entry));
        }
        catalog
    }

    pub fn len(&self) -> usize {
        self.tools.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// All tools in a stable order: toolkit, then tool name, then version.
    pub fn sorted(&self) -> Vec<Arc<ToolEntry>> {
        let mut all = self.tools.clone();
        all.sort_by(|a, b| {
            (
                a.toolkit.to_lowercase(),
                a.definition.name.to_lowercase(),
                &a.version,
            )
                .cmp(&(
                    b.toolkit.to_lowercase(),
                    b.definition.name.to_lowercase(),
                    &b.version,
                ))
        });
        all
    }

    /// Resolves `Toolkit.Tool`, `Toolkit_Tool` or either with `@version`, in any case.
    /// An explicit `version` argument wins over an `@version` suffix.
    pub fn resolve(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Arc<ToolEntry>, ResolveError> {
        let (base, suffix) = match name.rsplit_once('@') {
            Some((base, v)) if !v.is_empty() => (base, Some(v)),
            _ => (name, None),
        };
        let wanted = version.filter(|v| !v.is_empty()).or(suffix);
        let ids = self
            .index
            .get(&base.trim().to_lowercase())
            .ok_or_else(|| ResolveError::UnknownTool(name.to_string()))?;
        match wanted {
            None => Ok(self.tools[ids[0]].clone()),
            Some(v) => ids
                .iter()
                .map(|&i| &self.tools[i])
                .find(|t| t.version.as_deref() == Some(v))
                .cloned()
                .ok_or_else(|| ResolveError::UnknownVersion {
                    name: self.tools[ids[0]].qualified_name.clone(),
                    version: v.to_string(),
                    available: ids
                        .iter()
                        .map(|&i| {
                            self.tools[i]
                                .version
                                .clone()
                                .unwrap_or_else(|| "unversioned".into())
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                }),
        }
    }

    pub fn from_source<'a>(
        &'a self,
        source: &'a ToolSource,
    ) -> impl Iterator<Item = &'a Arc<ToolEntry>> {
        self.tools.iter().filter(move |t| &t.source == source)
    }
}

/// The live catalog. Readers clone an `Arc` under a short read lock; the worker registry
/// replaces the whole snapshot when a source changes. A std `RwLock` because the lock
/// is never held across an `.await`.
#[derive(Debug, Default)]
pub struct CatalogHandle {
    current: RwLock<Arc<Catalog>>,
}

impl CatalogHandle {
    pub fn new(catalog: Catalog) -> Self {
        Self {
            current: RwLock::new(Arc::new(catalog)),
        }
    }

    pub fn snapshot(&self) -> Arc<Catalog> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            // A writer panicked mid-swap; the Arc inside is still a whole catalog.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn replace(&self, catalog: Catalog) {
        let mut guard = match self.current.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = Arc::new(catalog);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_wire::ToolkitDefinition;

    fn tool(toolkit: &str, name: &str, version: Option<&str>) -> ToolEntry {
        ToolEntry::new(
            ToolDefinition {
                name: name.into(),
                toolkit: ToolkitDefinition {
                    name: toolkit.into(),
                    description: None,
                    version: version.map(Into::into),
                },
                ..Default::default()
            },
            ToolSource::Worker("w".into()),
        )
    }

    #[test]
    fn names_resolve_with_dot_underscore_any_case_and_version() {
        let c = Catalog::new([
            tool("Gmail", "SendEmail", Some("1.0.0")),
            tool("Gmail", "SendEmail", Some("2.0.0")),
        ]);
        for name in [
            "Gmail.SendEmail",
            "gmail_sendemail",
            "GMAIL.SENDEMAIL",
            "Gmail_SendEmail",
        ] {
            assert_eq!(
                c.resolve(name, None).unwrap().qualified_name,
                "Gmail.SendEmail"
            );
        }
        assert_eq!(
            c.resolve("Gmail.SendEmail@2.0.0", None)
                .unwrap()
                .version
                .as_deref(),
            Some("2.0.0")
        );
        assert_eq!(
            c.resolve("Gmail_SendEmail", Some("2.0.0"))
                .unwrap()
                .version
                .as_deref(),
            Some("2.0.0")
        );
        assert_eq!(
            c.resolve("Gmail.SendEmail", None)
                .unwrap()
                .version
                .as_deref(),
            Some("1.0.0")
        );
    }

    #[test]
    fn unknown_tool_and_unknown_version_are_distinct_errors() {
        let c = Catalog::new([tool("Demo", "Echo", Some("0.1.0"))]);
        assert!(
            matches!(c.resolve("Demo.Nope", None), Err(ResolveError::UnknownTool(n)) if n == "Demo.Nope")
        );
        let err = c.resolve("Demo.Echo", Some("9.9.9")).unwrap_err();
        assert!(matches!(err, ResolveError::UnknownVersion { .. }));
        assert!(err.to_string().contains("0.1.0"), "{err}");
    }

    #[test]
    fn duplicate_tool_from_second_source_is_dropped() {
        let c = Catalog::new([tool("Demo", "Echo", None), tool("Demo", "Echo", None)]);
        assert_eq!(c.len(), 1);
    }
}
