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
    KeyValue, ToolAuthorizationContextRef, ToolCallError, ToolCallOutput, ToolCallRequestRef,
    ToolContextRef, ToolReferenceRef, error_kind,
};

pub use record::{Recorder, RecorderTask};

/// A grant without user info sends `{}`, as arcade-serve expects an object there.
static EMPTY_OBJECT: std::sync::LazyLock<Value> =
    std::sync::LazyLock::new(|| Value::Object(Map::new()));

use crate::builtin;
use crate::catalog::{ResolveError, ToolEntry, ToolSource, validate_input};
use crate::config::SecretValue;
use crate::oauth::{AuthError, AuthService, Authorization, Grant, Requirement};
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
#[derive(Debug)]
pub struct Execution {
    pub id: String,
    pub execution_id: String,
    pub tool: Arc<ToolEntry>,
    pub success: bool,
    pub duration_ms: f64,
    pub finished_at: chrono::DateTime<chrono::Utc>,
    pub output: ToolCallOutput,
    /// Set when the tool needs a grant the user does not have: the flow to show them.
    pub authorization: Option<Box<Authorization>>,
}

impl Execution {
    pub fn error_kind(&self) -> Option<&str> {
        self.output.error.as_ref().and_then(|e| e.kind.as_deref())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error("{0}")]
    BadRequest(String),
    /// The store or vault failed: a 500 whose cause is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

pub struct Executor {
    workers: Arc<WorkerRegistry>,
    auth: Arc<AuthService>,
    secrets: Arc<BTreeMap<String, SecretValue>>,
    recorder: Recorder,
}

/// What `prepare` hands to dispatch: secrets to inject and the user's grant, if any.
struct Prepared {
    secrets: Vec<KeyValue>,
    grant: Option<(Requirement, Grant)>,
}

/// Why a call stopped before dispatch.
enum Refused {
    /// A tool-level failure, returned as an execution with this error.
    Tool(Box<ToolCallError>),
    NeedsAuthorization(Box<Authorization>),
    Call(ExecError),
}

impl Executor {
    pub fn new(
        workers: Arc<WorkerRegistry>,
        auth: Arc<AuthService>,
        secrets: BTreeMap<String, SecretValue>,
        recorder: Recorder,
    ) -> Self {
        Self {
            workers,
            auth,
            secrets: Arc::new(secrets),
            recorder,
        }
    }

    pub fn workers(&self) -> &Arc<WorkerRegistry> {
        &self.workers
    }

    pub fn auth(&self) -> &Arc<AuthService> {
        &self.auth
    }

    /// Keys of configured tool secrets (never their values).
    pub fn secret_keys(&self) -> Vec<String> {
        self.secrets.keys().cloned().collect()
    }

