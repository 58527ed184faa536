//! regtap's brain: turns captured HTTP exchanges into registry meaning.
//!
//! Flows in, [`Analysis`] out: every flow classified and decoded (tokens,
//! `_state`, manifests, error bodies), upload sessions rebuilt, and the
//! flows grouped into the user-level operations (login, push, pull) that
//! produced them, with numbered steps. Pure: no I/O, and no input makes it
//! panic; what cannot be decoded becomes an annotation with a reason.
//!
//! ```
//! use regtap_capture::factory::FlowBuilder;
//! use regtap_decode::{Analyzer, OperationStatus, Options, analyze, render_text};
//!
//! let challenge = r#"Bearer realm="https://auth.test/token",service="registry.test""#;
//! let flows = vec![
//!     FlowBuilder::new(1, "GET", "https://registry.test/v2/")
//!         .status(401)
//!         .response_header("WWW-Authenticate", challenge)
//!         .build(),
//!     FlowBuilder::new(2, "GET", "https://registry.test/v2/")
//!         .request_header("Authorization", "Basic YWxpY2U6czNjcmV0")
//!         .status(200)
//!         .build(),
//! ];
//! let analysis = analyze(&flows, &Options::default());
//! assert_eq!(analysis.operations[0].title, "login registry.test");
//! assert_eq!(analysis.operations[0].status, OperationStatus::Succeeded);
//! assert_eq!(analysis.flow(2).unwrap().basic_user.as_deref(), Some("alice"));
//! assert!(render_text(&analysis, &flows, false).contains("1. login registry.test"));
//!
//! // Live mode: the same answer, whatever order the flows finish in.
//! let mut live = Analyzer::new(Options::default());
//! live.push(&flows[1]);
//! live.push(&flows[0]);
//! assert_eq!(live.analysis(), analysis);
//! ```

use std::sync::Arc;

use regtap_capture::Flow;

use crate::hash::HashMap;

mod auth;
mod classify;
mod client;
mod downloads;
mod errors;
mod grouping;
mod hash;
mod http;
mod link;
mod local;
mod manifest;
mod model;
mod negotiation;
mod operations;
mod pagination;
mod parallel;
mod referrers;
mod render;
mod sessions;
mod summary;
mod urls;

pub use model::*;
pub use render::render_text;

/// Decoding of pasted JWTs.
pub mod jwt;
/// Decoding of pasted `_state` values.
pub mod state;

use local::Local;

/// Analyses a whole capture at once.
pub fn analyze(flows: &[Flow], options: &Options) -> Analysis {
    let mut analyzer = Analyzer::new(options.clone());
    for flow in flows {
        analyzer.push(flow);
    }
    analyzer.finish()
}

/// Incremental analysis for live mode: push flows as they finish, in any
/// order; [`Analyzer::analysis`] is always what [`analyze`] would say about
/// the flows pushed so far. What one flow says alone (the costly part:
/// JWT, certificates, JSON bodies) is decoded once, on push.
#[derive(Debug, Clone)]
pub struct Analyzer {
    options: Options,
    /// Decoded, with room for their links: a capture read in time order
    /// is linked where it lies, not moved.
    decoded: Vec<Work>,
    memo: local::Memo,
    /// How many flows the last [`Analyzer::link`] covered.
    linked: usize,
}

impl Analyzer {
    pub fn new(options: Options) -> Self {
        Analyzer {
            options,
            decoded: Vec::new(),
            memo: local::Memo::default(),
            linked: 0,
        }
    }

    pub fn push(&mut self, flow: &Flow) {
        self.push_owned(flow.clone());
    }

    /// As [`Analyzer::push`], for a flow the caller no longer needs: what
    /// the analysis keeps of it is not copied, and the bytes no later pass
    /// reads (blob bodies) are dropped at once.
    pub fn push_owned(&mut self, flow: Flow) {
        self.push_shared(Arc::new(flow));
    }

    /// As [`Analyzer::push`], for a flow the caller keeps too (the TUI
    /// shows it): neither copied nor freed piece by piece when linked
    /// (a third of a second for 100k flows). The bytes no
    /// later pass reads stay, as the caller holds them anyway; when the
    /// caller lets go of its share, they are dropped as with
    /// [`Analyzer::push_owned`].
    pub fn push_shared(&mut self, flow: Arc<Flow>) {
        self.decoded.push(Work::new(local::decode_flow(
            flow,
            &self.options,
            &mut self.memo,
        )));
    }

    /// Number of flows pushed.
    pub fn len(&self) -> usize {
        self.decoded.len()
    }

    pub fn is_empty(&self) -> bool {
        self.decoded.is_empty()
    }

    pub fn analysis(&self) -> Analysis {
        link_all(self.decoded.clone(), 1)
    }

    /// The analysis of every flow pushed, without the copy that
    /// [`Analyzer::analysis`] makes to keep the analyzer going.
    pub fn finish(self) -> Analysis {
        self.finish_on(1)
    }

