//! The real terminal: raw mode, alternate screen and mouse capture, always
//! undone (on return, on error, on panic), and the event loop.

use std::io::{self, Stdout};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once, mpsc};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::cursor::Show;
use ratatui::crossterm::event::{self, DisableMouseCapture, EnableMouseCapture, Event};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use regtap_capture::Flow;
use regtap_decode::{Analysis, Analyzer, Options};

use crate::app::{Action, App};
use crate::live::{LivePoll, LiveSource};
use crate::ui;

#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    #[error("terminal: {0}")]
    Terminal(#[from] io::Error),
}

/// Input wait while something moves (playback, live traffic).
const FAST_TICK: Duration = Duration::from_millis(50);
/// Input wait while nothing moves.
const IDLE_TICK: Duration = Duration::from_millis(500);
/// Input wait while the analysis is awaited: it shows this soon after it
/// is ready, not up to a [`FAST_TICK`] later. The screen is still drawn
/// only once per [`FAST_TICK`] unless something changed.
const ANALYSIS_TICK: Duration = Duration::from_millis(5);

/// Shows flows read from a capture file until the user quits. `notice` is
/// shown once in the status line (e.g. a warning from reading the file).
/// The flows show at once; the decoder runs on other threads and its
/// analysis (kinds, operations, steps) appears when ready, so a large
/// capture opens without waiting for it.
pub fn run_capture(
    title: &str,
    flows: Vec<Flow>,
    options: &Options,
    notice: Option<String>,
) -> Result<(), TuiError> {
    let app = App::decoding(title, flows).with_notice(notice);
    let (sender, analysis) = mpsc::channel();
    let flows = app.flows.clone();
    let options = options.clone();
    std::thread::spawn(move || {
        let threads = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        let analyzer = decode_in_parallel(&flows, &options, threads);
        // The receiver is gone when the user quit first: nothing to do.
        let _ = sender.send(Decoded::Linking);
        let _ = sender.send(Decoded::Done(analyzer.finish_on(threads)));
    });
    run_app(app, Some(analysis), None)
}

/// How far the decoder thread of [`run_capture`] has got.
enum Decoded {
    /// Every flow is decoded; linking them into operations has begun.
    Linking,
    Done(Analysis),
}

/// Decodes the flows on `threads` threads: each flow is decoded alone, so each
/// thread takes a share and the shares are put together before linking.
fn decode_in_parallel(flows: &[Arc<Flow>], options: &Options, threads: usize) -> Analyzer {
    let share = flows.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = flows
            .chunks(share)
            .map(|part| {
                scope.spawn(move || {
                    let mut analyzer = Analyzer::new(options.clone());
                    for flow in part {
                        analyzer.push_shared(Arc::clone(flow));
                    }
                    analyzer
                })
            })
            .collect();
        let mut whole = Analyzer::new(options.clone());
        for worker in workers {
            match worker.join() {
                Ok(part) => whole.append(part),
                // A decoder panic: the panic goes on to this thread's owner.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        whole
    })
}

/// Shows live traffic until the user quits. Blocks: run it on a thread of
/// its own (e.g. `tokio::task::spawn_blocking`). `events` is the proxy's
/// `broadcast::Receiver<LiveEvent>` or a std `mpsc::Receiver<LiveEvent>`;
/// when the producer goes away the TUI says the proxy stopped and stays
/// open until the user quits.
pub fn run_live(mut events: impl LiveSource, options: Options) -> Result<(), TuiError> {
    run_app(App::live(options), None, Some(&mut events))
}

fn run_app(
    mut app: App,
    mut analysis: Option<mpsc::Receiver<Decoded>>,
    mut events: Option<&mut dyn LiveSource>,
) -> Result<(), TuiError> {
    let mut session = TerminalSession::enter()?;
    let mut last_tick = Instant::now();
    let mut drawn_at: Option<Instant> = None;
    // Something changed since the last draw.
    let mut changed = true;
    loop {
        if let Some(receiver) = &analysis {
            match receiver.try_recv() {
                Ok(Decoded::Linking) => {
                    app.linking = true;
                    changed = true;
                }
                Ok(Decoded::Done(done)) => {
                    app.set_analysis(done);
                    analysis = None;
                    changed = true;
                }
                Err(mpsc::TryRecvError::Empty) => {}
                // The decoder thread died: say so rather than wait forever.
                Err(mpsc::TryRecvError::Disconnected) => {
                    changed = true;
                    app.decoding = false;
                    app.notice = Some("the decoder failed: only the flows are shown".to_owned());
                    analysis = None;
                    // Its panic message was printed over the screen.
                    session.terminal.clear()?;
                }
            }
        }
        if let Some(source) = events.as_deref_mut() {
            loop {
                match source.poll_event() {
                    LivePoll::Event(event) => app.apply(event),
                    LivePoll::Missed(count) => app.missed_live_events(count),
                    LivePoll::Empty => break,
                    LivePoll::Closed => {
                        app.end_live();
                        events = None;
                        break;
                    }
                }
                changed = true;
            }
        }
        if app.needs_refresh() {
            app.poll_refresh();
            changed = true;
        }
        if changed || drawn_at.is_none_or(|at| at.elapsed() >= FAST_TICK) {
            session.terminal.draw(|frame| ui::draw(frame, &app))?;
            drawn_at = Some(Instant::now());
            changed = false;
        }

        let busy = app.playback.playing || events.is_some() || app.needs_refresh();
        let wait = if analysis.is_some() {
            ANALYSIS_TICK
        } else if busy {
            FAST_TICK
        } else {
            IDLE_TICK
        };
        if event::poll(wait)? {
            changed = true;
            match event::read()? {
                Event::Key(key) if app.handle_key(key) == Action::Quit => return Ok(()),
                Event::Mouse(mouse) => app.handle_mouse(mouse),
                // The next draw takes the new size.
                _ => {}
            }
        }
        let now = Instant::now();
        app.on_tick(now - last_tick);
        last_tick = now;
    }
}

/// Whether the terminal is in TUI mode, so that the panic hook restores it
/// only when needed.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// The thread that draws: a panic there ends the TUI; a panic on another
/// thread (the decoder's) does not, and the TUI goes on without it.
static TUI_THREAD: Mutex<Option<ThreadId>> = Mutex::new(None);

struct TerminalSession {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl TerminalSession {
    fn enter() -> io::Result<TerminalSession> {
        install_panic_hook();
        enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        if let Ok(mut thread) = TUI_THREAD.lock() {
            *thread = Some(std::thread::current().id());
        }
        let setup = execute!(io::stdout(), EnterAlternateScreen, EnableMouseCapture)
            .and_then(|()| Terminal::new(CrosstermBackend::new(io::stdout())));
        match setup {
            Ok(terminal) => Ok(TerminalSession { terminal }),
            Err(err) => {
                restore();
                Err(err)
            }
        }
    }
}

impl Drop for TerminalSession {
    fn drop(&mut self) {
        restore();
    }
}

/// Leaves TUI mode; does nothing when not in it. Errors are ignored: this
/// runs on the way out, with nothing better to do.
fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = disable_raw_mode();
        let _ = execute!(
            io::stdout(),
            DisableMouseCapture,
            LeaveAlternateScreen,
            Show
        );
    }
}

/// A panic restores the terminal before the message is printed, so the
/// message is readable and the shell usable.
fn install_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let drawing_thread = TUI_THREAD
                .lock()
                .is_ok_and(|thread| *thread == Some(std::thread::current().id()));
            if drawing_thread {
                restore();
            }
            previous(info);
        }));
    });
}
