//! State and key handling, without a terminal.

use std::time::Duration;

use ratatui::crossterm::event::{
    KeyCode, KeyEvent, KeyEventKind, KeyEventState, KeyModifiers, MouseEvent, MouseEventKind,
};
use regtap_capture::{Direction, LiveEvent};
use regtap_decode::Options;

use super::*;
use crate::fixtures;

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn press(app: &mut App, keys: &str) -> Action {
    let mut action = Action::Continue;
    for c in keys.chars() {
        let code = match c {
            '\t' => KeyCode::Tab,
            '\n' => KeyCode::Enter,
            '\u{1b}' => KeyCode::Esc,
            '\u{8}' => KeyCode::Backspace,
            c => KeyCode::Char(c),
        };
        action = app.handle_key(key(code));
    }
    action
}

fn shown_ids(app: &App) -> Vec<u64> {
    app.flow_list
        .rows
        .iter()
        .map(|&position| app.flows[position].id)
        .collect()
}

#[test]
fn q_and_ctrl_c_quit() {
    let mut app = fixtures::app();
    assert_eq!(press(&mut app, "j"), Action::Continue);
    assert_eq!(press(&mut app, "q"), Action::Quit);
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert_eq!(app.handle_key(ctrl_c), Action::Quit);
}

#[test]
fn ctrl_c_quits_even_while_typing_a_search() {
    let mut app = fixtures::app();
    press(&mut app, "/abc");
    assert_eq!(
        press(&mut app, "q"),
        Action::Continue,
        "q is text in a search"
    );
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert_eq!(app.handle_key(ctrl_c), Action::Quit);
}

#[test]
fn key_releases_are_ignored() {
    let mut app = fixtures::app();
    let release = KeyEvent::new_with_kind_and_state(
        KeyCode::Char('q'),
        KeyModifiers::NONE,
        KeyEventKind::Release,
        KeyEventState::NONE,
    );
    assert_eq!(app.handle_key(release), Action::Continue);
}

#[test]
fn help_overlay_opens_with_question_mark_and_swallows_movement() {
    let mut app = fixtures::app();
    press(&mut app, "?");
    assert!(app.help);
    press(&mut app, "jj");
    assert_eq!(
        app.operations.selected(),
        0,
        "keys under the help do nothing"
    );
    press(&mut app, "\u{1b}");
    assert!(!app.help);
    press(&mut app, "??");
    assert!(!app.help, "? toggles");
    press(&mut app, "?");
    assert_eq!(
        press(&mut app, "q"),
        Action::Quit,
        "q quits from the help too"
    );
}

#[test]
fn number_keys_switch_views_and_focus_their_main_pane() {
    let mut app = fixtures::app();
    assert_eq!((app.view, app.focus), (View::Operations, Pane::Operations));
    press(&mut app, "2");
    assert_eq!((app.view, app.focus), (View::Sequence, Pane::Diagram));
    press(&mut app, "3");
    assert_eq!((app.view, app.focus), (View::Flows, Pane::Flows));
    press(&mut app, "1");
    assert_eq!((app.view, app.focus), (View::Operations, Pane::Operations));
}

#[test]
fn tab_cycles_the_panes_of_the_view_both_ways() {
    let mut app = fixtures::app();
    press(&mut app, "\t");
    assert_eq!(app.focus, Pane::Steps);
    press(&mut app, "\t");
    assert_eq!(app.focus, Pane::Detail);
    press(&mut app, "\t");
    assert_eq!(app.focus, Pane::Operations);
    app.handle_key(key(KeyCode::BackTab));
    assert_eq!(app.focus, Pane::Detail);
}

#[test]
fn enter_drills_down_and_esc_goes_back() {
    let mut app = fixtures::app();
    press(&mut app, "\n");
    assert_eq!(app.focus, Pane::Steps);
    press(&mut app, "\n");
    assert_eq!(app.focus, Pane::Detail);
    press(&mut app, "\u{1b}");
    assert_eq!(app.focus, Pane::Steps);
    press(&mut app, "\u{1b}");
    assert_eq!(app.focus, Pane::Operations);
}