    /// As [`Analyzer::finish`], with the linking passes that treat each
    /// flow alone split among up to `threads` threads on a big capture.
    /// The analysis is the same.
    pub fn finish_on(self, threads: usize) -> Analysis {
        link_all(self.decoded, threads)
    }

    /// Takes in the flows another analyzer decoded (with the same options),
    /// so that decoding can be split among threads: the analysis does not
    /// depend on the order flows were pushed in. (Its memo of decoded
    /// tokens and User-Agents, a cache, is dropped.)
    pub fn append(&mut self, other: Analyzer) {
        if self.decoded.is_empty() {
            // Taken whole, not copied.
            self.decoded = other.decoded;
        } else {
            self.decoded.extend(other.decoded);
        }
    }

    /// As [`Analyzer::analysis`], remembering how many flows it covered for
    /// [`Analyzer::link_due`].
    pub fn link(&mut self) -> Analysis {
        self.linked = self.decoded.len();
        self.analysis()
    }

    /// Flows pushed since the last [`Analyzer::link`].
    pub fn unlinked(&self) -> usize {
        self.decoded.len().saturating_sub(self.linked)
    }

    /// Whether the flows pushed since the last [`Analyzer::link`] are as
    /// many as those it covered. Linking a live capture only when due keeps
    /// the total linking work in proportion to one link of the whole: each
    /// link covers at least twice the flows of the one before, so the links
    /// of a capture growing to N flows cover at most 2·N flows in all
    /// (linking after every flow would cover N²/2).
    pub fn link_due(&self) -> bool {
        let unlinked = self.unlinked();
        unlinked > 0 && unlinked >= self.linked
    }
}

/// Links decoded flows, taken in time order, ties broken by id (then URL):
/// the order the flows arrived in does not matter.
fn link_all(decoded: Vec<Work>, threads: usize) -> Analysis {
    // The order is found on small keys, then each flow is moved once: a
    // `Work` is hundreds of bytes, and sorting them whole moved each many
    // times and read every key through its `Arc<Flow>`.
    let mut keys: Vec<(i64, u64, usize)> = decoded
        .iter()
        .enumerate()
        .map(|(i, w)| (w.local.start(), w.local.flow.id, i))
        .collect();
    // Stable, as the sort of whole flows was: equal keys keep push order.
    keys.sort_by(|&(a_start, a_id, a), &(b_start, b_id, b)| {
        (a_start, a_id).cmp(&(b_start, b_id)).then_with(|| {
            let url = |i: usize| decoded.get(i).map(|w| w.local.flow.url());
            url(a).cmp(&url(b)).then(a.cmp(&b))
        })
    });
    let in_order = keys.iter().enumerate().all(|(p, &(_, _, i))| p == i);
    let items: Vec<Work> = if in_order {
        // Pushed in time order, as a replay or a file read on one thread.
        decoded
    } else {
        let mut slots: Vec<Option<Work>> = decoded.into_iter().map(Some).collect();
        keys.iter()
            .filter_map(|&(_, _, i)| slots.get_mut(i).and_then(Option::take))
            .collect()
        // The emptied slots, as large as the flows, are freed here, not
        // held while linking.
    };
    let mut works = Works::new(items);
    link::link(&mut works, threads)
}

/// One flow while its links to the others are being made.
#[derive(Debug, Clone)]
pub(crate) struct Work {
    pub local: Local,
    pub session: Option<usize>,
    pub operation: Option<usize>,
    pub summary: String,
    /// The program that sent the request (see [`client::resolve`]).
    pub client: Option<Client>,
    /// Index of the client (program, version and address): flows of
    /// different actors never share an operation.
    pub actor: usize,
    /// The flow whose redirect this request follows.
    pub redirected_from: Option<u64>,
}

impl Work {
    fn new(local: Local) -> Self {
        Work {
            local,
            session: None,
            operation: None,
            summary: String::new(),
            client: None,
            actor: 0,
            redirected_from: None,
        }
    }

    /// The client connection (`client_addr`), when the capture names it.
    pub fn connection(&self) -> Option<&str> {
        self.local.flow.client_addr.as_deref()
    }
}

/// The flows in time order, findable by id.
pub(crate) struct Works {
    pub items: Vec<Work>,
    /// First position of each id (handed on to the [`Analysis`]).
    pub position: HashMap<u64, usize>,
}

impl Works {
    fn new(items: Vec<Work>) -> Self {
        let mut position = HashMap::default();
        for (i, w) in items.iter().enumerate() {
            position.entry(w.local.flow.id).or_insert(i);
        }
        Works { items, position }
    }

    /// Position in `items` of the (first) flow with this id.
    pub fn index_of(&self, id: u64) -> Option<usize> {
        self.position.get(&id).copied()
    }

    pub fn get(&self, id: u64) -> Option<&Work> {
        self.position.get(&id).and_then(|&i| self.items.get(i))
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut Work> {
        let i = *self.position.get(&id)?;
        self.items.get_mut(i)
    }
}
