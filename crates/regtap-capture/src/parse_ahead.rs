//! Parsing a capture's lines on other threads, ahead of the reader.
//!
//! What a line says does not depend on the lines before it; only what the
//! lines mean together (in-flight records, appended sessions, a cut-off
//! tail) does, and that stays with [`crate::CaptureReader`], which takes the
//! parsed lines in file order. Parsing is most of the cost of reading a
//! capture, so a large file is read about as many times faster as there are
//! cores to parse it.

use std::collections::VecDeque;
use std::io::{self, BufRead};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use crate::file::{LineRead, ParsedLine, parse_record};

/// Lines handed to a parsing thread at once: enough to make the hand-over
/// cheap against the parsing, few enough to keep memory flat.
const BATCH_LINES: usize = 256;
const BATCH_BYTES: usize = 1 << 20;

/// Lines read and not yet parsed, with where each is in the file.
struct Batch {
    bytes: Vec<u8>,
    /// Each line's end in `bytes`, and where it is in the file.
    lines: Vec<(usize, LineRead)>,
}

/// What a parsing thread made of a batch, and what stopped the reading
/// after it (an I/O error), in file order.
struct Parsed {
    lines: std::vec::IntoIter<ParsedLine>,
    then: Option<io::Error>,
}

type Job = (Batch, SyncSender<Vec<ParsedLine>>);

/// Reads lines on the caller's thread and parses them on `threads` others,
/// a few batches ahead of what the caller has taken.
pub(crate) struct ParseAhead {
    /// Closed when the reader is dropped, which ends the parsing threads.
    jobs: SyncSender<Job>,
    /// Batches sent to be parsed, oldest first, each with the I/O error
    /// (if any) that ended the reading after it.
    in_flight: VecDeque<(Receiver<Vec<ParsedLine>>, Option<io::Error>)>,
    current: Option<Parsed>,
    window: usize,
    input_done: bool,
}

impl ParseAhead {
    pub(crate) fn new(path: &Path, threads: usize) -> Self {
        let threads = threads.max(1);
        let (jobs, queue) = sync_channel::<Job>(threads);
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..threads {
            let queue = Arc::clone(&queue);
            let path: PathBuf = path.to_owned();
            std::thread::spawn(move || parse_jobs(&path, &queue));
        }
        ParseAhead {
            jobs,
            in_flight: VecDeque::new(),
            current: None,
            window: 2 * threads,
            input_done: false,
        }
    }

    /// The next non-blank line, parsed, reading more of `input` as needed;
    /// `None` at the end of the input. `position` and `line_no` are the
    /// reader's counters, advanced as lines are read.
    pub(crate) fn next(
        &mut self,
        input: &mut impl BufRead,
        position: &mut u64,
        line_no: &mut u64,
    ) -> Option<io::Result<ParsedLine>> {
        loop {
            if let Some(parsed) = &mut self.current {
                if let Some(line) = parsed.lines.next() {
                    return Some(Ok(line));
                }
                if let Some(error) = parsed.then.take() {
                    return Some(Err(error));
                }
                self.current = None;
            }
            while !self.input_done && self.in_flight.len() < self.window {
                self.send_batch(input, position, line_no);
            }
            let (receiver, then) = self.in_flight.pop_front()?;
            let lines = receiver
                .recv()
                .map_err(|_| io::Error::other("the thread parsing this capture stopped"));
            match lines {
                Ok(lines) => {
                    self.current = Some(Parsed {
                        lines: lines.into_iter(),
                        then,
                    });
                }
                Err(error) => return Some(Err(error)),
            }
        }
    }

    /// Reads the next batch of lines and sends it to be parsed.
    fn send_batch(&mut self, input: &mut impl BufRead, position: &mut u64, line_no: &mut u64) {
        let mut batch = Batch {
            bytes: Vec::new(),
            lines: Vec::new(),
        };
        let mut error = None;
        while batch.lines.len() < BATCH_LINES && batch.bytes.len() < BATCH_BYTES {
            let start = batch.bytes.len();
            match input.read_until(b'\n', &mut batch.bytes) {
                Ok(0) => {
                    self.input_done = true;
                    break;
                }
                Ok(n) => {
                    let read = LineRead::counted(&batch.bytes[start..], position, line_no);
                    if batch.bytes[start..].iter().all(u8::is_ascii_whitespace) {
                        batch.bytes.truncate(start);
                    } else {
                        batch.lines.push((start + n, read));
                    }
                }
                Err(e) => {
                    batch.bytes.truncate(start);
                    self.input_done = true;
                    error = Some(e);
                    break;
                }
            }
        }
        let (to_reader, parsed) = sync_channel(1);
        if self.jobs.send((batch, to_reader)).is_err() {
            // No parsing thread is left (one panicked): the batch's channel,
            // dropped with it, says so where its lines would be.
            self.input_done = true;
        }
        self.in_flight.push_back((parsed, error));
    }
}

fn parse_jobs(path: &Path, queue: &Mutex<Receiver<Job>>) {
    loop {
        // A poisoned lock means another parsing thread panicked: stop too.
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok((batch, to_reader)) = job else {
            return;
        };
        let mut start = 0;
        let parsed = batch
            .lines
            .into_iter()
            .map(|(end, read)| {
                let line = &batch.bytes[start..end];
                start = end;
                (read, parse_record(path, line))
            })
            .collect();
        // A reader that went away no longer wants the lines.
        let _ = to_reader.send(parsed);
    }
}
