//! Declaring toolkits and tools: names, descriptions, typed inputs, auth requirements,
//! secrets. Everything here is computed once, when the worker is built.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use switchboard_wire::{
    AuthRequirement, InputParameter, KeyRequirement, OAuth2Requirement, ToolDefinition, ToolInput,
    ToolOutputDefinition, ToolRequirements, ToolkitDefinition, ValueSchema,
};

use crate::schema::{parameters_for, value_schema_for};
use crate::{ToolContext, ToolError};

/// A tool run in progress, type-erased.
pub(crate) type ToolFuture = Pin<Box<dyn Future<Output = Result<Value, ToolError>> + Send>>;

/// A tool's handler with its input type erased: takes the raw `inputs` object.
pub(crate) type ErasedHandler = dyn Fn(ToolContext, Map<String, Value>) -> ToolFuture + Send + Sync;

/// The input of a tool that takes no parameters.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize, JsonSchema)]
pub struct NoInput {}

/// A named, versioned set of tools; the unit a worker serves.
#[derive(Clone)]
pub struct Toolkit {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) description: Option<String>,
    pub(crate) tools: Vec<Tool>,
}

impl Toolkit {
    /// A toolkit; by Arcade's convention `name` is PascalCase.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Toolkit {
            name: name.into(),
            version: version.into(),
            description: None,
            tools: Vec::new(),
        }
    }

    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Adds a tool. A second tool with the same name (ignoring case) replaces the first.
    pub fn tool(mut self, tool: Tool) -> Self {
        self.tools
            .retain(|t| !t.name.eq_ignore_ascii_case(&tool.name));
        self.tools.push(tool);
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// Every tool as a worker lists it on `GET /worker/tools`.
    pub fn definitions(&self) -> Vec<ToolDefinition> {
        self.tools.iter().map(|t| t.definition(self)).collect()
    }
}

/// One tool: its description, parameters (from the input type), requirements and handler.
#[derive(Clone)]
pub struct Tool {
    pub(crate) name: String,
    description: String,
    pub(crate) parameters: Vec<InputParameter>,
    output: ToolOutputDefinition,
    pub(crate) auth: Option<Auth>,
    pub(crate) secrets: Vec<String>,
    metadata: Vec<String>,
    deprecation_message: Option<String>,
    pub(crate) handler: Arc<ErasedHandler>,
}

