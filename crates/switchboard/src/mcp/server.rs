//! The MCP server proper: rmcp calls it for each request, in either era, with the HTTP
//! request's parts (and so the caller's `Ctx`) in the request's extensions. Every
//! `tools/call` runs through `exec::Executor`; a call that needs the user's authorization
//! asks for it in the form the client can act on.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, ClientCapabilities, CustomNotification,
    ElicitRequest, ElicitRequestParams, ElicitationAction, Extensions, Implementation,
    InitializeRequestParams, InitializeResult, InputRequest, InputRequests, InputRequiredResult,
    ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ProtocolVersion, ServerCapabilities, ServerConfig, ServerNotification,
    SubscriptionFilter,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};

use super::request_state::{PendingCall, arguments_digest};
use super::{Ctx, Mcp, subscriptions, tools};
use crate::catalog::ToolEntry;
use crate::exec::{ExecError, Execution, Executor, ToolCall, ToolView};
use crate::oauth::FlowStatus;

/// Oldest first: the handshake versions, then the stateless era.
pub(super) const SUPPORTED: &[ProtocolVersion] = &[
    ProtocolVersion::V_2025_03_26,
    ProtocolVersion::V_2025_06_18,
    ProtocolVersion::V_2025_11_25,
    ProtocolVersion::V_2026_07_28,
];
/// The key a modern `input_required` result uses for its one request.
const AUTHORIZE_INPUT: &str = "authorize";
/// How long a modern `tools/list` may be cached, and by whom (it is this user's view).
const LIST_TTL_MS: u64 = 60_000;

#[derive(Clone)]
pub(super) struct GatewayServer {
    pub mcp: Mcp,
}

/// The caller the endpoint authenticated, carried in with the HTTP request.
fn ctx_of(extensions: &Extensions) -> Result<Ctx, ErrorData> {
    extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Ctx>())
        .cloned()
        .ok_or_else(|| ErrorData::internal_error("request without an authenticated caller", None))
}

fn is_modern(context: &RequestContext<RoleServer>) -> bool {
    context
        .protocol_version()
        .is_some_and(|v| !v.has_initialize())
}

