//! Every view drawn on a `TestBackend`, over the fixture session as the
//! decoder analyses it.

use insta::assert_snapshot;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::App;
use crate::fixtures;

fn render(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test backend");
    terminal
        .draw(|frame| super::draw(frame, app))
        .expect("drawing on a test backend");
    terminal.backend().to_string()
}

fn press(app: &mut App, keys: &str) {
    for c in keys.chars() {
        let code = match c {
            '\t' => KeyCode::Tab,
            '\n' => KeyCode::Enter,
            '\u{1b}' => KeyCode::Esc,
            c => KeyCode::Char(c),
        };
        app.handle_key(KeyEvent::new(code, KeyModifiers::NONE));
    }
}

#[test]
fn operations_view_lists_operations_and_the_overview_of_the_first() {
    let app = fixtures::app();
    assert_snapshot!("operations_80x24", render(&app, 80, 24));
}

#[test]
fn operations_view_shows_the_steps_and_the_detail_of_a_parallel_step() {
    let mut app = fixtures::app();
    // Steps 3 to 5 of the push: the three layer uploads, side by side.
    press(&mut app, "j\njjj");
    let screen = render(&app, 80, 24);
    assert!(screen.contains("Step 4 of 10"), "{screen}");
    assert_snapshot!("operations_parallel_step_80x24", screen);
}

#[test]
fn operations_view_wide_shows_a_decoded_token() {
    let mut app = fixtures::app();
    press(&mut app, "j\nj");
    let screen = render(&app, 150, 45);
    for expected in [
        "requested: repository:lab/seq:push,pull",
        "JWT claims",
        // regtap_fixtures::jwt: issued at the token request, valid 300 s.
        "exp: 2023-11-14T22:18:20Z",
    ] {
        assert!(screen.contains(expected), "{expected} missing:\n{screen}");
    }
    assert_snapshot!("operations_token_150x45", screen);
}

#[test]
fn manifest_layers_link_to_their_upload_steps() {
    let mut app = fixtures::app();
    press(&mut app, "j\nG\n");
    let screen = render(&app, 150, 45);
    assert!(screen.contains("uploaded → step 3"), "{screen}");
    assert_snapshot!("operations_manifest_150x45", screen);
}

#[test]
fn upload_session_shows_chunks_and_the_digest_check() {
    let mut app = fixtures::app();
    // Step 8: the upload of the config blob (POST, PATCH, PUT).
    press(&mut app, "j\njjjjjjj");
    let screen = render(&app, 150, 50);
    assert!(screen.contains("chunk 1: bytes 0–64 (64 B)"), "{screen}");
    assert!(screen.contains("digest check: verified"), "{screen}");
    assert!(screen.contains("HMAC: not checked"), "{screen}");
    assert_snapshot!("operations_upload_150x50", screen);
}

#[test]
fn sequence_view_draws_one_arrow_per_step_and_brackets_parallel_steps() {
    let mut app = fixtures::app();
    press(&mut app, "j2nnnnn");
    let screen = render(&app, 80, 24);
    assert!(screen.contains("auth.test:5001"));
    assert!(screen.contains("3× HEAD 200 blob-head"), "{screen}");
    assert_snapshot!("sequence_80x24", screen);
}

#[test]
fn sequence_view_wide_puts_the_detail_beside_the_diagram() {
    let mut app = fixtures::app();
    press(&mut app, "j2");
    assert_snapshot!("sequence_160x40", render(&app, 160, 40));
}

#[test]
fn flows_view_lists_every_flow_with_its_kind() {
    let mut app = fixtures::app();
    press(&mut app, "3");
    assert_snapshot!("flows_80x24", render(&app, 80, 24));
}

#[test]
fn flows_view_wide_adds_host_duration_and_size_and_scrolls_to_the_end() {
    let mut app = fixtures::app();
    press(&mut app, "3G");
    let screen = render(&app, 140, 20);
    assert!(screen.contains("example.test"), "the unknown flow shows");
    assert_snapshot!("flows_end_140x20", screen);
}

#[test]
fn flows_view_search_and_kind_filter_show_in_the_title() {
    let mut app = fixtures::app();
    press(&mut app, "/lab/seq\n");
    while app.flow_list.kind != Some("upload-chunk") {
        press(&mut app, "f");
    }
    assert_snapshot!("flows_filtered_80x24", render(&app, 80, 24));
}

