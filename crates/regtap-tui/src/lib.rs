//! regtap's terminal UI.
//!
//! The state ([`App`]) is apart from the drawing ([`draw`]): keys, mouse,
//! playback ticks and live events change the state and are tested without a
//! terminal; `draw` is a pure function of the state, tested with ratatui's
//! `TestBackend`. Everything shown comes from the flow model and the
//! decoder's [`regtap_decode::Analysis`]: this crate parses no HTTP.
//!
//! Entry points: [`run_capture`] shows flows read from a file; [`run_live`]
//! shows traffic as the proxy sees it, from the proxy's broadcast channel
//! of [`regtap_capture::LiveEvent`]s (or any [`LiveSource`]).

mod app;
mod format;
mod keys;
mod live;
mod terminal;
mod ui;

#[cfg(test)]
mod fixtures;

pub use app::{Action, App, BodyProgress, Cursor, FlowList, Live, Pane, Playback, Transfer, View};
pub use live::{LivePoll, LiveSource};
pub use terminal::{TuiError, run_capture, run_live};
pub use ui::draw;