    /// Resolves `call.tool_name` (and `tool_version`) in the catalog, then runs the tool.
    pub fn execute<'a>(
        &'a self,
        call: &'a ToolCall,
    ) -> impl Future<Output = Result<Execution, ExecError>> + 'a {
        self.run(None, call)
    }

    /// Runs `tool`, which the caller has resolved already (MCP resolves its own name form
    /// and checks the gateway's tool list first); `call.tool_name` is not looked up again.
    pub fn execute_resolved<'a>(
        &'a self,
        tool: Arc<ToolEntry>,
        call: &'a ToolCall,
    ) -> impl Future<Output = Result<Execution, ExecError>> + 'a {
        self.run(Some(tool), call)
    }

    // One future for both entry points: a wrapper future around it would be copied whole
    // when built.
    async fn run(
        &self,
        resolved: Option<Arc<ToolEntry>>,
        call: &ToolCall,
    ) -> Result<Execution, ExecError> {
        let started = Instant::now();
        let started_at_ms = chrono::Utc::now().timestamp_millis();
        let tool = match resolved {
            Some(tool) => tool,
            None => self
                .workers
                .catalog()
                .snapshot()
                .resolve(&call.tool_name, call.tool_version.as_deref())?,
        };
        let execution_id = new_id();

        let mut authorization = None;
        let output = match self.prepare(&tool, call).await {
            Err(Refused::Tool(error)) => ToolCallOutput {
                error: Some(*error),
                ..Default::default()
            },
            Err(Refused::NeedsAuthorization(auth)) => {
                let error = requirements_not_met(format!(
                    "Authorization required: tool '{}' needs access to the user's '{}' account. Visit {} to authorize, then call the tool again.",
                    tool.qualified_name,
                    auth.provider_id,
                    auth.url.as_deref().unwrap_or("the authorization URL")
                ));
                authorization = Some(auth);
                ToolCallOutput {
                    error: Some(error),
                    ..Default::default()
                }
            }
            Err(Refused::Call(e)) => return Err(e),
            Ok(prepared) => {
                let (output, needs) = self
                    .dispatch_with_grant(&tool, call, &execution_id, prepared)
                    .await;
                authorization = needs;
                output
            }
        };

        let execution = Execution {
            id: new_id(),
            execution_id,
            success: output.error.is_none(),
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            finished_at: chrono::Utc::now(),
            tool,
            output,
            authorization,
        };
        self.record(call, &execution, started_at_ms);
        Ok(execution)
    }

    /// Input validation and requirements, before anything leaves the gateway.
    async fn prepare(&self, tool: &ToolEntry, call: &ToolCall) -> Result<Prepared, Refused> {
        validate_input(&tool.definition.input.parameters, &call.input).map_err(|e| {
            Refused::Tool(Box::new(ToolCallError {
                message: format!("Invalid input for tool '{}': {e}", tool.qualified_name),
                kind: Some(error_kind::TOOL_RUNTIME_BAD_INPUT_VALUE.into()),
                status_code: Some(400),
                extra: Some(serde_json::json!({"parameter": e.parameter()})),
                ..Default::default()
            }))
        })?;
        let secrets = self.secrets_for(tool).map_err(Refused::Tool)?;
        let grant = match &tool.definition.requirements.authorization {
            None => None,
            Some(wire) => {
                let Some(user_id) = call.user_id.as_deref() else {
                    return Err(Refused::Call(ExecError::BadRequest(format!(
                        "tool '{}' acts on a user's account: user_id is required",
                        tool.qualified_name
                    ))));
                };
                let req = Requirement::from_wire(wire);
                match self.auth.grant(user_id, &req).await {
                    Ok(grant) => Some((req, grant)),
                    Err(e) => return Err(refusal(e)),
                }
            }
        };
        Ok(Prepared { secrets, grant })
    }

    fn secrets_for(&self, tool: &ToolEntry) -> Result<Vec<KeyValue>, Box<ToolCallError>> {
        let mut secrets = Vec::new();
        for req in tool.definition.requirements.secrets.iter().flatten() {
            match self.secrets.get(&req.key) {
                Some(value) => secrets.push(KeyValue {
                    key: req.key.clone(),
                    value: value.expose().to_string(),
                }),
                None => {
                    return Err(Box::new(requirements_not_met(format!(
                        "tool '{}' needs the secret '{}', which is not configured (add it under `secrets:` in engine.yaml)",
                        tool.qualified_name, req.key
                    ))));
                }
            }
        }
        Ok(secrets)
    }

    /// Dispatches; if the worker says the user's token was refused, refreshes it once
    /// (single-flight) and retries the call once.
    async fn dispatch_with_grant(
        &self,
        tool: &ToolEntry,
        call: &ToolCall,
        execution_id: &str,
        prepared: Prepared,
    ) -> (ToolCallOutput, Option<Box<Authorization>>) {
        let Prepared { secrets, grant } = prepared;
        let output = self
            .dispatch(
                tool,
                call,
                execution_id,
                secrets.clone(),
                grant.as_ref().map(|(_, g)| g),
            )
            .await;
        let Some((req, grant)) = grant else {
            return (output, None);
        };
        let Some(user_id) = call.user_id.as_deref().filter(|_| token_refused(&output)) else {
            return (output, None);
        };
        tracing::info!(tool = %tool.qualified_name, "upstream refused the token; refreshing and retrying once");
        match self.auth.grant_after_rejection(user_id, &req, &grant).await {
            Ok(fresh) => {
                drop(grant);
                (
                    self.dispatch(tool, call, execution_id, secrets, Some(&fresh))
                        .await,
                    None,
                )
            }
            Err(e) => match refusal(e) {
                Refused::Tool(error) => (
                    ToolCallOutput {
                        error: Some(*error),
                        ..Default::default()
                    },
                    None,
                ),
                Refused::NeedsAuthorization(auth) => {
                    let error = requirements_not_met(format!(
                        "Authorization required: the user's '{}' token was refused. Visit {} to authorize again.",
                        auth.provider_id,
                        auth.url.as_deref().unwrap_or("the authorization URL")
                    ));
                    (
                        ToolCallOutput {
                            error: Some(error),
                            ..Default::default()
                        },
                        Some(auth),
                    )
                }
                Refused::Call(e) => {
                    tracing::error!(error = %e, "refresh after rejection failed");
                    (output, None)
                }
            },
        }
    }

    async fn dispatch(
        &self,
        tool: &ToolEntry,
        call: &ToolCall,
        execution_id: &str,
        secrets: Vec<KeyValue>,
        grant: Option<&Grant>,
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
                let execution_id = Some(execution_id);
                let created_at = worker_timestamp(chrono::Utc::now());
                let request = ToolCallRequestRef {
                    run_id: None,
                    execution_id,
                    created_at: Some(&created_at),
                    tool: ToolReferenceRef {
                        name: &tool.definition.name,
                        toolkit: &tool.toolkit,
                        version: tool.version.as_deref(),
                    },
                    inputs: &call.input,
                    context: ToolContextRef {
                        // The one place a user's token leaves the gateway: to the worker
                        // that runs this call.
                        authorization: grant.map(|g| ToolAuthorizationContextRef {
                            token: Some(g.token.expose()),
                            user_info: Some(g.user_info.as_ref().unwrap_or(&EMPTY_OBJECT)),
                        }),
                        secrets: &secrets,
                        metadata: &[],
                        user_id: call.user_id.as_deref(),
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

/// `2026-11-26T06:41:16.123456`: the naive UTC form Arcade's workers expect. Written
/// digit by digit: chrono's `format` parses its pattern on every call, and `write!` went
/// through the formatting machinery for each of seven fields (~2k instructions a call).
fn worker_timestamp(now: chrono::DateTime<chrono::Utc>) -> String {
    use chrono::{Datelike, Timelike};
    fn digits(out: &mut Vec<u8>, value: u32, width: u32) {
        for place in (0..width).rev() {
            let digit = (value / 10u32.pow(place)) % 10;
            out.push(b'0' + digit as u8);
        }
    }
    let mut out = Vec::with_capacity(26);
    // Years outside 0..=9999 never occur on a running clock; clamped to keep four digits.
    digits(&mut out, now.year().clamp(0, 9999) as u32, 4);
    out.push(b'-');
    digits(&mut out, now.month(), 2);
    out.push(b'-');
    digits(&mut out, now.day(), 2);
    out.push(b'T');
    digits(&mut out, now.hour(), 2);
    out.push(b':');
    digits(&mut out, now.minute(), 2);
    out.push(b':');
    digits(&mut out, now.second(), 2);
    out.push(b'.');
    // A leap second reports 1_000_000 µs and more; the wire form has six digits.
    digits(&mut out, now.timestamp_subsec_micros().min(999_999), 6);
    // Only ASCII digits and separators were pushed.
    String::from_utf8(out).unwrap_or_default()
}

/// A fresh time-ordered id in its hyphenated form, without the formatting machinery.
fn new_id() -> String {
    let mut buffer = uuid::Uuid::encode_buffer();
    uuid::Uuid::now_v7()
        .hyphenated()
        .encode_lower(&mut buffer)
        .to_owned()
}

/// The worker says the upstream refused the token (Arcade's kind, or a bare 401).
fn token_refused(output: &ToolCallOutput) -> bool {
    output.error.as_ref().is_some_and(|e| {
        e.kind.as_deref() == Some(error_kind::UPSTREAM_RUNTIME_AUTH_ERROR)
            || e.status_code == Some(401)
    })
}

fn refusal(e: AuthError) -> Refused {
    match e {
        AuthError::NeedsAuthorization(auth) => Refused::NeedsAuthorization(auth),
        AuthError::ProviderUnavailable(reason) => Refused::Tool(Box::new(ToolCallError {
            message: format!(
                "The account provider is unavailable right now; try again shortly ({reason})"
            ),
            kind: Some(error_kind::UPSTREAM_RUNTIME_SERVER_ERROR.into()),
            can_retry: true,
            retry_after_ms: Some(1000),
            ..Default::default()
        })),
        AuthError::UnknownProvider(p) => Refused::Tool(Box::new(requirements_not_met(format!(
            "this tool needs an account at {p}, and no such auth provider is configured"
        )))),
        AuthError::BadRequest(m) | AuthError::Forbidden(m) => {
            Refused::Call(ExecError::BadRequest(m))
        }
        other => Refused::Call(ExecError::Internal(other.to_string())),
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_worker_timestamp_is_chronos_naive_form_with_six_digits() {
        let cases = [
            chrono::Utc
                .with_ymd_and_hms(2026, 11, 26, 6, 41, 16)
                .unwrap(),
            chrono::Utc.with_ymd_and_hms(1999, 1, 2, 3, 4, 5).unwrap()
                + chrono::Duration::microseconds(7),
            chrono::Utc
                .with_ymd_and_hms(2030, 12, 31, 23, 59, 59)
                .unwrap()
                + chrono::Duration::microseconds(999_999),
        ];
        for at in cases {
            assert_eq!(
                worker_timestamp(at),
                at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
            );
        }
    }

    #[test]
    fn new_ids_are_hyphenated_lowercase_uuids_in_time_order() {
        let (first, second) = (new_id(), new_id());
        for id in [&first, &second] {
            let parsed = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(parsed.get_version_num(), 7);
            assert_eq!(*id, parsed.hyphenated().to_string());
        }
        assert!(first < second);
    }
}