#[test]
fn flows_view_typing_a_search_shows_the_prompt() {
    let mut app = fixtures::app();
    press(&mut app, "/nothing-matches");
    let screen = render(&app, 80, 24);
    assert!(screen.contains("/nothing-matches"));
    assert!(screen.contains("No flow matches"));
}

#[test]
fn flow_detail_shows_request_response_and_decoded_error() {
    let mut app = fixtures::app();
    // The detail of the first flow, scrolled down to its error body.
    press(&mut app, "3\njjjjjj");
    let screen = render(&app, 80, 24);
    assert!(screen.contains("UNAUTHORIZED"), "{screen}");
    assert_snapshot!("flows_detail_80x24", screen);
}

#[test]
fn credentials_are_masked_until_s_reveals_them() {
    let mut app = fixtures::app();
    press(&mut app, "j\nj");
    let screen = render(&app, 150, 45);
    assert!(screen.contains("Authorization: Basic ***"), "{screen}");
    assert!(!screen.contains("YWxpY2U6d29uZGVybGFuZA=="));
    press(&mut app, "s");
    let screen = render(&app, 150, 45);
    assert!(
        screen.contains("Authorization: Basic YWxpY2U6d29uZGVybGFuZA=="),
        "{screen}"
    );
    assert!(screen.contains("credentials shown"), "{screen}");
    press(&mut app, "s");
    assert!(!render(&app, 150, 45).contains("YWxpY2U6d29uZGVybGFuZA=="));
}

#[test]
fn terminal_controls_from_a_registry_are_not_drawn() {
    let flow = regtap_capture::factory::FlowBuilder::new(1, "GET", "https://r.test/v2/")
        .status(401)
        .response_header(
            "WWW-Authenticate",
            "Bearer realm=\"x\x1b]0;owned\x07\x1b[2J\"",
        )
        .build();
    let screen = detail_of(flow, 120, 30);
    assert!(screen.contains("WWW-Authenticate"), "{screen}");
    assert!(!screen.contains(['\x1b', '\x07']), "{screen:?}");
}

/// The screen of the flows view of a capture of `flow` alone, its detail
/// shown.
fn detail_of(flow: regtap_capture::Flow, width: u16, height: u16) -> String {
    let mut app = App::new("detail", vec![flow], &regtap_decode::Options::default());
    press(&mut app, "3\n");
    render(&app, width, height)
}

#[test]
fn a_reverse_mode_flow_says_what_the_client_addressed_and_what_was_rewritten() {
    use regtap_capture::{Direction, ReverseExchange, Rewrite};
    let mut flow = regtap_capture::factory::FlowBuilder::new(
        1,
        "POST",
        "https://r.test:5000/v2/a/blobs/uploads/",
    )
    .status(202)
    .response_header("Location", "https://r.test:5000/v2/a/blobs/uploads/u1")
    .build();
    flow.reverse = Some(ReverseExchange {
        served_as: "https://r.test:8443".to_owned(),
        rewrites: vec![Rewrite {
            direction: Direction::Response,
            header: "location".to_owned(),
            original: "https://r.test:5000/v2/a/blobs/uploads/u1".to_owned(),
            rewritten: "https://r.test:8443/v2/a/blobs/uploads/u1".to_owned(),
        }],
    });
    let screen = detail_of(flow, 160, 30);
    assert!(
        screen.contains("reverse mode: the client addressed https://r.test:8443"),
        "{screen}"
    );
    assert!(
        screen.contains(
            "location: upstream sent https://r.test:5000/v2/a/blobs/uploads/u1, \
             client got https://r.test:8443/v2/a/blobs/uploads/u1"
        ),
        "{screen}"
    );
}

#[test]
fn a_flow_through_an_upstream_proxy_names_it() {
    let mut flow = regtap_capture::factory::FlowBuilder::new(1, "GET", "https://r.test/v2/")
        .status(200)
        .build();
    assert!(!detail_of(flow.clone(), 120, 30).contains("upstream proxy"));
    flow.upstream_proxy = Some("http://proxy.corp.test:3128".to_owned());
    let screen = detail_of(flow, 120, 30);
    assert!(
        screen.contains("through upstream proxy http://proxy.corp.test:3128"),
        "{screen}"
    );
}

