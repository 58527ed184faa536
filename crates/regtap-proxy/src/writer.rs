//! The one thread that appends records to the capture file, then tells live
//! subscribers. File writes never run on the proxy's async workers.
//!
//! A capture never lies: once a record cannot be written the writer says so
//! on stderr and, unless the proxy was told to keep forwarding unrecorded
//! traffic, stops writing and answers every new start with "not recorded", so
//! that the proxy refuses the exchange instead of forwarding it.

use std::sync::mpsc;
use std::thread;

use regtap_capture::{CaptureError, CaptureWriter, Flow, InFlightRecord, LiveEvent};
use tokio::sync::{broadcast, oneshot, watch};

use crate::summary_line;
use crate::tap::InlineHold;

pub(crate) enum Record {
    /// An exchange starts; `written` says whether its start record is on disk.
    Start {
        flow: Box<Flow>,
        written: oneshot::Sender<bool>,
    },
    InFlight(InFlightRecord),
    /// A finished exchange; `holds` keep its inline bodies counted against
    /// the inline budget until it is written.
    Flow {
        flow: Box<Flow>,
        holds: Vec<InlineHold>,
    },
    /// Stop after what was sent before.
    Close,
}

/// What the writer did, known once it has stopped.
#[derive(Debug, Default)]
pub(crate) struct WriterReport {
    pub flows_written: u64,
    /// Finished exchanges whose flow is not in the capture.
    pub flows_lost: u64,
    /// The first failed write.
    pub first_error: Option<CaptureError>,
}

pub(crate) struct WriterTask {
    pub writer: CaptureWriter,
    pub live: broadcast::Sender<LiveEvent>,
    /// Keep trying (and forwarding) after a failed write.
    pub keep_forwarding: bool,
    /// Set to the reason at the first failed write.
    pub failed: watch::Sender<Option<String>>,
}

pub(crate) fn spawn(
    task: WriterTask,
) -> std::io::Result<(mpsc::Sender<Record>, thread::JoinHandle<WriterReport>)> {
    let (tx, rx) = mpsc::channel::<Record>();
    let handle = thread::Builder::new()
        .name("regtap-capture".to_owned())
        .spawn(move || task.run(&rx))?;
    Ok((tx, handle))
}

impl WriterTask {
    fn run(mut self, records: &mpsc::Receiver<Record>) -> WriterReport {
        let mut report = WriterReport::default();
        for record in records {
            match record {
                Record::Start { flow, written } => {
                    let ok = self.write(&mut report, |w| {
                        w.append_in_flight(&InFlightRecord::Start(flow))
                    });
                    let _ = written.send(ok);
                }
                Record::InFlight(record) => {
                    self.write(&mut report, |w| w.append_in_flight(&record));
                }
                Record::Flow { flow, holds } => {
                    let written = self.write(&mut report, |w| w.append(&flow));
                    drop(holds);
                    if written {
                        report.flows_written += 1;
                        let _ = self.live.send(LiveEvent::Finished(flow));
                    } else {
                        report.flows_lost += 1;
                        tracing::error!("NOT RECORDED: {}", summary_line(&flow));
                    }
                }
                Record::Close => break,
            }
        }
        report
    }

    /// Runs `append` unless writing has stopped; true when the record is on disk.
    fn write(
        &mut self,
        report: &mut WriterReport,
        append: impl FnOnce(&mut CaptureWriter) -> Result<(), CaptureError>,
    ) -> bool {
        let stopped = report.first_error.is_some() && !self.keep_forwarding;
        if stopped {
            return false;
        }
        let Err(e) = append(&mut self.writer) else {
            return true;
        };
        if report.first_error.is_none() {
            let then = if self.keep_forwarding {
                "regtap keeps forwarding (--keep-forwarding-unrecorded); \
                 every exchange that is not recorded is named below"
            } else {
                "regtap stops: it refuses new exchanges rather than forward traffic it cannot record"
            };
            tracing::error!("cannot write to the capture: {e}; {then}");
            self.failed.send_replace(Some(e.to_string()));
            report.first_error = Some(e);
        }
        false
    }
}
