//! Keys, mouse and playback ticks: how the user moves through the state.

use std::time::Duration;

use ratatui::crossterm::event::{
    KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind,
};

use super::{Action, App, Cursor, FASTEST_STEP, Pane, SLOWEST_STEP, View};
use crate::keys::{self, Command};

impl App {
    /// Handles one key press.
    pub fn handle_key(&mut self, key: KeyEvent) -> Action {
        if key.kind == KeyEventKind::Release {
            return Action::Continue;
        }
        self.notice = None;
        // Ctrl-c quits even while a search is typed.
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && keys::command(key) == Some(Command::Quit) {
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
        match keys::command(key) {
            Some(command) => self.run(command),
            None => Action::Continue,
        }
    }

    /// Does what a key is bound to (see [`crate::keys::BINDINGS`]).
    pub(crate) fn run(&mut self, command: Command) -> Action {
        match command {
            Command::Quit => return Action::Quit,
            Command::Help => self.help = true,
            Command::RevealSecrets => {
                self.reveal_secrets = !self.reveal_secrets;
                self.notice = Some(if self.reveal_secrets {
                    "credentials shown (s hides them)".to_owned()
                } else {
                    "credentials hidden".to_owned()
                });
            }
            Command::ShowOperations => self.show(View::Operations),
            Command::ShowSequence => self.show(View::Sequence),
            Command::ShowFlows => self.show(View::Flows),
            Command::NextPane => self.cycle_pane(1),
            Command::PreviousPane => self.cycle_pane(-1),
            Command::DrillDown => self.drill_down(),
            Command::Back => self.back(),
            Command::Up => self.move_selection(-1),
            Command::Down => self.move_selection(1),
            Command::PageUp => self.move_page(-1),
            Command::PageDown => self.move_page(1),
            Command::First => self.move_selection(isize::MIN / 2),
            Command::Last => self.move_selection(isize::MAX / 2),
            Command::Left => self.left(),
            Command::Right => self.right(),
            Command::NextStep => self.move_step(1),
            Command::PreviousStep => self.move_step(-1),
            Command::PlayPause => self.toggle_playback(),
            Command::Faster => self.change_speed(true),
            Command::Slower => self.change_speed(false),
            Command::Search => {
                self.show(View::Flows);
                self.search_input = Some(self.flow_list.search.clone());
            }
            Command::NextKind => self.cycle_kind_filter(),
            Command::AnyKind => {
                self.flow_list.kind = None;
                self.rebuild_rows();
            }
            Command::NextClient => self.cycle_client_filter(),
            Command::AnyClient => {
                self.flow_list.client = None;
                self.rebuild_rows();
            }
            Command::NextRepository => self.cycle_repository_filter(),
            Command::AnyRepository => {
                self.flow_list.repository = None;
                self.rebuild_rows();
            }
            Command::FailedOnly => {
                self.flow_list.failed_only = !self.flow_list.failed_only;
                self.show(View::Flows);
                self.rebuild_rows();
            }
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
