//! `tools/call`, the one hot method, answered here rather than through rmcp's per-request
//! machinery: for each message rmcp parses an untagged enum, starts a service with its
//! tasks and channels, and (for 2026-07-28) re-serializes the message to check its
//! headers. Through rmcp a call cost 32.5–84 µs of CPU more than REST execute of the same
//! tool; answered here, −2 to 9 (BENCHMARKS.md, eighth pass). The handler
//! (`GatewayServer::call`) and the wire shape are the same either way.
//!
//! Only a request rmcp would take as it is comes this way; anything else (a header that
//! does not match the body, a missing `_meta` key, a version other than the session's, a
//! call that may prompt by `elicitation/create`) goes to rmcp, which answers it or gives
//! its error. So this is an admission test and a responder, not a second transport.
//! `api.mcp_direct_tool_calls: false` sends every message through rmcp.
//!
//! A handshake-era session keeps going through rmcp now and then: rmcp parks a session
//! after `api.mcp_session_keep_alive` without a message, so at least one request in each
//! quarter of that goes through rmcp. A client's `notifications/cancelled` stops a call
//! answered here as rmcp stops its own (`InFlight`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rmcp::ErrorData;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CancelledNotificationParam, JsonRpcError,
    JsonRpcResponse, JsonRpcVersion2_0, ProtocolVersion, RequestId, ServerResult,
};
use tokio_util::sync::CancellationToken;

use super::server::{Asker, GatewayServer, SUPPORTED, asks_by_url};
use super::sessions::Admitted;
use super::{Ctx, header_str, http_error};

const PROTOCOL_VERSION_HEADER: HeaderName = HeaderName::from_static("mcp-protocol-version");
const METHOD_HEADER: HeaderName = HeaderName::from_static("mcp-method");
const NAME_HEADER: HeaderName = HeaderName::from_static("mcp-name");
const PARAM_HEADER_PREFIX: &str = "mcp-param-";

/// A `tools/call` admitted to be answered here.
pub(super) struct DirectCall {
    id: RequestId,
    params: CallToolRequestParams,
    era: Era,
}

enum Era {
    /// 2026-07-28, stateless.
    Modern { by_url: bool },
    /// A handshake-era session whose client can't be prompted by elicitation (or whose
    /// tool needs no authorization).
    Handshake,
}

/// Just the parts of a `tools/call` message the call needs (`check_message` has checked
/// `jsonrpc` and read `method`).
#[derive(serde::Deserialize)]
struct CallMessage {
    id: RequestId,
    params: CallToolRequestParams,
}

/// The request as a `DirectCall`, if rmcp would take it as it is; `None` sends it to rmcp.
/// `session`: the handshake-era session it names, as `check_binding` admitted it.
pub(super) fn admit(
    server: &GatewayServer,
    headers: &HeaderMap,
    body: &[u8],
    session: Option<&Admitted>,
    now_ms: i64,
    keep_alive: Duration,
) -> Option<DirectCall> {
    if !accepts_json_and_event_stream(headers) {
        return None;
    }
    let version = single_header(headers, &PROTOCOL_VERSION_HEADER)?;
    let message: CallMessage = serde_json::from_slice(body).ok()?;
    let meta = message.params.meta.as_ref();
    let era = match session {
        None => {
            // SEP-2243: the standard headers name the method and the tool; rmcp checks
            // `Mcp-Param-*` headers against the tool's schema, so those go to rmcp.
            let modern = ProtocolVersion::V_2026_07_28.as_str();
            let standard_headers_match = version == modern
                && single_header(headers, &METHOD_HEADER)? == "tools/call"
                && single_header(headers, &NAME_HEADER)? == message.params.name
                && !headers
                    .keys()
                    .any(|k| k.as_str().starts_with(PARAM_HEADER_PREFIX));
            let meta = meta?;
            if !standard_headers_match || meta.protocol_version()?.as_str() != modern {
                return None;
            }
            Era::Modern {
                by_url: asks_by_url(Some(&meta.client_capabilities()?)),
            }
        }
        Some(admitted) => {
            let rmcp_due = now_ms - admitted.rmcp_seen_ms
                >= i64::try_from(keep_alive.as_millis() / 4).unwrap_or(i64::MAX);
            let handshake_version = SUPPORTED
                .iter()
                .any(|v| v.as_str() == version && v.has_initialize());
            if rmcp_due || !handshake_version || version != admitted.facts.version {
                return None;
            }
            // As rmcp has it: the request's own `_meta` capabilities, else the session's.
            let by_url = match meta.and_then(|m| m.client_capabilities()) {
                Some(capabilities) => asks_by_url(Some(&capabilities)),
                None => admitted.facts.asks_by_url,
            };
            if by_url && server.may_need_authorization(&message.params.name) {
                // It may ask by `elicitation/create`, which needs the session.
                return None;
            }
            Era::Handshake
        }
    };
    Some(DirectCall {
        id: message.id,
        params: message.params,
        era,
    })
}

