//! An upstream MCP server's tool as a catalog entry: the Arcade definition REST clients
//! see, built from the MCP tool object, which is kept whole for MCP clients.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock, Mutex};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use switchboard_wire::{InputParameter, ToolDefinition, ToolkitDefinition, ValueSchema};

use super::{ToolEntry, ToolSource};

/// The longest tool name MCP clients accept (several refuse anything longer).
pub const MCP_NAME_LIMIT: usize = 64;

/// Names already warned about, so a health check that relists does not warn again.
static SHORTENED: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Default::default);

/// The entry for tool `name` of upstream `id`, from its `tools/list` object `raw`. Its
/// REST name is `{id}.{name}`; its MCP name `{id}_{name}`, shortened when too long.
pub fn upstream_tool_entry(id: &str, name: &str, raw: &Value) -> ToolEntry {
    let definition = ToolDefinition {
        name: name.to_owned(),
        fully_qualified_name: String::new(),
        description: raw
            .get("description")
            .and_then(Value::as_str)
            .or_else(|| raw.get("title").and_then(Value::as_str))
            .unwrap_or_default()
            .to_owned(),
        toolkit: ToolkitDefinition {
            name: id.to_owned(),
            description: None,
            version: None,
        },
        input: switchboard_wire::ToolInput {
            parameters: parameters(raw.get("inputSchema")),
        },
        ..Default::default()
    };
    let mut entry = ToolEntry::new(definition, ToolSource::Upstream(Arc::from(id)));
    entry.underscore_name = mcp_name(&entry.underscore_name);
    entry.mcp_tool = Some(raw.clone());
    entry
}

/// `name` when it fits; else its first characters, `_` and 8 hex digits of its SHA-256,
/// 64 characters in all: the same name every time, and distinct for distinct names.
fn mcp_name(name: &str) -> String {
    if name.chars().count() <= MCP_NAME_LIMIT {
        return name.to_owned();
    }
    let hash = hex::encode(Sha256::digest(name.as_bytes()));
    let prefix: String = name.chars().take(MCP_NAME_LIMIT - 9).collect();
    let short = format!("{prefix}_{}", &hash[..8]);
    let first_time = SHORTENED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(name.to_owned());
    if first_time {
        tracing::warn!(
            tool = %name,
            mcp_name = %short,
            "upstream tool name is longer than {MCP_NAME_LIMIT} characters; MCP clients see it shortened"
        );
    }
    short
}

