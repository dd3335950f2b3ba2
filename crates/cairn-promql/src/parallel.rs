//! Splitting per-series work across threads for large queries.
//!
//! Only work that is independent per series is split (range-vector
//! functions, instant selectors); results keep the input order. Small
//! queries stay on the calling thread, so the common case pays nothing.

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::Duration;

use crate::QueryError;

/// Below this many sample-steps a query runs on one thread.
const MIN_PARALLEL_WORK: usize = 2_000_000;
/// At most this many threads per query, so one query cannot take a machine.
const MAX_THREADS: usize = 4;

fn available() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(MAX_THREADS)
    })
}

thread_local! {
    /// CPU time worker threads spent for evaluations run on this thread,
    /// not yet taken by [`take_worker_cpu_time`].
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

/// The CPU time evaluation worker threads spent on behalf of this thread
/// since the previous call (usage accounting adds it to the evaluating
/// thread's own [`thread_cpu_time`]).
pub fn take_worker_cpu_time() -> Duration {
    WORKER_CPU.with(|c| c.replace(Duration::ZERO))
}

/// Applies `f` to chunks of `items` and concatenates the results in order;
/// `work` estimates the total cost and decides whether to use threads.
pub(crate) fn map_chunks<T: Sync, R: Send>(
    items: &[T],
    work: usize,
    f: impl Fn(&[T]) -> Result<Vec<R>, QueryError> + Sync,
) -> Result<Vec<R>, QueryError> {
    let threads = if work < MIN_PARALLEL_WORK {
        1
    } else {
        available().min(items.len())
    };
    if threads <= 1 {
        return f(items);
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
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
        let mut out = Vec::new();
        let mut first_err = None;
        let mut worker_cpu = Duration::ZERO;
        for h in handles {
            match h.join() {
                Ok((Ok(part), used)) => {
                    worker_cpu += used;
                    out.extend(part);
                }
                Ok((Err(e), used)) => {
                    worker_cpu += used;
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err.get_or_insert(QueryError::Execution(
                        "internal error in an evaluation worker".into(),
                    ));
                }
            }
        }
        WORKER_CPU.with(|c| c.set(c.get() + worker_cpu));
        match first_err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_propagates_errors() {
        let items: Vec<u32> = (0..1000).collect();
        let out = map_chunks(&items, usize::MAX, |c| {
            Ok(c.iter().map(|x| x * 2).collect())
        })
        .unwrap();
        assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        let err = map_chunks(&items, usize::MAX, |c| {
            if c.contains(&999) {
                Err(QueryError::Execution("boom".into()))
            } else {
                Ok(c.to_vec())
            }
        });
        assert!(err.is_err());
    }

    #[test]
    fn worker_cpu_time_is_handed_to_the_calling_thread() {
        take_worker_cpu_time();
        let items: Vec<u64> = (0..4).collect();
        map_chunks(&items, usize::MAX, |c| {
            let mut x = 0u64;
            for i in 0..5_000_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            Ok(vec![std::hint::black_box(x) + c.len() as u64])
        })
        .unwrap();
        let taken = take_worker_cpu_time();
        if available() > 1 {
            assert!(taken > Duration::ZERO);
        } else {
            assert_eq!(taken, Duration::ZERO);
        }
        assert_eq!(take_worker_cpu_time(), Duration::ZERO);
    }
}
