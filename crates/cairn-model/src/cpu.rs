//! Splitting one read's per-series work across threads, and the CPU time
//! those helper threads spend, handed to the thread they worked for (usage
//! accounting adds it to that thread's own [`thread_cpu_time`]). Used by
//! the PromQL engine (per-series evaluation) and by storage (decoding the
//! chunks of a large selection).

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::Duration;

/// At most this many threads work on one read, so one query cannot take a
/// machine.
const MAX_THREADS: usize = 4;

/// Threads one read may use: the machine's cores, at most [`MAX_THREADS`].
pub fn available_threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(MAX_THREADS)
    })
}

thread_local! {
    /// CPU time helper threads spent for work run on this thread, not yet
    /// taken by [`take_worker_cpu_time`].
    static WORKER_CPU: Cell<Duration> = const { Cell::new(Duration::ZERO) };
}

/// CPU time used by the calling thread (`CLOCK_THREAD_CPUTIME_ID`).
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the call only writes it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// The CPU time helper threads spent on behalf of this thread since the
/// previous call.
pub fn take_worker_cpu_time() -> Duration {
    WORKER_CPU.with(|c| c.replace(Duration::ZERO))
}

/// Adds CPU time that helper threads spent for work run on this thread (for
/// helpers not started by [`split_map`]); [`take_worker_cpu_time`] takes it.
pub fn add_worker_cpu_time(used: Duration) {
    WORKER_CPU.with(|c| c.set(c.get() + used));
}

/// Applies `f` to `threads` contiguous chunks of `items` on scoped threads
/// and returns the results in order (one per chunk); with one thread (or
/// one item) `f` runs on the calling thread. The helpers' CPU time (their
/// own helpers' included) is added to the calling thread's
/// [`take_worker_cpu_time`]. A panicking helper yields `None` in its slot.
pub fn split_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&[T]) -> R + Sync,
) -> Vec<Option<R>> {
    let threads = threads.min(items.len()).max(1);
    if threads == 1 {
        return vec![Some(f(items))];
    }
    let chunk = items.len().div_ceil(threads);
    let (out, worker_cpu) = std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|c| {
                let f = &f;
                scope.spawn(move || {
                    let started = thread_cpu_time();
                    let result = f(c);
                    let used = thread_cpu_time().saturating_sub(started) + take_worker_cpu_time();
                    (result, used)
                })
            })
            .collect();
        let mut out = Vec::with_capacity(handles.len());
        let mut worker_cpu = Duration::ZERO;
        for h in handles {
            match h.join() {
                Ok((result, used)) => {
                    worker_cpu += used;
                    out.push(Some(result));
                }
                Err(_) => out.push(None),
            }
        }
        (out, worker_cpu)
    });
    WORKER_CPU.with(|c| c.set(c.get() + worker_cpu));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_hands_over_helper_cpu() {
        take_worker_cpu_time();
        let items: Vec<u64> = (0..1000).collect();
        let parts = split_map(&items, 4, |c| {
            let mut x = 0u64;
            for i in 0..2_000_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            std::hint::black_box(x);
            c.iter().map(|v| v * 2).collect::<Vec<_>>()
        });
        assert_eq!(parts.len(), 4);
        let flat: Vec<u64> = parts.into_iter().flat_map(|p| p.unwrap()).collect();
        assert_eq!(flat, items.iter().map(|v| v * 2).collect::<Vec<_>>());
        assert!(take_worker_cpu_time() > Duration::ZERO);
        assert_eq!(take_worker_cpu_time(), Duration::ZERO);
        // One thread: no helper, nothing handed over.
        let single = split_map(&items, 1, |c| c.len());
        assert_eq!(single, vec![Some(1000)]);
        assert_eq!(take_worker_cpu_time(), Duration::ZERO);
    }
}
