//! Live analysis off the UI thread: finished flows go to a thread that owns
//! the [`Analyzer`]; it decodes each as it comes, links all it has after
//! every burst, and sends back the analysis. Pushing a flow costs the UI
//! thread a channel send, whatever the size of the capture; linking a big
//! capture delays the newest kinds and operations, never a keypress.

use std::sync::mpsc;

use regtap_capture::Flow;
use regtap_decode::{Analysis, Analyzer, Options};

/// An analysis of the first `covers` flows pushed.
pub(crate) struct Linked {
    pub covers: usize,
    pub analysis: Analysis,
}

pub(crate) struct Relinker {
    flows: mpsc::Sender<Flow>,
    linked: mpsc::Receiver<Linked>,
    pushed: usize,
}

impl std::fmt::Debug for Relinker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relinker")
            .field("pushed", &self.pushed)
            .finish_non_exhaustive()
    }
}

impl Relinker {
    pub fn new(options: Options) -> Self {
        let (flows, inbox) = mpsc::channel::<Flow>();
        let (outbox, linked) = mpsc::channel();
        std::thread::spawn(move || {
            let mut analyzer = Analyzer::new(options);
            // Ends when the UI side is dropped.
            while let Ok(flow) = inbox.recv() {
                analyzer.push(&flow);
                while let Ok(flow) = inbox.try_recv() {
                    analyzer.push(&flow);
                }
                let linked = Linked {
                    covers: analyzer.len(),
                    analysis: analyzer.analysis(),
                };
                if outbox.send(linked).is_err() {
                    return;
                }
            }
        });
        Relinker {
            flows,
            linked,
            pushed: 0,
        }
    }

    pub fn push(&mut self, flow: Flow) {
        // A worker that died (a decoder panic) leaves the last analysis shown.
        if self.flows.send(flow).is_ok() {
            self.pushed += 1;
        }
    }

    /// The newest analysis finished since the last call, without waiting.
    pub fn latest(&mut self) -> Option<Linked> {
        self.linked.try_iter().last()
    }

    /// The analysis of every flow pushed so far, waiting for it; `None`
    /// when the worker is gone.
    pub fn complete(&mut self) -> Option<Linked> {
        let mut newest = self.latest();
        while newest.as_ref().is_none_or(|l| l.covers < self.pushed) {
            match self.linked.recv() {
                Ok(linked) => newest = Some(linked),
                Err(_) => return newest,
            }
        }
        newest
    }
}