#[test]
fn arrows_and_vim_keys_move_the_same_way() {
    let mut with_vim = fixtures::app();
    let mut with_arrows = fixtures::app();
    press(&mut with_vim, "jjk");
    for code in [KeyCode::Down, KeyCode::Down, KeyCode::Up] {
        with_arrows.handle_key(key(code));
    }
    assert_eq!(with_vim.operations.selected(), 1);
    assert_eq!(with_arrows.operations.selected(), 1);
    press(&mut with_vim, "l");
    with_arrows.handle_key(key(KeyCode::Right));
    assert_eq!(with_vim.focus, Pane::Steps);
    assert_eq!(with_arrows.focus, Pane::Steps);
    press(&mut with_vim, "h");
    with_arrows.handle_key(key(KeyCode::Left));
    assert_eq!(with_vim.focus, Pane::Operations);
    assert_eq!(with_arrows.focus, Pane::Operations);
}

#[test]
fn selection_stays_within_the_list() {
    let mut app = fixtures::app();
    press(&mut app, "kkk");
    assert_eq!(app.operations.selected(), 0);
    press(&mut app, "jjjjjjjj");
    assert_eq!(
        app.operations.selected(),
        3,
        "four operations: login, push, pull, the unknown request"
    );
    press(&mut app, "g");
    assert_eq!(app.operations.selected(), 0);
    press(&mut app, "G");
    assert_eq!(app.operations.selected(), 3);
    app.handle_key(key(KeyCode::Home));
    assert_eq!(app.operations.selected(), 0);
}

#[test]
fn choosing_another_operation_starts_at_its_first_step() {
    let mut app = fixtures::app();
    press(&mut app, "j\njjj");
    assert_eq!(app.selected_step().map(|s| s.number), Some(4));
    press(&mut app, "\u{1b}j");
    assert_eq!(
        app.selected_operation().map(|o| o.title.as_str()),
        Some("pull lab/seq:latest")
    );
    assert_eq!(app.steps.selected(), 0);
}

#[test]
fn the_detail_pane_scrolls_when_focused() {
    let mut app = fixtures::app();
    press(&mut app, "\n\njjj");
    assert_eq!(app.focus, Pane::Detail);
    assert_eq!(app.detail_scroll, 3);
    assert_eq!(
        app.steps.selected(),
        0,
        "the step stays while the detail scrolls"
    );
    press(&mut app, "kkkkk");
    assert_eq!(app.detail_scroll, 0);
}

#[test]
fn paging_moves_by_the_drawn_height() {
    let mut app = fixtures::app();
    press(&mut app, "j\n");
    // As if the steps list had been drawn 5 rows high.
    let _ = app.steps.window(18, 5);
    app.handle_key(key(KeyCode::PageDown));
    assert_eq!(app.steps.selected(), 5);
    app.handle_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    assert_eq!(app.steps.selected(), 0);
}

#[test]
fn sequence_view_moves_the_highlight_with_arrows_and_n_p() {
    let mut app = fixtures::app();
    press(&mut app, "j2");
    assert_eq!(app.selected_step().map(|s| s.number), Some(1));
    press(&mut app, "nn");
    app.handle_key(key(KeyCode::Right));
    assert_eq!(app.selected_step().map(|s| s.number), Some(4));
    press(&mut app, "p");
    app.handle_key(key(KeyCode::Left));
    assert_eq!(app.selected_step().map(|s| s.number), Some(2));
    press(&mut app, "\n");
    assert_eq!(app.focus, Pane::Detail);
    press(&mut app, "n");
    assert_eq!(
        app.selected_step().map(|s| s.number),
        Some(3),
        "the highlight moves while the detail pane has the focus"
    );
}

