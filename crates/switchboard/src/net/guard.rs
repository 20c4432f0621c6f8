//! The guarded HTTP client: a resolver that drops refused addresses, and a connector
//! layer that refuses address literals before connecting and checks the address each
//! new connection actually reached.

use std::error::Error as StdError;
use std::fmt::Debug;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::client::legacy::connect::{Connection, HttpInfo};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::{OutboundPolicy, Refused};

type BoxError = Box<dyn StdError + Send + Sync>;

/// A client for URLs an admin or a document can set: every connection is checked against
/// `policy`; proxies from the environment are ignored (a proxy would connect for us, out
/// of the guard's sight) and redirects are not followed (a 3xx is returned as it is, so
/// a token endpoint cannot send the form body with the client secret to another host).
pub fn guarded_client(policy: OutboundPolicy) -> Result<reqwest::Client, reqwest::Error> {
    crate::tls::install_crypto_provider();
    let policy = Arc::new(policy);
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(GuardResolver {
            policy: policy.clone(),
        })
        .connector_layer(GuardLayer { policy })
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .build()
}

/// The policy's refusal somewhere in `error`'s sources, to tell the caller why.
pub fn refusal<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a Refused> {
    let mut source: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return Some(refused);
        }
        source = e.source();
    }
    None
}

/// Resolves with the system resolver and keeps only the addresses the policy allows, so
/// the connector never sees the others. reqwest calls it for names only, never for
/// address literals: [`GuardLayer`] checks those.
struct GuardResolver {
    policy: Arc<OutboundPolicy>,
}

impl Resolve for GuardResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let (allowed, refused): (Vec<SocketAddr>, Vec<SocketAddr>) = resolved
                .into_iter()
                .partition(|a| policy.check_ip(Some(&host), a.ip()).is_ok());
            if allowed.is_empty() {
                let Some(first) = refused.first() else {
                    return Err(format!("{host} resolves to no address").into());
                };
                let mut reason = policy
                    .check_ip(Some(&host), first.ip())
                    .err()
                    .map(|r| r.reason)
                    .unwrap_or_default();
                if refused.len() > 1 {
                    let others: Vec<String> =
                        refused[1..].iter().map(|a| a.ip().to_string()).collect();
                    reason = format!(
                        "it resolves only to refused addresses: {reason}; also {}",
                        others.join(", ")
                    );
                }
                tracing::warn!(%host, %reason, "outbound request refused");
                return Err(Box::new(Refused { host, reason }) as BoxError);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[derive(Clone)]
struct GuardLayer {
    policy: Arc<OutboundPolicy>,
}

impl<S> tower::Layer<S> for GuardLayer {
    type Service = GuardConnect<S>;

    fn layer(&self, inner: S) -> GuardConnect<S> {
        GuardConnect {
            inner,
            policy: self.policy.clone(),
        }
    }
}

#[derive(Clone)]
struct GuardConnect<S> {
    inner: S,
    policy: Arc<OutboundPolicy>,
}

/// The host of the connector's destination. reqwest does not let a layer name its
/// request type; its `Debug` is `Unnameable(<uri>)`. When that cannot be read the host
/// is unknown: literals are then caught after connecting, and an allowlisted name is
/// refused (fail closed).
fn destination_host(request: &impl Debug) -> Option<String> {
    let text = format!("{request:?}");
    let uri = text.get(text.find('(')? + 1..text.rfind(')')?)?;
    let uri: http::Uri = uri.parse().ok()?;
    Some(uri.host()?.to_owned())
}

fn literal(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

impl<S, R> tower::Service<R> for GuardConnect<S>
where
    S: tower::Service<R> + Clone + Send + 'static,
    S::Response: Connection + Send,
    S::Error: Into<BoxError>,
    S::Future: Send,
    R: Debug + Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let policy = self.policy.clone();
        let host = destination_host(&request);
        // The literal is checked before any packet leaves: no connect, no TLS hello.
        let early = match host.as_deref().and_then(literal) {
            Some(ip) => policy.check_ip(None, ip),
            None => Ok(()),
        };
        // The clone that was polled ready serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            if let Err(refused) = early {
                tracing::warn!(host = %refused.host, reason = %refused.reason, "outbound request refused");
                return Err(Box::new(refused) as BoxError);
            }
            let conn = inner.call(request).await.map_err(Into::into)?;
            let mut extras = http::Extensions::new();
            conn.connected().get_extras(&mut extras);
            let name = host.as_deref().filter(|h| literal(h).is_none());
            let checked = match extras.get::<HttpInfo>() {
                Some(info) => policy.check_ip(name, info.remote_addr().ip()),
                None => Err(Refused {
                    host: host.unwrap_or_else(|| "an unknown host".into()),
                    reason: "the address connected to is unknown".into(),
                }),
            };
            match checked {
                Ok(()) => Ok(conn),
                Err(refused) => {
                    tracing::warn!(host = %refused.host, reason = %refused.reason, "outbound connection refused");
                    Err(Box::new(refused) as BoxError)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_destination_host_is_read_from_the_connector_request() {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Unnameable(http::Uri);
        let host = |s: &str| destination_host(&Unnameable(s.parse().unwrap()));
        assert_eq!(host("http://127.0.0.1:8080/").as_deref(), Some("127.0.0.1"));
        assert_eq!(host("https://[::1]/").as_deref(), Some("[::1]"));
        assert_eq!(host("https://idp.example/").as_deref(), Some("idp.example"));
        assert_eq!(literal("[::1]"), Some("::1".parse().unwrap()));
        assert_eq!(literal("idp.example"), None);
    }
}
