//! What one connection is doing, seen from outside hyper: whether a request is in progress,
//! since when it has been idle, and since when bytes of a request whose headers are not
//! complete yet have been waiting. The connection's watchdog ([`super::serve`]) closes it when
//! the headers or the idle time run past their limits; [`TimedBody`] cuts off a request body
//! that does not arrive within its deadline.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::budget::HeldUntilSent;

const NONE: u64 = u64::MAX;

/// Activity of one connection; shared by its IO wrapper, its service and its watchdog.
#[derive(Debug)]
pub(crate) struct Activity {
    epoch: Instant,
    /// Requests whose headers have arrived and whose response has not ended.
    active: AtomicUsize,
    /// Milliseconds since `epoch` when the last request ended (or the connection opened).
    idle_since_ms: AtomicU64,
    /// Milliseconds since `epoch` of the first byte read while no request was in progress
    /// (`NONE`: no such byte): the start of a request whose headers are not complete.
    pending_since_ms: AtomicU64,
    /// The connection speaks HTTP/2 (its preface): bytes between requests are frames such as
    /// PING, not the start of a request.
    h2: AtomicBool,
    first_read: AtomicBool,
    /// Wakes the watchdog when the deadline moves earlier (the first byte of a request, a
    /// response that starts).
    pub(crate) pending_started: tokio::sync::Notify,
    /// Responses whose body is being sent: id → milliseconds since `epoch` when it last made
    /// progress (hyper asked for its next frame; on HTTP/1 also bytes written). Each has its
    /// own clock: on HTTP/2 the socket carries PINGs and other streams too, so bytes written
    /// say nothing about one response — a client that keeps one stream's window shut while it
    /// answers PINGs must not hold that response for ever.
    responses: std::sync::Mutex<std::collections::HashMap<u64, u64>>,
    next_response: AtomicU64,
    /// Milliseconds since `epoch` since when a write has been waiting for the socket (`NONE`:
    /// none is): what hyper buffered for a client that does not read.
    write_blocked_ms: AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            epoch: Instant::now(),
            active: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            // The first request's headers are due from the start: a connection that sends
            // nothing is a request that never finishes its headers.
            pending_since_ms: AtomicU64::new(0),
            h2: AtomicBool::new(false),
            first_read: AtomicBool::new(true),
            pending_started: tokio::sync::Notify::new(),
            responses: Default::default(),
            next_response: AtomicU64::new(0),
            write_blocked_ms: AtomicU64::new(NONE),
        })
    }

    fn wrote(&self, res: &Poll<std::io::Result<usize>>) {
        match res {
            Poll::Ready(Ok(n)) if *n > 0 => {
                self.write_blocked_ms.store(NONE, Ordering::SeqCst);
                // HTTP/1 writes only the response being sent: its bytes moving are its
                // progress. HTTP/2 bytes may be frames of anything.
                if !self.h2.load(Ordering::Relaxed) {
                    let now = self.now_ms();
                    for at in self.responses().values_mut() {
                        *at = now;
                    }
                }
            }
            Poll::Pending => {
                let now = self.now_ms();
                if self
                    .write_blocked_ms
                    .compare_exchange(NONE, now, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
                {
                    self.pending_started.notify_one();
                }
            }
            _ => {}
        }
    }

    fn responses(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, u64>> {
        self.responses.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A response starts: its id, its progress clock started.
    fn respond(&self) -> u64 {
        let id = self.next_response.fetch_add(1, Ordering::Relaxed);
        let now = self.now_ms();
        self.responses().insert(id, now);
        id
    }

    fn progress(&self, id: u64) {
        let now = self.now_ms();
        if let Some(at) = self.responses().get_mut(&id) {
            *at = now;
        }
    }

    fn responded(&self, id: u64) {
        self.responses().remove(&id);
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// A request's headers have arrived; the guard ends it when dropped (with its response
    /// body, or with the handler if the client went away).
    pub(crate) fn begin(self: &Arc<Self>) -> RequestGuard {
        self.active.fetch_add(1, Ordering::SeqCst);
        self.pending_since_ms.store(NONE, Ordering::SeqCst);
        RequestGuard(self.clone())
    }

    fn read(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.first_read.swap(false, Ordering::Relaxed) && bytes.starts_with(b"PRI") {
            self.h2.store(true, Ordering::Relaxed);
        }
        if self.active.load(Ordering::SeqCst) == 0 {
            let now = self.now_ms();
            if self
                .pending_since_ms
                .compare_exchange(NONE, now, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                self.pending_started.notify_one();
            }
        }
    }

    /// When the connection is to be closed if nothing changes. While a response is being
    /// sent, it must make progress within `write_timeout` (a client that stops reading holds
    /// nothing for long); while a handler runs otherwise (a long-poll waiting), `None`.
    /// HTTP/1 bytes of an unfinished request head count against `header_timeout`; otherwise
    /// the connection may idle for `idle_timeout`.
    pub(crate) fn deadline(
        &self,
        header_timeout: Duration,
        idle_timeout: Duration,
        write_timeout: Duration,
    ) -> Option<(Instant, Expiry)> {
        let at = |ms: u64, d: Duration| self.epoch + Duration::from_millis(ms) + d;
        let blocked = self.write_blocked_ms.load(Ordering::SeqCst);
        if blocked != NONE {
            return Some((at(blocked, write_timeout), Expiry::Stalled));
        }
        if let Some(&oldest) = self.responses().values().min() {
            return Some((at(oldest, write_timeout), Expiry::Stalled));
        }
        if self.active.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let idle = at(self.idle_since_ms.load(Ordering::SeqCst), idle_timeout);
        let pending = self.pending_since_ms.load(Ordering::SeqCst);
        if pending != NONE && !self.h2.load(Ordering::Relaxed) {
            let head = at(pending, header_timeout);
            if head < idle {
                return Some((head, Expiry::Headers));
            }
        }
        Some((idle, Expiry::Idle))
    }
}

/// Why a connection's deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    Headers,
    Idle,
    /// A response made no progress: its client does not read.
    Stalled,
}

/// Ends a request in its connection's [`Activity`] when dropped.
#[derive(Debug)]
pub(crate) struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let a = &self.0;
        a.idle_since_ms.store(a.now_ms(), Ordering::SeqCst);
        a.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The connection's byte stream, reporting what it reads to the [`Activity`].
pub(crate) struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Watched<S> {
    pub(crate) fn new(inner: S, activity: Arc<Activity>) -> Self {
        Watched { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            self.activity.read(&buf.filled()[before..]);
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.activity.wrote(&res);
        res
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
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.activity.wrote(&res);
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The error of a request body that did not arrive in time; `body.rs` answers it with 408.
#[derive(Debug, thiserror::Error)]
#[error(
    "the request body did not arrive within {}s of its headers (body read timeout); send it faster or raise --body-read-timeout",
    .0.as_secs_f64()
)]
pub struct BodyReadTimeout(pub Duration);

/// A request body that fails with [`BodyReadTimeout`] once its deadline passes: a body that
/// trickles in is cut off instead of holding its request (and its place among the in-flight
/// requests) for ever.
pub(crate) struct TimedBody<B> {
    inner: B,
    timeout: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<B: Body> TimedBody<B> {
    pub(crate) fn new(inner: B, timeout: Duration) -> Self {
        // A body that is already complete (GET) needs no timer.
        let deadline = (!inner.is_end_stream()).then(|| Box::pin(tokio::time::sleep(timeout)));
        TimedBody {
            inner,
            timeout,
            deadline,
        }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.deadline = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(r)) => Poll::Ready(Some(r.map_err(Into::into))),
            Poll::Pending => {
                if let Some(d) = this.deadline.as_mut() {
                    ready!(d.as_mut().poll(cx));
                    this.deadline = None;
                    return Poll::Ready(Some(Err(Box::new(BodyReadTimeout(this.timeout)))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that holds its request's [`RequestGuard`] until it has been sent (or
/// dropped): a streaming response keeps its connection busy, not idle. Each frame hyper asks
/// for is progress of the response ([`Activity::deadline`]). It also holds the answer's share
/// of the request memory budget ([`HeldUntilSent`]), so what slow readers keep is counted.
pub(crate) struct TrackedBody<B> {
    inner: B,
    activity: Arc<Activity>,
    id: u64,
    /// What is left of the data frame being handed out in [`PIECE_BYTES`] pieces.
    rest: Bytes,
    _guard: RequestGuard,
    _held: Option<HeldUntilSent>,
}

impl<B> TrackedBody<B> {
    pub(crate) fn new(inner: B, guard: RequestGuard, held: Option<HeldUntilSent>) -> Self {
        let activity = guard.0.clone();
        let id = activity.respond();
        // The watchdog may be sleeping on no deadline (a handler was running): wake it.
        activity.pending_started.notify_one();
        TrackedBody {
            inner,
            activity,
            id,
            rest: Bytes::new(),
            _guard: guard,
            _held: held,
        }
    }
}

impl<B> Drop for TrackedBody<B> {
    fn drop(&mut self) {
        self.activity.responded(self.id);
    }
}

/// The largest piece of a body handed to hyper at once. hyper takes a frame whole and drops
/// the body once it has the last one; in pieces, it asks for the next only when its buffer
/// (HTTP/1) or the stream's window (HTTP/2) has room, so the body — with its progress clock,
/// its request guard and its share of the memory budget — lives until about one piece is
/// left to send.
pub(crate) const PIECE_BYTES: usize = 64 * 1024;

impl<B: Body<Data = Bytes> + Unpin> Body for TrackedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.activity.progress(self.id);
        let this = &mut *self;
        if this.rest.is_empty() {
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => this.rest = data,
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                other => return Poll::Ready(other),
            }
        }
        let n = this.rest.len().min(PIECE_BYTES);
        Poll::Ready(Some(Ok(Frame::data(this.rest.split_to(n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.inner.size_hint();
        let rest = self.rest.len() as u64;
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + rest);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + rest);
        }
        hint
    }
}
