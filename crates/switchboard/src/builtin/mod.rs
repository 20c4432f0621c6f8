//! The built-in toolkit, `Builtin`: a few tools that need no worker and no account, so
//! the embedded default is useful from the first minute.
//! Must not: need network access, secrets or grants.

use std::time::Duration;

use serde_json::{Map, Value, json};
use switchboard_wire::{
    InputParameter, ToolCallError, ToolDefinition, ToolkitDefinition, ValueSchema, error_kind,
};

pub const TOOLKIT: &str = "Builtin";

/// The longest `Builtin.Sleep` will wait.
const MAX_SLEEP_SECS: f64 = 30.0;

fn param(name: &str, val_type: &str, required: bool, description: &str) -> InputParameter {
    InputParameter {
        name: name.into(),
        required,
        description: Some(description.into()),
        value_schema: ValueSchema {
            val_type: val_type.into(),
            ..Default::default()
        },
        inferrable: true,
    }
}

fn tool(name: &str, description: &str, parameters: Vec<InputParameter>) -> ToolDefinition {
    let mut def = ToolDefinition {
        name: name.into(),
        fully_qualified_name: format!("{TOOLKIT}.{name}"),
        description: description.into(),
        toolkit: ToolkitDefinition {
            name: TOOLKIT.into(),
            description: Some("Tools built into Switchboard; they need no account.".into()),
            version: Some(env!("CARGO_PKG_VERSION").into()),
        },
        ..Default::default()
    };
    def.input.parameters = parameters;
    def.output.available_modes = vec!["value".into(), "error".into()];
    def
}

pub fn definitions() -> Vec<ToolDefinition> {
    vec![
        tool(
            "Echo",
            "Return the given message unchanged.",
            vec![param("message", "string", true, "The message to echo.")],
        ),
        tool(
            "CurrentTime",
            "The current date and time in UTC (RFC 3339), with the Unix timestamp.",
            vec![],
        ),
        tool("RandomUuid", "A new random UUID (version 4).", vec![]),
        tool(
            "Sleep",
            "Wait the given number of seconds (at most 30), then return how long it waited.",
            vec![param(
                "seconds",
                "number",
                true,
                "How long to wait, in seconds (0 to 30).",
            )],
        ),
    ]
}

/// Runs a built-in tool. Input has already been validated against its parameters.
pub async fn call(tool_name: &str, input: &Map<String, Value>) -> Result<Value, ToolCallError> {
    match tool_name {
        "Echo" => Ok(input.get("message").cloned().unwrap_or(Value::Null)),
        "CurrentTime" => {
            let now = chrono::Utc::now();
            Ok(
                json!({"utc": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true), "unix": now.timestamp()}),
            )
        }
        "RandomUuid" => Ok(json!(uuid::Uuid::new_v4().to_string())),
        "Sleep" => {
            let seconds = input.get("seconds").and_then(Value::as_f64).unwrap_or(0.0);
            if !(0.0..=MAX_SLEEP_SECS).contains(&seconds) {
                return Err(ToolCallError {
                    message: format!(
                        "seconds must be between 0 and {MAX_SLEEP_SECS}, got {seconds}"
                    ),
                    kind: Some(error_kind::TOOL_RUNTIME_BAD_INPUT_VALUE.into()),
                    status_code: Some(400),
                    ..Default::default()
                });
            }
            tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
            Ok(json!({"slept_seconds": seconds}))
        }
        other => Err(ToolCallError {
            message: format!("built-in tool '{other}' does not exist"),
            kind: Some(error_kind::TOOL_RUNTIME_FATAL.into()),
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn echo_returns_message_and_sleep_rejects_out_of_range() {
        let mut input = Map::new();
        input.insert("message".into(), json!("hi"));
        assert_eq!(call("Echo", &input).await.unwrap(), json!("hi"));
        let mut input = Map::new();
        input.insert("seconds".into(), json!(31));
        let err = call("Sleep", &input).await.unwrap_err();
        assert_eq!(err.kind.as_deref(), Some("TOOL_RUNTIME_BAD_INPUT_VALUE"));
    }
}
