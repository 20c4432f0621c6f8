//! Wire types of Arcade's worker protocol (`reference/arcade-api.md` §2), shared by the
//! gateway's worker client and the `switchboard-tdk` worker SDK, so both ends agree by
//! construction; and the one check of a call's input against those types ([`input`]).
//!
//! Deserialization is lenient (every field has a default) because real workers
//! (arcade-serve) send `null` for unset values; serialization writes every key, as
//! arcade-serve does.
//! Must not: do I/O or know about users, tokens at rest or HTTP routing.

pub mod input;
pub mod jwt;

pub use input::{InputError, validate_input};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where the worker routes live under the worker's base URL.
pub const WORKER_BASE_PATH: &str = "/worker";

/// `GET /worker/health` reply. `tool_count` is a string on the wire (arcade-serve does so).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HealthResponse {
    #[serde(default)]
    pub status: String,
    #[serde(default, deserialize_with = "de::string_or_number")]
    pub tool_count: Option<String>,
}

/// A tool as a worker describes it (`GET /worker/tools` items).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ToolDefinition {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub fully_qualified_name: String,
    #[serde(default, deserialize_with = "de::null_default")]
    pub description: String,
    #[serde(default, deserialize_with = "de::null_default")]
    pub toolkit: ToolkitDefinition,
    #[serde(default, deserialize_with = "de::null_default")]
    pub input: ToolInput,
    #[serde(default, deserialize_with = "de::null_default")]
    pub output: ToolOutputDefinition,
    #[serde(default, deserialize_with = "de::null_default")]
    pub requirements: ToolRequirements,
    #[serde(default)]
    pub deprecation_message: Option<String>,
    #[serde(default)]
    pub metadata: Option<Value>,
    #[serde(default, rename = "_meta")]
    pub meta: Option<Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ToolkitDefinition {
    #[serde(default, deserialize_with = "de::null_default")]
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ToolInput {
    #[serde(default, deserialize_with = "de::null_default")]
    pub parameters: Vec<InputParameter>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct InputParameter {
    pub name: String,
    #[serde(default, deserialize_with = "de::null_default")]
    pub required: bool,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "de::null_default")]
    pub value_schema: ValueSchema,
    #[serde(default = "default_true", deserialize_with = "de::null_true")]
    pub inferrable: bool,
}

fn default_true() -> bool {
    true
}

/// Arcade's value schema: a `val_type` from {string, integer, number, boolean, json,
/// array}, with `inner_val_type` for arrays and optional `enum` and object properties.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ValueSchema {
    #[serde(default, deserialize_with = "de::null_default")]
    pub val_type: String,
    #[serde(default)]
    pub inner_val_type: Option<String>,
    #[serde(default, rename = "enum")]
    pub enum_values: Option<Vec<String>>,
    #[serde(default)]
    pub properties: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    pub inner_properties: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ToolOutputDefinition {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "de::null_default")]
    pub available_modes: Vec<String>,
    #[serde(default)]
    pub value_schema: Option<ValueSchema>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ToolRequirements {
    #[serde(default)]
    pub authorization: Option<AuthRequirement>,
    #[serde(default)]
    pub secrets: Option<Vec<KeyRequirement>>,
    #[serde(default)]
    pub metadata: Option<Vec<KeyRequirement>>,
}