#[test]
fn playback_advances_one_step_per_interval_and_stops_at_the_end() {
    let mut app = fixtures::app();
    press(&mut app, "j2 ");
    assert!(app.playback.playing);
    app.on_tick(Duration::from_millis(999));
    assert_eq!(app.steps.selected(), 0);
    app.on_tick(Duration::from_millis(1));
    assert_eq!(app.steps.selected(), 1);
    app.on_tick(Duration::from_millis(2500));
    assert_eq!(app.steps.selected(), 3);
    app.on_tick(Duration::from_secs(60));
    assert_eq!(app.steps.selected(), 9, "the push has 10 steps");
    assert!(!app.playback.playing, "playback stops on the last step");
    press(&mut app, " ");
    assert_eq!(
        app.steps.selected(),
        0,
        "playing again from the end starts over"
    );
    press(&mut app, " ");
    app.on_tick(Duration::from_secs(5));
    assert_eq!(app.steps.selected(), 0, "paused");
}

#[test]
fn speed_keys_halve_and_double_the_step_time_within_bounds() {
    let mut app = fixtures::app();
    press(&mut app, "2+");
    assert_eq!(app.playback.interval, Duration::from_millis(500));
    press(&mut app, "++++++");
    assert_eq!(app.playback.interval, Duration::from_millis(125));
    press(&mut app, "--------");
    assert_eq!(app.playback.interval, Duration::from_secs(8));
}

#[test]
fn space_plays_only_in_the_sequence_view() {
    let mut app = fixtures::app();
    press(&mut app, " ");
    assert!(!app.playback.playing);
}

#[test]
fn flows_are_in_time_order_and_unknown_traffic_shows() {
    let mut app = fixtures::app();
    press(&mut app, "3");
    let ids = shown_ids(&app);
    assert_eq!(ids, (1..=32).collect::<Vec<u64>>());
    assert_eq!(app.kind_label(32), "unknown");
}

#[test]
fn search_filters_as_typed_enter_keeps_it_and_esc_clears_it() {
    let mut app = fixtures::app();
    press(&mut app, "/PATCH");
    assert_eq!(app.view, View::Flows);
    assert_eq!(shown_ids(&app), vec![9, 10, 11, 20]);
    press(&mut app, "\n");
    assert!(app.search_input.is_none());
    assert_eq!(app.flow_list.search, "PATCH");
    assert_eq!(shown_ids(&app).len(), 4, "the search stays after Enter");
    press(&mut app, "/\u{8}\u{8}\u{8}\u{8}\u{8}favicon\n");
    assert_eq!(shown_ids(&app), vec![32]);
    press(&mut app, "/\u{1b}");
    assert!(app.flow_list.search.is_empty());
    assert_eq!(shown_ids(&app).len(), 32);
}

#[test]
fn search_matches_status_kind_and_summary_ignoring_case() {
    let mut app = fixtures::app();
    press(&mut app, "/404\n");
    assert_eq!(shown_ids(&app), vec![18, 32]);
    press(&mut app, "/\u{8}\u{8}\u{8}UPLOAD-FINISH\n");
    assert_eq!(shown_ids(&app), vec![12, 13, 14, 21]);
}

#[test]
fn kind_filter_cycles_through_the_kinds_present_and_back_to_all() {
    let mut app = fixtures::app();
    press(&mut app, "f");
    assert_eq!(app.view, View::Flows);
    assert_eq!(app.flow_list.kind, Some("api-check"));
    assert_eq!(shown_ids(&app), vec![1, 3, 4, 24]);
    let kinds = app.flow_list.kinds.len();
    assert!(app.flow_list.kinds.contains(&"unknown"));
    for _ in 1..kinds {
        press(&mut app, "f");
    }
    assert_eq!(app.flow_list.kind, app.flow_list.kinds.last().copied());
    press(&mut app, "f");
    assert_eq!(app.flow_list.kind, None);
    assert_eq!(shown_ids(&app).len(), 32);
    press(&mut app, "ff");
    press(&mut app, "F");
    assert_eq!(app.flow_list.kind, None, "F drops the filter");
}