/// Runs the call and answers with one JSON-RPC message, shaped as rmcp shapes it for the
/// era (HTTP 200 either way, as rmcp gives for these outcomes). `session`: the id of the
/// handshake-era session the call belongs to.
pub(super) async fn serve(
    server: &GatewayServer,
    ctx: &Ctx,
    call: DirectCall,
    in_flight: &InFlight,
    session: Option<&str>,
) -> Response {
    let (asker, modern) = match call.era {
        Era::Modern { by_url } => (Asker::Modern { by_url }, true),
        Era::Handshake => (Asker::Link, false),
    };
    let running = server.call(ctx, call.params, asker);
    let outcome = match session {
        Some(session) if !modern => {
            let (cancelled, _entry) = in_flight.start(session, &call.id);
            tokio::select! {
                outcome = running => outcome,
                () = cancelled.cancelled() => {
                    Err(ErrorData::internal_error("the call was cancelled", None))
                }
            }
        }
        _ => running.await,
    };
    let body = match outcome {
        Ok(response) => serde_json::to_vec(&JsonRpcResponse {
            jsonrpc: JsonRpcVersion2_0,
            id: call.id,
            result: shaped(response, modern),
        }),
        Err(error) => serde_json::to_vec(&JsonRpcError::new(Some(call.id), error)),
    };
    match body {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "MCP tools/call result could not be serialized");
            http_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

/// Handshake-era calls answered here and still running, by session and request id, so that
/// a client's `notifications/cancelled` (which goes to rmcp, where these calls are
/// unknown) stops them too.
#[derive(Default)]
pub(super) struct InFlight {
    calls: Mutex<HashMap<(String, RequestId), (u64, CancellationToken)>>,
    next: std::sync::atomic::AtomicU64,
}

/// Removes its call from `InFlight` when the call ends or is dropped.
pub(super) struct Entry<'a> {
    in_flight: &'a InFlight,
    key: (String, RequestId),
    serial: u64,
}

impl InFlight {
    fn calls(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(String, RequestId), (u64, CancellationToken)>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn start(&self, session: &str, id: &RequestId) -> (CancellationToken, Entry<'_>) {
        let serial = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let token = CancellationToken::new();
        let key = (session.to_string(), id.clone());
        self.calls().insert(key.clone(), (serial, token.clone()));
        let entry = Entry {
            in_flight: self,
            key,
            serial,
        };
        (token, entry)
    }

    /// Stops the call `id` of `session` if it is running here.
    fn cancel(&self, session: &str, id: RequestId) {
        if let Some((_, token)) = self.calls().remove(&(session.to_string(), id)) {
            token.cancel();
        }
    }
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        let mut calls = self.in_flight.calls();
        // A request id reused while the first call runs has replaced this entry: keep it.
        if calls.get(&self.key).is_some_and(|(s, _)| *s == self.serial) {
            calls.remove(&self.key);
        }
    }
}

