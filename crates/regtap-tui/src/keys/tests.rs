//! The bindings table is whole: every command has keys that reach it, no
//! key does two things, and the help says each thing once.

use ratatui::crossterm::event::{KeyEvent, KeyModifiers};

use super::*;

/// Every command, in declaration order. The match below does not compile
/// when a command is added and left out of this list.
const ALL: [Command; 31] = [
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
    Left,
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
];

fn position(command: Command) -> usize {
    match command {
        ShowOperations => 0,
        ShowSequence => 1,
        ShowFlows => 2,
        NextPane => 3,
        PreviousPane => 4,
        Up => 5,
        Down => 6,
        PageUp => 7,
        PageDown => 8,
        First => 9,
        Last => 10,
        Left => 11,
        Right => 12,
        DrillDown => 13,
        Back => 14,
        RevealSecrets => 15,
        Help => 16,
        Quit => 17,
        PreviousStep => 18,
        NextStep => 19,
        PlayPause => 20,
        Faster => 21,
        Slower => 22,
        Search => 23,
        NextKind => 24,
        AnyKind => 25,
        NextClient => 26,
        AnyClient => 27,
        NextRepository => 28,
        AnyRepository => 29,
        FailedOnly => 30,
    }
}

fn press(key: Key) -> KeyEvent {
    let modifiers = if key.ctrl {
        KeyModifiers::CONTROL
    } else {
        KeyModifiers::NONE
    };
    KeyEvent::new(key.code, modifiers)
}

#[test]
fn every_command_is_in_exactly_one_binding_and_its_keys_reach_it() {
    for (n, &command) in ALL.iter().enumerate() {
        assert_eq!(position(command), n, "ALL lists {command:?} out of place");
        let holders: Vec<&Binding> = BINDINGS
            .iter()
            .filter(|b| b.keys.iter().any(|&(_, c)| c == command))
            .collect();
        assert_eq!(holders.len(), 1, "{command:?} is bound in {holders:?}");
    }
    for binding in BINDINGS {
        assert!(!binding.help.is_empty(), "{} says nothing", binding.label);
        for &(key, bound) in binding.keys {
            assert_eq!(
                command(press(key)),
                Some(bound),
                "{key:?} in {:?} does not reach {bound:?}",
                binding.label
            );
        }
    }
}

#[test]
fn no_key_is_bound_twice_and_help_lines_are_unique() {
    let keys: Vec<Key> = BINDINGS
        .iter()
        .flat_map(|b| b.keys.iter().map(|&(key, _)| key))
        .collect();
    for (n, key) in keys.iter().enumerate() {
        assert!(!keys[n + 1..].contains(key), "{key:?} is bound twice");
    }
    for (n, binding) in BINDINGS.iter().enumerate() {
        for other in &BINDINGS[n + 1..] {
            assert_ne!(binding.label, other.label);
            assert_ne!(binding.help, other.help);
        }
    }
}

#[test]
fn unbound_keys_do_nothing() {
    for code in [KeyCode::Char('u'), KeyCode::Char('z'), KeyCode::F(1)] {
        assert_eq!(command(KeyEvent::new(code, KeyModifiers::NONE)), None);
    }
    assert_eq!(
        command(KeyEvent::new(KeyCode::Char('g'), KeyModifiers::CONTROL)),
        None,
        "Ctrl changes the key"
    );
}
