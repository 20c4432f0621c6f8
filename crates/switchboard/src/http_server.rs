//! Serving connections: HTTP/1.1 on hyper, over TCP or TLS, until a stop signal; then the
//! connections finish what they are doing and close.
//!
//! Written out rather than `axum::serve`, which has no way to set hyper's timeouts: here
//! `http.read_timeout` / `idle_timeout` bound how long a client may take to send a
//! request's head, and how long a kept-alive connection may sit idle before its next
//! request (hyper runs one timer for both, from the moment it waits for a head), so a
//! client that opens connections and sends nothing, or a header a byte at a time, does
//! not hold them. `http.write_timeout` bounds how long a response write may make no
//! progress (a client that stopped reading) before the connection is dropped.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tower::Service;

use crate::api::ApiService;

/// The connection timeouts from `http.*`.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// How long hyper waits for a request head, on a new connection or between two
    /// requests of a kept-alive one: the shorter of `read_timeout` and `idle_timeout`.
    pub head: Duration,
    /// How long a write may make no progress: `write_timeout`.
    pub write_stall: Duration,
}

impl Timeouts {
    pub fn new(read: Duration, write: Duration, idle: Duration) -> Self {
        Self {
            head: read.min(idle),
            write_stall: write,
        }
    }
}

/// Accepts connections from `listener` and serves `app` on each until `stop` completes;
/// then stops accepting, asks every connection to close once its request in flight is
/// answered, and returns when all have.
pub async fn serve<L>(
    mut listener: L,
    app: ApiService,
    timeouts: Timeouts,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener<Addr = SocketAddr>,
    L::Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Every connection task holds a receiver: `closed()` completes when the last has ended.
    let (stopping, stop_seen) = tokio::sync::watch::channel(false);
    let mut stop = pin!(stop);
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let app = app.clone();
        let mut stop_seen = stop_seen.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let mut req = req.map(Body::new);
                req.extensions_mut().insert(ConnectInfo(peer));
                app.clone().call(req)
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(timeouts.head)
                .keep_alive(true);
            let io = StallLimit::new(io, timeouts.write_stall);
            let mut connection = pin!(builder.serve_connection(TokioIo::new(io), service));
            let served = tokio::select! {
                served = connection.as_mut() => served,
                () = async { let _ = stop_seen.wait_for(|stop| *stop).await; } => {
                    connection.as_mut().graceful_shutdown();
                    connection.as_mut().await
                }
            };
            if let Err(e) = served {
                tracing::trace!(%peer, error = %e, "connection ended with an error");
            }
            drop(stop_seen);
        });
    }
    drop(listener);
    drop(stop_seen);
    let _ = stopping.send(true);
    stopping.closed().await;
    Ok(())
}

/// A connection whose writes fail with `TimedOut` once one has made no progress for
/// `limit`: hyper would otherwise wait forever on a client that stopped reading. The
/// timer exists only while a write is blocked.
struct StallLimit<Io> {
    io: Io,
    limit: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<Io> StallLimit<Io> {
    fn new(io: Io, limit: Duration) -> Self {
        Self {
            io,
            limit,
            stalled: None,
        }
    }

    /// After a write returned `Pending`: whether it has now been blocked too long.
    fn timed_out(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = Instant::now() + self.limit;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        sleep.as_mut().poll(cx).is_ready()
    }

    fn progress<T>(
        &mut self,
        polled: Poll<std::io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<T>> {
        match polled {
            Poll::Pending if self.timed_out(cx) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client stopped reading the response",
            ))),
            Poll::Pending => Poll::Pending,
            ready => {
                self.stalled = None;
                ready
            }
        }
    }
}

impl<Io: AsyncRead + Unpin> AsyncRead for StallLimit<Io> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for StallLimit<Io> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.progress(polled, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.progress(polled, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        self.progress(polled, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
