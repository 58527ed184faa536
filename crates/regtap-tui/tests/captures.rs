//! Every view of the TUI drawn over every capture in `captures/`, decoded by
//! the real decoder, at 80x24 and at a wider size. A capture added to
//! `captures/` needs its snapshots accepted once:
//! `INSTA_UPDATE=always cargo test -p regtap-tui --test captures`, then read
//! the new `.snap` files before committing them.

use insta::assert_snapshot;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use regtap_decode::Options;
use regtap_tui::{App, draw};

/// Every capture, as `regtap tui NAME.jsonl` opens it.
fn captures() -> Vec<(String, App)> {
    regtap_fixtures::captures()
        .into_iter()
        .map(|(name, flows)| {
            let app = App::new(format!("{name}.jsonl"), flows, &Options::default());
            (name, app)
        })
        .collect()
}

fn render(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test backend");
    terminal
        .draw(|frame| draw(frame, app))
        .expect("drawing on a test backend");
    terminal.backend().to_string()
}

fn press(app: &mut App, keys: &[KeyCode]) {
    for &code in keys {
        app.handle_key(KeyEvent::new(code, KeyModifiers::NONE));
    }
}

/// Selects the operation with the most steps: the one worth drawing.
fn select_busiest_operation(app: &mut App) {
    let busiest = app
        .analysis
        .operations
        .iter()
        .enumerate()
        .max_by_key(|(n, operation)| (operation.steps.len(), std::cmp::Reverse(*n)))
        .map_or(0, |(n, _)| n);
    press(app, &[KeyCode::Char('1'), KeyCode::Home]);
    for _ in 0..busiest {
        press(app, &[KeyCode::Down]);
    }
}

#[test]
fn there_are_captures_to_draw() {
    assert!(
        !captures().is_empty(),
        "captures/ holds no *.jsonl: the snapshot tests below would test nothing"
    );
}

#[test]
fn operations_view_over_every_capture() {
    for (name, mut app) in captures() {
        let overview = render(&app, 80, 24);
        for operation in app.analysis.operations.iter().take(5) {
            let start: String = operation.title.chars().take(20).collect();
            assert!(overview.contains(&start), "{name}: {start} not listed");
        }
        assert_snapshot!(format!("{name}__operations_80x24"), overview);
        select_busiest_operation(&mut app);
        press(&mut app, &[KeyCode::Enter]);
        assert_snapshot!(format!("{name}__first_step_120x40"), render(&app, 120, 40));
    }
}

#[test]
fn sequence_view_over_every_capture() {
    for (name, mut app) in captures() {
        select_busiest_operation(&mut app);
        press(&mut app, &[KeyCode::Char('2')]);
        let screen = render(&app, 80, 24);
        if let Some(operation) = app.selected_operation() {
            let arrows = screen.matches('├').count();
            assert_eq!(
                arrows,
                operation.steps.len().min(9),
                "{name}: one arrow per visible step"
            );
        }
        assert_snapshot!(format!("{name}__sequence_80x24"), screen);
    }
}

#[test]
fn flows_view_over_every_capture() {
    for (name, mut app) in captures() {
        press(&mut app, &[KeyCode::Char('3')]);
        let screen = render(&app, 80, 24);
        let listed = app.flows.len().min(19);
        assert_eq!(
            screen.lines().filter(|line| line.contains(" +")).count(),
            listed,
            "{name}: one row per flow on screen"
        );
        assert_snapshot!(format!("{name}__flows_80x24"), screen);
        press(&mut app, &[KeyCode::Enter]);
        assert_snapshot!(format!("{name}__flow_detail_120x40"), render(&app, 120, 40));
    }
}
