//! The one execution pipeline. Every tool call, REST `POST /v1/tools/execute` and MCP
//! `tools/call` in either era, runs through [`Executor::execute`], whose steps read top
//! to bottom in that one function: may the caller act for the user, which tool, are its
//! requirements met, (limits and hooks, later), dispatch, record.
//!
//! Owns: the call's pipeline and its outcome ([`Execution`]), the tool secrets from the
//! config, and the execution log's writer ([`Recorder`]).
//! Must not: know HTTP, JSON-RPC or any wire shape of a door (`api/` and `mcp/` render an
//! [`Execution`] or an [`ExecError`]), authenticate (the door hands over the [`Caller`]),
//! or prompt a user (it returns the [`Authorization`] to show; the door decides how).

mod record;
mod view;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value};
use switchboard_wire::{
    KeyValue, ToolAuthorizationContextRef, ToolCallError, ToolCallOutput, ToolCallRequestRef,
    ToolContextRef, ToolReferenceRef, error_kind,
};

pub use record::{Recorder, RecorderTask};
pub use view::ToolView;

/// A grant without user info sends `{}`, as arcade-serve expects an object there.
static EMPTY_OBJECT: std::sync::LazyLock<Value> =
    std::sync::LazyLock::new(|| Value::Object(Map::new()));

use crate::builtin;
use crate::catalog::{ResolveError, ToolEntry, ToolSource, validate_input};
use crate::config::SecretValue;
use crate::identity::{Caller, NotTheUser};
use crate::oauth::{AuthError, AuthService, Authorization, Grant, Requirement};
use crate::store::ExecutionRecord;
use crate::upstream::UpstreamError;
use crate::workers::{WorkerError, WorkerRegistry};

/// A request to run one tool for one user, as a door parsed it.
#[derive(Debug, Clone, Default)]
pub struct ToolCall {
    /// `Toolkit.Tool` or `Toolkit_Tool` (any case), optionally `@version`.
    pub tool_name: String,
    /// A version to run; wins over an `@version` in the name.
    pub tool_version: Option<String>,
    pub input: Map<String, Value>,
    /// The user the call names; `None`: no one (a caller bound to a user acts for it).
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
    /// For an upstream MCP tool that answered: its `tools/call` result object exactly as
    /// the upstream sent it, for the MCP door to pass on unchanged. `output` is the REST
    /// view of the same result.
    pub mcp_result: Option<Value>,
}

impl Execution {
    pub fn error_kind(&self) -> Option<&str> {
        self.output.error.as_ref().and_then(|e| e.kind.as_deref())
    }
}

