//! Where live events come from: the proxy's `tokio::sync::broadcast`
//! channel as it is, or a std channel fed by any other producer.

use std::sync::mpsc;

use regtap_capture::LiveEvent;
use tokio::sync::broadcast;

/// What a poll of a live source found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LivePoll {
    Event(LiveEvent),
    /// Nothing new for now.
    Empty,
    /// The source dropped this many events because the TUI fell behind
    /// (the capture file still has every flow).
    Missed(u64),
    /// The producer has gone: no event will come any more.
    Closed,
}

/// A source of [`LiveEvent`]s the TUI polls without blocking, between frames.
pub trait LiveSource {
    fn poll_event(&mut self) -> LivePoll;
}

impl LiveSource for mpsc::Receiver<LiveEvent> {
    fn poll_event(&mut self) -> LivePoll {
        match self.try_recv() {
            Ok(event) => LivePoll::Event(event),
            Err(mpsc::TryRecvError::Empty) => LivePoll::Empty,
            Err(mpsc::TryRecvError::Disconnected) => LivePoll::Closed,
        }
    }
}

impl LiveSource for broadcast::Receiver<LiveEvent> {
    fn poll_event(&mut self) -> LivePoll {
        match self.try_recv() {
            Ok(event) => LivePoll::Event(event),
            Err(broadcast::error::TryRecvError::Empty) => LivePoll::Empty,
            Err(broadcast::error::TryRecvError::Lagged(missed)) => LivePoll::Missed(missed),
            Err(broadcast::error::TryRecvError::Closed) => LivePoll::Closed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(id: u64) -> LiveEvent {
        LiveEvent::Started {
            id,
            method: "GET".to_owned(),
            url: "https://registry.test/v2/".to_owned(),
            at: 0,
        }
    }

    #[test]
    fn a_std_channel_gives_events_then_empty_then_closed() {
        let (sender, mut receiver) = mpsc::channel();
        sender.send(started(1)).expect("send");
        assert_eq!(receiver.poll_event(), LivePoll::Event(started(1)));
        assert_eq!(receiver.poll_event(), LivePoll::Empty);
        drop(sender);
        assert_eq!(receiver.poll_event(), LivePoll::Closed);
    }

    #[test]
    fn a_broadcast_channel_reports_what_a_slow_reader_missed() {
        let (sender, mut receiver) = broadcast::channel(2);
        for id in 1..=5 {
            sender.send(started(id)).expect("send");
        }
        assert_eq!(receiver.poll_event(), LivePoll::Missed(3));
        assert_eq!(receiver.poll_event(), LivePoll::Event(started(4)));
        assert_eq!(receiver.poll_event(), LivePoll::Event(started(5)));
        assert_eq!(receiver.poll_event(), LivePoll::Empty);
        drop(sender);
        assert_eq!(receiver.poll_event(), LivePoll::Closed);
    }
}
