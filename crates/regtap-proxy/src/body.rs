//! A body that streams through unchanged while every data frame is recorded,
//! and that fails once no bytes have moved for the body timeout.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use regtap_capture::{Direction, LiveEvent, now_ns};

use crate::error_chain;
use crate::recorder::{FlowRecorder, SideEnd};

/// Live subscribers hear about a body's progress at most this often.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);
/// The capture gets a progress record at most this often per body.
const CAPTURE_PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

pub(crate) struct RecordingBody {
    inner: hudsucker::Body,
    recorder: Arc<FlowRecorder>,
    direction: Direction,
    ended: bool,
    /// From `Content-Length`, for progress events.
    total: Option<u64>,
    /// The exact length the inner body announced when it was wrapped. Reaching
    /// it ends the body: peers stop polling once they have the announced bytes,
    /// and hyper does not always report the end of stream before that.
    exact_len: Option<u64>,
    last_progress: Instant,
    last_capture_progress: Instant,
    /// How long the inner body may stay pending.
    stall_timeout: Duration,
    last_frame: Instant,
    stall: Pin<Box<Sleep>>,
}

impl RecordingBody {
    /// Wraps `inner` into a hudsucker body that records into `recorder`.
    pub(crate) fn wrap(
        inner: hudsucker::Body,
        recorder: Arc<FlowRecorder>,
        direction: Direction,
        total: Option<u64>,
        stall_timeout: Duration,
    ) -> hudsucker::Body {
        let exact_len = inner.size_hint().exact();
        let now = Instant::now();
        hudsucker::Body::from(BoxBody::new(RecordingBody {
            inner,
            exact_len,
            recorder,
            direction,
            ended: false,
            total,
            last_progress: now,
            last_capture_progress: now,
            stall_timeout,
            last_frame: now,
            stall: Box::pin(tokio::time::sleep_until(now + stall_timeout)),
        }))
    }

    /// Called when the inner body has nothing yet: fails the body once it has
    /// been stalled for the timeout.
    fn poll_stall(&mut self, cx: &mut Context<'_>) -> Poll<hudsucker::Error> {
        if self.ended {
            return Poll::Pending;
        }
        let deadline = self.last_frame + self.stall_timeout;
        if self.stall.deadline() != deadline {
            self.stall.as_mut().reset(deadline);
        }
        if self.stall.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let message = format!(
            "no bytes for {}s (--body-timeout)",
            self.stall_timeout.as_secs_f32()
        );
        self.end(SideEnd::TimedOut(message.clone()));
        Poll::Ready(hudsucker::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            message,
        )))
    }

    fn end(&mut self, end: SideEnd) {
        if !self.ended {
            self.ended = true;
            self.recorder.end(self.direction, end);
        }
    }

    fn progress(&mut self, bytes: u64) {
        let now = Instant::now();
        if now.duration_since(self.last_progress) < PROGRESS_INTERVAL {
            return;
        }
        self.last_progress = now;
        if now.duration_since(self.last_capture_progress) >= CAPTURE_PROGRESS_INTERVAL {
            self.last_capture_progress = now;
            self.recorder.record_progress();
        }
        let _ = self.recorder.live().send(LiveEvent::Progress {
            id: self.recorder.id(),
            direction: self.direction,
            bytes,
            total: self.total,
            at: now_ns(),
        });
    }
}

impl HttpBody for RecordingBody {
    type Data = Bytes;
    type Error = hudsucker::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hudsucker::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if polled.is_ready() {
            this.last_frame = Instant::now();
        }
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                let mut seen = None;
                if let Some(data) = frame.data_ref() {
                    let bytes = this.recorder.data(this.direction, data);
                    this.progress(bytes);
                    seen = Some(bytes);
                }
                if this.inner.is_end_stream() || (seen.is_some() && seen == this.exact_len) {
                    this.end(SideEnd::Complete);
                }
            }
            Poll::Ready(Some(Err(e))) => this.end(SideEnd::Failed(error_chain(e))),
            Poll::Ready(None) => this.end(SideEnd::Complete),
            Poll::Pending => {
                return this.poll_stall(cx).map(|e| Some(Err(e)));
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for RecordingBody {
    fn drop(&mut self) {
        let at_end = self.inner.is_end_stream();
        self.end(SideEnd::Dropped { at_end });
    }
}
