//! LLM tool formats served by `/v1/formatted_tools` and `include_format`: OpenAI function
//! tools and Anthropic tools. Names use `Toolkit_Tool` (Arcade's converters replace `.`
//! with `_`), and arcadejs then executes by that name, which the catalog resolves.

use serde_json::{Map, Value, json};
use switchboard_wire::{InputParameter, ValueSchema};

use super::ToolEntry;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolFormat {
    Arcade,
    OpenAi,
    Anthropic,
}

impl ToolFormat {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "arcade" => Some(Self::Arcade),
            "openai" => Some(Self::OpenAi),
            "anthropic" => Some(Self::Anthropic),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Arcade => "arcade",
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
        }
    }
}

/// The tool in the given format (`Arcade` gives the JSON Schema object alone).
pub fn formatted_tool(entry: &ToolEntry, format: ToolFormat) -> Value {
    // An upstream MCP tool's own input schema says more than its mapped parameters.
    let upstream_schema = entry
        .mcp_tool
        .as_ref()
        .and_then(|raw| raw.get("inputSchema"))
        .filter(|schema| schema.is_object());
    let schema = match upstream_schema {
        Some(schema) => schema.clone(),
        None => input_json_schema(&entry.definition.input.parameters),
    };
    let description = entry.definition.description.clone();
    match format {
        ToolFormat::OpenAi => json!({
            "type": "function",
            "function": {
                "name": entry.underscore_name,
                "description": description,
                "parameters": schema,
            }
        }),
        ToolFormat::Anthropic => json!({
            "name": entry.underscore_name,
            "description": description,
            "input_schema": schema,
        }),
        ToolFormat::Arcade => schema,
    }
}

/// A JSON Schema object for a tool's parameters; also the MCP `inputSchema`.
pub fn input_json_schema(parameters: &[InputParameter]) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for p in parameters {
        let mut prop = value_json_schema(&p.value_schema);
        if let Some(d) = p.description.as_ref().filter(|d| !d.is_empty()) {
            prop["description"] = json!(d);
        }
        properties.insert(p.name.clone(), prop);
        if p.required {
            required.push(json!(p.name));
        }
    }
    json!({"type": "object", "properties": properties, "required": required})
}

fn value_json_schema(vs: &ValueSchema) -> Value {
    let mut schema = match vs.val_type.as_str() {
        "string" => json!({"type": "string"}),
        "integer" => json!({"type": "integer"}),
        "number" => json!({"type": "number"}),
        "boolean" => json!({"type": "boolean"}),
        "array" => {
            let inner = ValueSchema {
                val_type: vs.inner_val_type.clone().unwrap_or_else(|| "json".into()),
                properties: vs.inner_properties.clone(),
                ..Default::default()
            };
            json!({"type": "array", "items": value_json_schema(&inner)})
        }
        _ => match &vs.properties {
            Some(props) if !props.is_empty() => {
                let properties: Map<String, Value> = props
                    .iter()
                    .map(|(k, v)| {
                        let child = serde_json::from_value::<ValueSchema>(v.clone())
                            .map(|s| value_json_schema(&s))
                            .unwrap_or_else(|_| json!({}));
                        (k.clone(), child)
                    })
                    .collect();
                json!({"type": "object", "properties": properties})
            }
            _ => json!({"type": "object"}),
        },
    };
    if let Some(values) = vs.enum_values.as_ref().filter(|e| !e.is_empty()) {
        schema["enum"] = json!(values);
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_marks_required_and_maps_types() {
        let params = vec![
            InputParameter {
                name: "a".into(),
                required: true,
                description: Some("first".into()),
                value_schema: ValueSchema {
                    val_type: "number".into(),
                    ..Default::default()
                },
                inferrable: true,
            },
            InputParameter {
                name: "tags".into(),
                required: false,
                description: None,
                value_schema: ValueSchema {
                    val_type: "array".into(),
                    inner_val_type: Some("string".into()),
                    ..Default::default()
                },
                inferrable: true,
            },
        ];
        let s = input_json_schema(&params);
        assert_eq!(
            s["properties"]["a"],
            json!({"type": "number", "description": "first"})
        );
        assert_eq!(s["properties"]["tags"]["items"]["type"], "string");
        assert_eq!(s["required"], json!(["a"]));
    }
}