// Logging is deprecated by SEP-2577, yet handshake-era clients (and the conformance suite)
// still send `logging/setLevel`: the capability stays until those eras go.
#[allow(deprecated)]
impl ServerHandler for GatewayServer {
    fn get_info(&self) -> ServerConfig {
        InitializeResult::new(
            // No prompts or resources of its own: both lists are empty, with the caching
            // hints the stateless era wants. Completions: nothing to complete, so an
            // empty answer (rmcp's default handler) rather than an unknown method.
            ServerCapabilities::builder()
                .enable_logging()
                .enable_completions()
                .enable_prompts()
                .enable_resources()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
        .with_server_info(Implementation::new(
            "switchboard",
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions("Tools served by Switchboard")
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(SUPPORTED)
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        context.peer.set_peer_info(request.clone());
        let mut info = self.negotiate_initialize(&request)?;
        if let Some(description) = ctx_of(&context.extensions)?
            .gateway
            .as_ref()
            .and_then(|g| g.description.clone())
        {
            info.instructions = Some(description);
        }
        Ok(info)
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        match ctx_of(&context.extensions) {
            Ok(ctx) => self
                .mcp
                .hub
                .live
                .watch(&self.mcp.app.workers, ctx.gateway, context.peer),
            Err(e) => tracing::warn!(error = %e.message, "MCP session without a caller"),
        }
    }

    async fn set_level(
        &self,
        _request: rmcp::model::SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        // The gateway sends no log notifications; any level is satisfied.
        Ok(())
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let ctx = ctx_of(&context.extensions)?;
        let catalog = self.mcp.app.workers.catalog().snapshot();
        let view = ctx.tools().list(&catalog);
        let cursor = request.as_ref().and_then(|r| r.cursor.as_deref());
        let mut page = tools::list_page(&view, cursor)?;
        if is_modern(&context) {
            page = page
                .with_ttl_ms(LIST_TTL_MS)
                .with_cache_scope(CacheScope::Private);
        }
        Ok(page)
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let mut page = ListPromptsResult::with_all_items(Vec::new());
        if is_modern(&context) {
            page = page
                .with_ttl_ms(LIST_TTL_MS)
                .with_cache_scope(CacheScope::Public);
        }
        Ok(page)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let mut page = ListResourcesResult::with_all_items(Vec::new());
        if is_modern(&context) {
            page = page
                .with_ttl_ms(LIST_TTL_MS)
                .with_cache_scope(CacheScope::Public);
        }
        Ok(page)
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let mut page = ListResourceTemplatesResult::with_all_items(Vec::new());
        if is_modern(&context) {
            page = page
                .with_ttl_ms(LIST_TTL_MS)
                .with_cache_scope(CacheScope::Public);
        }
        Ok(page)
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(subscriptions::accepted(requested))
    }

    async fn listen(&self, subscription: SubscriptionContext) -> Result<(), ErrorData> {
        let ctx = ctx_of(&subscription.request_context().extensions)?;
        subscriptions::listen(
            subscription,
            self.mcp.app.workers.clone(),
            ctx.gateway,
            self.mcp.app.stopping.clone(),
        )
        .await;
        Ok(())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let ctx = ctx_of(&context.extensions)?;
        let asker = if is_modern(&context) {
            Asker::Modern {
                by_url: asks_by_url(context.client_capabilities().as_ref()),
            }
        } else {
            Asker::Session(&context)
        };
        self.call(&ctx, request, asker).await
    }
}

/// Whether a client declared URL elicitation, the one prompt form the gateway uses.
pub(super) fn asks_by_url(capabilities: Option<&ClientCapabilities>) -> bool {
    capabilities
        .and_then(|c| c.elicitation.as_ref())
        .is_some_and(|e| e.url.is_some())
}

/// How a `tools/call` can ask its user to authorize.
pub(super) enum Asker<'a> {
    /// 2026-07-28: an `input_required` result with a sealed `requestState`, if the client
    /// takes URL elicitation.
    Modern { by_url: bool },
    /// Handshake era, inside the session: `elicitation/create`, if the client takes URL
    /// elicitation.
    Session(&'a RequestContext<RoleServer>),
    /// Handshake era, answered without the session (`direct`): the link in an `isError`
    /// result. A call that could prompt by elicitation is never answered this way.
    Link,
}

impl GatewayServer {
    fn executor(&self) -> &Executor {
        &self.mcp.app.executor
    }

    /// Whether calling `name` may need the user's authorization (an unknown name: no).
    pub(super) fn may_need_authorization(&self, name: &str) -> bool {
        self.executor()
            .resolve(ToolView::All, name, None)
            .is_ok_and(|tool| tool.definition.requirements.authorization.is_some())
    }

    /// `tools/call` in either era, whichever way the request came in: the executor runs
    /// it; what is left here is how MCP asks a user to authorize and resumes after.
    pub(super) async fn call(
        &self,
        ctx: &Ctx,
        mut request: CallToolRequestParams,
        asker: Asker<'_>,
    ) -> Result<CallToolResponse, ErrorData> {
        let call = ToolCall {
            tool_name: request.name.to_string(),
            tool_version: None,
            input: request.arguments.take().unwrap_or_default(),
            user_id: Some(ctx.user.clone()),
        };
        // MCP names no version, so any name that fails to resolve is simply unknown.
        let unknown = || ErrorData::invalid_params(format!("Unknown tool: {}", request.name), None);
        let modern = matches!(asker, Asker::Modern { .. });
        if modern && let Some(state) = request.request_state.as_deref() {
            let tool = self
                .executor()
                .resolve(ctx.tools(), &call.tool_name, None)
                .map_err(|_| unknown())?;
            let call = pinned(&tool, call);
            return self.resume_modern(ctx, &tool, call, state, &request).await;
        }
        let execution = match self
            .executor()
            .execute(&ctx.caller, ctx.tools(), &call)
            .await
        {
            Ok(execution) => execution,
            Err(ExecError::Resolve(_)) => return Err(unknown()),
            Err(e) => return Err(call_error(e)),
        };
        let Some(authorization) = execution.authorization.as_deref() else {
            return finished(&execution);
        };
        let Some(url) = authorization.url.clone() else {
            return Ok(tools::call_result(&execution).into());
        };
        let tool = &execution.tool;
        let flow_id = authorization.id.clone().unwrap_or_default();
        match asker {
            Asker::Modern { by_url: true } => {
                let pending = PendingCall {
                    u: ctx.user.clone(),
                    g: ctx.slug().map(str::to_owned),
                    t: tool.qualified_name.clone(),
                    a: arguments_digest(&call.input),
                    f: flow_id,
                    url,
                    exp: self.request_state_expiry(),
                };
                Ok(self.input_required(pending, tool, &authorization.provider_id))
            }
            Asker::Session(context) if asks_by_url(context.client_capabilities().as_ref()) => {
                let prompt = Prompt {
                    tool: tool.clone(),
                    call: pinned(tool, call),
                    url,
                    flow_id,
                    provider: authorization.provider_id.clone(),
                };
                self.elicit_and_run(ctx, context, &prompt).await
            }
            // A client that can't be asked gets the link, for the model to show.
            _ => Ok(tools::authorization_required_result(&tool.underscore_name, &url).into()),
        }
    }

    /// Runs a call again once the user has authorized (or to see whether they have).
    async fn execute(&self, ctx: &Ctx, call: &ToolCall) -> Result<Execution, ErrorData> {
        self.executor()
            .execute(&ctx.caller, ctx.tools(), call)
            .await
            .map_err(call_error)
    }

    // --- 2025-11-25: elicitation/create while the call waits ---------------------------

    async fn elicit_and_run(
        &self,
        ctx: &Ctx,
        context: &RequestContext<RoleServer>,
        prompt: &Prompt,
    ) -> Result<CallToolResponse, ErrorData> {
        let deadline = tokio::time::Instant::now() + self.mcp.app.config.oauth.elicitation_timeout;
        let elicitation_id = uuid::Uuid::new_v4().to_string();
        let ask = ElicitRequestParams::UrlElicitationParams {
            meta: None,
            message: prompt_message(&prompt.tool, &prompt.provider),
            url: prompt.url.clone(),
            elicitation_id: elicitation_id.clone(),
        };
        let answer = tokio::select! {
            answer = tokio::time::timeout_at(deadline, context.peer.create_elicitation(ask)) => answer,
            _ = context.ct.cancelled() => {
                return Err(ErrorData::internal_error("the call was cancelled", None));
            }
        };
        let answer = match answer {
            Ok(Ok(answer)) => answer,
            // The client answered with an error: it can't show the link, so the model must.
            Ok(Err(e)) => {
                tracing::info!(error = %e, "MCP elicitation refused by the client");
                return Ok(tools::authorization_required_result(
                    &prompt.tool.underscore_name,
                    &prompt.url,
                )
                .into());
            }
            Err(_) => return Ok(timed_out(&prompt.tool, &prompt.url)),
        };
        match answer.action {
            ElicitationAction::Accept => {}
            ElicitationAction::Decline => return Ok(declined(&prompt.tool, "decline")),
            _ => return Ok(declined(&prompt.tool, "cancel")),
        }
        match self.wait_for_flow(&prompt.flow_id, deadline).await {
            FlowEnd::Completed => {}
            FlowEnd::Failed(reason) => return Ok(failed(&prompt.tool, &reason)),
            FlowEnd::TimedOut => return Ok(timed_out(&prompt.tool, &prompt.url)),
        }
        let done = CustomNotification::new(
            "notifications/elicitation/complete",
            Some(json!({"elicitationId": elicitation_id})),
        );
        if let Err(e) = context
            .peer
            .send_notification(ServerNotification::CustomNotification(done))
            .await
        {
            tracing::debug!(error = %e, "MCP elicitation/complete not delivered");
        }
        let execution = self.execute(ctx, &prompt.call).await?;
        match execution.authorization.as_deref() {
            Some(auth) => Ok(tools::authorization_required_result(
                &prompt.tool.underscore_name,
                auth.url.as_deref().unwrap_or(&prompt.url),
            )
            .into()),
            None => finished(&execution),
        }
    }

    async fn wait_for_flow(&self, flow_id: &str, deadline: tokio::time::Instant) -> FlowEnd {
        let auth = &self.mcp.app.oauth;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match auth.status(flow_id, left).await {
                Ok(a) => match a.status {
                    FlowStatus::Completed => return FlowEnd::Completed,
                    FlowStatus::Failed => {
                        return FlowEnd::Failed(
                            a.failure_reason
                                .unwrap_or_else(|| "the authorization failed".into()),
                        );
                    }
                    FlowStatus::Pending | FlowStatus::NotStarted => {}
                },
                Err(e) => {
                    tracing::warn!(error = %e, "MCP: authorization status unavailable");
                    return FlowEnd::Failed("the authorization could not be checked".into());
                }
            }
            if left.is_zero() {
                return FlowEnd::TimedOut;
            }
        }
    }

    // --- 2026-07-28: input_required and a sealed requestState --------------------------

    /// A `requestState` lives as long as the authorization flow it waits for
    /// (`auth.flow_ttl`): after that its link is dead and the call must start afresh.
    fn request_state_expiry(&self) -> i64 {
        let ttl = self.mcp.app.config.oauth.flow_ttl;
        self.mcp.hub.sealer.expiry_after(ttl)
    }

    fn input_required(
        &self,
        pending: PendingCall,
        tool: &ToolEntry,
        provider: &str,
    ) -> CallToolResponse {
        let ask = ElicitRequestParams::UrlElicitationParams {
            meta: None,
            message: prompt_message(tool, provider),
            url: pending.url.clone(),
            elicitation_id: pending.f.clone(),
        };
        let mut requests = InputRequests::new();
        requests.insert(
            AUTHORIZE_INPUT.to_string(),
            InputRequest::Elicitation(ElicitRequest::new(ask)),
        );
        let state = self.mcp.hub.sealer.seal(&pending);
        InputRequiredResult::new(Some(requests), Some(state)).into()
    }

    async fn resume_modern(
        &self,
        ctx: &Ctx,
        tool: &Arc<ToolEntry>,
        call: ToolCall,
        state: &str,
        request: &CallToolRequestParams,
    ) -> Result<CallToolResponse, ErrorData> {
        let pending = self
            .mcp
            .hub
            .sealer
            .open(state)
            .map_err(|e| ErrorData::invalid_params(e.to_string(), None))?;
        if !pending.is_for(&ctx.user, ctx.slug(), &tool.qualified_name, &call.input) {
            return Err(ErrorData::invalid_params(
                "requestState belongs to another call: retry with the same user, endpoint, \
                 tool and arguments, or call the tool again without it",
                None,
            ));
        }
        let answer = request
            .input_responses
            .as_ref()
            .and_then(|r| r.get(AUTHORIZE_INPUT));
        let action = answer
            .and_then(|a| a.get("action").or_else(|| a.pointer("/result/action")))
            .and_then(Value::as_str);
        if let Some(action @ ("decline" | "cancel")) = action {
            return Ok(declined(tool, action));
        }
        // After `accept` the user may still be on the provider's page: wait, bounded.
        let wait = if action == Some("accept") {
            self.mcp.app.config.oauth.elicitation_timeout
        } else {
            Duration::ZERO
        };
        let deadline = tokio::time::Instant::now() + wait;
        match self.wait_for_flow(&pending.f, deadline).await {
            FlowEnd::Completed => {}
            FlowEnd::Failed(reason) => return Ok(failed(tool, &reason)),
            FlowEnd::TimedOut => {
                let provider = tool
                    .definition
                    .requirements
                    .authorization
                    .as_ref()
                    .and_then(|a| a.provider_id.clone())
                    .unwrap_or_default();
                return Ok(self.input_required(pending, tool, &provider));
            }
        }
        let execution = self.execute(ctx, &call).await?;
        match execution.authorization.as_deref() {
            Some(auth) => Ok(self.input_required(
                PendingCall {
                    f: auth.id.clone().unwrap_or_default(),
                    url: auth.url.clone().unwrap_or_else(|| pending.url.clone()),
                    exp: self.request_state_expiry(),
                    ..pending
                },
                tool,
                &auth.provider_id,
            )),
            None => finished(&execution),
        }
    }
}

/// The call to run again, pinned to the tool and version the prompt was for (resolved
/// again by name and version, without formatting `name@version`).
fn pinned(tool: &ToolEntry, call: ToolCall) -> ToolCall {
    ToolCall {
        tool_name: tool.qualified_name.clone(),
        tool_version: tool.version.clone(),
        ..call
    }
}

struct Prompt {
    tool: Arc<ToolEntry>,
    call: ToolCall,
    url: String,
    flow_id: String,
    provider: String,
}

enum FlowEnd {
    Completed,
    Failed(String),
    TimedOut,
}

/// A call that could not run, as the JSON-RPC error MCP names for it.
fn call_error(e: ExecError) -> ErrorData {
    match e {
        ExecError::NotTheUser(e) => ErrorData::invalid_request(e.to_string(), None),
        ExecError::Resolve(e) => ErrorData::invalid_params(e.to_string(), None),
        ExecError::BadRequest(m) => ErrorData::invalid_params(m, None),
        ExecError::Internal(m) => {
            tracing::error!(error = %m, "MCP tools/call failed");
            ErrorData::internal_error("internal error", None)
        }
    }
}

/// An execution that needs no prompt, as its result. Arguments that failed the tool's
/// schema are a result with `isError` too (SEP-1303, 2025-11-25): the model reads the
/// message and corrects its call, where a JSON-RPC error would reach no one.
fn finished(execution: &Execution) -> Result<CallToolResponse, ErrorData> {
    Ok(tools::call_result(execution).into())
}

fn prompt_message(tool: &ToolEntry, provider: &str) -> String {
    format!(
        "Tool '{}' needs access to your '{provider}' account. Open the link to authorize it.",
        tool.underscore_name
    )
}

fn declined(tool: &ToolEntry, action: &str) -> CallToolResponse {
    let what = if action == "decline" {
        "declined"
    } else {
        "cancelled"
    };
    tools::error_result(format!(
        "The user {what} the authorization for tool '{}'; the tool was not run.",
        tool.underscore_name
    ))
    .into()
}

fn failed(tool: &ToolEntry, reason: &str) -> CallToolResponse {
    tools::error_result(format!(
        "Authorization for tool '{}' failed: {reason}",
        tool.underscore_name
    ))
    .into()
}

fn timed_out(tool: &ToolEntry, url: &str) -> CallToolResponse {
    tools::error_result(format!(
        "Authorization for tool '{}' did not complete in time. Ask the user to open {url} to authorize, then call the tool again.",
        tool.underscore_name
    ))
    .into()
}
