//! Splitting per-series work across threads for large queries.
//!
//! Only work that is independent per series is split (range-vector
//! functions, instant selectors); results keep the input order. Small
//! queries stay on the calling thread, so the common case pays nothing.

use std::sync::OnceLock;

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
                scope.spawn(move || f(c))
            })
            .collect();
        let mut out = Vec::new();
        let mut first_err = None;
        for h in handles {
            match h.join() {
                Ok(Ok(part)) => out.extend(part),
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {
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
}
