//! Live mode: events from the proxy taken in; finished flows shown at the
//! next refresh, and analysed by the relinker thread (their kinds and
//! operations show when its analysis comes back).

use std::sync::Arc;

use regtap_capture::{Direction, Flow, LiveEvent};

use super::{App, BodyProgress, Transfer};
use crate::relink::Linked;

impl App {
    /// Takes in one live event. Finished flows go to the relinker and wait
    /// until their analysis comes back ([`App::poll_refresh`]).
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
                let flow = Arc::<Flow>::from(flow);
                live.relinker.push(Arc::clone(&flow));
                live.pending.push(flow);
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

    /// Live flows are waiting to be shown, or their analysis to come back.
    pub fn needs_refresh(&self) -> bool {
        self.live
            .as_ref()
            .is_some_and(|live| !live.pending.is_empty() || live.relinker.behind() > 0)
    }

    /// Shows every finished live flow, waiting for their analysis.
    pub fn refresh(&mut self) {
        let linked = self.live.as_mut().and_then(|live| live.relinker.complete());
        self.take_in(linked);
    }

    /// Shows the finished live flows, and the newest analysis the relinker
    /// has made by now, if any; never waits. The cost on this thread is
    /// that of merging them into the shown list, whatever linking the
    /// capture takes.
    pub fn poll_refresh(&mut self) {
        let linked = self.live.as_mut().and_then(|live| live.relinker.latest());
        self.take_in(linked);
    }

    fn take_in(&mut self, linked: Option<Linked>) {
        let Some(live) = self.live.as_mut() else {
            return;
        };
        if live.relinker.newly_failed() {
            self.notice = Some("the decoder failed: new flows show without analysis".to_owned());
        }
        if live.pending.is_empty() && linked.is_none() {
            return;
        }
        let shown = self.flows.len();
        // Flows after every one shown, and no new analysis: the common case
        // of a busy proxy, where only the new rows need work.
        let key = |flow: &Arc<Flow>| (flow.timing.request_start, flow.id);
        live.pending.sort_by_key(key);
        let appended = linked.is_none()
            && live
                .pending
                .first()
                .zip(self.flows.last())
                .is_none_or(|(first, last)| key(first) > key(last));
        if let Some(linked) = linked {
            self.analysis = linked.analysis;
        }
        for flow in live.pending.drain(..) {
            let position = self.flows.partition_point(|f| key(f) < key(&flow));
            self.flows.insert(position, flow);
        }
        if !(appended && self.index_appended(shown)) {
            self.reindex();
        }
    }
}
