//! `bare-proxy`: the floor of a gateway hop on this machine. Every request's body is
//! forwarded as `POST {upstream}/worker/tools/invoke` with a worker JWT, and the worker's
//! status and body come back. Nothing else: no JSON parsing, no routing, no per-request
//! logging, so its CPU per call is what any HTTP/1.1 hop (hyper server, pooled hyper
//! client) costs, and the gateway's CPU above it is the gateway's own work.
//!
//! `bare-proxy --upstream http://127.0.0.1:PORT [--current-thread]`, worker secret in
//! `ARCADE_WORKER_SECRET`. Prints `bare-proxy listening on http://127.0.0.1:PORT`.

use std::convert::Infallible;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::Parser;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;

/// The gateway re-signs its worker token after this long (it lives 60 s).
const TOKEN_REUSE_SECS: u64 = 30;
const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

#[derive(Parser)]
#[command(
    name = "bare-proxy",
    about = "Bare HTTP/1.1 proxy to a worker's invoke endpoint (the bench's floor)"
)]
struct Args {
    /// The worker's base URL, e.g. http://127.0.0.1:8002.
    #[arg(long)]
    upstream: String,
    /// A current-thread tokio runtime instead of the multi-thread default.
    #[arg(long)]
    current_thread: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = if args.current_thread {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    };
    let result = runtime
        .context("building the tokio runtime")
        .and_then(|rt| rt.block_on(run(args)));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bare-proxy: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

struct Proxy {
    client: Client<HttpConnector, Full<Bytes>>,
    invoke: Uri,
    secret: String,
    /// (`Bearer …` header, minted at): signed once per 30 s, as the gateway does.
    token: Mutex<Option<(HeaderValue, u64)>>,
}

impl Proxy {
    fn bearer(&self) -> Option<HeaderValue> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        // Poisoning only means a holder panicked; the cached value is still whole.
        let mut cached = self.token.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((header, minted)) = cached.as_ref()
            && now.saturating_sub(*minted) < TOKEN_REUSE_SECS
        {
            return Some(header.clone());
        }
        let token = switchboard_wire::jwt::sign(&self.secret, now).ok()?;
        let mut header = HeaderValue::try_from(format!("Bearer {token}")).ok()?;
        header.set_sensitive(true);
        *cached = Some((header.clone(), now));
        Some(header)
    }

    /// One hop: whole request body in, whole upstream body out. Errors are short fixed
    /// texts (never the token).
    async fn forward(&self, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, &'static str> {
        let body = req
            .into_body()
            .collect()
            .await
            .map_err(|_| "reading the request body failed")?
            .to_bytes();
        let bearer = self.bearer().ok_or("signing the worker token failed")?;
        let mut up = Request::new(Full::new(body));
        *up.method_mut() = hyper::Method::POST;
        *up.uri_mut() = self.invoke.clone();
        up.headers_mut().insert(CONTENT_TYPE, APPLICATION_JSON);
        up.headers_mut().insert(AUTHORIZATION, bearer);
        let res = self
            .client
            .request(up)
            .await
            .map_err(|_| "the upstream request failed")?;
        let status = res.status();
        let body = res
            .into_body()
            .collect()
            .await
            .map_err(|_| "reading the upstream body failed")?
            .to_bytes();
        let mut out = Response::new(Full::new(body));
        *out.status_mut() = status;
        out.headers_mut().insert(CONTENT_TYPE, APPLICATION_JSON);
        Ok(out)
    }
}

async fn handle(
    proxy: Arc<Proxy>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(proxy.forward(req).await.unwrap_or_else(|msg| {
        let mut res = Response::new(Full::new(Bytes::from_static(msg.as_bytes())));
        *res.status_mut() = StatusCode::BAD_GATEWAY;
        res.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        res
    }))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let secret = std::env::var("ARCADE_WORKER_SECRET").unwrap_or_default();
    if secret.is_empty() {
        bail!("ARCADE_WORKER_SECRET is not set");
    }
    let invoke: Uri = format!(
        "{}/worker/tools/invoke",
        args.upstream.trim_end_matches('/')
    )
    .parse()
    .context("--upstream is not a URL")?;
    if invoke.scheme_str() != Some("http") {
        bail!("--upstream must be an http:// URL");
    }

    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    // As the gateway's reqwest client: HTTP/1.1, pooled, idle connections kept 60 s.
    let client = Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256)
        .build(connector);
    let proxy = Arc::new(Proxy {
        client,
        invoke,
        secret,
        token: Mutex::new(None),
    });

    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding 127.0.0.1:0")?;
    let addr = listener.local_addr().context("reading the bound address")?;
    println!("bare-proxy listening on http://{addr}");
    std::io::stdout().flush().context("flushing stdout")?;

    loop {
        // Accepted sockets keep Nagle on, as the gateway's (axum::serve) do.
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // e.g. out of file descriptors: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(proxy.clone(), req));
            // A connection error (client went away) ends only that connection.
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
