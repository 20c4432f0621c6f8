//! What every request gets, whether the router serves it or the hot path
//! ([`super::service`]) takes it first: the request span and its events, and the body
//! limit. The router wears them as layers ([`layered`]); the hot path calls the same
//! functions ([`traced`], [`body_limit`]), so there is one definition of each and the two
//! paths cannot drift apart. The third shared step, the REST caller check, is
//! `extract::rest_caller`, which the router's middleware and the hot path both call.
//!
//! Must not: allocate on the hot path (latencies are formatted only if an event is kept).

use std::fmt;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use tower_http::classify::ServerErrorsFailureClass;
use tower_http::trace::TraceLayer;
use tracing::{Instrument, Span};

use crate::config::ApiConfig;

/// The request span: the route template, never the raw URI (it could carry an OAuth
/// code). `caller` (an API key's name), `user_id` and `tool` are filled in once known.
pub(super) fn span(method: &Method, route: &str) -> Span {
    tracing::info_span!(
        "request",
        method = %method,
        route,
        caller = tracing::field::Empty,
        user_id = tracing::field::Empty,
        tool = tracing::field::Empty
    )
}

/// The largest request body taken (`api.max_request_body_size`).
pub(super) fn body_limit(config: &ApiConfig) -> DefaultBodyLimit {
    DefaultBodyLimit::max(config.max_request_body_size)
}

/// `router` with the policy around every route, as one layer: `Router::layer` wraps each
/// route in each layer separately, and each wrapping is a boxed service cloned on every
/// request.
pub(super) fn layered<S>(router: Router<S>, config: &ApiConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let trace = TraceLayer::new_for_http()
        .make_span_with(|req: &Request| {
            let route = req
                .extensions()
                .get::<MatchedPath>()
                .map_or("unmatched", MatchedPath::as_str);
            span(req.method(), route)
        })
        .on_request(|_: &Request, span: &Span| started(span))
        .on_response(|res: &Response, latency: Duration, span: &Span| {
            finished(span, res.status(), latency);
        })
        .on_failure(
            |class: ServerErrorsFailureClass, latency: Duration, span: &Span| {
                failed(span, &class, latency);
            },
        );
    router.layer(
        tower::ServiceBuilder::new()
            // Outermost, so the span covers every layer below, rejections included.
            .layer(trace)
            .layer(body_limit(config)),
    )
}

/// What the router's trace layer does around a request, for the hot path: the same span
/// and the same events, around `serve`.
pub(super) async fn traced(
    route: &'static str,
    method: &Method,
    serve: impl Future<Output = Response>,
) -> Response {
    let span = span(method, route);
    let started_at = Instant::now();
    started(&span);
    let response = serve.instrument(span.clone()).await;
    let latency = started_at.elapsed();
    let status = response.status();
    finished(&span, status, latency);
    if status.is_server_error() {
        failed(
            &span,
            &ServerErrorsFailureClass::StatusCode(status),
            latency,
        );
    }
    response
}

// The events are `tower_http`'s, under its targets, so log filters that name them apply.

fn started(span: &Span) {
    tracing::debug!(target: "tower_http::trace::on_request", parent: span, "started processing request");
}

fn finished(span: &Span, status: StatusCode, latency: Duration) {
    tracing::debug!(
        target: "tower_http::trace::on_response",
        parent: span,
        latency = %Millis(latency),
        status = status.as_u16(),
        "finished processing request"
    );
}

fn failed(span: &Span, class: &ServerErrorsFailureClass, latency: Duration) {
    tracing::error!(
        target: "tower_http::trace::on_failure",
        parent: span,
        classification = %class,
        latency = %Millis(latency),
        "response failed"
    );
}

/// A latency as `tower_http` writes it (`12 ms`), formatted only if an event records it:
/// formatting it for the default filter, which drops the event, cost ~600 instructions a
/// request.
struct Millis(Duration);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ms", self.0.as_millis())
    }
}
