//! Serving connections: HTTP/1.1 on hyper, over TCP or TLS, until a stop signal; then the
//! connections finish what they are doing and close.
//!
//! Written out rather than `axum::serve`, which has no way to set hyper's timeouts: here
//! `http.read_timeout` / `idle_timeout` bound how long a client may take to send a
//! request's head, and how long a kept-alive connection may sit idle before its next
//! request (hyper runs one timer for both, from the moment it waits for a head), so a
//! client that opens connections and sends nothing, or a header a byte at a time, does
//! not hold them; that timer is `CoarseTimer`, so a timeout fires up to a second late.
//! `http.write_timeout` bounds how long a response write may make no progress (a client
//! that stopped reading) before the connection is dropped.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
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
    let head_timer = CoarseTimer::default();
    let ticker = tokio::spawn(head_timer.clone().tick());
    let mut stop = pin!(stop);
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let app = app.clone();
        let head_timer = head_timer.clone();
        let mut stop_seen = stop_seen.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let mut req = req.map(Body::new);
                req.extensions_mut().insert(ConnectInfo(peer));
                app.clone().call(req)
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(head_timer)
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
    ticker.abort();
    Ok(())
}

/// How often [`CoarseTimer`] looks for due deadlines: timeouts fire up to this late.
const TICK: Duration = Duration::from_secs(1);

/// hyper's head timer, with deadlines checked once a [`TICK`] by one task per listener.
/// With tokio's own timer every request head registered in the runtime's timer wheel,
/// and the runtime went round its loop for an extra `epoll_wait` on a third of requests
/// (strace: 2697 against 1518 for 4,400 calls), which cost p99 at concurrency 16. A
/// deadline here is an entry in a map, and a tick wakes only the due ones.
#[derive(Clone, Default)]
struct CoarseTimer {
    pending: Arc<Mutex<Deadlines>>,
}

#[derive(Default)]
struct Deadlines {
    next_id: u64,
    wakers: BTreeMap<(std::time::Instant, u64), Waker>,
}

impl CoarseTimer {
    fn deadlines(&self) -> std::sync::MutexGuard<'_, Deadlines> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes every sleep whose deadline has passed.
    fn fire_due(&self) {
        let now = std::time::Instant::now();
        let mut due = Vec::new();
        {
            let mut deadlines = self.deadlines();
            while let Some(entry) = deadlines.wakers.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                due.push(entry.remove());
            }
        }
        due.into_iter().for_each(Waker::wake);
    }

    async fn tick(self) {
        let mut every = tokio::time::interval(TICK);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            every.tick().await;
            self.fire_due();
        }
    }
}

impl hyper::rt::Timer for CoarseTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(std::time::Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(CoarseSleep {
            deadline,
            key: None,
            timer: self.clone(),
        })
    }
}

struct CoarseSleep {
    deadline: std::time::Instant,
    /// Its entry among the timer's deadlines, once it has been polled.
    key: Option<(std::time::Instant, u64)>,
    timer: CoarseTimer,
}

impl hyper::rt::Sleep for CoarseSleep {}

impl Future for CoarseSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if std::time::Instant::now() >= this.deadline {
            if let Some(key) = this.key.take() {
                this.timer.deadlines().wakers.remove(&key);
            }
            return Poll::Ready(());
        }
        let mut deadlines = this.timer.deadlines();
        let key = *this.key.get_or_insert_with(|| {
            deadlines.next_id += 1;
            (this.deadline, deadlines.next_id)
        });
        match deadlines.wakers.get_mut(&key) {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            Some(waker) => waker.clone_from(cx.waker()),
            None => {
                deadlines.wakers.insert(key, cx.waker().clone());
            }
        }
        Poll::Pending
    }
}

impl Drop for CoarseSleep {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.timer.deadlines().wakers.remove(&key);
        }
    }
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::Wake;

    use hyper::rt::Timer;

    use super::*;

    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn poll(sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, flag: &Arc<Flag>) -> Poll<()> {
        let waker = Waker::from(flag.clone());
        sleep.as_mut().poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn a_coarse_sleep_wakes_once_due_and_leaves_nothing_behind() {
        let timer = CoarseTimer::default();
        let flag = Arc::new(Flag(AtomicBool::new(false)));

        let mut past = timer.sleep(Duration::ZERO);
        assert!(
            poll(&mut past, &flag).is_ready(),
            "a deadline passed is ready at once"
        );

        let mut soon = timer.sleep(Duration::from_millis(20));
        assert!(poll(&mut soon, &flag).is_pending());
        timer.fire_due();
        assert!(!flag.0.load(Ordering::SeqCst), "not due yet: not woken");
        std::thread::sleep(Duration::from_millis(30));
        timer.fire_due();
        assert!(flag.0.load(Ordering::SeqCst), "woken once due");
        assert!(poll(&mut soon, &flag).is_ready());

        let mut dropped = timer.sleep(Duration::from_secs(60));
        assert!(poll(&mut dropped, &flag).is_pending());
        assert_eq!(timer.deadlines().wakers.len(), 1);
        drop(dropped);
        assert_eq!(
            timer.deadlines().wakers.len(),
            0,
            "a dropped sleep is forgotten"
        );
    }
}
