//! A bounded cache of parsed expressions, keyed by the query text.
//!
//! Dashboards ask the same expressions again and again (every panel on
//! every refresh), and parsing is not free: the parser compiles every regex
//! matcher into a regex engine (`promql-parser` calls `Regex::new`), which
//! took most of a small query's CPU (`sum(m{instance=~"10\.0\.1\..*"})`:
//! about 0.25 ms of regex DFA construction against 0.2 ms for the rest of
//! the request). VictoriaMetrics keeps such a cache too
//! (`app/vmselect/promql/parse_cache.go`). Only successful parses are kept;
//! a full cache is emptied at once (simple and bounded: at most
//! [`MAX_ENTRIES`] queries of at most [`MAX_QUERY_LEN`] bytes each).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use promql_parser::parser::Expr;

/// Queries kept before the cache starts over.
pub const MAX_ENTRIES: usize = 1024;

/// Longer queries are parsed every time (they are rare, and keep the
/// cache's memory small: at most about 4 MiB of query text).
pub const MAX_QUERY_LEN: usize = 4096;

fn cache() -> &'static Mutex<HashMap<String, Expr>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Expr>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The cached parse of `query`, or `parse(query)` remembered when it
/// succeeds.
pub fn get_or_parse<E>(
    query: &str,
    parse: impl FnOnce(&str) -> Result<Expr, E>,
) -> Result<Expr, E> {
    if query.len() > MAX_QUERY_LEN {
        return parse(query);
    }
    if let Some(expr) = lock().get(query) {
        return Ok(expr.clone());
    }
    // Parsed outside the lock: a slow parse does not hold up other queries.
    let expr = parse(query)?;
    let mut cache = lock();
    if cache.len() >= MAX_ENTRIES {
        cache.clear();
    }
    cache.insert(query.to_owned(), expr.clone());
    Ok(expr)
}

fn lock() -> std::sync::MutexGuard<'static, HashMap<String, Expr>> {
    // A panic while holding the lock cannot leave the map inconsistent
    // (every operation on it is a single call), so a poisoned lock is used.
    cache()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_query_parses_once_and_errors_are_not_kept() {
        let query = "sum(parse_cache_test_metric{a=~\"x|y\"})";
        let mut parses = 0;
        for _ in 0..3 {
            let expr = get_or_parse(query, |q| {
                parses += 1;
                promql_parser::parser::parse(q)
            })
            .unwrap();
            assert_eq!(expr, promql_parser::parser::parse(query).unwrap());
        }
        assert_eq!(parses, 1);

        let bad = "sum(parse_cache_test_metric";
        let mut failures = 0;
        for _ in 0..2 {
            let result = get_or_parse(bad, |q| {
                failures += 1;
                promql_parser::parser::parse(q)
            });
            assert!(result.is_err());
        }
        assert_eq!(failures, 2);
    }

    #[test]
    fn long_queries_are_not_kept() {
        let query = format!("{}1", "1 + ".repeat(MAX_QUERY_LEN / 4 + 1));
        let mut parses = 0;
        for _ in 0..2 {
            get_or_parse(&query, |q| {
                parses += 1;
                promql_parser::parser::parse(q)
            })
            .unwrap();
        }
        assert_eq!(parses, 2);
    }
}
