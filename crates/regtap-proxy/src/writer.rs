//! The one thread that appends finished flows to the capture file, then tells
//! live subscribers. File writes never run on the proxy's async workers.

use std::sync::mpsc;
use std::thread;

use regtap_capture::{CaptureError, CaptureWriter, Flow, LiveEvent};
use tokio::sync::broadcast;

pub(crate) enum Record {
    Flow(Box<Flow>),
    /// Stop after what was sent before.
    Close,
}

/// What the writer did, known once it has stopped.
#[derive(Debug, Default)]
pub(crate) struct WriterReport {
    pub flows_written: u64,
    /// The first failed append; later flows were still attempted.
    pub first_error: Option<CaptureError>,
}

pub(crate) fn spawn(
    mut writer: CaptureWriter,
    live: broadcast::Sender<LiveEvent>,
) -> std::io::Result<(mpsc::Sender<Record>, thread::JoinHandle<WriterReport>)> {
    let (tx, rx) = mpsc::channel::<Record>();
    let handle = thread::Builder::new()
        .name("regtap-capture".to_owned())
        .spawn(move || {
            let mut report = WriterReport::default();
            for record in rx {
                let flow = match record {
                    Record::Flow(flow) => flow,
                    Record::Close => break,
                };
                match writer.append(&flow) {
                    Ok(()) => report.flows_written += 1,
                    Err(e) => {
                        tracing::error!("cannot append flow {} to the capture: {e}", flow.id);
                        report.first_error.get_or_insert(e);
                    }
                }
                let _ = live.send(LiveEvent::Finished(flow));
            }
            report
        })?;
    Ok((tx, handle))
}
