//! The one execution pipeline. Every entry point (REST execute; MCP tools/call later)
//! calls [`Executor::execute`]; the steps read top to bottom there: resolve, validate,
//! requirements, dispatch, record.
//! Must not: know HTTP status codes or response shapes; `api/` maps outcomes.

mod record;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value};
use switchboard_wire::{
    KeyValue, ToolCallError, ToolCallOutput, ToolCallRequest, ToolContext, ToolReference,
    error_kind,
};

pub use record::{Recorder, RecorderTask};

use crate::builtin;
use crate::catalog::{ResolveError, ToolEntry, ToolSource, validate_input};
use crate::config::SecretValue;
use crate::store::ExecutionRecord;
use crate::workers::{WorkerError, WorkerRegistry};

/// A request to run one tool for one user.
#[derive(Debug, Clone, Default)]
pub struct ToolCall {
    pub tool_name: String,
    pub tool_version: Option<String>,
    pub input: Map<String, Value>,
    pub user_id: Option<String>,
}

/// What happened. A tool failure is an `Execution` with `success == false` and an
/// error kind; only a name that resolves to nothing is an [`ExecError`].
#[derive(Debug, Clone)]
pub struct Execution {
    pub id: String,
    pub execution_id: String,
    pub tool: Arc<ToolEntry>,
    pub success: bool,
    pub duration_ms: f64,
    pub finished_at: chrono::DateTime<chrono::Utc>,
    pub output: ToolCallOutput,
}