#[test]
fn esc_in_the_flow_list_clears_search_and_filter() {
    let mut app = fixtures::app();
    press(&mut app, "/token\nf");
    assert!(shown_ids(&app).len() < 32);
    press(&mut app, "\u{1b}");
    assert_eq!(shown_ids(&app).len(), 32);
    assert!(app.flow_list.kind.is_none() && app.flow_list.search.is_empty());
}

#[test]
fn a_search_keeps_the_selected_flow_when_it_still_shows() {
    let mut app = fixtures::app();
    press(&mut app, "3jjjjjjjjj");
    assert_eq!(app.selected_flow().map(|f| f.id), Some(10));
    press(&mut app, "/PATCH\n");
    assert_eq!(app.selected_flow().map(|f| f.id), Some(10));
}

#[test]
fn enter_opens_the_flow_detail_and_esc_closes_it() {
    let mut app = fixtures::app();
    press(&mut app, "3j\n");
    assert!(app.flow_list.detail_open);
    assert_eq!(app.focus, Pane::Detail);
    press(&mut app, "\u{1b}");
    assert!(!app.flow_list.detail_open);
    assert_eq!(app.focus, Pane::Flows);
}

#[test]
fn mouse_wheel_moves_the_focused_pane() {
    let mut app = fixtures::app();
    let wheel = |kind| MouseEvent {
        kind,
        column: 0,
        row: 0,
        modifiers: KeyModifiers::NONE,
    };
    app.handle_mouse(wheel(MouseEventKind::ScrollDown));
    app.handle_mouse(wheel(MouseEventKind::ScrollDown));
    assert_eq!(app.operations.selected(), 2);
    app.handle_mouse(wheel(MouseEventKind::ScrollUp));
    assert_eq!(app.operations.selected(), 1);
}

#[test]
fn cursor_window_keeps_the_selection_visible() {
    let mut cursor = Cursor::default();
    assert_eq!(cursor.window(100, 10), 0..10);
    cursor.select(15, 100);
    assert_eq!(cursor.window(100, 10), 6..16);
    cursor.select(8, 100);
    assert_eq!(cursor.window(100, 10), 6..16, "no scrolling while visible");
    cursor.select(2, 100);
    assert_eq!(cursor.window(100, 10), 2..12);
    assert_eq!(cursor.window(5, 10), 0..5);
    assert_eq!(cursor.window(0, 10), 0..0);
}

fn started(id: u64, at: i64) -> LiveEvent {
    LiveEvent::Started {
        id,
        method: "PATCH".to_owned(),
        url: "https://registry.test:5000/v2/lab/seq/blobs/uploads/u1".to_owned(),
        at,
    }
}

fn progress(id: u64, bytes: u64, total: Option<u64>, at: i64) -> LiveEvent {
    LiveEvent::Progress {
        id,
        direction: Direction::Request,
        bytes,
        total,
        at,
    }
}

#[test]
fn live_progress_tracks_bytes_total_and_rate() {
    let mut app = App::live(Options::default());
    app.apply(started(7, 0));
    app.apply(progress(7, 1024, Some(4 * 1024 * 1024), 1_000_000_000));
    app.apply(progress(7, 2 * 1024 * 1024 + 1024, None, 2_000_000_000));
    let live = app.live.as_ref().expect("live mode");
    let (direction, body) = live.in_flight[&7].current().expect("progress");
    assert_eq!(direction, Direction::Request);
    assert_eq!(body.bytes, 2 * 1024 * 1024 + 1024);
    assert_eq!(body.total, Some(4 * 1024 * 1024), "a known total is kept");
    assert_eq!(body.rate().as_deref(), Some("2.0 MiB/s"));
}