/// A session's `notifications/cancelled` body: stops the call it names if it runs here.
/// rmcp gets the notification too (it stops its own calls).
pub(super) fn note_cancellation(in_flight: &InFlight, session: &str, body: &[u8]) {
    #[derive(serde::Deserialize)]
    struct Cancelled {
        params: CancelledNotificationParam,
    }
    if let Ok(Cancelled { params }) = serde_json::from_slice(body)
        && let Some(id) = params.request_id
    {
        in_flight.cancel(session, id);
    }
}

/// What rmcp's handler does to a result on its way out, for the era.
fn shaped(response: CallToolResponse, modern: bool) -> ServerResult {
    let mut result = ServerResult::from(response);
    if modern {
        result.fill_missing_cache_hints();
    } else {
        result.strip_result_type_for_legacy_peer();
        result.strip_non_object_output_for_legacy_peer();
    }
    result
}

/// A header given exactly once, as text.
fn single_header<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    first.to_str().ok()
}

/// `Accept` names both media types, with no quality weights to weigh (rmcp judges those).
fn accepts_json_and_event_stream(headers: &HeaderMap) -> bool {
    let Some(accept) = header_str(headers, &header::ACCEPT) else {
        return false;
    };
    if accept.contains(';') || headers.get_all(header::ACCEPT).iter().count() != 1 {
        return false;
    }
    let mut json = false;
    let mut event_stream = false;
    for range in accept.split(',').map(str::trim) {
        json |= range.eq_ignore_ascii_case("application/json");
        event_stream |= range.eq_ignore_ascii_case("text/event-stream");
    }
    json && event_stream
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_a_plain_accept_of_both_types_is_taken_here() {
        let ok = headers(&[("accept", "application/json, text/event-stream")]);
        assert!(accepts_json_and_event_stream(&ok));
        for refused in [
            headers(&[("accept", "application/json")]),
            headers(&[("accept", "application/json, text/event-stream;q=0")]),
            headers(&[("accept", "*/*")]),
            headers(&[]),
            headers(&[
                ("accept", "application/json"),
                ("accept", "text/event-stream"),
            ]),
        ] {
            assert!(!accepts_json_and_event_stream(&refused), "{refused:?}");
        }
    }

    #[test]
    fn a_repeated_or_missing_header_is_not_a_single_value() {
        let h = headers(&[("mcp-name", "A"), ("mcp-name", "A"), ("mcp-method", "x")]);
        assert_eq!(single_header(&h, &NAME_HEADER), None);
        assert_eq!(single_header(&h, &METHOD_HEADER), Some("x"));
        assert_eq!(
            single_header(&h, &HeaderName::from_static("mcp-other")),
            None
        );
    }

    #[test]
    fn a_cancellation_stops_only_its_own_call_and_entries_leave_with_their_calls() {
        let in_flight = InFlight::default();
        let (first, first_entry) = in_flight.start("s1", &RequestId::Number(1));
        let (other, _other_entry) = in_flight.start("s2", &RequestId::Number(1));
        in_flight.cancel("s1", RequestId::Number(1));
        assert!(first.is_cancelled());
        assert!(!other.is_cancelled(), "same id, another session");
        drop(first_entry);
        // An id reused while its first call runs: the first call's end keeps the second.
        let (_a, a_entry) = in_flight.start("s3", &RequestId::Number(7));
        let (b, _b_entry) = in_flight.start("s3", &RequestId::Number(7));
        drop(a_entry);
        in_flight.cancel("s3", RequestId::Number(7));
        assert!(b.is_cancelled());
        assert_eq!(in_flight.calls().len(), 1, "only s2's call is left");
    }

    #[test]
    fn a_cancellation_note_names_its_request_or_is_ignored() {
        let in_flight = InFlight::default();
        let (token, _entry) = in_flight.start("s1", &RequestId::String("abc".into()));
        note_cancellation(
            &in_flight,
            "s1",
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{}}"#,
        );
        note_cancellation(&in_flight, "s1", b"not json");
        assert!(!token.is_cancelled());
        note_cancellation(
            &in_flight,
            "s1",
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"abc"}}"#,
        );
        assert!(token.is_cancelled());
    }
}
