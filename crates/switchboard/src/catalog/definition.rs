//! The engine's ToolDefinition (`reference/arcade-api.md` §1 Schemas), built from a
//! worker's definition. It always carries what `arcade show` re-validates (description
//! a string, `output` and `requirements` objects, `required` bools, known `val_type`s,
//! `provider_type` beside any authorization), or the CLI silently drops the tool.

use serde_json::{Map, Value, json};
use switchboard_wire::{InputParameter, ToolDefinition};

use super::ToolEntry;
use super::format::{ToolFormat, formatted_tool};

const KNOWN_VAL_TYPES: [&str; 6] = ["string", "integer", "number", "boolean", "json", "array"];

/// Makes every parameter carry a known `val_type` (unknown → `json`) and arrays an
/// `inner_val_type` (arcadejs's schema requires it).
pub(super) fn normalise_parameters(def: &mut ToolDefinition) {
    for p in &mut def.input.parameters {
        normalise_parameter(p);
    }
}

fn normalise_parameter(p: &mut InputParameter) {
    let vs = &mut p.value_schema;
    if !KNOWN_VAL_TYPES.contains(&vs.val_type.as_str()) {
        vs.val_type = "json".into();
    }
    if vs.val_type == "array" {
        let inner = vs.inner_val_type.get_or_insert_with(|| "json".into());
        if !KNOWN_VAL_TYPES.contains(&inner.as_str()) || inner == "array" {
            *inner = "json".into();
        }
    }
}

/// What a caller knows of a tool's requirements for the user asking.
#[derive(Debug, Clone, Default)]
pub struct RequirementsView {
    /// Secret keys that are configured.
    pub secrets_present: Vec<String>,
    /// `Some(true)` when the user holds a grant that covers the scopes; `None` when no
    /// user was named.
    pub authorization_met: Option<bool>,
}

#[derive(Debug, Clone, Default)]
pub struct EngineToolOptions {
    pub formats: Vec<ToolFormat>,
    pub requirements: RequirementsView,
}

/// The REST view of one tool.
pub fn engine_tool_definition(entry: &ToolEntry, options: &EngineToolOptions) -> Value {
    let def = &entry.definition;
    let parameters: Vec<Value> = def
        .input
        .parameters
        .iter()
        .map(|p| {
            let vs = &p.value_schema;
            let mut value_schema = Map::new();
            value_schema.insert("val_type".into(), json!(vs.val_type));
            value_schema.insert("inner_val_type".into(), json!(vs.inner_val_type));
            value_schema.insert("enum".into(), json!(vs.enum_values));
            if let Some(props) = &vs.properties {
                value_schema.insert("properties".into(), Value::Object(props.clone()));
            }
            if let Some(props) = &vs.inner_properties {
                value_schema.insert("inner_properties".into(), Value::Object(props.clone()));
            }
            json!({
                "name": p.name,
                "required": p.required,
                "description": p.description.clone().unwrap_or_default(),
                "value_schema": value_schema,
                "inferrable": p.inferrable,
            })
        })
        .collect();

    let view = &options.requirements;
    let mut requirements = Map::new();
    let mut all_met = true;
    if let Some(auth) = &def.requirements.authorization {
        let met = view.authorization_met.unwrap_or(false);
        all_met &= met;
        let token_status = match view.authorization_met {
            Some(true) => "completed",
            _ => "not_started",
        };
        requirements.insert(
            "authorization".into(),
            json!({
                "id": auth.id,
                "provider_id": auth.provider_id,
                "provider_type": auth.provider_type.clone().unwrap_or_else(|| "oauth2".into()),
                "oauth2": {"scopes": auth.oauth2.as_ref().map(|o| o.scopes.clone()).unwrap_or_default()},
                "status": "active",
                "token_status": token_status,
                "met": met,
            }),
        );
    }
    if let Some(secrets) = &def.requirements.secrets {
        let items: Vec<Value> = secrets
            .iter()
            .map(|s| {
                let met = view.secrets_present.iter().any(|k| k == &s.key);
                all_met &= met;
                json!({
                    "key": s.key,
                    "met": met,
                    "status_reason": if met { Value::Null } else { json!(format!("secret '{}' is not configured", s.key)) },
                })
            })
            .collect();
        requirements.insert("secrets".into(), Value::Array(items));
    }
    requirements.insert("met".into(), json!(all_met));

    let output = &def.output;
    let mut out = json!({
        "name": def.name,
        "qualified_name": entry.qualified_name,
        "fully_qualified_name": entry.fully_qualified_name(),
        "description": def.description,
        "toolkit": {
            "name": entry.toolkit,
            "description": def.toolkit.description.clone().unwrap_or_default(),
            "version": entry.version,
        },
        "input": {"parameters": parameters},
        "output": {
            "available_modes": if output.available_modes.is_empty() { vec!["value".to_string(), "error".to_string()] } else { output.available_modes.clone() },
            "description": output.description.clone().unwrap_or_default(),
            "value_schema": output.value_schema,
        },
        "requirements": requirements,
    });
    if let Some(meta) = &def.metadata {
        out["metadata"] = meta.clone();
    }
    if !options.formats.is_empty() {
        let formatted: Map<String, Value> = options
            .formats
            .iter()
            .filter(|f| **f != ToolFormat::Arcade)
            .map(|f| (f.as_str().to_string(), formatted_tool(entry, *f)))
            .collect();
        out["formatted_schema"] = Value::Object(formatted);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ToolSource;
    use switchboard_wire::{AuthRequirement, OAuth2Requirement, ToolkitDefinition, ValueSchema};

    #[test]
    fn definition_carries_fields_arcade_cli_revalidates() {
        let mut def = ToolDefinition {
            name: "List".into(),
            description: "List things".into(),
            toolkit: ToolkitDefinition {
                name: "Kit".into(),
                description: None,
                version: Some("1.2.0".into()),
            },
            ..Default::default()
        };
        def.input.parameters.push(InputParameter {
            name: "ids".into(),
            required: false,
            description: None,
            value_schema: ValueSchema {
                val_type: "array".into(),
                ..Default::default()
            },
            inferrable: true,
        });
        def.requirements.authorization = Some(AuthRequirement {
            provider_id: Some("google".into()),
            provider_type: None,
            id: None,
            oauth2: Some(OAuth2Requirement {
                scopes: vec!["a".into()],
            }),
        });
        let entry = ToolEntry::new(def, ToolSource::Builtin);
        let v = engine_tool_definition(&entry, &EngineToolOptions::default());
        assert_eq!(v["fully_qualified_name"], "Kit.List@1.2.0");
        assert_eq!(v["qualified_name"], "Kit.List");
        assert!(v["output"].is_object() && v["requirements"].is_object());
        assert_eq!(v["input"]["parameters"][0]["required"], false);
        assert_eq!(
            v["input"]["parameters"][0]["value_schema"]["inner_val_type"],
            "json"
        );
        assert_eq!(
            v["requirements"]["authorization"]["provider_type"],
            "oauth2"
        );
        assert_eq!(v["requirements"]["met"], false);
    }
}