/// An OAuth requirement: a service (`provider_id`, e.g. `google`) or one configured
/// provider (`id`), with the scopes the tool needs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AuthRequirement {
    #[serde(default)]
    pub provider_id: Option<String>,
    #[serde(default)]
    pub provider_type: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub oauth2: Option<OAuth2Requirement>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct OAuth2Requirement {
    #[serde(default, deserialize_with = "de::null_default")]
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct KeyRequirement {
    pub key: String,
}

/// `POST /worker/tools/invoke` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ToolCallRequest {
    #[serde(default)]
    pub run_id: Option<String>,
    #[serde(default)]
    pub execution_id: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    pub tool: ToolReference,
    #[serde(default, deserialize_with = "de::null_default")]
    pub inputs: serde_json::Map<String, Value>,
    #[serde(default, deserialize_with = "de::null_default")]
    pub context: ToolContext,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ToolReference {
    pub name: String,
    pub toolkit: String,
    #[serde(default)]
    pub version: Option<String>,
}

/// What a tool learns about its call. The token here is the one place a user's OAuth
/// token leaves the gateway; `Debug` redacts it and the secrets.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct ToolContext {
    #[serde(default)]
    pub authorization: Option<ToolAuthorizationContext>,
    #[serde(default, deserialize_with = "de::null_default")]
    pub secrets: Vec<KeyValue>,
    #[serde(default, deserialize_with = "de::null_default")]
    pub metadata: Vec<KeyValue>,
    #[serde(default)]
    pub user_id: Option<String>,
}

impl std::fmt::Debug for ToolContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret_keys: Vec<&str> = self.secrets.iter().map(|s| s.key.as_str()).collect();
        f.debug_struct("ToolContext")
            .field("authorization", &self.authorization.as_ref().map(|_| "***"))
            .field("secrets", &secret_keys)
            .field("metadata", &self.metadata)
            .field("user_id", &self.user_id)
            .finish()
    }
}

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct ToolAuthorizationContext {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub user_info: Option<Value>,
}

impl std::fmt::Debug for ToolAuthorizationContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ToolAuthorizationContext(***)")
    }
}

/// [`ToolCallRequest`] as the sender writes it, borrowing every part: the same JSON,
/// without first copying the call's input, the tool's names, the user's token and user
/// info into an owned request (~20 allocations a call with a grant). No `Debug`: it
/// carries the token.
#[derive(Serialize)]
pub struct ToolCallRequestRef<'a> {
    pub run_id: Option<&'a str>,
    pub execution_id: Option<&'a str>,
    pub created_at: Option<&'a str>,
    pub tool: ToolReferenceRef<'a>,
    pub inputs: &'a serde_json::Map<String, Value>,
    pub context: ToolContextRef<'a>,
}

#[derive(Serialize)]
pub struct ToolReferenceRef<'a> {
    pub name: &'a str,
    pub toolkit: &'a str,
    pub version: Option<&'a str>,
}

#[derive(Serialize)]
pub struct ToolContextRef<'a> {
    pub authorization: Option<ToolAuthorizationContextRef<'a>>,
    pub secrets: &'a [KeyValue],
    pub metadata: &'a [KeyValue],
    pub user_id: Option<&'a str>,
}

#[derive(Serialize)]
pub struct ToolAuthorizationContextRef<'a> {
    pub token: Option<&'a str>,
    pub user_info: Option<&'a Value>,
}

#[derive(Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct KeyValue {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

impl std::fmt::Debug for KeyValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyValue({}=***)", self.key)
    }
}

/// `POST /worker/tools/invoke` reply. A tool failure is still HTTP 200 with
/// `success: false`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ToolCallResponse {
    #[serde(default)]
    pub execution_id: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
    #[serde(default)]
    pub duration: Option<f64>,
    #[serde(default)]
    pub success: bool,
    #[serde(default, deserialize_with = "de::null_default")]
    pub output: ToolCallOutput,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ToolCallOutput {
    #[serde(default)]
    pub value: Option<Value>,
    #[serde(default)]
    pub logs: Option<Vec<ToolCallLog>>,
    #[serde(default)]
    pub error: Option<ToolCallError>,
    #[serde(default)]
    pub requires_authorization: Option<Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ToolCallLog {
    #[serde(default)]
    pub level: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub subtype: Option<String>,
}

/// A tool error as Arcade describes it; `kind` is one of Arcade's `ErrorKind`s
/// (`reference/arcade-api.md` §5).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ToolCallError {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub developer_message: Option<String>,
    #[serde(default)]
    pub can_retry: bool,
    #[serde(default)]
    pub additional_prompt_content: Option<String>,
    #[serde(default)]
    pub retry_after_ms: Option<u64>,
    #[serde(default)]
    pub stacktrace: Option<String>,
    #[serde(default)]
    pub status_code: Option<u16>,
    #[serde(default)]
    pub extra: Option<Value>,
}