/// Why a call could not be run at all. Everything else, a tool that failed, a secret
/// that is missing or a grant the user has not given included, is an [`Execution`] with
/// an error: it ran the pipeline and is recorded. Each door maps these once: REST in
/// `api/error.rs` (the status after each variant), MCP in `mcp/server.rs`.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// A user token named a user other than its own (403).
    #[error(transparent)]
    NotTheUser(#[from] NotTheUser),
    /// No such tool (or version) in the caller's view (404; MCP: "Unknown tool").
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// The call can't be run as asked, e.g. a tool that acts on a user's account called
    /// for no user (400).
    #[error("{0}")]
    BadRequest(String),
    /// The store or vault failed: a 500 whose cause is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Runs tool calls: the one place a call is checked, dispatched and recorded.
///
/// Owns the tool secrets and the recorder; shares the worker registry (and through it the
/// catalog) and the OAuth service with the rest of the gateway, which reads them through
/// [`Executor::workers`] and [`Executor::auth`] or the state's own handles.
/// Must not: be bypassed. A door that runs a tool any other way skips the may-act-for
/// check, the requirements and the execution log.
///
/// ```ignore
/// let call = ToolCall { tool_name: "Math.Add".into(), input, user_id: Some(user), ..Default::default() };
/// let execution = state.executor.execute(&caller, ToolView::All, &call).await?;
/// if let Some(flow) = &execution.authorization { /* show the user flow.url */ }
/// ```
pub struct Executor {
    workers: Arc<WorkerRegistry>,
    auth: Arc<AuthService>,
    secrets: Arc<BTreeMap<String, SecretValue>>,
    recorder: Recorder,
}

/// What met requirements hand to dispatch: secrets to inject and the user's grant, if any.
struct Prepared {
    secrets: Vec<KeyValue>,
    grant: Option<(Requirement, Grant)>,
}

/// What the requirements step found.
enum Requirements {
    /// Everything is in place: dispatch with these.
    Met(Prepared),
    /// The tool can't run as things stand: this output (a tool error) is the result, with
    /// the authorization flow to show when a grant is missing.
    Unmet(ToolCallOutput, Option<Box<Authorization>>),
}

/// A requirement that is not met: `error` as the call's output.
fn unmet(error: ToolCallError, authorization: Option<Box<Authorization>>) -> Requirements {
    let output = ToolCallOutput {
        error: Some(error),
        ..Default::default()
    };
    Requirements::Unmet(output, authorization)
}

/// Why the OAuth service gave no grant.
enum Refused {
    /// A tool-level failure, returned as an execution with this error.
    Tool(Box<ToolCallError>),
    NeedsAuthorization(Box<Authorization>),
    Call(ExecError),
}

impl Executor {
    /// `secrets`: the config's tool secrets, injected into the calls of tools that need
    /// them. `recorder`: where executions are logged (`Recorder::start`).
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

    /// The worker registry and, through it, the catalog calls resolve in.
    pub fn workers(&self) -> &Arc<WorkerRegistry> {
        &self.workers
    }

    /// The OAuth service the executor asks for users' grants.
    pub fn auth(&self) -> &Arc<AuthService> {
        &self.auth
    }

    /// Keys of configured tool secrets (never their values).
    pub fn secret_keys(&self) -> Vec<String> {
        self.secrets.keys().cloned().collect()
    }

    /// Runs `call` for `caller`, through the tools `tools` shows. The whole pipeline, in
    /// order, each step once: a door only parses its request and renders the answer.
    pub async fn execute(
        &self,
        caller: &Caller,
        tools: ToolView<'_>,
        call: &ToolCall,
    ) -> Result<Execution, ExecError> {
        let started = Instant::now();
        let started_at_ms = chrono::Utc::now().timestamp_millis();

        // 1. Who: the user this call acts for, if the caller may act for them.
        let user = caller.acting_for(call.user_id.as_deref())?;
        // The request's span names the user (an id, never a credential) and the tool.
        let span = tracing::Span::current();
        span.record("user_id", user.map(tracing::field::display));
        span.record("tool", tracing::field::display(&call.tool_name));

        // 2. Which tool: the name (and version) in the catalog, as this caller sees it.
        let tool = self.resolve(tools, &call.tool_name, call.tool_version.as_deref())?;
        let execution_id = new_id();

        // 3. Requirements: valid input, configured secrets, the user's grant. A tool that
        //    can't run for want of one is a failed execution (recorded), not an error.
        let (output, authorization, mcp_result) = match self.requirements(&tool, user, call).await?
        {
            Requirements::Unmet(output, authorization) => (output, authorization, None),
            Requirements::Met(prepared) => {
                // 4. Limits and hooks go here, once they exist: rate limits and quotas
                //    (per caller, user, tool) and pre-call hooks, once the call is known
                //    to be runnable and before anything leaves the gateway. A refusal is
                //    a failed execution, recorded like an unmet requirement.

                // 5. Dispatch: builtin, worker or upstream MCP server; one
                //    refresh-and-retry if the upstream refused the user's token.
                self.dispatch_with_grant(&tool, user, call, &execution_id, prepared)
                    .await
            }
        };

        // 6. Record: the execution log gets every call that resolved to a tool.
        let execution = Execution {
            id: new_id(),
            execution_id,
            success: output.error.is_none(),
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            finished_at: chrono::Utc::now(),
            tool,
            output,
            authorization,
            mcp_result,
        };
        self.record(user, &execution, started_at_ms);
        Ok(execution)
    }

    /// The tool `name` (and `version`, or an `@version` suffix) names in `tools`. A tool
    /// the view hides is unknown, as if the catalog lacked it. Doors call this only to
    /// learn a tool before running it (an MCP `requestState` names one); [`Self::execute`]
    /// resolves on its own.
    pub fn resolve(
        &self,
        tools: ToolView<'_>,
        name: &str,
        version: Option<&str>,
    ) -> Result<Arc<ToolEntry>, ResolveError> {
        let tool = self.workers.catalog().snapshot().resolve(name, version)?;
        if !tools.shows(&tool) {
            return Err(ResolveError::UnknownTool(name.to_string()));
        }
        Ok(tool)
    }

    /// Input, secrets and grant, checked in that order before anything leaves the
    /// gateway; the first that is missing stops the call.
    async fn requirements(
        &self,
        tool: &ToolEntry,
        user: Option<&str>,
        call: &ToolCall,
    ) -> Result<Requirements, ExecError> {
        // An upstream MCP server validates arguments against its own JSON Schema, which
        // the Arcade parameters only approximate: checking here could refuse valid input.
        let validated = !matches!(tool.source, ToolSource::Upstream(_));
        if validated && let Err(e) = validate_input(&tool.definition.input.parameters, &call.input)
        {
            return Ok(unmet(e.tool_call_error(&tool.qualified_name), None));
        }
        let secrets = match self.secrets_for(tool) {
            Ok(secrets) => secrets,
            Err(error) => return Ok(unmet(*error, None)),
        };
        let grant = match &tool.definition.requirements.authorization {
            None => None,
            Some(wire) => {
                let Some(user_id) = user else {
                    return Err(ExecError::BadRequest(format!(
                        "tool '{}' acts on a user's account: user_id is required",
                        tool.qualified_name
                    )));
                };
                let req = Requirement::from_wire(wire);
                match self.auth.grant(user_id, &req).await {
                    Ok(grant) => Some((req, grant)),
                    Err(e) => {
                        return match refusal(e) {
                            Refused::Call(e) => Err(e),
                            Refused::Tool(error) => Ok(unmet(*error, None)),
                            Refused::NeedsAuthorization(auth) => {
                                let error = requirements_not_met(format!(
                                    "Authorization required: tool '{}' needs access to the user's '{}' account. Visit {} to authorize, then call the tool again.",
                                    tool.qualified_name,
                                    auth.provider_id,
                                    auth.url.as_deref().unwrap_or("the authorization URL")
                                ));
                                Ok(unmet(error, Some(auth)))
                            }
                        };
                    }
                }
            }
        };
        Ok(Requirements::Met(Prepared { secrets, grant }))
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
        user: Option<&str>,
        call: &ToolCall,
        execution_id: &str,
        prepared: Prepared,
    ) -> (ToolCallOutput, Option<Box<Authorization>>, Option<Value>) {
        let Prepared { secrets, grant } = prepared;
        let (output, mcp_result) = self
            .dispatch(
                tool,
                user,
                call,
                execution_id,
                secrets.clone(),
                grant.as_ref().map(|(_, g)| g),
            )
            .await;
        let Some((req, grant)) = grant else {
            return (output, None, mcp_result);
        };
        let Some(user_id) = user.filter(|_| token_refused(&output)) else {
            return (output, None, mcp_result);
        };
        tracing::info!(tool = %tool.qualified_name, "upstream refused the token; refreshing and retrying once");
        match self.auth.grant_after_rejection(user_id, &req, &grant).await {
            Ok(fresh) => {
                drop(grant);
                let (output, mcp_result) = self
                    .dispatch(tool, user, call, execution_id, secrets, Some(&fresh))
                    .await;
                (output, None, mcp_result)
            }
            Err(e) => match refusal(e) {
                Refused::Tool(error) => (
                    ToolCallOutput {
                        error: Some(*error),
                        ..Default::default()
                    },
                    None,
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
                        None,
                    )
                }
                Refused::Call(e) => {
                    tracing::error!(error = %e, "refresh after rejection failed");
                    (output, None, mcp_result)
                }
            },
        }
    }

    async fn dispatch(
        &self,
        tool: &ToolEntry,
        user: Option<&str>,
        call: &ToolCall,
        execution_id: &str,
        secrets: Vec<KeyValue>,
        grant: Option<&Grant>,
    ) -> (ToolCallOutput, Option<Value>) {
        let output = match &tool.source {
            ToolSource::Upstream(id) => return self.call_upstream(id, tool, user, call).await,
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
                    let output = failure(
                        error_kind::NETWORK_TRANSPORT_RUNTIME_UNREACHABLE,
                        format!("worker '{worker_id}' is not configured"),
                        true,
                    );
                    return (output, None);
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
                        user_id: user,
                    },
                };
                match worker.client.invoke(&request).await {
                    Ok(response) => normalise_worker_output(response.success, response.output),
                    Err(e) => worker_failure(&e),
                }
            }
        };
        (output, None)
    }

    /// `tools/call` on upstream `id`, on the calling user's own upstream session (no user:
    /// a session of its own, never another user's). Returns the REST view and the
    /// upstream's result object.
    async fn call_upstream(
        &self,
        id: &str,
        tool: &ToolEntry,
        user: Option<&str>,
        call: &ToolCall,
    ) -> (ToolCallOutput, Option<Value>) {
        let Some(upstream) = self.workers.upstream(id) else {
            let output = failure(
                error_kind::NETWORK_TRANSPORT_RUNTIME_UNREACHABLE,
                format!("upstream '{id}' is not configured"),
                false,
            );
            return (output, None);
        };
        let called = upstream
            .client
            .call_tool(
                user.unwrap_or(""),
                &tool.definition.name,
                call.input.clone(),
            )
            .await;
        match called {
            Ok(result) => (upstream_output(&result), Some(result)),
            Err(e) => (upstream_failure(id, &e), None),
        }
    }

    fn record(&self, user: Option<&str>, execution: &Execution, started_at_ms: i64) {
        self.recorder.record(ExecutionRecord {
            id: execution.id.clone(),
            execution_id: execution.execution_id.clone(),
            user_id: user.map(str::to_owned),
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

/// The REST view of an upstream's `tools/call` result: `isError` is a failed execution
/// whose message is its text; else `structuredContent`, else the one text as a string,
/// else the content array.
fn upstream_output(result: &Value) -> ToolCallOutput {
    let content = result.get("content").and_then(Value::as_array);
    let texts: Vec<&str> = content
        .map(|c| {
            c.iter()
                .filter(|block| block.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|block| block.get("text").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    if result.get("isError").and_then(Value::as_bool) == Some(true) {
        let message = if texts.is_empty() {
            "the upstream tool failed without saying why".to_owned()
        } else {
            texts.join("\n")
        };
        return failure(error_kind::TOOL_RUNTIME_FATAL, message, false);
    }
    let value = match (result.get("structuredContent"), content) {
        (Some(structured), _) => structured.clone(),
        (None, Some(blocks)) if blocks.len() == 1 && texts.len() == 1 => {
            Value::String(texts[0].to_owned())
        }
        (None, Some(blocks)) => Value::Array(blocks.clone()),
        (None, None) => Value::Array(Vec::new()),
    };
    ToolCallOutput {
        value: Some(value),
        ..Default::default()
    }
}

/// An upstream that could not be asked or broke the protocol, named by id; the error
/// never carries a configured header.
fn upstream_failure(id: &str, e: &UpstreamError) -> ToolCallOutput {
    match e {
        UpstreamError::Unreachable => failure(
            error_kind::NETWORK_TRANSPORT_RUNTIME_UNREACHABLE,
            format!("upstream '{id}' is unreachable"),
            true,
        ),
        UpstreamError::Timeout => failure(
            error_kind::NETWORK_TRANSPORT_RUNTIME_TIMEOUT,
            format!("upstream '{id}' did not answer in time"),
            false,
        ),
        UpstreamError::Refused(reason) => failure(
            error_kind::NETWORK_TRANSPORT_RUNTIME_UNREACHABLE,
            format!("upstream '{id}' may not be reached: {reason}"),
            false,
        ),
        UpstreamError::Rpc { .. } => failure(
            error_kind::TOOL_RUNTIME_FATAL,
            format!("upstream '{id}': {e}"),
            false,
        ),
        UpstreamError::TooLarge
        | UpstreamError::Protocol(_)
        | UpstreamError::Http { .. }
        | UpstreamError::BadHeader(_) => failure(
            error_kind::NETWORK_TRANSPORT_RUNTIME_UNMAPPED,
            format!("upstream '{id}': {e}"),
            false,
        ),
    }
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
