//! What the state derives from the flows and the analysis: id lookups, the
//! rows of the flows view and its search text.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use regtap_capture::Flow;

use super::App;

impl App {
    pub(super) fn reindex(&mut self) {
        self.search_text = None;
        self.flow_positions = IdIndex::of(self.flows.iter().map(|flow| flow.id));
        self.analysis_positions = IdIndex::of(self.analysis.flows.iter().map(|flow| flow.flow_id));
        self.origin_ns = self
            .flows
            .first()
            .map_or(0, |flow| flow.timing.request_start);
        // Sets, not lists searched for each flow: a capture may name
        // thousands of repositories.
        let mut kinds = BTreeSet::new();
        let mut clients = BTreeSet::new();
        let mut repositories = BTreeSet::new();
        for flow in &self.analysis.flows {
            kinds.insert(flow.kind.label());
            if let Some(client) = &flow.client {
                clients.insert(client.program.as_str());
            }
            if let Some(repository) = flow.kind.repository() {
                repositories.insert(repository);
            }
        }
        self.flow_list.kinds = kinds.into_iter().collect();
        self.flow_list.clients = clients.into_iter().map(str::to_owned).collect();
        self.flow_list.repositories = repositories.into_iter().map(str::to_owned).collect();
        self.rebuild_rows();
        let operations = self.analysis.operations.len();
        self.operations.select(self.operations.selected, operations);
        let steps = self.step_count();
        self.steps.select(self.steps.selected, steps);
    }

    /// Takes in flows appended to [`App::flows`] from position `from` on,
    /// after every flow already there and with the analysis unchanged: only
    /// their rows are added, where [`App::reindex`] goes over the whole
    /// capture. Returns false, changing nothing, when they cannot be added
    /// alone (ids out of order), for the caller to reindex.
    pub(super) fn index_appended(&mut self, from: usize) -> bool {
        let appended = self.flows.get(from..).unwrap_or_default();
        let last_id = from.checked_sub(1).map(|last| self.flows[last].id);
        match &mut self.flow_positions {
            IdIndex::Ascending => {
                let ids = last_id.into_iter().chain(appended.iter().map(|f| f.id));
                if !ids.is_sorted() {
                    return false;
                }
            }
            IdIndex::Map(positions) => {
                for (offset, flow) in appended.iter().enumerate() {
                    positions.entry(flow.id).or_insert(from + offset);
                }
            }
        }
        if from == 0 {
            self.origin_ns = appended.first().map_or(0, |f| f.timing.request_start);
        }
        if let Some(mut texts) = self.search_text.take() {
            texts.extend(appended.iter().map(|flow| self.search_text_of(flow)));
            self.search_text = Some(texts);
        }
        self.update_rows(from);
        true
    }

    /// Applies the search text and the kind filter, keeping the selected
    /// flow selected when it still shows; live, a selection on the last
    /// row follows the newest flow.
    pub(super) fn rebuild_rows(&mut self) {
        self.update_rows(0);
    }

    /// As [`App::rebuild_rows`], keeping the rows of the flows before
    /// position `from` as they are.
    fn update_rows(&mut self, from: usize) {
        let search = self
            .search_input
            .as_deref()
            .unwrap_or(&self.flow_list.search)
            .to_lowercase();
        if !search.is_empty() && self.search_text.is_none() {
            let texts = self
                .flows
                .iter()
                .map(|flow| self.search_text_of(flow))
                .collect();
            self.search_text = Some(texts);
        }
        let previous_len = self.flow_list.rows.len();
        let selected = self.flow_list.cursor.selected();
        let was_last = self.live.is_some() && previous_len > 0 && selected + 1 >= previous_len;
        let selected_id = self.selected_flow().map(|flow| flow.id);
        let mut rows = std::mem::take(&mut self.flow_list.rows);
        let kept = rows.partition_point(|&position| position < from);
        rows.truncate(kept);
        let list = &self.flow_list;
        let kind = list.kind;
        let client = list.client.as_deref();
        let repository = list.repository.as_deref();
        let failed_only = list.failed_only;
        let texts = self.search_text.as_deref().unwrap_or_default();
        rows.extend(
            self.flows
                .iter()
                .enumerate()
                .skip(from)
                .filter(|(position, flow)| {
                    kind.is_none_or(|kind| self.kind_label(flow.id) == kind)
                        && client.is_none_or(|client| self.client_program(flow.id) == Some(client))
                        && repository.is_none_or(|repository| {
                            self.flow_analysis(flow.id)
                                .and_then(|a| a.kind.repository())
                                == Some(repository)
                        })
                        && (!failed_only || self.failed(flow))
                        && (search.is_empty()
                            || texts
                                .get(*position)
                                .is_some_and(|text| text.contains(&search)))
                })
                .map(|(position, _)| position),
        );
        let target = if was_last {
            rows.len().saturating_sub(1)
        } else if selected < kept {
            selected
        } else {
            selected_id
                .and_then(|id| rows.iter().position(|&p| self.flows[p].id == id))
                .unwrap_or(0)
        };
        self.flow_list.rows = rows;
        let len = self.flow_list.rows.len();
        self.flow_list.cursor.select(target, len);
    }

    /// What a search looks at in a flow, lowercased: method, URL, status,
    /// kind, the decoder's summary and the error.
    fn search_text_of(&self, flow: &Flow) -> String {
        let analysis = self.flow_analysis(flow.id);
        let mut text = format!("{} {}", flow.method(), flow.url());
        if let Some(status) = flow.status() {
            text.push_str(&format!(" {status}"));
        }
        if let Some(analysis) = analysis {
            text.push(' ');
            text.push_str(analysis.kind.label());
            text.push(' ');
            text.push_str(&analysis.summary);
        }
        if let Some(error) = &flow.error {
            text.push(' ');
            text.push_str(&error.message);
        }
        text.to_lowercase()
    }
}

/// Where a flow id sits in a list. Ids grow in the order requests start, so
/// a list in start order is nearly always in id order too and needs no map
/// (building one for 100,000 flows costs more than searching).
#[derive(Debug)]
pub(super) enum IdIndex {
    Ascending,
    Map(HashMap<u64, usize>),
}

impl IdIndex {
    pub(super) fn of(ids: impl Iterator<Item = u64> + Clone) -> IdIndex {
        if ids.clone().is_sorted() {
            IdIndex::Ascending
        } else {
            IdIndex::Map(
                ids.enumerate()
                    .map(|(position, id)| (id, position))
                    .collect(),
            )
        }
    }

    pub(super) fn find<T>(&self, id: u64, items: &[T], id_of: impl Fn(&T) -> u64) -> Option<usize> {
        match self {
            IdIndex::Ascending => items.binary_search_by_key(&id, id_of).ok(),
            IdIndex::Map(positions) => positions.get(&id).copied(),
        }
    }
}

/// Flows by `(request_start, id)`, each behind an `Arc`: the decoder takes
/// them without copying, and sorting moves pointers, not flows. Captures
/// are written as flows finish, so they are nearly in start order, which
/// the (stable) sort finds at once.
pub(super) fn time_ordered(flows: Vec<Flow>) -> Vec<Arc<Flow>> {
    let mut flows: Vec<Arc<Flow>> = flows.into_iter().map(Arc::new).collect();
    flows.sort_by_key(|flow| (flow.timing.request_start, flow.id));
    flows
}
