//! Decoding flows as they are read, on a thread per core.

use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

use regtap_capture::Flow;
use regtap_decode::{Analysis, Analyzer, Options};

/// How many flows go to a decoder thread at once: a hand-over per flow
/// costs the threads more in waking each other than a small flow's decoding.
const BATCH: usize = 64;
/// How many batches may wait for a decoder thread: enough to smooth out a
/// costly flow, few enough to keep memory flat.
const QUEUE: usize = 4;

/// Decodes the flows pushed into it on a thread per core, beside the
/// caller's reading and parsing of the next ones (decoding a flow costs
/// about three times parsing it). Each thread has its own [`Analyzer`];
/// they are put together before linking, which does not depend on the
/// order flows were pushed in. Only what the analysis needs of a flow is
/// kept: a capture is never held whole.
pub struct ParallelDecoder {
    options: Options,
    threads: Vec<(SyncSender<Vec<Flow>>, JoinHandle<Analyzer>)>,
    batch: Vec<Flow>,
    next_thread: usize,
}

impl ParallelDecoder {
    pub fn new(options: Options) -> Self {
        let threads = (0..std::thread::available_parallelism().map_or(1, usize::from))
            .map(|_| {
                let (to_thread, batches) = sync_channel::<Vec<Flow>>(QUEUE);
                let options = options.clone();
                let thread = std::thread::spawn(move || {
                    let mut analyzer = Analyzer::new(options);
                    for flow in batches.into_iter().flatten() {
                        analyzer.push_owned(flow);
                    }
                    analyzer
                });
                (to_thread, thread)
            })
            .collect();
        ParallelDecoder {
            options,
            threads,
            batch: Vec::with_capacity(BATCH),
            next_thread: 0,
        }
    }

    /// A flow the caller is done with.
    pub fn push(&mut self, flow: Flow) {
        self.batch.push(flow);
        if self.batch.len() == BATCH {
            self.send_batch();
        }
    }

    fn send_batch(&mut self) {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        if let Some((to_thread, _)) = self.threads.get(self.next_thread) {
            // A thread that stopped has panicked: `finish` says so.
            let _ = to_thread.send(batch);
        }
        self.next_thread = (self.next_thread + 1) % self.threads.len().max(1);
    }

    /// The analysis of every flow pushed, linked on as many threads as
    /// decoded. A decoder thread's panic goes on to the caller.
    pub fn finish(mut self) -> Analysis {
        self.send_batch();
        let mut whole = Analyzer::new(self.options);
        let threads = self.threads.len();
        for (to_thread, thread) in self.threads {
            drop(to_thread);
            let part = thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            whole.append(part);
        }
        whole.finish_on(threads)
    }
}