impl Tool {
    /// A tool whose input is `I`: its fields become the parameters (doc comments their
    /// descriptions; `Option` and `#[serde(default)]` fields are optional). The handler's
    /// `Ok` value becomes `output.value`.
    ///
    /// ```
    /// # use switchboard_tdk::{Tool, ToolContext, ToolError};
    /// #[derive(serde::Deserialize, schemars::JsonSchema)]
    /// struct EchoInput {
    ///     /// The text to send back.
    ///     message: String,
    /// }
    /// let echo = Tool::new("Echo", "Echo a message back", |_ctx: ToolContext, i: EchoInput| async move {
    ///     Ok::<_, ToolError>(i.message)
    /// });
    /// ```
    ///
    /// # Panics
    /// If `I` is not a struct with named fields (a tool's input is always an object): a
    /// bug in the tool's declaration, found when the worker is built.
    pub fn new<I, O, F, Fut>(
        name: impl Into<String>,
        description: impl Into<String>,
        handler: F,
    ) -> Self
    where
        I: DeserializeOwned + JsonSchema + Send + 'static,
        O: Serialize + 'static,
        F: Fn(ToolContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, ToolError>> + Send + 'static,
    {
        let name = name.into();
        let parameters = match parameters_for::<I>() {
            Ok(p) => p,
            Err(e) => panic!("tool '{name}': {e}"),
        };
        let handler = Arc::new(handler);
        let erased: Arc<ErasedHandler> = Arc::new(move |ctx, inputs| {
            let input = match I::deserialize(Value::Object(inputs)) {
                Ok(input) => input,
                Err(e) => {
                    let err = ToolError::bad_input(format!(
                        "Invalid input for tool '{}': {e}",
                        ctx.tool_name()
                    ));
                    return Box::pin(std::future::ready(Err(err)));
                }
            };
            let fut = handler(ctx, input);
            Box::pin(async move {
                let out = fut.await?;
                serde_json::to_value(out).map_err(|e| {
                    ToolError::new(
                        crate::ErrorKind::BadOutputValue,
                        format!("The tool's output could not be serialized: {e}"),
                    )
                })
            })
        });
        Tool {
            name,
            description: description.into(),
            parameters,
            output: ToolOutputDefinition {
                description: None,
                available_modes: vec!["value".into(), "error".into()],
                value_schema: None,
            },
            auth: None,
            secrets: Vec::new(),
            metadata: Vec::new(),
            deprecation_message: None,
            handler: erased,
        }
    }

    /// The tool needs the user's OAuth token for this provider; a call without one fails
    /// with `TOOL_RUNTIME_CONTEXT_REQUIRED` before the handler runs.
    pub fn requires_auth(mut self, auth: Auth) -> Self {
        self.auth = Some(auth);
        self
    }

    /// The tool needs this secret; a call without it fails with
    /// `TOOL_RUNTIME_CONTEXT_REQUIRED` before the handler runs.
    pub fn secret(mut self, key: impl Into<String>) -> Self {
        self.secrets.push(key.into());
        self
    }

    /// The tool reads this metadata key (e.g. `client_id`) when present.
    pub fn metadata(mut self, key: impl Into<String>) -> Self {
        self.metadata.push(key.into());
        self
    }

    pub fn output_description(mut self, description: impl Into<String>) -> Self {
        self.output.description = Some(description.into());
        self
    }

    /// Declares the output's shape from a type.
    pub fn output_schema<T: JsonSchema>(mut self) -> Self {
        self.output.value_schema = Some(value_schema_for::<T>());
        self
    }

    /// Declares the output's shape as a value schema.
    pub fn output_value_schema(mut self, schema: ValueSchema) -> Self {
        self.output.value_schema = Some(schema);
        self
    }

    pub fn deprecated(mut self, message: impl Into<String>) -> Self {
        self.deprecation_message = Some(message.into());
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn definition(&self, toolkit: &Toolkit) -> ToolDefinition {
        let keys = |ks: &[String]| {
            (!ks.is_empty()).then(|| {
                ks.iter()
                    .map(|k| KeyRequirement { key: k.clone() })
                    .collect()
            })
        };
        ToolDefinition {
            name: self.name.clone(),
            fully_qualified_name: format!("{}.{}", toolkit.name, self.name),
            description: self.description.clone(),
            toolkit: ToolkitDefinition {
                name: toolkit.name.clone(),
                description: toolkit.description.clone(),
                version: Some(toolkit.version.clone()),
            },
            input: ToolInput {
                parameters: self.parameters.clone(),
            },
            output: self.output.clone(),
            requirements: ToolRequirements {
                authorization: self.auth.as_ref().map(Auth::to_wire),
                secrets: keys(&self.secrets),
                metadata: keys(&self.metadata),
            },
            deprecation_message: self.deprecation_message.clone(),
            metadata: None,
            meta: None,
        }
    }
}

/// An OAuth 2.0 requirement: a provider service (`provider_id`, e.g. `google`) or one
/// configured provider (`id`), and the scopes the tool needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    provider_id: Option<String>,
    id: Option<String>,
    scopes: Vec<String>,
}

impl Auth {
    /// Requires a token from the provider service `provider_id`.
    pub fn oauth2(provider_id: impl Into<String>) -> Self {
        Auth {
            provider_id: Some(provider_id.into()),
            id: None,
            scopes: Vec::new(),
        }
    }

    /// Requires a token from the configured provider with this `id`.
    pub fn oauth2_id(id: impl Into<String>) -> Self {
        Auth {
            provider_id: None,
            id: Some(id.into()),
            scopes: Vec::new(),
        }
    }

    /// Also names the configured provider `id` (with a `provider_id`).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    pub fn scopes<S: Into<String>>(mut self, scopes: impl IntoIterator<Item = S>) -> Self {
        self.scopes.extend(scopes.into_iter().map(Into::into));
        self
    }

    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.push(scope.into());
        self
    }

    fn to_wire(&self) -> AuthRequirement {
        AuthRequirement {
            provider_id: self.provider_id.clone(),
            // The Arcade CLI drops a tool whose authorization lacks provider_type.
            provider_type: Some("oauth2".into()),
            id: self.id.clone(),
            oauth2: Some(OAuth2Requirement {
                scopes: self.scopes.clone(),
            }),
        }
    }
}