/// Arcade input parameters from a JSON Schema's `properties` and `required`.
fn parameters(schema: Option<&Value>) -> Vec<InputParameter> {
    let Some(schema) = schema.and_then(Value::as_object) else {
        return Vec::new();
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    properties
        .iter()
        .map(|(name, prop)| {
            let prop = prop.as_object();
            let val_type = prop.map_or("json", val_type_of);
            let inner_val_type = (val_type == "array").then(|| {
                prop.and_then(|p| p.get("items"))
                    .and_then(Value::as_object)
                    .map_or("json", |items| match val_type_of(items) {
                        "array" => "json",
                        other => other,
                    })
                    .to_owned()
            });
            let enum_values = prop
                .and_then(|p| p.get("enum"))
                .and_then(Value::as_array)
                .and_then(|values| {
                    values
                        .iter()
                        .map(|v| v.as_str().map(str::to_owned))
                        .collect::<Option<Vec<_>>>()
                });
            InputParameter {
                name: name.clone(),
                required: required.contains(&name.as_str()),
                description: prop
                    .and_then(|p| p.get("description"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                value_schema: ValueSchema {
                    val_type: val_type.to_owned(),
                    inner_val_type,
                    enum_values,
                    ..Default::default()
                },
                inferrable: true,
            }
        })
        .collect()
}

/// The Arcade type for one JSON Schema: its `type` (or the one non-null type of a list);
/// objects and anything else are `json`.
fn val_type_of(schema: &Map<String, Value>) -> &'static str {
    let ty = match schema.get("type") {
        Some(Value::String(t)) => Some(t.as_str()),
        Some(Value::Array(types)) => {
            let named: Vec<&str> = types
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .collect();
            match named.as_slice() {
                [one] => Some(*one),
                _ => None,
            }
        }
        _ => None,
    };
    match ty {
        Some("string") => "string",
        Some("integer") => "integer",
        Some("number") => "number",
        Some("boolean") => "boolean",
        Some("array") => "array",
        _ => "json",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parameters_map_from_the_input_schema() {
        let raw = json!({
            "name": "search",
            "description": "Find things",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "q": {"type": "string", "description": "query"},
                    "n": {"type": "integer"},
                    "x": {"type": "number"},
                    "on": {"type": "boolean"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "deep": {"type": "array", "items": {"type": "array"}},
                    "filter": {"type": "object"},
                    "maybe": {"type": ["string", "null"]},
                    "mode": {"type": "string", "enum": ["a", "b"]},
                    "any": {}
                },
                "required": ["q"]
            }
        });
        let entry = upstream_tool_entry("gh", "search", &raw);
        assert_eq!(entry.qualified_name, "gh.search");
        assert_eq!(entry.underscore_name, "gh_search");
        assert_eq!(entry.source, ToolSource::Upstream(Arc::from("gh")));
        assert_eq!(entry.definition.description, "Find things");
        let p = |name: &str| {
            entry
                .definition
                .input
                .parameters
                .iter()
                .find(|p| p.name == name)
                .unwrap()
                .clone()
        };
        assert!(p("q").required && !p("n").required);
        assert_eq!(p("q").description.as_deref(), Some("query"));
        for (name, ty) in [
            ("q", "string"),
            ("n", "integer"),
            ("x", "number"),
            ("on", "boolean"),
            ("tags", "array"),
            ("filter", "json"),
            ("maybe", "string"),
            ("any", "json"),
        ] {
            assert_eq!(p(name).value_schema.val_type, ty, "{name}");
        }
        assert_eq!(
            p("tags").value_schema.inner_val_type.as_deref(),
            Some("string")
        );
        assert_eq!(
            p("deep").value_schema.inner_val_type.as_deref(),
            Some("json")
        );
        assert_eq!(
            p("mode").value_schema.enum_values,
            Some(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(entry.mcp_tool.as_ref(), Some(&raw));
    }

    #[test]
    fn a_long_mcp_name_is_shortened_the_same_way_every_time() {
        let long = "t".repeat(100);
        let a = upstream_tool_entry("up", &long, &json!({"name": long}));
        let b = upstream_tool_entry("up", &long, &json!({"name": long}));
        assert_eq!(a.underscore_name.len(), MCP_NAME_LIMIT);
        assert_eq!(a.underscore_name, b.underscore_name);
        assert_eq!(a.qualified_name, format!("up.{long}"));
        let other = upstream_tool_entry("up", &format!("{long}x"), &json!({}));
        assert_ne!(a.underscore_name, other.underscore_name);
        let short = upstream_tool_entry("up", "echo", &json!({}));
        assert_eq!(short.underscore_name, "up_echo");
    }

    #[test]
    fn a_clash_with_an_earlier_tool_keeps_the_first() {
        use crate::catalog::Catalog;
        let worker = ToolEntry::new(
            ToolDefinition {
                name: "b_c".into(),
                toolkit: ToolkitDefinition {
                    name: "a".into(),
                    ..Default::default()
                },
                ..Default::default()
            },
            ToolSource::Worker("w".into()),
        );
        // `a_b.c` and `a.b_c` are both `a_b_c` to an MCP client.
        let clash = upstream_tool_entry("a_b", "c", &json!({"name": "c"}));
        let same = upstream_tool_entry("a", "b_c", &json!({"name": "b_c"}));
        let catalog = Catalog::new([worker, clash, same]);
        assert_eq!(catalog.len(), 1);
        let kept = catalog.resolve("a_b_c", None).unwrap();
        assert_eq!(kept.source, ToolSource::Worker("w".into()));
    }

    #[test]
    fn an_upstream_named_like_a_workers_toolkit_never_shadows_its_versioned_tools() {
        use crate::catalog::Catalog;
        let worker = ToolEntry::new(
            ToolDefinition {
                name: "Echo".into(),
                toolkit: ToolkitDefinition {
                    name: "Demo".into(),
                    version: Some("1.0.0".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
            ToolSource::Worker("demo".into()),
        );
        // The upstream's id is the worker's toolkit name in another case.
        let shadow = upstream_tool_entry("demo", "Echo", &json!({"name": "Echo"}));
        let catalog = Catalog::new([worker, shadow]);
        assert_eq!(catalog.len(), 1);
        for name in ["Demo.Echo", "demo.echo", "Demo_Echo"] {
            let kept = catalog.resolve(name, None).unwrap();
            assert_eq!(kept.source, ToolSource::Worker("demo".into()), "{name}");
        }
    }
}