impl Execution {
    pub fn error_kind(&self) -> Option<&str> {
        self.output.error.as_ref().and_then(|e| e.kind.as_deref())
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ExecError {
    #[error(transparent)]
    Resolve(#[from] ResolveError),
}

pub struct Executor {
    workers: Arc<WorkerRegistry>,
    secrets: Arc<BTreeMap<String, SecretValue>>,
    recorder: Recorder,
}

impl Executor {
    pub fn new(
        workers: Arc<WorkerRegistry>,
        secrets: BTreeMap<String, SecretValue>,
        recorder: Recorder,
    ) -> Self {
        Self {
            workers,
            secrets: Arc::new(secrets),
            recorder,
        }
    }

    pub fn workers(&self) -> &Arc<WorkerRegistry> {
        &self.workers
    }

    /// Keys of configured tool secrets (never their values).
    pub fn secret_keys(&self) -> Vec<String> {
        self.secrets.keys().cloned().collect()
    }

    pub async fn execute(&self, call: ToolCall) -> Result<Execution, ExecError> {
        let started = Instant::now();
        let started_at_ms = chrono::Utc::now().timestamp_millis();
        let catalog = self.workers.catalog().snapshot();
        let tool = catalog.resolve(&call.tool_name, call.tool_version.as_deref())?;
        let execution_id = uuid::Uuid::now_v7().to_string();

        let output = match self.prepare(&tool, &call) {
            Err(error) => ToolCallOutput {
                error: Some(error),
                ..Default::default()
            },
            Ok(secrets) => self.dispatch(&tool, &call, &execution_id, secrets).await,
        };

        let execution = Execution {
            id: uuid::Uuid::now_v7().to_string(),
            execution_id,
            success: output.error.is_none(),
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            finished_at: chrono::Utc::now(),
            tool,
            output,
        };
        self.record(&call, &execution, started_at_ms);
        Ok(execution)
    }

    /// Input validation and requirements, before anything leaves the gateway.
    fn prepare(&self, tool: &ToolEntry, call: &ToolCall) -> Result<Vec<KeyValue>, ToolCallError> {
        validate_input(&tool.definition.input.parameters, &call.input).map_err(|e| {
            ToolCallError {
                message: format!("Invalid input for tool '{}': {e}", tool.qualified_name),
                kind: Some(error_kind::TOOL_RUNTIME_BAD_INPUT_VALUE.into()),
                status_code: Some(400),
                extra: Some(serde_json::json!({"parameter": e.parameter()})),
                ..Default::default()
            }
        })?;
        if let Some(auth) = &tool.definition.requirements.authorization {
            let provider = auth
                .id
                .as_deref()
                .or(auth.provider_id.as_deref())
                .unwrap_or("unknown");
            return Err(requirements_not_met(format!(
                "tool '{}' needs an authorization for provider '{provider}', and this gateway has no OAuth connections yet",
                tool.qualified_name
            )));
        }
        let mut secrets = Vec::new();
        for req in tool.definition.requirements.secrets.iter().flatten() {
            match self.secrets.get(&req.key) {
                Some(value) => secrets.push(KeyValue {
                    key: req.key.clone(),
                    value: value.expose().to_string(),
                }),
                None => {
                    return Err(requirements_not_met(format!(
                        "tool '{}' needs the secret '{}', which is not configured (add it under `secrets:` in engine.yaml)",
                        tool.qualified_name, req.key
                    )));
                }
            }
        }
        Ok(secrets)
    }

    async fn dispatch(
        &self,
        tool: &ToolEntry,
        call: &ToolCall,
        execution_id: &str,
        secrets: Vec<KeyValue>,
    ) -> ToolCallOutput {
        match &tool.source {
            ToolSource::Builtin => match builtin::call(&tool.definition.name, &call.input).await {
                Ok(value) => ToolCallOutput {
                    value: Some(value),
                    ..Default::default()
                },
                Err(error) => ToolCallOutput {
                    error: Some(error),
                    ..Default::default()
                },
            },
            ToolSource::Worker(worker_id) => {
                let Some(worker) = self.workers.get(worker_id) else {
                    return failure(
                        error_kind::NETWORK_TRANSPORT_RUNTIME_UNREACHABLE,
                        format!("worker '{worker_id}' is not configured"),
                        true,
                    );
                };
                let request = ToolCallRequest {
                    run_id: None,
                    execution_id: Some(execution_id.to_string()),
                    created_at: Some(
                        chrono::Utc::now()
                            .naive_utc()
                            .format("%Y-%m-%dT%H:%M:%S%.6f")
                            .to_string(),
                    ),
                    tool: ToolReference {
                        name: tool.definition.name.clone(),
                        toolkit: tool.toolkit.clone(),
                        version: tool.version.clone(),
                    },
                    inputs: call.input.clone(),
                    context: ToolContext {
                        authorization: None,
                        secrets,
                        metadata: Vec::new(),
                        user_id: call.user_id.clone(),
                    },
                };
                match worker.client.invoke(&request).await {
                    Ok(response) => normalise_worker_output(response.success, response.output),
                    Err(e) => worker_failure(&e),
                }
            }
        }
    }

    fn record(&self, call: &ToolCall, execution: &Execution, started_at_ms: i64) {
        self.recorder.record(ExecutionRecord {
            id: execution.id.clone(),
            execution_id: execution.execution_id.clone(),
            user_id: call.user_id.clone(),
            tool_name: execution.tool.qualified_name.clone(),
            toolkit: execution.tool.toolkit.clone(),
            tool_version: execution.tool.version.clone(),
            source: execution.tool.source.label().to_string(),
            status: if execution.success {
                "success".into()
            } else {
                "failed".into()
            },
            error_kind: execution.error_kind().map(str::to_string),
            duration_ms: execution.duration_ms,
            started_at_ms,
            finished_at_ms: execution.finished_at.timestamp_millis(),
        });
    }
}

fn requirements_not_met(message: String) -> ToolCallError {
    ToolCallError {
        message,
        kind: Some(error_kind::TOOL_REQUIREMENTS_NOT_MET.into()),
        status_code: Some(403),
        ..Default::default()
    }
}

fn failure(kind: &str, message: String, can_retry: bool) -> ToolCallOutput {
    ToolCallOutput {
        error: Some(ToolCallError {
            message,
            kind: Some(kind.into()),
            can_retry,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A worker that says `success: false` without an error still failed.
fn normalise_worker_output(success: bool, mut output: ToolCallOutput) -> ToolCallOutput {
    if !success && output.error.is_none() {
        output.error = Some(ToolCallError {
            message: "the tool failed without saying why".into(),
            kind: Some(error_kind::UNKNOWN.into()),
            ..Default::default()
        });
    }
    if success {
        output.error = None;
    }
    output
}

fn worker_failure(e: &WorkerError) -> ToolCallOutput {
    let (kind, can_retry) = match e {
        WorkerError::Unreachable { .. } | WorkerError::Token { .. } => {
            (error_kind::NETWORK_TRANSPORT_RUNTIME_UNREACHABLE, true)
        }
        WorkerError::Timeout { .. } => (error_kind::NETWORK_TRANSPORT_RUNTIME_TIMEOUT, false),
        WorkerError::Status { .. } | WorkerError::BadReply { .. } => {
            (error_kind::NETWORK_TRANSPORT_RUNTIME_UNMAPPED, false)
        }
    };
    failure(kind, e.to_string(), can_retry)
}