/// Arcade's error kinds that both ends of the protocol name.
pub mod error_kind {
    pub const TOOL_RUNTIME_BAD_INPUT_VALUE: &str = "TOOL_RUNTIME_BAD_INPUT_VALUE";
    pub const TOOL_RUNTIME_RETRY: &str = "TOOL_RUNTIME_RETRY";
    pub const TOOL_RUNTIME_FATAL: &str = "TOOL_RUNTIME_FATAL";
    pub const TOOL_RUNTIME_CONTEXT_REQUIRED: &str = "TOOL_RUNTIME_CONTEXT_REQUIRED";
    pub const TOOL_RUNTIME_BAD_OUTPUT_VALUE: &str = "TOOL_RUNTIME_BAD_OUTPUT_VALUE";
    pub const TOOL_REQUIREMENTS_NOT_MET: &str = "TOOL_REQUIREMENTS_NOT_MET";
    pub const UPSTREAM_RUNTIME_AUTH_ERROR: &str = "UPSTREAM_RUNTIME_AUTH_ERROR";
    pub const UPSTREAM_RUNTIME_BAD_REQUEST: &str = "UPSTREAM_RUNTIME_BAD_REQUEST";
    pub const UPSTREAM_RUNTIME_NOT_FOUND: &str = "UPSTREAM_RUNTIME_NOT_FOUND";
    pub const UPSTREAM_RUNTIME_RATE_LIMIT: &str = "UPSTREAM_RUNTIME_RATE_LIMIT";
    pub const UPSTREAM_RUNTIME_SERVER_ERROR: &str = "UPSTREAM_RUNTIME_SERVER_ERROR";
    pub const UPSTREAM_RUNTIME_UNMAPPED: &str = "UPSTREAM_RUNTIME_UNMAPPED";
    pub const NETWORK_TRANSPORT_RUNTIME_TIMEOUT: &str = "NETWORK_TRANSPORT_RUNTIME_TIMEOUT";
    pub const NETWORK_TRANSPORT_RUNTIME_UNREACHABLE: &str = "NETWORK_TRANSPORT_RUNTIME_UNREACHABLE";
    pub const NETWORK_TRANSPORT_RUNTIME_UNMAPPED: &str = "NETWORK_TRANSPORT_RUNTIME_UNMAPPED";
    pub const UNKNOWN: &str = "UNKNOWN";
}

/// Tolerant deserializers: real workers send `null` where a value is unset.
mod de {
    use serde::{Deserialize, Deserializer};

    pub fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: Default + Deserialize<'de>,
    {
        Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
    }

