//! A body that streams through unchanged while every data frame is recorded.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use regtap_capture::{Direction, LiveEvent, now_ns};

use crate::error_chain;
use crate::recorder::{FlowRecorder, SideEnd};

/// Live subscribers hear about a body's progress at most this often.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

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
}

impl RecordingBody {
    /// Wraps `inner` into a hudsucker body that records into `recorder`.
    pub(crate) fn wrap(
        inner: hudsucker::Body,
        recorder: Arc<FlowRecorder>,
        direction: Direction,
        total: Option<u64>,
    ) -> hudsucker::Body {
        let exact_len = inner.size_hint().exact();
        hudsucker::Body::from(BoxBody::new(RecordingBody {
            inner,
            exact_len,
            recorder,
            direction,
            ended: false,
            total,
            last_progress: Instant::now(),
        }))
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
            Poll::Pending => {}
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