#[test]
fn help_overlay_lists_every_key() {
    let mut app = fixtures::app();
    press(&mut app, "?");
    let screen = render(&app, 80, 24);
    for binding in crate::keys::BINDINGS {
        assert!(
            screen.contains(binding.label) && screen.contains(binding.help),
            "{} ({}) missing from the help",
            binding.label,
            binding.help
        );
    }
    assert_snapshot!("help_80x24", screen);
}

#[test]
fn live_mode_shows_progress_bars_for_bodies_in_flight() {
    use regtap_capture::{Direction, LiveEvent};
    let mut app = App::live(regtap_decode::Options::default());
    let url = "https://registry.test:5000/v2/lab/seq/blobs/uploads/0b5c1d3e-1111";
    for (id, method, total) in [(10, "PATCH", None), (11, "GET", Some(3 * 1024 * 1024))] {
        app.apply(LiveEvent::Started {
            id,
            method: method.to_owned(),
            url: url.to_owned(),
            at: 0,
        });
        let direction = if method == "GET" {
            Direction::Response
        } else {
            Direction::Request
        };
        app.apply(LiveEvent::Progress {
            id,
            direction,
            bytes: 0,
            total,
            at: 0,
        });
        app.apply(LiveEvent::Progress {
            id,
            direction,
            bytes: 1024 * 1024,
            total,
            at: 2_000_000_000,
        });
    }
    let screen = render(&app, 80, 24);
    assert!(screen.contains("In flight: 2"));
    assert!(
        screen.contains("1.0 MiB / 3.0 MiB  33% 512.0 KiB/s"),
        "{screen}"
    );
    assert_snapshot!("live_progress_80x24", screen);
}

#[test]
fn every_view_draws_at_any_size_without_panicking() {
    let mut app = fixtures::app();
    for keys in ["", "j\n", "\n", "2", "nnnn", "3", "\n", "?"] {
        press(&mut app, keys);
        for (width, height) in [(1, 1), (10, 3), (20, 5), (40, 10), (80, 24), (200, 60)] {
            let screen = render(&app, width, height);
            assert_eq!(screen.lines().count(), usize::from(height));
        }
    }
}

#[test]
fn detail_scrolling_stops_at_the_end_of_the_text() {
    let mut app = fixtures::app();
    press(&mut app, "j\njjjjj\n");
    render(&app, 80, 24);
    let limit = app.detail_scroll_limit.get();
    assert!(limit > 0, "the step detail is longer than the pane");
    for _ in 0..200 {
        press(&mut app, "j");
    }
    assert_eq!(app.detail_scroll, limit);
    press(&mut app, "k");
    assert_eq!(app.detail_scroll, limit - 1, "one key scrolls back at once");
}

#[test]
fn live_mode_says_when_events_were_missed_and_when_the_proxy_stopped() {
    let mut app = App::live(regtap_decode::Options::default());
    app.missed_live_events(3);
    assert!(render(&app, 100, 24).contains("⚠ 3 events missed"));
    app.end_live();
    assert!(render(&app, 100, 24).contains("proxy stopped"));
}

#[test]
fn a_capture_being_analysed_says_whether_it_is_decoding_or_linking() {
    let flows = fixtures::session();
    let analysis = fixtures::analysis(&flows);
    let mut app = App::decoding("session.jsonl", flows);
    let screen = render(&app, 100, 20);
    assert!(screen.contains("decoding…"), "{screen}");
    assert!(screen.contains("Decoding the flows…"), "{screen}");
    app.linking = true;
    let screen = render(&app, 100, 20);
    assert!(screen.contains("· linking…"), "{screen}");
    assert!(!screen.contains("decoding…"), "{screen}");
    assert!(
        screen.contains("Linking the flows into operations…"),
        "{screen}"
    );
    app.set_analysis(analysis);
    let screen = render(&app, 100, 20);
    assert!(
        !screen.contains("linking") && !screen.contains("decoding"),
        "{screen}"
    );
    assert!(screen.contains("login registry.test:5000"), "{screen}");
}