#[test]
fn progress_of_an_unknown_exchange_is_ignored() {
    let mut app = App::live(Options::default());
    app.apply(progress(9, 10, None, 1));
    assert!(
        app.live
            .as_ref()
            .is_some_and(|live| live.in_flight.is_empty())
    );
}

#[test]
fn finished_live_flows_show_after_a_refresh_in_time_order() {
    let mut app = App::live(Options::default());
    let mut flows = fixtures::push();
    flows.reverse();
    for flow in flows.iter().take(3) {
        app.apply(started(flow.id, flow.timing.request_start));
    }
    for flow in flows {
        app.apply(LiveEvent::Finished(Box::new(flow)));
    }
    assert!(app.flows.is_empty(), "nothing is shown before the refresh");
    assert!(app.needs_refresh());
    app.refresh();
    assert!(!app.needs_refresh());
    assert_eq!(app.flows.len(), 20);
    assert!(
        app.flows
            .windows(2)
            .all(|w| w[0].timing.request_start <= w[1].timing.request_start)
    );
    assert!(
        app.live
            .as_ref()
            .is_some_and(|live| live.in_flight.is_empty()),
        "finished exchanges leave the in-flight list"
    );
    assert_eq!(app.flow_list.rows.len(), 20);
}

#[test]
fn the_flow_list_follows_new_flows_when_the_last_row_is_selected() {
    let mut app = App::live(Options::default());
    let flows = fixtures::login();
    app.apply(LiveEvent::Finished(Box::new(flows[0].clone())));
    app.refresh();
    press(&mut app, "3");
    for flow in &flows[1..] {
        app.apply(LiveEvent::Finished(Box::new(flow.clone())));
        app.refresh();
    }
    assert_eq!(app.selected_flow().map(|f| f.id), Some(3));
    press(&mut app, "k");
    app.apply(LiveEvent::Finished(Box::new(fixtures::unknown(40))));
    app.refresh();
    assert_eq!(
        app.selected_flow().map(|f| f.id),
        Some(2),
        "a selection away from the end stays put"
    );
}

#[test]
fn ending_the_live_source_clears_in_flight_exchanges() {
    let mut app = App::live(Options::default());
    app.apply(started(1, 0));
    app.end_live();
    let live = app.live.as_ref().expect("live mode");
    assert!(live.ended && live.in_flight.is_empty());
}

#[test]
fn live_events_are_ignored_outside_live_mode() {
    let mut app = fixtures::app();
    app.apply(LiveEvent::Finished(Box::new(fixtures::unknown(99))));
    assert!(!app.needs_refresh());
    assert_eq!(app.flows.len(), 32);
}

#[test]
fn flows_show_while_decoding_and_gain_kinds_with_the_analysis() {
    let flows = fixtures::session();
    let analysis = fixtures::analysis(&flows);
    let mut app = App::decoding("session.jsonl", flows);
    assert!(app.decoding);
    assert_eq!(app.flow_list.rows.len(), 31, "every flow shows at once");
    assert_eq!(app.kind_label(1), "…");
    assert!(app.analysis.operations.is_empty());
    press(&mut app, "f");
    assert_eq!(app.flow_list.kind, None, "no kinds to filter by yet");
    app.set_analysis(analysis);
    assert!(!app.decoding);
    assert_eq!(app.kind_label(1), "api-check");
    assert_eq!(app.analysis.operations.len(), 3);
}

#[test]
fn flows_are_put_in_start_order_whatever_the_file_order() {
    let mut flows = fixtures::session();
    flows.reverse();
    flows.swap(3, 17);
    let app = App::decoding("shuffled", flows);
    let ids: Vec<u64> = app.flows.iter().map(|flow| flow.id).collect();
    assert_eq!(ids, (1..=31).collect::<Vec<u64>>());
}

