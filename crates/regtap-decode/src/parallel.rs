//! Linking passes that treat each flow (or group) alone, split among
//! threads on big captures. What they produce does not depend on the split:
//! each item is computed from shared, read-only state, and results stay in
//! item order.

/// Below this many items a pass stays on the calling thread. Starting a
/// thread costs tens of microseconds; describing an operation about 10,
/// summarising a flow about 1.5.
const SPLIT_FROM: usize = 512;

/// Calls `f` on every item, on up to `threads` threads.
pub(crate) fn for_each_mut<T: Send>(items: &mut [T], threads: usize, f: impl Fn(&mut T) + Sync) {
    let threads = threads.clamp(1, items.len().div_ceil(SPLIT_FROM).max(1));
    if threads == 1 {
        items.iter_mut().for_each(f);
        return;
    }
    let share = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        for part in items.chunks_mut(share) {
            scope.spawn(move || part.iter_mut().for_each(f));
        }
    });
}

/// `f(index, item)` of every item, in order, on up to `threads` threads.
pub(crate) fn map<T: Send, U: Send>(
    items: Vec<T>,
    threads: usize,
    f: impl Fn(usize, T) -> U + Sync,
) -> Vec<U> {
    let threads = threads.clamp(1, items.len().div_ceil(SPLIT_FROM).max(1));
    if threads == 1 {
        return items
            .into_iter()
            .enumerate()
            .map(|(i, item)| f(i, item))
            .collect();
    }
    let share = items.len().div_ceil(threads);
    let mut parts: Vec<Vec<T>> = Vec::with_capacity(threads);
    let mut rest = items;
    while rest.len() > share {
        let tail = rest.split_off(share);
        parts.push(rest);
        rest = tail;
    }
    parts.push(rest);
    let f = &f;
    std::thread::scope(|scope| {
        let workers: Vec<_> = parts
            .into_iter()
            .enumerate()
            .map(|(n, part)| {
                scope.spawn(move || {
                    let first = n * share;
                    part.into_iter()
                        .enumerate()
                        .map(|(i, item)| f(first + i, item))
                        .collect::<Vec<U>>()
                })
            })
            .collect();
        let mut all = Vec::new();
        for worker in workers {
            match worker.join() {
                Ok(part) => all.extend(part),
                // A panic in a pass goes on to the caller, as it would
                // have on one thread.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        all
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_pass_gives_what_one_thread_gives_in_the_same_order() {
        for len in [0, 1, SPLIT_FROM - 1, SPLIT_FROM, 3 * SPLIT_FROM + 7] {
            let items: Vec<u64> = (0..len as u64).map(|i| i * 7 % 1000).collect();
            let alone = map(items.clone(), 1, |i, x| (i, x * 3));
            for threads in [2, 3, 8] {
                assert_eq!(map(items.clone(), threads, |i, x| (i, x * 3)), alone);
                let mut split = items.clone();
                for_each_mut(&mut split, threads, |x| *x += 1);
                let mut one = items.clone();
                for_each_mut(&mut one, 1, |x| *x += 1);
                assert_eq!(split, one, "{len} items on {threads} threads");
            }
        }
    }
}
