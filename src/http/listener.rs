//! The public webhook listener: HTTP/1.1 through hyper, with the bounds that hold for clients
//! that never finish. `axum::serve` has none of them; here every connection has
//! - a header-read timeout, counted from the first byte of a request to the end of its headers;
//! - a keep-alive idle timeout, counted from the end of the last response;
//! - a place under `max_connections`, or a 503 and an immediate close.
//!
//! Body bounds (rate, bytes, deadline) belong to the handler, which reads the body itself.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::telemetry;

/// The answer a connection beyond `max_connections` gets before it is closed. Written without
/// waiting: a fresh socket's send buffer always has room for it.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";

/// The largest request head (request line and headers) the listener reads; hyper's smallest
/// allowed buffer. Webhook senders' heads are a few hundred bytes.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;

/// How long a connection asked to close may still write its last answer.
const CLOSE_GRACE: Duration = Duration::from_millis(500);
/// The watchdog never wakes more often than this.
const MIN_CHECK_INTERVAL: Duration = Duration::from_millis(20);

#[derive(Debug, Clone)]
pub struct ListenerLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `shutdown` turns true, then stops accepting, asks every
/// connection to close once its request is answered (idle ones close at once), and resolves
/// when all have closed. Dropping the future drops every connection.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ListenerLimits,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let places = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
            Some(_) = connections.join_next() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) if is_per_connection(&e) => continue,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::error!(error = %e, "accepting connections failed; retrying in 1s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Ok(place) = places.clone().try_acquire_owned() else {
            metrics::counter!(telemetry::CONNECTIONS_REFUSED).increment(1);
            tracing::warn!(peer = %peer.ip(), limit = limits.max_connections, "connection limit reached; refusing");
            let _ = stream.try_write(REFUSED);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let limits = limits.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            metrics::gauge!(telemetry::OPEN_CONNECTIONS).increment(1.0);
            serve_connection(stream, peer, router, &limits, shutdown).await;
            metrics::gauge!(telemetry::OPEN_CONNECTIONS).decrement(1.0);
            drop(place);
        });
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Errors that concern one connection only; the listener goes on.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: &ListenerLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked {
        inner: stream,
        activity: activity.clone(),
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let busy = activity.begin_request();
            let router = router.clone();
            async move {
                let response = router.oneshot(request).await;
                drop(busy);
                response
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    // Header and idle timeouts are this module's; hyper's own header timer (which would also
    // cut idle keep-alive connections) stays off.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        // A request head must fit in this (431 otherwise); with `max_connections` it bounds the
        // memory open connections hold outside the byte budget.
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut stopping = false;
    // Once the connection is asked to close (idle, or shutdown), it gets until this instant to
    // finish writing; then, unless a handler is still running, it is dropped. A client that
    // never reads its answers cannot keep it open, and half a head cannot hold the drain.
    let mut close_by: Option<Instant> = None;
    loop {
        let due = match close_by {
            Some(by) if activity.is_busy() => by.max(Instant::now()) + limits.header_read_timeout,
            Some(by) => by,
            None => activity.next_check(limits),
        };
        // Never a deadline in the past: the loop must sleep, not spin.
        let due = due.max(Instant::now() + MIN_CHECK_INTERVAL);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(peer = %peer.ip(), error = %e, "connection ended with an error");
                }
                return;
            }
            () = activity.changed.notified() => {}
            () = tokio::time::sleep_until(due) => {
                if let Some(by) = close_by {
                    if Instant::now() >= by && !activity.is_busy() {
                        return;
                    }
                    continue;
                }
                match activity.verdict(limits) {
                    Verdict::Fine => {}
                    Verdict::HeaderTimeout => {
                        metrics::counter!(telemetry::CONNECTIONS_CLOSED, "reason" => "header_timeout").increment(1);
                        tracing::info!(peer = %peer.ip(), timeout_ms = limits.header_read_timeout.as_millis() as u64, "request headers not received in time; closing the connection");
                        return;
                    }
                    Verdict::Idle => {
                        metrics::counter!(telemetry::CONNECTIONS_CLOSED, "reason" => "idle").increment(1);
                        connection.as_mut().graceful_shutdown();
                        close_by = Some(Instant::now() + CLOSE_GRACE);
                    }
                }
            }
            _ = shutdown.wait_for(|stop| *stop), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
                let by = Instant::now() + CLOSE_GRACE;
                close_by = Some(close_by.map_or(by, |earlier| earlier.min(by)));
            }
        }
    }
}

/// What a connection is doing, as seen from its bytes and its requests. Times are milliseconds
/// since the connection opened.
struct Activity {
    opened: Instant,
    /// Requests being handled (HTTP/1.1 handles one at a time; pipelining queues the rest).
    busy: AtomicUsize,
    /// When the last request ended (or the connection opened).
    last_done: AtomicU64,
    /// When the first byte of a request whose headers are not complete arrived; `NONE` if none.
    head_started: AtomicU64,
    /// Woken whenever a deadline may have moved (a request's first byte, a request's start or
    /// end), so the connection's task never sleeps towards one that no longer applies.
    changed: Notify,
}

const NONE: u64 = u64::MAX;

enum Verdict {
    Fine,
    HeaderTimeout,
    Idle,
}

impl Activity {
    fn new() -> Self {
        Activity {
            opened: Instant::now(),
            busy: AtomicUsize::new(0),
            last_done: AtomicU64::new(0),
            // A new connection owes its first request head within the header timeout: a client
            // that connects and sends nothing is not "idle", it is slow.
            head_started: AtomicU64::new(0),
            changed: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.opened + Duration::from_millis(ms)
    }

    fn on_read(&self) {
        if self.busy.load(Ordering::Acquire) == 0 {
            let now = self.now();
            let begun = self
                .head_started
                .compare_exchange(NONE, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
            if begun {
                self.changed.notify_one();
            }
        }
    }

    fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Acquire) > 0
    }

    fn begin_request(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(NONE, Ordering::Release);
        self.changed.notify_one();
        Busy(self.clone())
    }

    fn next_check(&self, limits: &ListenerLimits) -> Instant {
        if self.busy.load(Ordering::Acquire) > 0 {
            return Instant::now() + limits.header_read_timeout.min(limits.idle_timeout);
        }
        match self.head_started.load(Ordering::Acquire) {
            NONE => self.at(self.last_done.load(Ordering::Acquire)) + limits.idle_timeout,
            started => self.at(started) + limits.header_read_timeout,
        }
    }

    fn verdict(&self, limits: &ListenerLimits) -> Verdict {
        if self.busy.load(Ordering::Acquire) > 0 {
            return Verdict::Fine;
        }
        let now = Instant::now();
        match self.head_started.load(Ordering::Acquire) {
            NONE if now
                >= self.at(self.last_done.load(Ordering::Acquire)) + limits.idle_timeout =>
            {
                Verdict::Idle
            }
            NONE => Verdict::Fine,
            started if now >= self.at(started) + limits.header_read_timeout => {
                Verdict::HeaderTimeout
            }
            _ => Verdict::Fine,
        }
    }
}

/// Held while a request is handled; its end restarts the idle clock.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let now = self.0.now();
        self.0.last_done.store(now, Ordering::Release);
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_one();
    }
}

/// The socket, noting when bytes arrive.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.on_read();
        }
        result
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
