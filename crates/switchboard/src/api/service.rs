//! The service every connection is served by: the router, with the routes that carry the
//! load taken before it. `POST /v1/tools/execute` and `POST` to an MCP endpoint are served
//! here without the router: through it a tool call also paid for route matching, the
//! matched-path extension, the middleware's boxed `Next`, the handler's extractor
//! machinery and the layers' futures: served here, a REST call takes ~10k fewer of its
//! ~125k instructions (callgrind; BENCHMARKS.md, tenth pass).
//!
//! What runs is what the router runs, by the same functions in the same order: the
//! request span and its events and the body limit ([`super::policy`]), the REST caller
//! check (`extract::rest_caller`), then the route's handler (`tools::execute`); or the
//! MCP door (`mcp::handle`). Only the choice of route is this file's own: a path the
//! router would need to decode (a percent-encoded user id) goes to the router.
//!
//! Before either, every request passes `Host` and `Origin` ([`super::guard`]).

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::Request;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use futures::future::{BoxFuture, Either};

use super::extract::{peer, rest_caller};
use super::guard::Guard;
use super::{policy, tools};
use crate::mcp;
use crate::state::AppState;

/// The REST route taken before the router (the org/project form goes through it).
const EXECUTE: &str = "/v1/tools/execute";

/// The router, and the state the hot routes need. Cheap to clone (one per connection).
#[derive(Clone)]
pub struct ApiService {
    router: Router,
    state: AppState,
    mcp: mcp::Endpoint,
    /// Off when a layer must see every request (CORS).
    hot_routes: bool,
    /// `Host` and `Origin`, checked here so that every route, hot or routed, nested or
    /// not, passes the same check.
    guard: Arc<Guard>,
}

impl ApiService {
    pub(super) fn new(
        router: Router,
        state: AppState,
        mcp: mcp::Endpoint,
        hot_routes: bool,
    ) -> Self {
        let guard = Arc::new(Guard::new(&state.config.api));
        Self {
            router,
            state,
            mcp,
            hot_routes,
            guard,
        }
    }

    /// Routes another router's paths too (e.g. the sandbox provider under `/sandbox`).
    pub fn nest(mut self, path: &str, router: Router) -> Self {
        self.router = self.router.nest(path, router);
        self
    }
}

impl tower::Service<Request> for ApiService {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<
        <Router as tower::Service<Request>>::Future,
        BoxFuture<'static, Result<Response, Infallible>>,
    >;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The router is always ready, and so are the hot routes.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if let Some(refused) = self.guard.refusal(&req) {
            return Either::Right(Box::pin(async move { Ok(refused) }));
        }
        if !self.hot_routes || req.method() != Method::POST {
            return Either::Left(self.router.call(req));
        }
        let path = req.uri().path();
        if path == EXECUTE {
            let state = self.state.clone();
            return Either::Right(Box::pin(async move {
                Ok(policy::traced(EXECUTE, &Method::POST, execute(state, req)).await)
            }));
        }
        if let Some((route, target)) = mcp_target(path) {
            let endpoint = self.mcp.clone();
            return Either::Right(Box::pin(async move {
                let served = mcp::handle(endpoint, target, req);
                Ok(policy::traced(route, &Method::POST, served).await)
            }));
        }
        Either::Left(self.router.call(req))
    }
}

/// The MCP route template and target of a path the router would match to an MCP
/// endpoint, when no segment needs percent-decoding (those go to the router, which
/// decodes them).
fn mcp_target(path: &str) -> Option<(&'static str, mcp::Target)> {
    let plain = |segment: &str| {
        (!segment.is_empty() && !segment.contains(['/', '%'])).then(|| segment.to_string())
    };
    if path == "/mcp" {
        let target = mcp::Target {
            path_user: None,
            gateway: None,
        };
        return Some(("/mcp", target));
    }
    if let Some(user) = path
        .strip_prefix("/v1/mcps/")
        .and_then(|rest| rest.strip_suffix("/mcp"))
    {
        let target = mcp::Target {
            path_user: Some(plain(user)?),
            gateway: None,
        };
        return Some(("/v1/mcps/{user_id}/mcp", target));
    }
    let gateway = plain(path.strip_prefix("/mcp/")?)?;
    let target = mcp::Target {
        path_user: None,
        gateway: Some(gateway),
    };
    Some(("/mcp/{gateway}", target))
}

