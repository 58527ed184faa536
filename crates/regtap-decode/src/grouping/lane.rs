//! The groups of one client on one registry, in the order they were opened,
//! indexed so that looking back for a request's group visits only the
//! groups that can take it. Visiting every group of the client, as a scan
//! did, made grouping quadratic: 21.7 million groups visited for the 100k
//! flows of `bench/scale.sh`, for 14,585 groups.

use std::collections::BTreeSet;

#[derive(Debug, Default)]
pub(super) struct Lane {
    /// Group indices, in the order they were opened.
    groups: Vec<usize>,
    /// The latest end of each group's members, by position.
    ends: LatestEnds,
    /// Positions of the groups that may answer a challenge: no repository
    /// yet, or their latest request was answered 401.
    answering: BTreeSet<usize>,
}

impl Lane {
    /// Group indices, in the order they were opened.
    pub fn groups(&self) -> &[usize] {
        &self.groups
    }

    /// Adds a group that has no member yet; returns its position.
    pub fn push(&mut self, g: usize, answering: bool) -> usize {
        let position = self.groups.len();
        self.groups.push(g);
        self.ends.push(i64::MIN);
        self.set_answering(position, answering);
        position
    }

    /// A member of the group at `position` ends at `end`.
    pub fn ended(&mut self, position: usize, end: i64) {
        self.ends.raise(position, end);
    }

    pub fn set_answering(&mut self, position: usize, answering: bool) {
        if answering {
            self.answering.insert(position);
        } else {
            self.answering.remove(&position);
        }
    }

    /// The latest group for which `matches` holds: what
    /// `groups().iter().rev().find(matches)` finds, provided `matches`
    /// holds only for groups with a member ending at or after `since`, or
    /// (when `answers`) for groups that may answer a challenge. No other
    /// group is visited.
    pub fn latest(
        &self,
        since: i64,
        answers: bool,
        mut matches: impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        let mut before = self.groups.len();
        loop {
            let busy = self.ends.latest_before(before, since);
            let answering = answers
                .then(|| self.answering.range(..before).next_back().copied())
                .flatten();
            // `None` orders before any position.
            let position = busy.max(answering)?;
            let g = self.groups.get(position).copied()?;
            if matches(g) {
                return Some(g);
            }
            before = position;
        }
    }
}

/// A max segment tree of the groups' ends: the latest position before a
/// bound whose end is at least a time, in logarithmic time.
#[derive(Debug, Default)]
struct LatestEnds {
    /// Node `n` holds the largest end under it; its children are `2n` and
    /// `2n + 1`, and the leaves (positions) start at `leaves`.
    tree: Vec<i64>,
    leaves: usize,
    len: usize,
}

impl LatestEnds {
    fn push(&mut self, end: i64) {
        if self.len == self.leaves {
            let leaves = (self.leaves * 2).max(16);
            let mut tree = vec![i64::MIN; 2 * leaves];
            for position in 0..self.len {
                if let (Some(slot), Some(&old)) = (
                    tree.get_mut(leaves + position),
                    self.tree.get(self.leaves + position),
                ) {
                    *slot = old;
                }
            }
            for n in (1..leaves).rev() {
                let children = tree.get(2 * n).max(tree.get(2 * n + 1)).copied();
                if let (Some(slot), Some(max)) = (tree.get_mut(n), children) {
                    *slot = max;
                }
            }
            self.tree = tree;
            self.leaves = leaves;
        }
        self.len += 1;
        self.raise(self.len - 1, end);
    }

    /// Ends only grow: a node already at `end` or later has ancestors that
    /// are too.
    fn raise(&mut self, position: usize, end: i64) {
        let mut n = self.leaves + position;
        while let Some(slot) = self.tree.get_mut(n).filter(|_| n >= 1) {
            if *slot >= end {
                break;
            }
            *slot = end;
            n /= 2;
        }
    }

    /// The latest position before `before` whose end is at least `since`.
    fn latest_before(&self, before: usize, since: i64) -> Option<usize> {
        self.find(1, 0, self.leaves, before.min(self.len), since)
    }

    fn find(
        &self,
        node: usize,
        low: usize,
        high: usize,
        before: usize,
        since: i64,
    ) -> Option<usize> {
        if low >= before || self.tree.get(node).is_none_or(|&end| end < since) {
            return None;
        }
        if high - low == 1 {
            return Some(low);
        }
        let middle = low + (high - low) / 2;
        self.find(2 * node + 1, middle, high, before, since)
            .or_else(|| self.find(2 * node, low, middle, before, since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pseudo-random lane: groups opened, ends raised and challenges
    /// flipped in any order; every lookup must find what the scan of every
    /// group finds, for predicates that keep the contract of
    /// [`Lane::latest`].
    #[test]
    fn the_lookup_finds_what_the_scan_of_every_group_finds() {
        let mut state: u64 = 7;
        let mut next = |bound: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % bound
        };
        // Half the changes touch the latest groups, which lookups find first.
        fn anywhere_or_recent(next: &mut impl FnMut(u64) -> u64, len: usize) -> usize {
            let back = if next(2) == 0 { len } else { len.min(8) };
            len - 1 - next(back as u64) as usize
        }
        let mut lane = Lane::default();
        let mut ends: Vec<i64> = Vec::new();
        let mut answering: Vec<bool> = Vec::new();
        // Lookups whose group only its challenge allowed, and the others
        // that found one: both paths must be taken often.
        let (mut by_answering, mut by_end) = (0, 0);
        for step in 0..20_000 {
            match next(4) {
                0 => {
                    let position = lane.push(ends.len() * 10, next(3) == 0);
                    assert_eq!(position, ends.len());
                    ends.push(i64::MIN);
                    answering.push(lane.answering.contains(&position));
                }
                1 if !ends.is_empty() => {
                    let position = anywhere_or_recent(&mut next, ends.len());
                    let end = (step as i64) - next(3000) as i64;
                    lane.ended(position, end);
                    ends[position] = ends[position].max(end);
                }
                2 if !ends.is_empty() => {
                    let position = anywhere_or_recent(&mut next, ends.len());
                    answering[position] = next(2) == 0;
                    lane.set_answering(position, answering[position]);
                }
                _ => {
                    let since = step as i64 - next(100) as i64;
                    let answers = next(2) == 0;
                    // Of the groups the contract allows, some match.
                    let salt = next(5);
                    let matches = |g: usize| {
                        let position = g / 10;
                        let allowed = ends[position] >= since || (answers && answering[position]);
                        allowed && !(position as u64 + salt).is_multiple_of(5)
                    };
                    let scanned = lane.groups().iter().rev().copied().find(|&g| matches(g));
                    assert_eq!(lane.latest(since, answers, matches), scanned, "step {step}");
                    match scanned {
                        Some(g) if ends[g / 10] < since => by_answering += 1,
                        Some(_) => by_end += 1,
                        None => {}
                    }
                }
            }
        }
        assert!(
            by_answering > 200 && by_end > 200,
            "too few lookups found a group to test much: {by_answering} by challenge, {by_end} by end"
        );
    }
}
