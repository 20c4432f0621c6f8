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
//!
//! `read_timeout` is also the deadline for reading a whole request, head and body, as Go's
//! `net/http` has it: counted from the request's first byte, and a body not in by then
//! fails the request with a 408 and the connection closes (an authenticated client that
//! trickles its body a byte at a time no longer holds a connection for ever).
//!
//! Open connections are capped ([`Connections`]): `api.max_connections`, and below the
//! process's descriptor limit less [`RESERVE`] for the gateway's own files, store, health
//! checks and outbound calls. At the cap a new connection is still served: the connection
//! idle the longest (waiting for its first or next request head) is closed to make room;
//! only when every connection has a request in flight is the new one answered 503 with
//! `Connection: close`. So idle connections can't starve `/v1/health` or real calls, and
//! no request in flight is ever cut. An accept error (`EMFILE`, if the reserve runs out)
//! makes the listener wait a moment and retry (axum's `TcpListener`, and `tls`).
//!
//! Owns connections: accepting, the caps, the timeouts, graceful stop, and raising the
//! open-file limit. A request is handed whole to [`ApiService`].
//! Must not: look inside a request beyond what a connection needs (no routes, no
//! authentication, no body parsing: that is `api`), or know about TLS (the listener it is
//! given may be `tls`'s; a connection is a byte stream here).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, StatusCode, header};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::rt::Timer as _;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};
use tower::Service;

use crate::api::ApiService;

/// The connection timeouts from `http.*`.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// How long hyper waits for a request head, on a new connection or between two
    /// requests of a kept-alive one: the shorter of `read_timeout` and `idle_timeout`.
    pub head: Duration,
    /// How long a whole request may take to arrive, from its first byte: `read_timeout`.
    pub request: Duration,
    /// How long a write may make no progress: `write_timeout`.
    pub write_stall: Duration,
}

impl Timeouts {
    pub fn new(read: Duration, write: Duration, idle: Duration) -> Self {
        Self {
            head: read.min(idle),
            request: read,
            write_stall: write,
        }
    }
}

