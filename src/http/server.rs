//! Accepting connections and holding each to its deadlines, so that no
//! client can keep a connection, a file descriptor or a buffer forever.
//!
//! hyper serves each connection (HTTP/1.1); around it this module keeps:
//! - a cap on open connections: past it, new ones wait in the listen
//!   backlog until one closes (they are not accepted, so cost nothing here);
//! - a header deadline, counted from the first byte of a request;
//! - an idle deadline between requests on a kept-alive connection;
//! - a bound on buffered header bytes (hyper's read buffer);
//! - a shutdown deadline: after it, whatever is still open is dropped.
//!
//! The deadlines are watched here rather than by hyper's own header timer,
//! which also runs while a kept-alive connection waits for its next request
//! and so cannot tell a slow client from an idle one.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt as _;

/// Header lines hyper parses at most; more are answered 431 by hyper.
/// (Its default of 100 would refuse, bare, some requests our JSON 431
/// should answer.)
const MAX_HEADERS: usize = 256;

/// What bounds one connection and the whole server's connections.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read: Duration,
    pub keep_alive: Duration,
    pub max_connections: usize,
    /// hyper's read buffer: a request head that does not fit is answered
    /// 431 by hyper itself and the connection closed.
    pub max_buffered_head: usize,
    pub shutdown: Duration,
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets
/// in-flight requests finish for at most `limits.shutdown`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stopping, stop) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(&listener, &slots) => accepted,
        };
        while connections.try_join_next().is_some() {}
        let (stream, peer, slot) = accepted;
        let connection = Connection {
            router: router.clone(),
            peer,
            limits,
            _slot: slot,
        };
        connections.spawn(connection.serve(stream, stop.clone()));
    }
    drop(listener);
    let _ = stopping.send(true);
    let drained = tokio::time::timeout(limits.shutdown, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "shutdown deadline passed; closing the remaining connections"
        );
        connections.shutdown().await;
    }
}

/// The next connection, once a slot is free for it.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> (TcpStream, SocketAddr, OwnedSemaphorePermit) {
    let slot = match slots.clone().try_acquire_owned() {
        Ok(slot) => slot,
        Err(_) => {
            tracing::warn!("connection cap reached; new connections wait until one closes");
            slots.clone().acquire_owned().await.expect("never closed")
        }
    };
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                return (stream, peer, slot);
            }
            // Out of descriptors or a connection reset before accept: wait
            // a moment rather than spin.
            Err(err) => {
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

struct Connection {
    router: Router,
    peer: SocketAddr,
    limits: Limits,
    /// Held for as long as the connection is open.
    _slot: OwnedSemaphorePermit,
}

impl Connection {
    async fn serve(self, stream: TcpStream, mut stop: watch::Receiver<bool>) {
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Watched {
            inner: stream,
            activity: activity.clone(),
        });
        let (router, peer, watched) = (self.router, self.peer, activity.clone());
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            let request_guard = watched.request_started();
            request.extensions_mut().insert(ConnectInfo(peer));
            let response = router.clone().oneshot(request.map(axum::body::Body::new));
            async move {
                let response = response.await;
                drop(request_guard);
                response
            }
        });
        let mut builder = http1::Builder::new();
        builder
            .keep_alive(true)
            .max_headers(MAX_HEADERS)
            .max_buf_size(self.limits.max_buffered_head);
        let mut conn = pin!(builder.serve_connection(io, service));
        let mut stopping = false;
        loop {
            let deadline = activity.deadline(&self.limits);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(err) = result {
                        tracing::debug!(error = %err, "connection ended with an error");
                    }
                    return;
                }
                () = activity.changed.notified() => {}
                () = tokio::time::sleep_until(deadline) => {
                    if activity.past_deadline(&self.limits) {
                        tracing::debug!(%peer, "closing a connection past its deadline");
                        return;
                    }
                }
                changed = stop.changed(), if !stopping => {
                    stopping = true;
                    if changed.is_ok() {
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        }
    }
}

/// When a connection last did something, as its deadlines need it:
/// requests in flight, when it went idle, and when the head of its next
/// request began to arrive. Times are milliseconds since `opened`.
struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    idle_since: AtomicU64,
    head_started: AtomicU64,
    /// Wakes the watcher when a deadline moves earlier.
    changed: Notify,
}

const NONE: u64 = u64::MAX;

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_started: AtomicU64::new(NONE),
            changed: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn at(&self, millis: u64) -> Instant {
        self.opened + Duration::from_millis(millis)
    }

    fn bytes_read(&self) {
        let idle = self.in_flight.load(Ordering::Acquire) == 0;
        if idle
            && self
                .head_started
                .compare_exchange(NONE, self.now(), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.changed.notify_one();
        }
    }

    fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(NONE, Ordering::Release);
        InFlight(self.clone())
    }

    /// When the connection must have moved on: the header deadline while a
    /// head arrives, the idle deadline while nothing does. A request in
    /// flight is bounded by its handler, so only checked again later.
    fn deadline(&self, limits: &Limits) -> Instant {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Instant::now() + limits.keep_alive;
        }
        match self.head_started.load(Ordering::Acquire) {
            NONE => self.at(self.idle_since.load(Ordering::Acquire)) + limits.keep_alive,
            started => self.at(started) + limits.header_read,
        }
    }

    fn past_deadline(&self, limits: &Limits) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && self.deadline(limits) <= Instant::now()
    }
}

/// A request being answered; when it is dropped the connection is idle again.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.idle_since.store(self.0.now(), Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_one();
    }
}

/// The socket, telling `Activity` when bytes arrive.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
