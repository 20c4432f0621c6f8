//! The catalog as MCP tools, and executions as `CallToolResult`s. Which tools a gateway
//! shows is `exec::ToolView`'s to say, for listing and calling alike.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use rmcp::ErrorData;
use rmcp::model::{
    CallToolResult, ContentBlock, ListToolsResult, MetaObject, Tool, ToolAnnotations,
};

use crate::catalog::{ToolEntry, input_json_schema};
use crate::exec::Execution;

pub const PAGE_SIZE: usize = 100;

/// One page of `tools/list`. The cursor is an opaque offset.
pub fn list_page(
    tools: &[Arc<ToolEntry>],
    cursor: Option<&str>,
) -> Result<ListToolsResult, ErrorData> {
    let start = match cursor {
        None => 0,
        Some(c) => URL_SAFE_NO_PAD
            .decode(c)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|&n| n <= tools.len())
            .ok_or_else(|| ErrorData::invalid_params("invalid cursor", None))?,
    };
    let end = (start + PAGE_SIZE).min(tools.len());
    let mut page =
        ListToolsResult::with_all_items(tools[start..end].iter().map(|t| mcp_tool(t)).collect());
    if end < tools.len() {
        page.next_cursor = Some(URL_SAFE_NO_PAD.encode(end.to_string()));
    }
    Ok(page)
}

pub fn mcp_tool(t: &ToolEntry) -> Tool {
    // An upstream's tool as it listed it (schemas, title, annotations, icons, _meta),
    // under the gateway's name for it.
    if let Some(raw) = &t.mcp_tool {
        match serde_json::from_value::<Tool>(raw.clone()) {
            Ok(mut tool) => {
                tool.name = t.underscore_name.clone().into();
                return tool;
            }
            Err(e) => {
                tracing::warn!(tool = %t.qualified_name, error = %e, "upstream tool is not a valid MCP tool; serving its mapped schema");
            }
        }
    }
    let schema = match input_json_schema(&t.definition.input.parameters) {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let mut tool = Tool::new(
        t.underscore_name.clone(),
        t.definition.description.clone(),
        schema,
    );
    tool.title = Some(t.underscore_name.clone());
    tool.annotations = annotations(t.definition.metadata.as_ref());
    tool
}

/// MCP hints from Arcade's `metadata.behavior` (snake or camel case).
fn annotations(metadata: Option<&Value>) -> Option<ToolAnnotations> {
    let behavior = metadata?.get("behavior")?.as_object()?;
    let hint = |keys: [&str; 2]| {
        keys.iter()
            .find_map(|k| behavior.get(*k))
            .and_then(Value::as_bool)
    };
    let mut out = ToolAnnotations::new();
    out.read_only_hint = hint(["read_only", "readOnly"]);
    out.destructive_hint = hint(["destructive", "destructive"]);
    out.idempotent_hint = hint(["idempotent", "idempotent"]);
    out.open_world_hint = hint(["open_world", "openWorld"]);
    let any = out.read_only_hint.is_some()
        || out.destructive_hint.is_some()
        || out.idempotent_hint.is_some()
        || out.open_world_hint.is_some();
    any.then_some(out)
}

/// A successful or failed (non-authorization) execution as a `CallToolResult`. An
/// upstream MCP tool's result goes back as the upstream sent it.
pub fn call_result(execution: &Execution) -> CallToolResult {
    if let Some(raw) = &execution.mcp_result {
        match serde_json::from_value::<CallToolResult>(raw.clone()) {
            Ok(result) => return result,
            Err(e) => {
                tracing::warn!(tool = %execution.tool.qualified_name, error = %e, "upstream result is not a valid MCP tool result");
                return error_result(format!(
                    "upstream '{}' returned a result that is not a valid MCP tool result",
                    execution.tool.toolkit
                ));
            }
        }
    }
    match &execution.output.error {
        None => {
            let value = execution.output.value.clone().unwrap_or(Value::Null);
            let text = match &value {
                Value::String(s) => s.clone(),
                // A `Value` always serializes; `to_string` (Display) is the slower path.
                other => serde_json::to_string(other).unwrap_or_default(),
            };
            let structured = match value {
                Value::Object(_) => value,
                other => json!({"result": other}),
            };
            let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
            result.structured_content = Some(structured);
            result
        }
        Some(error) => {
            let mut text = error.message.clone();
            let mut arcade = json!({
                "errorKind": error.kind.clone().unwrap_or_else(|| "TOOL_RUNTIME_FATAL".into()),
                "canRetry": error.can_retry,
            });
            if let Some(extra) = &error.additional_prompt_content {
                text.push_str("\n\n");
                text.push_str(extra);
                arcade["additionalPromptContent"] = json!(extra);
            }
            if let Some(ms) = error.retry_after_ms {
                arcade["retryAfterMs"] = json!(ms);
            }
            if let Some(code) = error.status_code {
                arcade["statusCode"] = json!(code);
            }
            let mut meta = Map::new();
            meta.insert("arcade".into(), arcade);
            let mut result = CallToolResult::error(vec![ContentBlock::text(text)]);
            result.meta = Some(MetaObject(meta));
            result
        }
    }
}

/// A plain `isError` result with one text.
pub fn error_result(text: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text)])
}

/// For clients that can't be asked: arcade-mcp-server's exact wording, so models that
/// learned it show the link.
pub fn authorization_required_result(tool_name: &str, url: &str) -> CallToolResult {
    let steps = format!(
        "⚠ Authorization required\n\n  Tool '{tool_name}' needs your permission to access your account.\n\n  To authorize:\n  1. Click this link: {url}\n  2. Grant the requested permissions\n  3. Return here and try again\n\n  This is a one-time setup for this tool."
    );
    let instructions = json!({
        "llm_instructions": format!(
            "Please show the following link to the end user formatted as markdown: {url} \nInform the end user that the tool requires their authorization to be completed before the tool can be executed."
        ),
        "authorization_url": url,
    });
    CallToolResult::error(vec![
        ContentBlock::text(steps),
        ContentBlock::text(instructions.to_string()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behavior_metadata_becomes_hints() {
        let m =
            json!({"behavior": {"read_only": true, "destructive": false, "operations": ["read"]}});
        let hints = serde_json::to_value(annotations(Some(&m))).unwrap();
        assert_eq!(
            hints,
            json!({"readOnlyHint": true, "destructiveHint": false})
        );
        assert_eq!(annotations(Some(&json!({}))), None);
    }

    #[test]
    fn the_authorization_text_carries_the_link_twice() {
        let r = serde_json::to_value(authorization_required_result("Acct_Me", "http://gw/l/x"))
            .unwrap();
        assert_eq!(r["isError"], true);
        let first = r["content"][0]["text"].as_str().unwrap();
        assert!(first.starts_with("⚠ Authorization required"));
        assert!(first.contains("1. Click this link: http://gw/l/x"));
        let second: Value =
            serde_json::from_str(r["content"][1]["text"].as_str().unwrap()).unwrap();
        assert_eq!(second["authorization_url"], "http://gw/l/x");
    }
}
