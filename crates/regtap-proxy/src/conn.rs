//! One client connection's clock: how long it may take to send a request head,
//! and how long it may sit idle between exchanges. hyper's own header-read
//! timeout cannot tell the two apart (and needs a timer hudsucker never set),
//! so the socket itself is wrapped: [`TimedIo`] fails its reads once the
//! connection's deadline has passed, which makes hyper close the connection,
//! and records why.

use std::future::Future as _;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use regtap_capture::ErrorStage;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::recorder::Shared;

/// The client-side deadlines of a connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientDeadlines {
    pub request_head: Duration,
    pub idle: Duration,
}

struct Clock {
    /// When the connection was accepted or its last exchange ended.
    quiet_since: Instant,
    /// When the first bytes of the next request head (or TLS handshake) came.
    head_started: Option<Instant>,
    /// At least one exchange finished on this connection.
    served: bool,
    /// HTTP/2: bytes between exchanges are control frames (PING, SETTINGS),
    /// not the start of a request head.
    multiplexed: bool,
}

/// What every piece serving one client connection knows about it.
pub(crate) struct ConnState {
    pub client_addr: SocketAddr,
    connect_authority: Mutex<Option<String>>,
    in_flight: AtomicUsize,
    clock: Mutex<Clock>,
    /// A deadline passed and was recorded; the connection is being closed.
    timed_out: AtomicBool,
    /// The reader parked without a deadline while an exchange was in flight;
    /// woken when the exchange ends so that its deadline starts.
    parked_reader: Mutex<Option<Waker>>,
}

impl ConnState {
    pub(crate) fn new(client_addr: SocketAddr) -> Self {
        ConnState {
            client_addr,
            connect_authority: Mutex::new(None),
            in_flight: AtomicUsize::new(0),
            clock: Mutex::new(Clock {
                quiet_since: Instant::now(),
                head_started: None,
                served: false,
                multiplexed: false,
            }),
            timed_out: AtomicBool::new(false),
            parked_reader: Mutex::new(None),
        }
    }

    pub(crate) fn connect_authority(&self) -> Option<String> {
        self.connect_authority.lock().ok().and_then(|a| a.clone())
    }

    pub(crate) fn set_connect_authority(&self, authority: String) {
        if let Ok(mut slot) = self.connect_authority.lock() {
            *slot = Some(authority);
        }
    }

    pub(crate) fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Relaxed)
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// An exchange (a request head was read) begins; its guard ends it.
    pub(crate) fn exchange(self: &Arc<Self>, version: http::Version) -> ExchangeGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut clock) = self.clock.lock() {
            clock.head_started = None;
            clock.multiplexed |= version == http::Version::HTTP_2;
        }
        ExchangeGuard(Arc::clone(self))
    }

    fn bytes_arrived(&self) {
        if self.in_flight() > 0 {
            return;
        }
        if let Ok(mut clock) = self.clock.lock()
            && !clock.multiplexed
        {
            clock.head_started.get_or_insert_with(Instant::now);
        }
    }

    /// When the connection must be closed if nothing changes, and why.
    fn deadline(&self, limits: &ClientDeadlines) -> Option<(Instant, ErrorStage)> {
        if self.in_flight() > 0 {
            return None;
        }
        let clock = self.clock.lock().ok()?;
        Some(match clock.head_started {
            Some(started) => (
                started + limits.request_head,
                ErrorStage::RequestHeadTimeout,
            ),
            // A fresh connection owes us its first request head.
            None if !clock.served => (
                clock.quiet_since + limits.request_head,
                ErrorStage::RequestHeadTimeout,
            ),
            None => (clock.quiet_since + limits.idle, ErrorStage::IdleTimeout),
        })
    }
}

/// Held while an exchange is in flight on a connection (inside the response body).
pub(crate) struct ExchangeGuard(Arc<ConnState>);

impl Drop for ExchangeGuard {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::Relaxed) != 1 {
            return;
        }
        if let Ok(mut clock) = self.0.clock.lock() {
            clock.quiet_since = Instant::now();
            clock.served = true;
        }
        if let Some(reader) = self.0.parked_reader.lock().ok().and_then(|mut w| w.take()) {
            reader.wake();
        }
    }
}

/// A client socket whose reads fail once its connection's deadline passed.
pub(crate) struct TimedIo<T> {
    inner: T,
    state: Arc<ConnState>,
    limits: ClientDeadlines,
    shared: Arc<Shared>,
    sleep: Pin<Box<Sleep>>,
}

impl<T> TimedIo<T> {
    pub(crate) fn new(
        inner: T,
        state: Arc<ConnState>,
        limits: ClientDeadlines,
        shared: Arc<Shared>,
    ) -> Self {
        TimedIo {
            inner,
            state,
            limits,
            shared,
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }
    }

    /// Checks the deadline after a read found nothing to return.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        // Parked before the check, so that an exchange ending in between wakes us.
        if let Ok(mut parked) = self.state.parked_reader.lock() {
            *parked = Some(cx.waker().clone());
        }
        let Some((deadline, stage)) = self.state.deadline(&self.limits) else {
            return Poll::Pending;
        };
        if self.sleep.deadline() != deadline {
            self.sleep.as_mut().reset(deadline);
        }
        if self.sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let message = match stage {
            ErrorStage::IdleTimeout => format!(
                "the client's kept-alive connection was idle for {}s; regtap closed it",
                self.limits.idle.as_secs_f32()
            ),
            _ => format!(
                "the client sent no complete request head within {}s; regtap closed the connection",
                self.limits.request_head.as_secs_f32()
            ),
        };
        if !self.state.timed_out.swap(true, Ordering::Relaxed) {
            self.shared.record_connection_failure(
                self.state.client_addr,
                self.state.connect_authority(),
                stage,
                message.clone(),
            );
        }
        Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, message))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.state.bytes_arrived();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.poll_deadline(cx).map(Err),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Bytes already read from a stream, served again before the rest of it: the
/// tunnel peeks at the first byte to tell TLS from plain HTTP.
pub(crate) struct Rewind<T> {
    prefix: Vec<u8>,
    inner: T,
}

impl<T> Rewind<T> {
    pub(crate) fn new(prefix: Vec<u8>, inner: T) -> Self {
        Rewind { prefix, inner }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.drain(..n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    // The TLS layer above hands over all its pending records at once; passed
    // on, they leave in one `writev` instead of one write per record.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
