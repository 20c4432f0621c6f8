//! The pooled HTTP/1.1 client every worker call goes through: hyper's client with its
//! connection pool, plain TCP or rustls (platform verifier) by the URL's scheme.
//!
//! One pool per thread: `serve` runs one single-threaded runtime per core, and a pooled
//! connection is driven by the runtime that opened it, so sharing one pool would make
//! every call wake another thread twice. On a multi-threaded runtime (tests) each worker
//! thread simply keeps its own pool.
//!
//! Not reqwest: on this path reqwest re-parses the URL of every request (its redirect
//! policy) and wraps each call in redirect, retry and timeout layers a worker call never
//! uses; that was about a tenth of the gateway's CPU per call. OAuth and other rare calls
//! keep reqwest.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// A worker's answer bigger than this is refused rather than buffered.
pub const MAX_REPLY_BYTES: usize = 64 * 1024 * 1024;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

type Pool = Client<Connector, Full<Bytes>>;

/// Cheap to clone: clones share their pools.
#[derive(Clone)]
pub struct WorkerHttp {
    /// Tells this client's per-thread pools from another gateway's in the same process.
    id: u64,
    connector: Connector,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// (client id, that client's pool on this thread).
    static POOLS: RefCell<Vec<(u64, Pool)>> = const { RefCell::new(Vec::new()) };
}

#[derive(Debug, thiserror::Error)]
pub enum HttpSetupError {
    #[error("could not set up TLS for worker connections: {0}")]
    Tls(String),
}

/// Why an exchange failed, in the terms that decide retrying.
#[derive(Debug)]
pub enum ExchangeError {
    /// No connection was made: the request never reached the worker.
    Connect(String),
    /// Connected, but the exchange broke before a whole answer arrived.
    Transport(String),
    /// The answer was larger than [`MAX_REPLY_BYTES`].
    TooLarge,
}

/// A whole answer: status and body.
pub struct Reply {
    pub status: http::StatusCode,
    pub body: Bytes,
}

impl WorkerHttp {
    pub fn new() -> Result<Self, HttpSetupError> {
        crate::tls::install_crypto_provider();
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        // The TLS wrapper below decides by scheme; the inner connector must accept both.
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .try_with_platform_verifier()
            .map_err(|e| HttpSetupError::Tls(e.to_string()))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            connector,
        })
    }

    /// Sends on this thread's pool, made on first use.
    fn send(&self, request: http::Request<Full<Bytes>>) -> ResponseFuture {
        POOLS.with_borrow_mut(|pools| {
            if let Some((_, pool)) = pools.iter().find(|(id, _)| *id == self.id) {
                return pool.request(request);
            }
            let pool = Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(256)
                .pool_timer(TokioTimer::new())
                .build(self.connector.clone());
            let sent = pool.request(request);
            pools.push((self.id, pool));
            sent
        })
    }

    /// Sends `request` and reads the whole answer.
    pub async fn exchange(
        &self,
        request: http::Request<Full<Bytes>>,
    ) -> Result<Reply, ExchangeError> {
        let response = self.send(request).await.map_err(|e| {
            if e.is_connect() {
                ExchangeError::Connect(innermost(&e))
            } else {
                ExchangeError::Transport(innermost(&e))
            }
        })?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_REPLY_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    ExchangeError::TooLarge
                } else {
                    ExchangeError::Transport(innermost(e.as_ref()))
                }
            })?
            .to_bytes();
        Ok(Reply { status, body })
    }
}

/// The deepest cause's message: outer layers only say "client error (Connect)", and none
/// of them carries the URL's query or headers.
fn innermost(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}
