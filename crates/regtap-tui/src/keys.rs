//! Every key binding, as data: the key handler ([`command`]), the help
//! overlay and the status line's hints are all drawn from [`BINDINGS`].
//! Typing a search and the open help overlay take keys of their own (text,
//! Enter, Esc), described where they show.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key does. [`crate::App`] runs each one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    ShowOperations,
    ShowSequence,
    ShowFlows,
    NextPane,
    PreviousPane,
    Up,
    Down,
    PageUp,
    PageDown,
    First,
    Last,
    /// Previous pane; previous step in the sequence view.
    Left,
    /// Next pane; next step in the sequence view.
    Right,
    DrillDown,
    Back,
    RevealSecrets,
    Help,
    Quit,
    PreviousStep,
    NextStep,
    PlayPause,
    Faster,
    Slower,
    Search,
    NextKind,
    AnyKind,
    NextClient,
    AnyClient,
    NextRepository,
    AnyRepository,
    FailedOnly,
}

/// Where the help overlay lists a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Everywhere,
    Sequence,
    Flows,
}

impl Context {
    pub const ALL: [Context; 3] = [Context::Everywhere, Context::Sequence, Context::Flows];

    pub fn title(self) -> &'static str {
        match self {
            Context::Everywhere => "Everywhere",
            Context::Sequence => "Sequence view",
            Context::Flows => "Flows view",
        }
    }
}

/// One key: its code, and whether Ctrl is held (Shift is part of the code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
}

const fn key(code: KeyCode) -> Key {
    Key { code, ctrl: false }
}

const fn char(c: char) -> Key {
    key(KeyCode::Char(c))
}

const fn ctrl(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        ctrl: true,
    }
}

/// A line of the help: keys that do alike things.
#[derive(Debug)]
pub struct Binding {
    pub context: Context,
    /// The keys, as the help shows them.
    pub label: &'static str,
    pub keys: &'static [(Key, Command)],
    /// What they do, in the help.
    pub help: &'static str,
    /// Their hint in the status line, when one names them.
    pub hint: Option<&'static str>,
}

use Command::*;

pub const BINDINGS: &[Binding] = &[
    Binding {
        context: Context::Everywhere,
        label: "1 2 3",
        keys: &[
            (char('1'), ShowOperations),
            (char('2'), ShowSequence),
            (char('3'), ShowFlows),
        ],
        help: "the three views",
        hint: Some("1 2 3 views"),
    },
    Binding {
        context: Context::Everywhere,
        label: "Tab S-Tab",
        keys: &[
            (key(KeyCode::Tab), NextPane),
            (key(KeyCode::BackTab), PreviousPane),
        ],
        help: "next / previous pane",
        hint: Some("Tab pane"),
    },
    Binding {
        context: Context::Everywhere,
        label: "↑ ↓ j k",
        keys: &[
            (key(KeyCode::Up), Up),
            (char('k'), Up),
            (key(KeyCode::Down), Down),
            (char('j'), Down),
        ],
        help: "move, scroll detail",
        hint: Some("↑↓ move"),
    },
    Binding {
        context: Context::Everywhere,
        label: "PgUp PgDn ^u ^d",
        keys: &[
            (key(KeyCode::PageUp), PageUp),
            (ctrl('u'), PageUp),
            (key(KeyCode::PageDown), PageDown),
            (ctrl('d'), PageDown),
        ],
        help: "page up / down",
        hint: None,
    },
    Binding {
        context: Context::Everywhere,
        label: "g G Home End",
        keys: &[
            (char('g'), First),
            (key(KeyCode::Home), First),
            (char('G'), Last),
            (key(KeyCode::End), Last),
        ],
        help: "first / last",
        hint: None,
    },
    Binding {
        context: Context::Everywhere,
        label: "← → h l",
        keys: &[
            (key(KeyCode::Left), Left),
            (char('h'), Left),
            (key(KeyCode::Right), Right),
            (char('l'), Right),
        ],
        help: "pane / sequence step",
        hint: Some("←→ step"),
    },
    Binding {
        context: Context::Everywhere,
        label: "Enter",
        keys: &[(key(KeyCode::Enter), DrillDown)],
        help: "open, or go to step",
        hint: Some("Enter open"),
    },
    Binding {
        context: Context::Everywhere,
        label: "Esc",
        keys: &[(key(KeyCode::Esc), Back)],
        help: "back, clear filters",
        hint: Some("Esc back"),
    },
    Binding {
        context: Context::Everywhere,
        label: "s",
        keys: &[(char('s'), RevealSecrets)],
        help: "show credentials",
        hint: None,
    },
    Binding {
        context: Context::Everywhere,
        label: "?",
        keys: &[(char('?'), Help)],
        help: "this help",
        hint: Some("? help"),
    },
    Binding {
        context: Context::Everywhere,
        label: "q Ctrl-c",
        keys: &[(char('q'), Quit), (ctrl('c'), Quit)],
        help: "quit",
        hint: Some("q quit"),
    },
    Binding {
        context: Context::Sequence,
        label: "p n",
        keys: &[(char('p'), PreviousStep), (char('n'), NextStep)],
        help: "previous / next step",
        hint: None,
    },
    Binding {
        context: Context::Sequence,
        label: "space",
        keys: &[(char(' '), PlayPause)],
        help: "play / pause",
        hint: Some("space play"),
    },
    Binding {
        context: Context::Sequence,
        label: "+ -",
        keys: &[
            (char('+'), Faster),
            (char('='), Faster),
            (char('-'), Slower),
            (char('_'), Slower),
        ],
        help: "faster / slower",
        hint: Some("+- speed"),
    },
    Binding {
        context: Context::Flows,
        label: "/",
        keys: &[(char('/'), Search)],
        help: "search (Enter, Esc)",
        hint: Some("/ search"),
    },
    Binding {
        context: Context::Flows,
        label: "f F",
        keys: &[(char('f'), NextKind), (char('F'), AnyKind)],
        help: "kind filter / none",
        hint: Some("f kind filter"),
    },
    Binding {
        context: Context::Flows,
        label: "c C",
        keys: &[(char('c'), NextClient), (char('C'), AnyClient)],
        help: "client filter / none",
        hint: None,
    },
    Binding {
        context: Context::Flows,
        label: "r R",
        keys: &[(char('r'), NextRepository), (char('R'), AnyRepository)],
        help: "repository / none",
        hint: None,
    },
    Binding {
        context: Context::Flows,
        label: "x",
        keys: &[(char('x'), FailedOnly)],
        help: "failed only / all",
        hint: None,
    },
];

/// The command bound to a key press, if any.
pub fn command(event: KeyEvent) -> Option<Command> {
    let ctrl = event.modifiers.contains(KeyModifiers::CONTROL);
    BINDINGS
        .iter()
        .flat_map(|binding| binding.keys)
        .find(|(key, _)| key.code == event.code && key.ctrl == ctrl)
        .map(|&(_, command)| command)
}

/// The status line's hint for the binding that holds `command`.
pub fn hint(command: Command) -> Option<&'static str> {
    BINDINGS
        .iter()
        .find(|binding| binding.keys.iter().any(|&(_, c)| c == command))
        .and_then(|binding| binding.hint)
}

#[cfg(test)]
mod tests;
