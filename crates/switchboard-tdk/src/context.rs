//! What a tool knows about its call: the user, the user's OAuth token, the secrets and
//! metadata the gateway injected. Built from the wire context, owned by one call.

use serde_json::Value;
use switchboard_wire::KeyValue;

use crate::ToolError;

/// The context of one tool call. `Debug` shows keys, never a token or a secret value.
#[derive(Debug, Clone, Default)]
pub struct ToolContext {
    tool: String,
    execution_id: Option<String>,
    inner: switchboard_wire::ToolContext,
}

impl ToolContext {
    /// A context for `tool` (its fully qualified name, used in error messages).
    pub fn new(
        tool: impl Into<String>,
        execution_id: Option<String>,
        inner: switchboard_wire::ToolContext,
    ) -> Self {
        ToolContext {
            tool: tool.into(),
            execution_id,
            inner,
        }
    }

    /// The tool's fully qualified name, `Toolkit.Tool`.
    pub fn tool_name(&self) -> &str {
        &self.tool
    }

    /// The execution id the gateway sent, if any.
    pub fn execution_id(&self) -> Option<&str> {
        self.execution_id.as_deref()
    }

    /// The user the call is made for.
    pub fn user_id(&self) -> Option<&str> {
        self.inner.user_id.as_deref()
    }

    /// The user's OAuth token for the provider the tool requires, if one was sent.
    pub fn token(&self) -> Option<&str> {
        self.inner
            .authorization
            .as_ref()
            .and_then(|a| a.token.as_deref())
            .filter(|t| !t.is_empty())
    }

    /// The user's OAuth token, or `TOOL_RUNTIME_CONTEXT_REQUIRED`.
    pub fn require_token(&self) -> Result<&str, ToolError> {
        self.token().ok_or_else(|| {
            ToolError::context_required(format!(
                "Tool '{}' needs an authorization token, and the call carried none",
                self.tool
            ))
        })
    }

    /// What the provider told the gateway about the user, if anything.
    pub fn user_info(&self) -> Option<&Value> {
        self.inner
            .authorization
            .as_ref()
            .and_then(|a| a.user_info.as_ref())
    }

    /// A secret by key (case-insensitive, as Arcade looks them up). A missing or empty
    /// secret is `TOOL_RUNTIME_CONTEXT_REQUIRED` naming the key.
    pub fn secret(&self, key: &str) -> Result<&str, ToolError> {
        find(&self.inner.secrets, key).ok_or_else(|| {
            ToolError::context_required(format!(
                "Tool '{}' needs the secret '{key}', and it is not set",
                self.tool
            ))
        })
    }

    /// A metadata value by key (case-insensitive), e.g. `client_id`.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        find(&self.inner.metadata, key)
    }

    /// The wire context as the gateway sent it.
    pub fn raw(&self) -> &switchboard_wire::ToolContext {
        &self.inner
    }
}

fn find<'a>(items: &'a [KeyValue], key: &str) -> Option<&'a str> {
    items
        .iter()
        .find(|kv| kv.key.eq_ignore_ascii_case(key))
        .map(|kv| kv.value.as_str())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use switchboard_wire::ToolAuthorizationContext;

    fn ctx() -> ToolContext {
        ToolContext::new(
            "Demo.Tool",
            None,
            switchboard_wire::ToolContext {
                authorization: Some(ToolAuthorizationContext {
                    token: Some("tok-123".into()),
                    user_info: None,
                }),
                secrets: vec![
                    KeyValue {
                        key: "API_KEY".into(),
                        value: "sk-abc".into(),
                    },
                    KeyValue {
                        key: "EMPTY".into(),
                        value: String::new(),
                    },
                ],
                metadata: vec![KeyValue {
                    key: "client_id".into(),
                    value: "c1".into(),
                }],
                user_id: Some("alice".into()),
            },
        )
    }

    #[test]
    fn secrets_are_found_whatever_the_case_of_the_key() {
        assert_eq!(ctx().secret("api_key"), Ok("sk-abc"));
        assert_eq!(ctx().metadata("CLIENT_ID"), Some("c1"));
    }

    #[test]
    fn a_missing_or_empty_secret_names_the_key_and_not_a_value() {
        for key in ["NOPE", "EMPTY"] {
            let err = ctx().secret(key).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ContextRequired);
            assert!(err.message().contains(key), "{}", err.message());
            assert!(!err.message().contains("sk-abc"));
        }
    }

    #[test]
    fn debug_output_hides_the_token_and_secret_values() {
        let shown = format!("{:?}", ctx());
        assert!(
            !shown.contains("tok-123") && !shown.contains("sk-abc"),
            "{shown}"
        );
    }
}
