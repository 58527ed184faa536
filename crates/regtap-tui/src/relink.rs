//! Live analysis off the UI thread: finished flows go to a thread that owns
//! the [`Analyzer`]; it decodes each as it comes and sends back the
//! analysis of all it has from time to time. Pushing a flow costs the UI
//! thread a channel send, whatever the size of the capture; linking a big
//! capture delays the newest kinds and operations, never a keypress.
//!
//! Linking costs time in proportion to the capture, so it is not done after
//! every flow: only when the capture has doubled since the last
//! link ([`Analyzer::link_due`]), or when the thread has spent
//! [`QUIET_FACTOR`] times the last link's duration on other things (taking
//! flows, or waiting for them). Growing to N flows, a capture is linked at
//! most twice over in all (by growth), or linking takes at most a fifth of
//! the thread (by time), where linking after every flow cost a whole link
//! per flow; a capture that stops growing is linked whole soon after.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Instant;

use regtap_capture::Flow;
use regtap_decode::{Analysis, Analyzer, Options};

/// After a link that took `d`, the next one not due by growth waits `d`
/// times this: linking then takes at most 1/(1+QUIET_FACTOR) of the thread.
const QUIET_FACTOR: u32 = 4;

/// An analysis of the first `covers` flows pushed.
pub(crate) struct Linked {
    pub covers: usize,
    pub analysis: Analysis,
}

pub(crate) struct Relinker {
    flows: mpsc::Sender<Arc<Flow>>,
    linked: mpsc::Receiver<Linked>,
    pushed: usize,
    /// Flows covered by the newest analysis taken from the thread.
    covered: usize,
    /// The thread is gone (a decoder panic): no analysis will come.
    failed: bool,
    failure_told: bool,
}

impl std::fmt::Debug for Relinker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relinker")
            .field("pushed", &self.pushed)
            .field("covered", &self.covered)
            .finish_non_exhaustive()
    }
}

impl Relinker {
    pub fn new(options: Options) -> Self {
        let (flows, inbox) = mpsc::channel::<Arc<Flow>>();
        let (outbox, linked) = mpsc::channel();
        std::thread::spawn(move || relink(Analyzer::new(options), &inbox, &outbox));
        Relinker {
            flows,
            linked,
            pushed: 0,
            covered: 0,
            failed: false,
            failure_told: false,
        }
    }

    pub fn push(&mut self, flow: Arc<Flow>) {
        // A worker that died (a decoder panic) leaves the last analysis shown.
        if self.flows.send(flow).is_ok() {
            self.pushed += 1;
        }
    }

    /// Flows pushed that the newest analysis taken does not cover yet, and
    /// that one will cover.
    pub fn behind(&self) -> usize {
        if self.failed {
            0
        } else {
            self.pushed - self.covered
        }
    }

    /// True once, the first time this is asked after the thread has gone:
    /// the analysis shown is then the last there will be.
    pub fn newly_failed(&mut self) -> bool {
        let newly = self.failed && !self.failure_told;
        self.failure_told |= self.failed;
        newly
    }

    /// The newest analysis finished since the last call, without waiting.
    pub fn latest(&mut self) -> Option<Linked> {
        let mut newest = None;
        loop {
            match self.linked.try_recv() {
                Ok(linked) => newest = Some(linked),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    self.failed = true;
                    break;
                }
            }
        }
        self.take(newest)
    }

    /// The analysis of every flow pushed so far, waiting for it; `None`
    /// when the worker is gone.
    pub fn complete(&mut self) -> Option<Linked> {
        let mut newest = self.linked.try_iter().last();
        while newest.as_ref().is_none_or(|l| l.covers < self.pushed) {
            match self.linked.recv() {
                Ok(linked) => newest = Some(linked),
                Err(_) => {
                    self.failed = true;
                    break;
                }
            }
        }
        self.take(newest)
    }

    fn take(&mut self, linked: Option<Linked>) -> Option<Linked> {
        if let Some(linked) = &linked {
            self.covered = linked.covers;
        }
        linked
    }
}

/// The worker: ends when the UI side is dropped.
fn relink(
    mut analyzer: Analyzer,
    inbox: &mpsc::Receiver<Arc<Flow>>,
    outbox: &mpsc::Sender<Linked>,
) {
    // When flows not due by growth get linked anyway.
    let mut quiet_until = Instant::now();
    loop {
        let received = if analyzer.unlinked() == 0 {
            inbox.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            inbox.recv_timeout(quiet_until.saturating_duration_since(Instant::now()))
        };
        match received {
            Ok(flow) => analyzer.push_shared(flow),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let quiet = analyzer.unlinked() > 0 && Instant::now() >= quiet_until;
        if analyzer.link_due() || quiet {
            let start = Instant::now();
            let linked = Linked {
                analysis: analyzer.link(),
                covers: analyzer.len(),
            };
            let took = start.elapsed();
            quiet_until = Instant::now() + took.saturating_mul(QUIET_FACTOR);
            if outbox.send(linked).is_err() {
                return;
            }
        }
    }
}