#[test]
fn search_ignores_case_beyond_ascii() {
    let mut app = fixtures::app();
    let mut flow = fixtures::unknown(33);
    flow.request.url = "https://example.test/Ärger".to_owned();
    let mut flows: Vec<Flow> = app.flows.iter().map(|flow| Flow::clone(flow)).collect();
    flows.push(flow);
    let analysis = fixtures::analysis(&flows);
    app = App::from_analysis("unicode", flows, analysis);
    press(&mut app, "/äRGER\n");
    assert_eq!(shown_ids(&app), vec![33]);
}

#[test]
fn enter_on_a_flow_detail_goes_to_the_step_of_that_flow() {
    let mut app = fixtures::app();
    press(&mut app, "3jjjjjjjjj\n");
    assert_eq!(app.selected_flow().map(|f| f.id), Some(10));
    press(&mut app, "\n");
    assert_eq!((app.view, app.focus), (View::Operations, Pane::Steps));
    assert_eq!(app.selected_operation().map(|o| o.index), Some(2));
    let step = app.selected_step().expect("a step");
    assert!(
        step.flow_ids.contains(&10),
        "step {} holds flow 10",
        step.number
    );
}

#[test]
fn a_flow_outside_any_operation_says_so_and_stays() {
    // Every analysed flow is in an operation; while the capture is still
    // being decoded, none is.
    let mut app = App::decoding("session.jsonl", fixtures::session());
    press(&mut app, "3G\n\n");
    assert_eq!(app.view, View::Flows);
    assert_eq!(
        app.notice.as_deref(),
        Some("flow #31 belongs to no operation")
    );
}

#[test]
fn client_filter_shows_one_program_and_esc_drops_it() {
    use regtap_capture::factory::FlowBuilder;
    let url = "https://registry.test:5000/v2/lab/app/manifests/v1";
    let flows = vec![
        FlowBuilder::new(1, "HEAD", url)
            .client("127.0.0.1:40001", "containerd/1.6.20~ds1")
            .status(200)
            .build(),
        FlowBuilder::new(2, "GET", url)
            .client("127.0.0.1:40002", "skopeo/1.9.3")
            .status(200)
            .build(),
        FlowBuilder::new(3, "GET", url)
            .client("127.0.0.1:40001", "containerd/1.6.20~ds1")
            .status(200)
            .build(),
    ];
    let mut app = App::new("clients.jsonl", flows, &Options::default());
    assert_eq!(app.flow_list.clients, vec!["containerd", "skopeo"]);
    press(&mut app, "c");
    assert_eq!(app.view, View::Flows);
    assert_eq!(app.flow_list.client.as_deref(), Some("containerd"));
    assert_eq!(shown_ids(&app), vec![1, 3]);
    press(&mut app, "c");
    assert_eq!(shown_ids(&app), vec![2]);
    press(&mut app, "c");
    assert_eq!(app.flow_list.client, None);
    assert_eq!(shown_ids(&app), vec![1, 2, 3]);
    press(&mut app, "c\u{1b}");
    assert_eq!(app.flow_list.client, None, "Esc drops the client filter");
    assert_eq!(shown_ids(&app).len(), 3);
}