    pub fn null_true<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        Ok(Option::<bool>::deserialize(d)?.unwrap_or(true))
    }

    pub fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(match Option::<serde_json::Value>::deserialize(d)? {
            Some(serde_json::Value::String(s)) => Some(s),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arcade_serve_tool_definition_with_nulls_parses() {
        let raw = serde_json::json!({
            "name": "Greet", "fully_qualified_name": "DemoKit.Greet", "description": null,
            "toolkit": {"name": "DemoKit", "description": null, "version": null},
            "input": {"parameters": [{"name": "who", "required": true, "description": null,
                "value_schema": {"val_type": "string", "inner_val_type": null, "enum": null,
                "properties": null, "inner_properties": null, "description": null},
                "inferrable": null}]},
            "output": {"description": null, "available_modes": null, "value_schema": null},
            "requirements": {"authorization": null, "secrets": null, "metadata": null},
            "deprecation_message": null, "metadata": null, "_meta": null
        });
        let def: ToolDefinition = serde_json::from_value(raw).expect("parses");
        assert_eq!(def.fully_qualified_name, "DemoKit.Greet");
        assert_eq!(def.input.parameters[0].value_schema.val_type, "string");
        assert!(def.input.parameters[0].inferrable);
        assert!(def.requirements.authorization.is_none());
    }

    /// The borrowed request writes the owned one's bytes, every field set or unset, so
    /// a worker cannot tell which one the gateway sent.
    #[test]
    fn the_borrowed_request_writes_the_same_json_as_the_owned_one() {
        let inputs = serde_json::json!({"message": "h\u{e9}llo \"x\"", "n": [1, 2.5, null]});
        let inputs = inputs.as_object().cloned().unwrap();
        let user_info = serde_json::json!({"email": "a@b.c", "id": 7});
        let secrets = vec![KeyValue {
            key: "K".into(),
            value: "v".into(),
        }];
        for (full, version, grant) in [(true, Some("1.2.0"), true), (false, None, false)] {
            let owned = ToolCallRequest {
                run_id: full.then(|| "run".to_string()),
                execution_id: Some("exec".into()),
                created_at: full.then(|| "2026-11-26T06:41:16.123456".to_string()),
                tool: ToolReference {
                    name: "Echo".into(),
                    toolkit: "Demo".into(),
                    version: version.map(str::to_string),
                },
                inputs: if full {
                    inputs.clone()
                } else {
                    Default::default()
                },
                context: ToolContext {
                    authorization: grant.then(|| ToolAuthorizationContext {
                        token: Some("tok".into()),
                        user_info: Some(user_info.clone()),
                    }),
                    secrets: if full { secrets.clone() } else { Vec::new() },
                    metadata: Vec::new(),
                    user_id: full.then(|| "alice".to_string()),
                },
            };
            let borrowed = ToolCallRequestRef {
                run_id: owned.run_id.as_deref(),
                execution_id: owned.execution_id.as_deref(),
                created_at: owned.created_at.as_deref(),
                tool: ToolReferenceRef {
                    name: &owned.tool.name,
                    toolkit: &owned.tool.toolkit,
                    version: owned.tool.version.as_deref(),
                },
                inputs: &owned.inputs,
                context: ToolContextRef {
                    authorization: owned.context.authorization.as_ref().map(|a| {
                        ToolAuthorizationContextRef {
                            token: a.token.as_deref(),
                            user_info: a.user_info.as_ref(),
                        }
                    }),
                    secrets: &owned.context.secrets,
                    metadata: &owned.context.metadata,
                    user_id: owned.context.user_id.as_deref(),
                },
            };
            assert_eq!(
                serde_json::to_string(&borrowed).unwrap(),
                serde_json::to_string(&owned).unwrap()
            );
        }
    }

    #[test]
    fn health_tool_count_accepts_string_and_number() {
        let a: HealthResponse =
            serde_json::from_str(r#"{"status":"ok","tool_count":"3"}"#).unwrap();
        let b: HealthResponse = serde_json::from_str(r#"{"status":"ok","tool_count":3}"#).unwrap();
        assert_eq!(a.tool_count.as_deref(), Some("3"));
        assert_eq!(b.tool_count.as_deref(), Some("3"));
    }

    #[test]
    fn context_debug_hides_token_and_secret_values() {
        let ctx = ToolContext {
            authorization: Some(ToolAuthorizationContext {
                token: Some("tok-very-secret".into()),
                user_info: None,
            }),
            secrets: vec![KeyValue {
                key: "API_KEY".into(),
                value: "sk-hidden".into(),
            }],
            metadata: vec![],
            user_id: Some("alice".into()),
        };
        let shown = format!("{ctx:?}");
        assert!(
            !shown.contains("tok-very-secret") && !shown.contains("sk-hidden"),
            "{shown}"
        );
        assert!(shown.contains("API_KEY") && shown.contains("alice"));
    }
}
