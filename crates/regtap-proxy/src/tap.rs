//! What is kept of one body while it streams: its size, its SHA-256, its first
//! bytes, and optionally a copy in the body store.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use regtap_capture::{Body, Data, Elsewhere, Ending, Kept, TruncationReason};
use sha2::{Digest as _, Sha256};

/// How many bytes of a body larger than `--max-inline` are kept: enough to
/// recognise a format (gzip, tar, JSON) without copying layers into the capture.
pub(crate) const TRUNCATED_PREFIX: usize = 4096;

/// The memory all inline bodies of a proxy may hold at once (`--inline-budget`).
/// A body that would go beyond it keeps its size, hash and prefix, and says why.
#[derive(Debug)]
pub(crate) struct InlineBudget {
    limit: usize,
    used: AtomicUsize,
}

impl InlineBudget {
    pub(crate) fn new(limit: usize) -> Self {
        InlineBudget {
            limit,
            used: AtomicUsize::new(0),
        }
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Takes `bytes` from the budget, or nothing when they do not fit.
    fn take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// The content-addressed body store of `--store-bodies DIR`: finished bodies
/// live at `DIR/sha256/<hex>`; bodies being written at `DIR/tmp/…`. Bodies
/// hold credentials (`POST /token` forms), so the store is private: its
/// directories are 0700 and its files 0600, like the capture.
#[derive(Debug, Clone)]
pub(crate) struct BodyStore {
    root: PathBuf,
}

impl BodyStore {
    pub(crate) fn open(root: &Path) -> io::Result<Self> {
        let mut private = fs::DirBuilder::new();
        private.recursive(true).mode(0o700);
        private.create(root)?;
        for dir in [root.join("sha256"), root.join("tmp")] {
            private.create(&dir)?;
            // A store made by an older regtap (0755) is closed too.
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
        }
        Ok(BodyStore {
            root: root.to_owned(),
        })
    }
}

/// A body on its way into the store: created exclusively (`O_EXCL`, never
/// through a symlink) under an unpredictable name, mode 0600; deleted when
/// dropped unless kept.
struct StoreFile {
    tmp_path: tempfile::TempPath,
    out: BufWriter<File>,
}

/// Everything learnt about one body so far.
pub(crate) struct BodyTap {
    size: u64,
    hasher: Sha256,
    max_inline: usize,
    kept: Vec<u8>,
    /// Why only a prefix is kept, once that is decided.
    truncated: Option<TruncationReason>,
    budget: Option<Arc<InlineBudget>>,
    /// Bytes of `kept` taken from `budget`.
    reserved: usize,
    store: Option<BodyStore>,
    /// Start of the temporary name in the store (the rest is random).
    store_name: String,
    file: Option<StoreFile>,
}

impl BodyTap {
    pub(crate) fn new(
        max_inline: usize,
        budget: Option<Arc<InlineBudget>>,
        store: Option<BodyStore>,
        store_name: String,
    ) -> Self {
        BodyTap {
            size: 0,
            hasher: Sha256::new(),
            max_inline,
            kept: Vec::new(),
            truncated: None,
            budget,
            reserved: 0,
            store,
            store_name,
            file: None,
        }
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn push(&mut self, data: &[u8]) {
        self.size += data.len() as u64;
        self.hasher.update(data);
        self.keep(data);
        self.store(data);
    }

    fn keep(&mut self, data: &[u8]) {
        let prefix_len = self.max_inline.min(TRUNCATED_PREFIX);
        if self.truncated.is_none() {
            let fits = self.kept.len() + data.len() <= self.max_inline;
            if fits && self.reserve(data.len()) {
                self.kept.extend_from_slice(data);
                return;
            }
            self.truncated = Some(match &self.budget {
                Some(budget) if fits => TruncationReason::InlineBudget {
                    limit: budget.limit() as u64,
                },
                _ => TruncationReason::SizeLimit,
            });
            self.kept.truncate(prefix_len);
            self.kept.shrink_to_fit();
            self.release();
        }
        if self.kept.len() < prefix_len {
            let take = (prefix_len - self.kept.len()).min(data.len());
            self.kept.extend_from_slice(&data[..take]);
        }
    }

    /// Takes `bytes` more from the shared budget beyond the prefix every body
    /// may keep anyway.
    fn reserve(&mut self, bytes: usize) -> bool {
        let Some(budget) = &self.budget else {
            return true;
        };
        let wanted = (self.kept.len() + bytes).saturating_sub(TRUNCATED_PREFIX);
        let extra = wanted.saturating_sub(self.reserved);
        if extra == 0 || budget.take(extra) {
            self.reserved += extra;
            true
        } else {
            false
        }
    }

    fn release(&mut self) {
        if let Some(budget) = &self.budget {
            budget.give_back(std::mem::take(&mut self.reserved));
        }
    }

    fn store(&mut self, data: &[u8]) {
        if self.file.is_none() {
            let Some(store) = self.store.take() else {
                return;
            };
            let tmp_dir = store.root.join("tmp");
            match tempfile::Builder::new()
                .prefix(&format!("{}-", self.store_name))
                .permissions(fs::Permissions::from_mode(0o600))
                .tempfile_in(&tmp_dir)
            {
                Ok(file) => {
                    let (file, tmp_path) = file.into_parts();
                    self.file = Some(StoreFile {
                        tmp_path,
                        out: BufWriter::with_capacity(256 * 1024, file),
                    });
                    self.store = Some(store);
                }
                Err(e) => {
                    tracing::warn!(
                        "body store: cannot create a file in {}: {e}",
                        tmp_dir.display()
                    );
                    return;
                }
            }
        }
        if let Some(file) = &mut self.file
            && let Err(e) = file.out.write_all(data)
        {
            tracing::warn!("body store: cannot write {}: {e}", file.tmp_path.display());
            // Dropping the file deletes it.
            self.file = None;
            self.store = None;
        }
    }

    /// The body as recorded, and its hold on the inline budget (to be dropped
    /// once the flow is written). `complete` is false when it was cut off; a
    /// cut-off body is not kept in the store (it would sit under a hash nobody
    /// asked for).
    pub(crate) fn finish(mut self, complete: bool) -> (Body, InlineHold) {
        let hold = InlineHold {
            budget: self.budget.clone(),
            bytes: std::mem::take(&mut self.reserved),
        };
        let sha256 = hex::encode(std::mem::take(&mut self.hasher).finalize());
        let stored = match (self.file.take(), self.store.take()) {
            (Some(file), Some(store)) => finish_store_file(file, &store, &sha256, complete),
            _ => None,
        };
        let kept = match self.truncated.take() {
            None => Kept::Inline(Data::from_bytes(&self.kept)),
            Some(reason) => Kept::Prefix {
                data: (!self.kept.is_empty()).then(|| prefix_data(&self.kept)),
                reason,
            },
        };
        let body = Body {
            size: self.size,
            sha256: Some(sha256),
            kept,
            elsewhere: stored.map(Elsewhere::BodyStore),
            ended: if complete {
                Ending::Complete
            } else {
                Ending::CutOff
            },
        };
        (body, hold)
    }
}

/// The inline bytes of a finished body, still counted against the budget
/// while its flow waits to be written; given back when dropped.
pub(crate) struct InlineHold {
    budget: Option<Arc<InlineBudget>>,
    bytes: usize,
}

impl Drop for InlineHold {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.give_back(self.bytes);
        }
    }
}

impl Drop for BodyTap {
    fn drop(&mut self) {
        self.release();
    }
}

fn finish_store_file(
    file: StoreFile,
    store: &BodyStore,
    sha256: &str,
    complete: bool,
) -> Option<String> {
    let StoreFile { tmp_path, out } = file;
    let flushed = out.into_inner().map_err(|e| e.into_error());
    let result = match flushed {
        Ok(_) if !complete => Err(None),
        Ok(_) => {
            let relative = format!("sha256/{sha256}");
            tmp_path
                .persist(store.root.join(&relative))
                .map(|()| relative)
                .map_err(|e| Some(e.error))
        }
        Err(e) => Err(Some(e)),
    };
    match result {
        Ok(relative) => Some(relative),
        Err(error) => {
            // The temporary file was deleted when its path was dropped.
            if let Some(e) = error {
                tracing::warn!(
                    "body store: cannot keep a body in {}: {e}",
                    store.root.display()
                );
            }
            None
        }
    }
}

/// A prefix as text when it is UTF-8 up to a character cut in half at its end.
fn prefix_data(prefix: &[u8]) -> Data {
    match std::str::from_utf8(prefix) {
        Err(e) if e.error_len().is_none() => Data::from_bytes(&prefix[..e.valid_up_to()]),
        _ => Data::from_bytes(prefix),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tap(max_inline: usize) -> BodyTap {
        BodyTap::new(max_inline, None, None, "t".to_owned())
    }

    #[test]
    fn a_body_beyond_the_shared_budget_keeps_a_prefix_and_says_why() {
        let budget = Arc::new(InlineBudget::new(TRUNCATED_PREFIX));
        let body: Vec<u8> = (0..TRUNCATED_PREFIX * 2).map(|i| (i % 7) as u8).collect();
        let mut first = BodyTap::new(1 << 20, Some(Arc::clone(&budget)), None, "a".into());
        first.push(&body);
        let mut second = BodyTap::new(1 << 20, Some(Arc::clone(&budget)), None, "b".into());
        second.push(&body);
        let (second, _) = second.finish(true);
        assert_eq!(
            second.truncation(),
            Some(&TruncationReason::InlineBudget {
                limit: TRUNCATED_PREFIX as u64
            }),
        );
        assert!(
            second
                .truncation()
                .and_then(TruncationReason::sentence)
                .unwrap()
                .contains("--inline-budget"),
            "{second:?}"
        );
        assert_eq!(second.size, body.len() as u64);
        assert_eq!(second.sha256, Some(regtap_capture::sha256_hex(&body)));
        let (first, hold) = first.finish(true);
        assert_eq!(first.full_bytes(), Some(body.clone()));
        // The first body's memory is held until its flow is written.
        let mut third = BodyTap::new(1 << 20, Some(Arc::clone(&budget)), None, "c".into());
        third.push(&body);
        assert!(third.finish(true).0.truncation().is_some());
        drop(hold);
        let mut fourth = BodyTap::new(1 << 20, Some(budget), None, "d".into());
        fourth.push(&body);
        assert_eq!(fourth.finish(true).0.full_bytes(), Some(body));
    }

    #[test]
    fn small_body_is_kept_whole() {
        let mut t = tap(16);
        t.push(b"{\"a\":");
        t.push(b"1}");
        let body = t.finish(true).0;
        assert_eq!(body, Body::from_bytes(b"{\"a\":1}"));
    }

    #[test]
    fn large_body_keeps_a_prefix_and_the_hash_of_everything() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let mut t = tap(10_000);
        for chunk in data.chunks(3000) {
            t.push(chunk);
        }
        let body = t.finish(true).0;
        assert_eq!(body.size, 20_000);
        assert_eq!(body.sha256, Some(regtap_capture::sha256_hex(&data)));
        assert_eq!(body.truncation(), Some(&TruncationReason::SizeLimit));
        let prefix = body.inline().and_then(Data::to_bytes).unwrap();
        assert_eq!(prefix, data[..TRUNCATED_PREFIX]);
    }

    #[test]
    fn body_exactly_at_the_limit_is_inline() {
        let mut t = tap(4);
        t.push(b"abcd");
        let body = t.finish(true).0;
        assert_eq!(body.truncation(), None);
        assert_eq!(body.full_bytes(), Some(b"abcd".to_vec()));
    }

    #[test]
    fn zero_max_inline_keeps_nothing() {
        let mut t = tap(0);
        t.push(b"abc");
        let body = t.finish(false).0;
        assert_eq!(
            body.kept,
            Kept::Prefix {
                data: None,
                reason: TruncationReason::SizeLimit
            }
        );
        assert!(body.is_cut_off());
        assert_eq!(body.size, 3);
    }

    #[test]
    fn text_prefix_is_not_cut_inside_a_character() {
        assert_eq!(
            prefix_data("aé".as_bytes()[..2].as_ref()),
            Data::Text("a".to_owned())
        );
    }

    #[test]
    fn store_temporary_files_are_fresh_and_never_follow_a_planted_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let store = BodyStore::open(dir.path()).unwrap();
        // Someone who guessed the old fixed name plants a symlink there.
        let victim = dir.path().join("victim");
        fs::write(&victim, b"keep me").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("tmp/1-req")).unwrap();
        let mut t = BodyTap::new(2, None, Some(store), "1-req".to_owned());
        t.push(b"secret body");
        let (body, _hold) = t.finish(true);
        assert!(body.stored().is_some());
        assert_eq!(fs::read(&victim).unwrap(), b"keep me");
    }

    #[test]
    fn store_keeps_complete_bodies_under_their_hash_and_drops_cut_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = BodyStore::open(dir.path()).unwrap();
        let mut t = BodyTap::new(2, None, Some(store.clone()), "1-req".to_owned());
        t.push(b"hello ");
        t.push(b"world");
        let body = t.finish(true).0;
        let stored = body.stored().unwrap().to_owned();
        assert_eq!(
            stored,
            format!("sha256/{}", regtap_capture::sha256_hex(b"hello world"))
        );
        assert_eq!(fs::read(dir.path().join(&stored)).unwrap(), b"hello world");
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join(&stored)), 0o600);
        assert_eq!(mode(&dir.path().join("sha256")), 0o700);
        assert_eq!(mode(&dir.path().join("tmp")), 0o700);

        let mut cut = BodyTap::new(2, None, Some(store), "2-req".to_owned());
        cut.push(b"partial");
        let body = cut.finish(false).0;
        assert_eq!(body.stored(), None);
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);

        // A store created 0755 by an older regtap is closed when reopened.
        fs::set_permissions(dir.path().join("sha256"), fs::Permissions::from_mode(0o755)).unwrap();
        BodyStore::open(dir.path()).unwrap();
        assert_eq!(mode(&dir.path().join("sha256")), 0o700);
    }
}