/// Accepts connections from `listener` and serves `app` on each until `stop` completes;
/// then stops accepting, asks every connection to close once its request in flight is
/// answered, and returns when all have. `connections` is shared by every listener of the
/// gateway: the cap is on all of them together.
pub async fn serve<L>(
    mut listener: L,
    app: ApiService,
    timeouts: Timeouts,
    connections: Arc<Connections>,
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
        let slot = match connections.admit() {
            Admission::Serve(slot) => slot,
            Admission::Refuse(overflow) => {
                tokio::spawn(refuse(io, timeouts, head_timer.clone(), overflow));
                continue;
            }
            Admission::Drop => {
                tracing::debug!(%peer, "connection dropped: at the connection cap");
                continue;
            }
        };
        let app = app.clone();
        let head_timer = head_timer.clone();
        let mut stop_seen = stop_seen.clone();
        tokio::spawn(async move {
            let conn = slot.conn.clone();
            let body_timer = head_timer.clone();
            let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let busy = Busy::start(&conn);
                let deadline = conn
                    .request_started()
                    .unwrap_or_else(std::time::Instant::now)
                    + timeouts.request;
                let mut req = req.map(|body| {
                    Body::new(ReadDeadline {
                        body,
                        deadline,
                        timer: body_timer.clone(),
                        sleep: None,
                        conn: conn.clone(),
                    })
                });
                req.extensions_mut().insert(ConnectInfo(peer));
                let answer = app.clone().call(req);
                async move {
                    let Ok(response) = answer.await;
                    let response = if busy.0.timed_out.swap(false, Ordering::Relaxed) {
                        too_slow()
                    } else {
                        response
                    };
                    Ok::<_, std::convert::Infallible>(response.map(|body| Tracked { body, busy }))
                }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(head_timer)
                .header_read_timeout(timeouts.head)
                .keep_alive(true);
            let io = StallLimit::new(io, timeouts.write_stall, slot.conn.clone());
            let mut connection = pin!(builder.serve_connection(TokioIo::new(io), service));
            let served = tokio::select! {
                served = connection.as_mut() => served,
                () = async { let _ = stop_seen.wait_for(|stop| *stop).await; } => {
                    connection.as_mut().graceful_shutdown();
                    connection.as_mut().await
                }
                () = slot.conn.evict.notified() => {
                    if slot.conn.idle() {
                        // Between requests, nothing unwritten: closing loses nothing.
                        Ok(())
                    } else {
                        // A request came in since it was picked: answer it, then close.
                        connection.as_mut().graceful_shutdown();
                        connection.as_mut().await
                    }
                }
            };
            if let Err(e) = served {
                tracing::trace!(%peer, error = %e, "connection ended with an error");
            }
            drop(slot);
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

/// Descriptors kept back from connections, for the gateway's own files, its store, worker
/// health checks and outbound calls (workers, providers).
pub const RESERVE: u64 = 128;

/// Connections answered 503 at once, at most: past that, new ones are closed unanswered.
const MAX_REFUSING: usize = 32;

/// The open connections of a gateway (all its listeners), and the cap on them.
pub struct Connections {
    cap: usize,
    /// Registered at accept, removed when the connection's task ends. A std `Mutex`:
    /// held for a map insert or remove, or a scan at the cap, never across an await.
    open: Mutex<Open>,
    /// Connections being answered 503.
    refusing: AtomicUsize,
}

#[derive(Default)]
struct Open {
    next_id: u64,
    conns: HashMap<u64, Arc<Conn>>,
    /// Of `conns`, those asked to close to make room and not yet gone.
    evicting: usize,
}

/// One served connection, as its task, its IO and its requests see it.
#[derive(Default)]
struct Conn {
    /// Requests being answered: from the service call until the response body is dropped.
    busy: AtomicUsize,
    /// When it last became idle (or was accepted), as [`ticks`]: the longest idle goes first.
    idle_since: AtomicU64,
    /// When the first bytes of the request being read arrived, as [`ticks`]; 0 when none.
    reading_since: AtomicU64,
    /// A write is blocked on the client: hyper holds bytes it has not sent.
    write_blocked: AtomicBool,
    /// The request's body missed its deadline: its answer becomes a 408.
    timed_out: AtomicBool,
    /// Set and notified when the connection is picked to make room.
    evicted: AtomicBool,
    evict: Notify,
}

impl Conn {
    /// Waiting for a request head, with no answer in progress or unsent.
    fn idle(&self) -> bool {
        self.busy.load(Ordering::Acquire) == 0 && !self.write_blocked.load(Ordering::Acquire)
    }

    /// When the request now starting began to arrive, if its first bytes were seen.
    fn request_started(&self) -> Option<std::time::Instant> {
        match self.reading_since.swap(0, Ordering::Relaxed) {
            0 => None,
            t => Some(epoch() + Duration::from_nanos(t)),
        }
    }
}

enum Admission {
    Serve(Slot),
    /// At the cap with every connection busy: answer 503.
    Refuse(Refusing),
    /// Too many 503s under way already.
    Drop,
}

/// A connection's place among the open ones; dropping it frees the place.
struct Slot {
    id: u64,
    conn: Arc<Conn>,
    connections: Arc<Connections>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.connections.open();
        open.conns.remove(&self.id);
        if self.conn.evicted.load(Ordering::Relaxed) {
            open.evicting -= 1;
        }
    }
}

/// A connection being answered 503; dropping it frees its place.
struct Refusing(Arc<Connections>);

impl Drop for Refusing {
    fn drop(&mut self) {
        self.0.refusing.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Connections {
    /// A cap of `max_connections`, lowered to leave [`RESERVE`] descriptors of the
    /// process's limit free.
    pub fn new(max_connections: usize) -> Arc<Self> {
        let cap = match descriptor_limit() {
            Some(limit) => {
                let room = limit.saturating_sub(RESERVE).max(limit / 2).max(1);
                max_connections.min(usize::try_from(room).unwrap_or(usize::MAX))
            }
            None => max_connections,
        };
        tracing::debug!(cap, max_connections, "connection cap");
        Arc::new(Self {
            cap: cap.max(1),
            open: Mutex::new(Open::default()),
            refusing: AtomicUsize::new(0),
        })
    }

    /// The most connections served at once.
    pub fn cap(&self) -> usize {
        self.cap
    }

    fn open(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for a new connection: free, or made by closing the connection idle the
    /// longest; else a 503.
    fn admit(self: &Arc<Self>) -> Admission {
        let mut open = self.open();
        if open.conns.len() - open.evicting >= self.cap {
            let victim = open
                .conns
                .values()
                .filter(|c| !c.evicted.load(Ordering::Relaxed) && c.idle())
                .min_by_key(|c| c.idle_since.load(Ordering::Relaxed))
                .cloned();
            match victim {
                Some(victim) => {
                    victim.evicted.store(true, Ordering::Relaxed);
                    victim.evict.notify_one();
                    open.evicting += 1;
                    tracing::debug!("at the connection cap: closing the longest idle one");
                }
                None => {
                    drop(open);
                    if self.refusing.fetch_add(1, Ordering::Relaxed) >= MAX_REFUSING {
                        self.refusing.fetch_sub(1, Ordering::Relaxed);
                        return Admission::Drop;
                    }
                    tracing::warn!(cap = self.cap, "at the connection cap, every one busy: 503");
                    return Admission::Refuse(Refusing(self.clone()));
                }
            }
        }
        open.next_id += 1;
        let id = open.next_id;
        let conn = Arc::new(Conn::default());
        conn.idle_since.store(ticks(), Ordering::Relaxed);
        open.conns.insert(id, conn.clone());
        Admission::Serve(Slot {
            id,
            conn,
            connections: self.clone(),
        })
    }
}

/// The process's soft `RLIMIT_NOFILE`, if it has one.
fn descriptor_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `getrlimit` writes into the struct it is given, nothing else.
        let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
        if got != 0 || limit.rlim_cur == libc::RLIM_INFINITY {
            return None;
        }
        #[allow(clippy::useless_conversion)] // `rlim_t` is not u64 everywhere.
        Some(u64::from(limit.rlim_cur))
    }
    #[cfg(not(unix))]
    None
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns (before, after).
pub fn raise_descriptor_limit() -> std::io::Result<(u64, u64)> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `getrlimit` writes into the struct it is given, nothing else.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let before = limit.rlim_cur;
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            // SAFETY: `setrlimit` only reads the struct it is given.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            limit.rlim_cur = limit.rlim_max;
        }
        #[allow(clippy::useless_conversion)] // `rlim_t` is not u64 everywhere.
        Ok((u64::from(before), u64::from(limit.rlim_cur)))
    }
    #[cfg(not(unix))]
    Err(std::io::Error::other("no descriptor limit here"))
}

/// Nanoseconds since the first call, plus one (0 stands for "none").
fn ticks() -> u64 {
    u64::try_from(epoch().elapsed().as_nanos())
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

fn epoch() -> std::time::Instant {
    static EPOCH: OnceLock<std::time::Instant> = OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

/// A request being answered on `Conn`: counted busy until the response body is dropped
/// (sent, or the connection gone), so a streaming answer is never taken for idle.
struct Busy(Arc<Conn>);

impl Busy {
    fn start(conn: &Arc<Conn>) -> Self {
        conn.busy.fetch_add(1, Ordering::AcqRel);
        Self(conn.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.idle_since.store(ticks(), Ordering::Relaxed);
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its connection busy while it exists.
struct Tracked {
    body: Body,
    #[allow(dead_code)] // Held for its `Drop`.
    busy: Busy,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A request body that fails once its request's read deadline has passed. The timer is
/// registered only while the body waits for bytes.
struct ReadDeadline {
    body: Incoming,
    deadline: std::time::Instant,
    timer: CoarseTimer,
    sleep: Option<Pin<Box<dyn hyper::rt::Sleep>>>,
    conn: Arc<Conn>,
}

/// What a handler reading a late body sees; its answer is replaced by a 408 anyway.
#[derive(Debug, thiserror::Error)]
#[error("the request was not received within api.read_timeout")]
struct ReadTimedOut;

impl hyper::body::Body for ReadDeadline {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.sleep = None;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                if std::time::Instant::now() >= this.deadline {
                    this.sleep = None;
                    this.conn.timed_out.store(true, Ordering::Relaxed);
                    return Poll::Ready(Some(Err(ReadTimedOut.into())));
                }
                let timer = &this.timer;
                let deadline = this.deadline;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| timer.sleep_until(deadline));
                // Woken at the deadline to fail above (its own readiness says nothing more).
                let _ = sleep.as_mut().poll(cx);
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The answer to a request whose body was not in by its deadline; the connection closes.
fn too_slow() -> axum::response::Response {
    let body = r#"{"name":"request_timeout","message":"the request was not received within api.read_timeout"}"#;
    let mut response = axum::response::Response::new(Body::from(body));
    *response.status_mut() = StatusCode::REQUEST_TIMEOUT;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Answers the one request of a connection over the cap with a 503, then closes it.
async fn refuse<Io>(io: Io, timeouts: Timeouts, timer: CoarseTimer, overflow: Refusing)
where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(|_req: hyper::Request<Incoming>| async {
        let body =
            r#"{"name":"service_unavailable","message":"too many open connections; try again"}"#;
        let mut response = axum::response::Response::new(Body::from(body));
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        Ok::<_, std::convert::Infallible>(response)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(timer)
        .header_read_timeout(timeouts.head)
        .keep_alive(false);
    let io = StallLimit::new(io, timeouts.write_stall, Arc::new(Conn::default()));
    let _ = builder.serve_connection(TokioIo::new(io), service).await;
    drop(overflow);
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
///
/// It also tells the connection's [`Conn`] what it sees: a write blocked, and when the
/// first bytes of a request arrive (the start of its read deadline).
struct StallLimit<Io> {
    io: Io,
    limit: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
    conn: Arc<Conn>,
}

impl<Io> StallLimit<Io> {
    fn new(io: Io, limit: Duration, conn: Arc<Conn>) -> Self {
        Self {
            io,
            limit,
            stalled: None,
            conn,
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
            Poll::Pending => {
                self.conn.write_blocked.store(true, Ordering::Release);
                Poll::Pending
            }
            ready => {
                if self.stalled.take().is_some() {
                    self.conn.write_blocked.store(false, Ordering::Release);
                }
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
        let filled = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        // The first bytes read between requests start the next request's deadline.
        if buf.filled().len() > filled
            && self.conn.busy.load(Ordering::Relaxed) == 0
            && self.conn.reading_since.load(Ordering::Relaxed) == 0
        {
            self.conn.reading_since.store(ticks(), Ordering::Relaxed);
        }
        polled
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
