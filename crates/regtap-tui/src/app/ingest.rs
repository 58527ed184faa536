//! Live mode: events from the proxy taken in, finished flows analysed in
//! bursts.

use std::sync::Arc;

use regtap_capture::{Direction, LiveEvent};

use super::{App, BodyProgress, Transfer};

impl App {
    /// Takes in one live event. Finished flows wait in the analyzer until
    /// [`App::refresh`], so that a burst of flows is analysed once.
    pub fn apply(&mut self, event: LiveEvent) {
        let Some(live) = self.live.as_mut() else {
            return;
        };
        match event {
            LiveEvent::Started {
                id,
                method,
                url,
                at,
            } => {
                live.in_flight.insert(
                    id,
                    Transfer {
                        id,
                        method,
                        url,
                        started_at: at,
                        request: None,
                        response: None,
                    },
                );
            }
            LiveEvent::Progress {
                id,
                direction,
                bytes,
                total,
                at,
            } => {
                let Some(transfer) = live.in_flight.get_mut(&id) else {
                    return;
                };
                let side = match direction {
                    Direction::Request => &mut transfer.request,
                    Direction::Response => &mut transfer.response,
                };
                match side {
                    Some(progress) => {
                        progress.bytes = bytes;
                        progress.total = total.or(progress.total);
                        progress.last_at = at;
                    }
                    None => {
                        *side = Some(BodyProgress {
                            bytes,
                            total,
                            first_bytes: bytes,
                            first_at: at,
                            last_at: at,
                        });
                    }
                }
            }
            LiveEvent::Finished(flow) => {
                live.in_flight.remove(&flow.id);
                live.analyzer.push(&flow);
                live.pending.push(*flow);
            }
        }
    }

    /// The source dropped `count` events: said on screen, since flows may
    /// be missing (the capture file has them all).
    pub fn missed_live_events(&mut self, count: u64) {
        if let Some(live) = self.live.as_mut() {
            live.missed = live.missed.saturating_add(count);
        }
    }

    /// The source of live events has gone.
    pub fn end_live(&mut self) {
        if let Some(live) = self.live.as_mut() {
            live.ended = true;
            live.in_flight.clear();
        }
    }

    /// Live flows are waiting to be shown.
    pub fn needs_refresh(&self) -> bool {
        self.live
            .as_ref()
            .is_some_and(|live| !live.pending.is_empty())
    }

    /// Merges finished live flows into what is shown and re-reads the analysis.
    pub fn refresh(&mut self) {
        let Some(live) = self.live.as_mut() else {
            return;
        };
        if live.pending.is_empty() {
            return;
        }
        self.analysis = live.analyzer.analysis();
        for flow in live.pending.drain(..) {
            let key = (flow.timing.request_start, flow.id);
            let position = self
                .flows
                .partition_point(|f| (f.timing.request_start, f.id) < key);
            Arc::make_mut(&mut self.flows).insert(position, flow);
        }
        self.reindex();
    }
}