#[test]
fn repository_and_failed_filters_combine_and_esc_drops_them() {
    use regtap_capture::factory::FlowBuilder;
    let manifest = |repo: &str| format!("https://registry.test:5000/v2/{repo}/manifests/v1");
    let flows = vec![
        FlowBuilder::new(1, "GET", &manifest("lab/app"))
            .status(200)
            .build(),
        FlowBuilder::new(2, "GET", &manifest("lab/other"))
            .status(200)
            .build(),
        FlowBuilder::new(3, "GET", &manifest("lab/app"))
            .error(regtap_capture::FlowError {
                stage: regtap_capture::ErrorStage::Response,
                message: "upstream hung up".to_owned(),
            })
            .build(),
    ];
    let mut app = App::new("repos.jsonl", flows, &Options::default());
    assert_eq!(app.flow_list.repositories, vec!["lab/app", "lab/other"]);
    press(&mut app, "r");
    assert_eq!(app.view, View::Flows);
    assert_eq!(shown_ids(&app), vec![1, 3]);
    press(&mut app, "x");
    assert!(app.flow_list.failed_only);
    assert_eq!(shown_ids(&app), vec![3], "lab/app and failed");
    press(&mut app, "r");
    assert_eq!(app.flow_list.repository.as_deref(), Some("lab/other"));
    assert!(shown_ids(&app).is_empty(), "lab/other has no failure");
    press(&mut app, "R");
    assert_eq!(shown_ids(&app), vec![3]);
    press(&mut app, "x");
    assert_eq!(shown_ids(&app), vec![1, 2, 3]);
    press(&mut app, "rx\u{1b}");
    assert_eq!(
        app.flow_list.repository, None,
        "Esc drops the repository filter"
    );
    assert!(
        !app.flow_list.failed_only,
        "Esc drops the failed-only toggle"
    );
    assert_eq!(shown_ids(&app).len(), 3);
}

#[test]
fn live_flows_are_linked_off_the_ui_thread_and_end_as_the_batch_analysis() {
    let mut app = App::live(Options::default());
    let flows = fixtures::push();
    for flow in flows.iter().rev() {
        app.apply(LiveEvent::Finished(Box::new(flow.clone())));
    }
    // Polling never waits for the relinker: flows show once it is done.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while app.needs_refresh() {
        assert!(
            std::time::Instant::now() < deadline,
            "the relinker never answered"
        );
        app.poll_refresh();
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(app.flows.len(), flows.len());
    assert_eq!(
        app.analysis,
        regtap_decode::analyze(&flows, &Options::default())
    );
}

#[test]
fn live_flows_show_at_the_next_refresh_before_they_are_linked() {
    let mut app = App::live(Options::default());
    // The session again and again, as a busy proxy sees it: the relinker
    // cannot link after every flow, and the UI does not wait for it.
    let mut flows = Vec::new();
    for copy in 0..20_u64 {
        for mut flow in fixtures::session() {
            flow.id += copy * 100;
            flow.timing.request_start += i64::try_from(copy).unwrap_or(0) * 10_000_000_000;
            flows.push(flow);
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    for (n, flow) in flows.iter().enumerate() {
        app.apply(LiveEvent::Finished(Box::new(flow.clone())));
        app.poll_refresh();
        assert_eq!(app.flows.len(), n + 1, "a finished flow shows at once");
        let linked = app.analysis.flows.len();
        assert_eq!(app.unlinked(), n + 1 - linked);
        if let Some(unlinked) = app.flows.iter().find(|f| app.flow_analysis(f.id).is_none()) {
            assert_eq!(
                app.kind_label(unlinked.id),
                "…",
                "not yet decoded, not unknown"
            );
        }
    }
    while app.needs_refresh() {
        assert!(
            std::time::Instant::now() < deadline,
            "the relinker never caught up"
        );
        app.poll_refresh();
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(app.unlinked(), 0);
    assert_eq!(
        app.analysis,
        regtap_decode::analyze(&flows, &Options::default()),
        "once the capture stops growing, it is linked whole"
    );
    assert_eq!(app.analysis.operations.len(), 60);
}

#[test]
fn live_rows_added_alone_are_those_a_full_rebuild_gives() {
    let mut app = App::live(Options::default());
    press(&mut app, "3/blobs\n");
    for flow in fixtures::session() {
        app.apply(LiveEvent::Finished(Box::new(flow)));
        app.poll_refresh();
        let added = app.flow_list.rows.clone();
        app.rebuild_rows();
        assert_eq!(added, app.flow_list.rows);
    }
    app.refresh();
    let shown = shown_ids(&app);
    assert!(!shown.is_empty());
    assert!(
        shown
            .iter()
            .all(|&id| app.flow(id).is_some_and(|f| f.url().contains("/blobs/"))),
        "{shown:?}"
    );
}
