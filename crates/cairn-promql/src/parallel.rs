//! Splitting per-series work across threads for large queries, and
//! freeing large intermediate values off the query's thread.
//!
//! Only work that is independent per series is split (range-vector
//! functions, instant selectors); results keep the input order. Small
//! queries stay on the calling thread, so the common case pays nothing.

use cairn_model::SeriesSet;

use crate::QueryError;

pub use cairn_model::cpu::{take_worker_cpu_time, thread_cpu_time};

/// Below this many sample-steps a query runs on one thread.
const MIN_PARALLEL_WORK: usize = 2_000_000;

fn available() -> usize {
    cairn_model::cpu::available_threads()
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
    let mut out = Vec::with_capacity(items.len());
    let mut first_err = None;
    for part in cairn_model::cpu::split_map(items, threads, f) {
        match part {
            Some(Ok(part)) => out.extend(part),
            Some(Err(e)) => {
                first_err.get_or_insert(e);
            }
            None => {
                first_err.get_or_insert(QueryError::Execution(
                    "internal error in an evaluation worker".into(),
                ));
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Counts the samples a reader decodes from storage and adds them to the
/// query's loaded samples when dropped (an error part-way included).
pub(crate) struct Loaded<'e, 'a> {
    ev: &'e crate::eval::Evaluator<'a>,
    n: usize,
}

impl<'e, 'a> Loaded<'e, 'a> {
    pub fn new(ev: &'e crate::eval::Evaluator<'a>) -> Self {
        Loaded { ev, n: 0 }
    }

    pub fn add(&mut self, n: usize) {
        self.n = self.n.saturating_add(n);
    }
}

impl Drop for Loaded<'_, '_> {
    fn drop(&mut self) {
        self.ev.sh.loaded(self.n);
    }
}

/// Maps every series of `set` through `f` in order, split across threads
/// ([`map_chunks`]) when decoding plus `nsteps` per series is large. Each
/// thread decodes one series at a time into a buffer it reuses, so the
/// selection is never held decoded at once; decoded samples count as the
/// query's loaded samples.
pub(crate) fn map_decoded<R: Send>(
    ev: &crate::eval::Evaluator,
    set: &(impl SeriesSet + ?Sized),
    f: impl Fn(&mut Vec<cairn_model::Sample>) -> Result<R, QueryError> + Sync,
) -> Result<Vec<R>, QueryError> {
    let work = set
        .decode_cost()
        .saturating_add(set.len().saturating_mul(ev.nsteps));
    let index: Vec<usize> = (0..set.len()).collect();
    map_chunks(&index, work, |chunk| {
        let mut out = Vec::with_capacity(chunk.len());
        let mut samples = Vec::new();
        let mut loaded = Loaded::new(ev);
        for &i in chunk {
            ev.sh.check()?;
            samples.clear();
            set.append_samples(i, &mut samples);
            loaded.add(samples.len());
            out.push(f(&mut samples)?);
        }
        Ok(out)
    })
}

/// Below this decoding cost (samples, [`SeriesSet::decode_cost`]) a set is
/// decoded on the calling thread.
const MIN_PARALLEL_DECODE: usize = 500_000;

/// Series in one batch of [`for_each_series`].
const DECODE_BATCH: usize = 1_024;

/// Decoded batches each helper of [`for_each_series`] has in flight (one
/// being decoded, one waiting or being read).
const BATCHES_IN_FLIGHT: usize = 2;

/// One batch: series `first..` decoded back to back into `flat`, series
/// `first + j` ending at `ends[j]`.
#[derive(Default)]
struct DecodedBatch {
    first: usize,
    flat: Vec<cairn_model::Sample>,
    ends: Vec<usize>,
}

/// Calls `f(i, samples)` for every series `i` of `set` in order, with its
/// samples. A large set is decoded by helper threads, batch `b` by helper
/// `b % helpers`, each into [`BATCHES_IN_FLIGHT`] buffers it reuses, while
/// `f` runs on the calling thread over the batches already decoded; so a
/// consumer that folds series in order (a fused aggregation) holds a few
/// batches decoded, never the whole selection, and decoding overlaps with
/// it. The helpers' CPU time is handed to the calling thread (as
/// [`cairn_model::cpu::split_map`] does).
pub(crate) fn for_each_series(
    ev: &crate::eval::Evaluator,
    set: &dyn SeriesSet,
    mut f: impl FnMut(usize, &[cairn_model::Sample]) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    use std::sync::mpsc::sync_channel;
    let n = set.len();
    let mut loaded = Loaded::new(ev);
    let batches = n.div_ceil(DECODE_BATCH);
    let helpers = if set.decode_cost() < MIN_PARALLEL_DECODE {
        0
    } else {
        available().min(batches)
    };
    if helpers <= 1 {
        let mut samples = Vec::new();
        for i in 0..n {
            samples.clear();
            set.append_samples(i, &mut samples);
            loaded.add(samples.len());
            f(i, &samples)?;
        }
        return Ok(());
    }
    let (result, used) = std::thread::scope(|scope| {
        let mut lanes = Vec::with_capacity(helpers);
        for helper in 0..helpers {
            let (full_tx, full_rx) = sync_channel::<DecodedBatch>(BATCHES_IN_FLIGHT);
            let (empty_tx, empty_rx) = sync_channel::<DecodedBatch>(BATCHES_IN_FLIGHT);
            for _ in 0..BATCHES_IN_FLIGHT {
                let _ = empty_tx.send(DecodedBatch::default());
            }
            let handle = scope.spawn(move || {
                let started = cairn_model::cpu::thread_cpu_time();
                for b in (helper..batches).step_by(helpers) {
                    // The reader stopped (an error): so does the helper.
                    let Ok(mut batch) = empty_rx.recv() else {
                        break;
                    };
                    batch.first = b * DECODE_BATCH;
                    batch.flat.clear();
                    batch.ends.clear();
                    for i in batch.first..(batch.first + DECODE_BATCH).min(n) {
                        set.append_samples(i, &mut batch.flat);
                        batch.ends.push(batch.flat.len());
                    }
                    if full_tx.send(batch).is_err() {
                        break;
                    }
                }
                cairn_model::cpu::thread_cpu_time().saturating_sub(started)
                    + cairn_model::cpu::take_worker_cpu_time()
            });
            lanes.push((full_rx, empty_tx, handle));
        }
        let mut result = Ok(());
        'batches: for b in 0..batches {
            let (full_rx, empty_tx, _) = &lanes[b % helpers];
            // A helper only hangs up early when it panicked.
            let Ok(batch) = full_rx.recv() else {
                result = Err(worker_failed());
                break;
            };
            let mut start = 0;
            for (j, &end) in batch.ends.iter().enumerate() {
                let samples = &batch.flat[start..end];
                loaded.add(samples.len());
                if let Err(e) = f(batch.first + j, samples) {
                    result = Err(e);
                    break 'batches;
                }
                start = end;
            }
            let _ = empty_tx.send(batch);
        }
        let mut used = std::time::Duration::ZERO;
        for (full_rx, empty_tx, handle) in lanes {
            // Hanging up stops a helper that is still decoding.
            drop((full_rx, empty_tx));
            match handle.join() {
                Ok(cpu) => used += cpu,
                Err(_) => {
                    if result.is_ok() {
                        result = Err(worker_failed());
                    }
                }
            }
        }
        (result, used)
    });
    cairn_model::cpu::add_worker_cpu_time(used);
    result
}

fn worker_failed() -> QueryError {
    QueryError::Execution("internal error in a decoding worker".into())
}

/// Values waiting for the drop thread at most (one more is being freed);
/// beyond, they are dropped where they are, so at most three query
/// values' memory is held this way.
const DEFERRED_DROPS: usize = 2;

/// Drops `value` on a background thread when it holds many allocations
/// (`allocations` estimates how many), so that freeing a storage answer or
/// an operator's input (tens of thousands of label strings and sample
/// vectors) overlaps with the rest of the query instead of adding to its
/// latency, as Go's concurrent collector does for Prometheus. Small values,
/// and any value while the thread is behind, are dropped right here.
pub(crate) fn defer_drop<T: Send + 'static>(value: T, allocations: usize) {
    use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
    use std::sync::OnceLock;
    type Garbage = Box<dyn Send>;
    static DROPPER: OnceLock<Option<SyncSender<Garbage>>> = OnceLock::new();
    if allocations < 1_000 {
        return;
    }
    let dropper = DROPPER.get_or_init(|| {
        let (tx, rx) = sync_channel::<Garbage>(DEFERRED_DROPS);
        std::thread::Builder::new()
            .name("cairn-query-free".into())
            .spawn(move || {
                for garbage in rx {
                    drop(garbage);
                }
            })
            .ok()
            .map(|_| tx)
    });
    let Some(sender) = dropper else {
        return;
    };
    match sender.try_send(Box::new(value)) {
        Ok(()) => {}
        Err(TrySendError::Full(value) | TrySendError::Disconnected(value)) => drop(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn deferred_drops_happen() {
        struct Flag(std::sync::Arc<std::sync::atomic::AtomicUsize>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let dropped = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for allocations in [0, 1_000_000, 1_000_000, 1_000_000] {
            defer_drop(Flag(std::sync::Arc::clone(&dropped)), allocations);
        }
        // The small one at once; the others within a bounded wait.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while dropped.load(std::sync::atomic::Ordering::SeqCst) < 4 {
            assert!(std::time::Instant::now() < deadline, "values never dropped");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

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
