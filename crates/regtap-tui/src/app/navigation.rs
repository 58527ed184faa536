//! Keys, mouse and playback ticks: how the user moves through the state.

use std::time::Duration;

use ratatui::crossterm::event::{
    KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind,
};

use super::{Action, App, Cursor, FASTEST_STEP, Pane, SLOWEST_STEP, View};

impl App {
    /// Handles one key press.
    pub fn handle_key(&mut self, key: KeyEvent) -> Action {
        if key.kind == KeyEventKind::Release {
            return Action::Continue;
        }
        self.notice = None;
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            return Action::Quit;
        }
        if self.search_input.is_some() {
            self.handle_search_key(key);
            return Action::Continue;
        }
        if self.help {
            match key.code {
                KeyCode::Char('q') => return Action::Quit,
                KeyCode::Char('?') | KeyCode::Esc | KeyCode::Enter => self.help = false,
                _ => {}
            }
            return Action::Continue;
        }
        match key.code {
            KeyCode::Char('q') => return Action::Quit,
            KeyCode::Char('?') => self.help = true,
            KeyCode::Char('s') => {
                self.reveal_secrets = !self.reveal_secrets;
                self.notice = Some(if self.reveal_secrets {
                    "credentials shown (s hides them)".to_owned()
                } else {
                    "credentials hidden".to_owned()
                });
            }
            KeyCode::Char('1') => self.show(View::Operations),
            KeyCode::Char('2') => self.show(View::Sequence),
            KeyCode::Char('3') => self.show(View::Flows),
            KeyCode::Tab => self.cycle_pane(1),
            KeyCode::BackTab => self.cycle_pane(-1),
            KeyCode::Enter => self.drill_down(),
            KeyCode::Esc => self.back(),
            KeyCode::Up | KeyCode::Char('k') => self.move_selection(-1),
            KeyCode::Down | KeyCode::Char('j') => self.move_selection(1),
            KeyCode::Char('u') if ctrl => self.move_page(-1),
            KeyCode::Char('d') if ctrl => self.move_page(1),
            KeyCode::PageUp => self.move_page(-1),
            KeyCode::PageDown => self.move_page(1),
            KeyCode::Home | KeyCode::Char('g') => self.move_selection(isize::MIN / 2),
            KeyCode::End | KeyCode::Char('G') => self.move_selection(isize::MAX / 2),
            KeyCode::Left | KeyCode::Char('h') => self.left(),
            KeyCode::Right | KeyCode::Char('l') => self.right(),
            KeyCode::Char('n') => self.move_step(1),
            KeyCode::Char('p') => self.move_step(-1),
            KeyCode::Char(' ') => self.toggle_playback(),
            KeyCode::Char('+') | KeyCode::Char('=') => self.change_speed(true),
            KeyCode::Char('-') | KeyCode::Char('_') => self.change_speed(false),
            KeyCode::Char('/') => {
                self.show(View::Flows);
                self.search_input = Some(self.flow_list.search.clone());
            }
            KeyCode::Char('f') => self.cycle_kind_filter(),
            KeyCode::Char('F') => {
                self.flow_list.kind = None;
                self.rebuild_rows();
            }
            KeyCode::Char('c') => self.cycle_client_filter(),
            KeyCode::Char('C') => {
                self.flow_list.client = None;
                self.rebuild_rows();
            }
            KeyCode::Char('r') => self.cycle_repository_filter(),
            KeyCode::Char('R') => {
                self.flow_list.repository = None;
                self.rebuild_rows();
            }
            KeyCode::Char('x') => {
                self.flow_list.failed_only = !self.flow_list.failed_only;
                self.show(View::Flows);
                self.rebuild_rows();
            }
            _ => {}
        }
        Action::Continue
    }

    fn handle_search_key(&mut self, key: KeyEvent) {
        let Some(input) = self.search_input.as_mut() else {
            return;
        };
        match key.code {
            KeyCode::Enter => {
                self.flow_list.search = input.clone();
                self.search_input = None;
            }
            KeyCode::Esc => {
                self.flow_list.search.clear();
                self.search_input = None;
            }
            KeyCode::Backspace => {
                input.pop();
            }
            KeyCode::Char(c) => input.push(c),
            _ => return,
        }
        self.rebuild_rows();
    }

    /// Mouse wheel scrolls the focused pane.
    pub fn handle_mouse(&mut self, mouse: MouseEvent) {
        match mouse.kind {
            MouseEventKind::ScrollUp => self.move_selection(-1),
            MouseEventKind::ScrollDown => self.move_selection(1),
            _ => {}
        }
    }

    /// Advances playback by the time passed since the last tick.
    pub fn on_tick(&mut self, elapsed: Duration) {
        if !self.playback.playing {
            return;
        }
        self.playback.elapsed += elapsed;
        while self.playback.elapsed >= self.playback.interval {
            self.playback.elapsed -= self.playback.interval;
            if self.steps.selected() + 1 >= self.step_count() {
                self.playback.playing = false;
                self.playback.elapsed = Duration::ZERO;
                return;
            }
            self.move_step(1);
        }
    }

    fn show(&mut self, view: View) {
        self.view = view;
        self.focus = match view {
            View::Operations => Pane::Operations,
            View::Sequence => Pane::Diagram,
            View::Flows if self.flow_list.detail_open => Pane::Detail,
            View::Flows => Pane::Flows,
        };
    }

    fn panes(&self) -> &'static [Pane] {
        match self.view {
            View::Operations => &[Pane::Operations, Pane::Steps, Pane::Detail],
            View::Sequence => &[Pane::Diagram, Pane::Detail],
            View::Flows => &[Pane::Flows, Pane::Detail],
        }
    }

    fn focus_pane(&mut self, pane: Pane) {
        self.focus = pane;
        if self.view == View::Flows {
            self.flow_list.detail_open = pane == Pane::Detail;
        }
    }

    fn cycle_pane(&mut self, step: isize) {
        let panes = self.panes();
        let current = panes.iter().position(|&p| p == self.focus).unwrap_or(0);
        let next = (current as isize + step).rem_euclid(panes.len() as isize) as usize;
        self.focus_pane(panes[next]);
    }

    fn drill_down(&mut self) {
        match self.focus {
            Pane::Operations => self.focus_pane(Pane::Steps),
            Pane::Steps | Pane::Diagram | Pane::Flows => {
                self.detail_scroll = 0;
                self.focus_pane(Pane::Detail);
            }
            Pane::Detail if self.view == View::Flows => self.show_selected_flow_in_its_step(),
            Pane::Detail => {}
        }
    }

    /// From a flow's detail to the step of the operation it belongs to.
    fn show_selected_flow_in_its_step(&mut self) {
        let Some(id) = self.selected_flow().map(|flow| flow.id) else {
            return;
        };
        let Some(index) = self.flow_analysis(id).and_then(|a| a.operation) else {
            self.notice = Some(format!("flow #{id} belongs to no operation"));
            return;
        };
        let Some(operation) = self.analysis.operations.get(index) else {
            return;
        };
        let step = operation
            .steps
            .iter()
            .position(|step| step.flow_ids.contains(&id))
            .unwrap_or(0);
        let operations = self.analysis.operations.len();
        self.operations.select(index, operations);
        self.steps = Cursor::default();
        let steps = self.step_count();
        self.steps.select(step, steps);
        self.detail_scroll = 0;
        self.playback.playing = false;
        self.show(View::Operations);
        self.focus_pane(Pane::Steps);
    }

    fn back(&mut self) {
        match (self.view, self.focus) {
            (View::Operations, Pane::Detail) => self.focus_pane(Pane::Steps),
            (View::Operations, Pane::Steps) => self.focus_pane(Pane::Operations),
            (View::Sequence, Pane::Detail) => self.focus_pane(Pane::Diagram),
            (View::Sequence, _) => {
                self.playback.playing = false;
                self.show(View::Operations);
                self.focus_pane(Pane::Steps);
            }
            (View::Flows, Pane::Detail) => self.focus_pane(Pane::Flows),
            (View::Flows, _) => {
                self.flow_list.search.clear();
                self.flow_list.kind = None;
                self.flow_list.client = None;
                self.flow_list.repository = None;
                self.flow_list.failed_only = false;
                self.rebuild_rows();
            }
            (View::Operations, _) => {}
        }
    }

    fn left(&mut self) {
        if self.view == View::Sequence {
            self.move_step(-1);
        } else if self.focus != self.panes()[0] {
            self.cycle_pane(-1);
        }
    }

    fn right(&mut self) {
        if self.view == View::Sequence {
            self.move_step(1);
        } else if self.focus != Pane::Detail {
            self.cycle_pane(1);
        }
    }

    fn move_page(&mut self, direction: isize) {
        let page = match self.focus {
            Pane::Operations => self.operations.page(),
            Pane::Steps | Pane::Diagram => self.steps.page(),
            Pane::Flows => self.flow_list.cursor.page(),
            Pane::Detail => 10,
        };
        self.move_selection(direction * page);
    }

    fn move_selection(&mut self, delta: isize) {
        match self.focus {
            Pane::Operations => {
                let before = self.operations.selected();
                let len = self.analysis.operations.len();
                self.operations.move_by(delta, len);
                if self.operations.selected() != before {
                    self.steps = Cursor::default();
                    self.detail_scroll = 0;
                    self.playback.playing = false;
                }
            }
            Pane::Steps | Pane::Diagram => self.move_step(delta),
            Pane::Flows => {
                let len = self.flow_list.rows.len();
                self.flow_list.cursor.move_by(delta, len);
                self.detail_scroll = 0;
            }
            Pane::Detail => {
                let delta = i32::try_from(delta.clamp(-10_000, 10_000)).unwrap_or(0);
                let limit = self.detail_scroll_limit.get();
                let scroll = self.detail_scroll.min(limit);
                self.detail_scroll = scroll.saturating_add_signed(delta as i16).min(limit);
            }
        }
    }

    fn move_step(&mut self, delta: isize) {
        if self.view == View::Flows {
            return;
        }
        let len = self.step_count();
        self.steps.move_by(delta, len);
        self.detail_scroll = 0;
    }

    fn toggle_playback(&mut self) {
        if self.view != View::Sequence {
            return;
        }
        let playback = &mut self.playback;
        playback.playing = !playback.playing;
        playback.elapsed = Duration::ZERO;
        // Playing from the last step starts over.
        if playback.playing && self.steps.selected() + 1 >= self.step_count() {
            self.steps = Cursor::default();
        }
    }

    fn change_speed(&mut self, faster: bool) {
        let interval = self.playback.interval;
        self.playback.interval = if faster {
            (interval / 2).max(FASTEST_STEP)
        } else {
            (interval * 2).min(SLOWEST_STEP)
        };
    }

    fn cycle_kind_filter(&mut self) {
        let list = &mut self.flow_list;
        list.kind = match list.kind {
            None => list.kinds.first().copied(),
            Some(current) => {
                let position = list.kinds.iter().position(|&k| k == current);
                position.and_then(|p| list.kinds.get(p + 1)).copied()
            }
        };
        self.show(View::Flows);
        self.rebuild_rows();
    }

    fn cycle_client_filter(&mut self) {
        let list = &mut self.flow_list;
        list.client = match &list.client {
            None => list.clients.first().cloned(),
            Some(current) => {
                let position = list.clients.iter().position(|c| c == current);
                position.and_then(|p| list.clients.get(p + 1)).cloned()
            }
        };
        self.show(View::Flows);
        self.rebuild_rows();
    }

    fn cycle_repository_filter(&mut self) {
        let list = &mut self.flow_list;
        list.repository = match &list.repository {
            None => list.repositories.first().cloned(),
            Some(current) => {
                let position = list.repositories.iter().position(|r| r == current);
                position.and_then(|p| list.repositories.get(p + 1)).cloned()
            }
        };
        self.show(View::Flows);
        self.rebuild_rows();
    }
}