/// `POST /v1/tools/execute`: the REST caller check the router's middleware runs and the
/// body limit its layer sets, then the handler the route runs.
async fn execute(state: AppState, mut req: Request) -> Response {
    let caller = match rest_caller(&state, req.headers(), peer(&req)).await {
        Ok(caller) => caller,
        Err(refused) => return refused.into_response(),
    };
    policy::body_limit(&state.config.api).apply(&mut req);
    tools::execute(state, caller, req).await
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{StatusCode, header};
    use http_body_util::BodyExt;
    use tower::Service;

    use super::*;

    async fn text(res: Response) -> String {
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// With a router that knows no route at all, the hot routes still answer: they never
    /// reach it. Everything else does, and gets its 404.
    #[tokio::test]
    async fn the_hot_routes_are_served_without_the_router() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::config::defaults(dir.path());
        config.api.development = false;
        let gateway = crate::server::Gateway::start(config).await.unwrap();
        let state = gateway.state.clone();
        let key = crate::identity::generate_key("hot", 0);
        state.store.insert_api_key(&key.record).await.unwrap();
        let endpoint = mcp::endpoint(state.clone());
        let mut service = ApiService::new(Router::new(), state, endpoint, true);
        let bearer = format!("Bearer {}", key.plaintext);
        let post = |path: &str, body: &'static str| {
            Request::post(path)
                .header(header::HOST, "127.0.0.1")
                .header(header::AUTHORIZATION, &bearer)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::ACCEPT, "application/json, text/event-stream")
                .body(Body::from(body))
                .unwrap()
        };
        let execute = r#"{"tool_name":"Builtin.Echo","input":{"message":"hi"}}"#;
        let res = service
            .call(post("/v1/tools/execute", execute))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body = text(res).await;
        assert!(body.contains(r#""success":true"#), "{body}");
        assert!(body.contains(r#""value":"hi""#), "{body}");

        let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
        for path in ["/v1/mcps/alice/mcp", "/mcp"] {
            let mut req = post(path, list);
            req.headers_mut()
                .insert("mcp-protocol-version", "2026-07-28".parse().unwrap());
            req.headers_mut()
                .insert("mcp-method", "tools/list".parse().unwrap());
            req.headers_mut()
                .insert("arcade-user-id", "alice".parse().unwrap());
            let res = service.call(req).await.unwrap();
            let status = res.status();
            let body = text(res).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            assert!(body.contains("Builtin_Echo"), "{path}: {body}");
        }

        for path in [
            "/v1/orgs/o/projects/p/tools/execute",
            "/v1/mcps/alice/mcp/",
            "/v1/mcps/a%40b/mcp",
        ] {
            let res = service.call(post(path, execute)).await.unwrap();
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        }
        let get = Request::get("/v1/tools/execute")
            .body(Body::empty())
            .unwrap();
        assert_eq!(
            service.call(get).await.unwrap().status(),
            StatusCode::NOT_FOUND
        );
    }

    /// A hot MCP route: its template, the path's user and gateway.
    type Hot<'a> = Option<(&'a str, Option<&'a str>, Option<&'a str>)>;

    #[test]
    fn only_plain_mcp_paths_are_hot() {
        let cases: &[(&str, Hot<'_>)] = &[
            ("/mcp", Some(("/mcp", None, None))),
            ("/mcp/team", Some(("/mcp/{gateway}", None, Some("team")))),
            (
                "/v1/mcps/alice/mcp",
                Some(("/v1/mcps/{user_id}/mcp", Some("alice"), None)),
            ),
            // Percent-encoded ids are decoded by the router.
            ("/v1/mcps/a%40b/mcp", None),
            ("/mcp/a%20b", None),
            // Trailing slashes, empty and nested segments: the router's to answer.
            ("/mcp/", None),
            ("/v1/mcps/alice/mcp/", None),
            ("/v1/mcps//mcp", None),
            ("/v1/mcps/a/b/mcp", None),
            ("/mcp/team/extra", None),
            ("/v1/tools/execute", None),
        ];
        for (path, expected) in cases {
            let got =
                mcp_target(path).map(|(route, t)| (route, t.path_user.clone(), t.gateway.clone()));
            let expected = expected.map(|(route, user, gateway)| {
                (route, user.map(str::to_string), gateway.map(str::to_string))
            });
            assert_eq!(got, expected, "{path}");
        }
    }
}
