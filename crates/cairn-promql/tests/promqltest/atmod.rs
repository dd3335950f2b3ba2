//! The runner's @-modifier check (Go's `atModifierTestCases`): `@ <t>` is
//! added to every vector selector, matrix selector and subquery that has no
//! `@` and is not inside a subquery; the expression is printed back with
//! promql-parser's printer and must give the same result at other times.

use std::time::{Duration, SystemTime};

use promql_parser::label::{Matcher, Matchers};
use promql_parser::parser::{self, AtModifier, Expr, LabelModifier};

use crate::checks::Checks;

/// Functions whose result can change with the evaluation time even when their
/// arguments are pinned with `@` (README §1; Prometheus's
/// `AtModifierUnsafeFunctions` plus the query-context functions).
const AT_UNSAFE_FUNCTIONS: &[&str] = &[
    "days_in_month",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "end",
    "hour",
    "minute",
    "month",
    "year",
    "predict_linear",
    "range",
    "start",
    "step",
    "time",
    "timestamp",
];

pub struct AtCase {
    pub expr: String,
    pub eval_ms: i64,
}

/// The extra instant queries for an eval at `eval_ms`; empty when the
/// expression uses an @-unsafe function outside subqueries.
pub fn at_modifier_cases(expr: &str, eval_ms: i64) -> Result<Vec<AtCase>, String> {
    let mut ast = parser::parse(expr).map_err(|e| format!("promql-parser: {e}"))?;
    let at_time = u64::try_from(eval_ms)
        .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
        .map_err(|_| format!("negative evaluation time {eval_ms}"))?;
    let at = AtModifier::At(at_time);
    let mut uses_unsafe_function = false;
    add_at_modifier(&mut ast, &at, &mut uses_unsafe_function);
    if uses_unsafe_function {
        return Ok(Vec::new());
    }
    let printed = restore_byte_escapes(expr, ast.to_string());
    let times = if eval_ms == 0 {
        vec![-1000, 0, 1000]
    } else {
        vec![-10 * eval_ms, 0, eval_ms / 5, eval_ms, 10 * eval_ms]
    };
    Ok(times
        .into_iter()
        .map(|t| AtCase {
            expr: printed.clone(),
            eval_ms: t,
        })
        .collect())
}

/// promql-parser decodes a byte escape such as `\xff` to the char U+00FF,
/// where Go keeps the byte (so `"\xff"` is not valid UTF-8, and
/// `"\xc3\xa9"` is `é`); its printer then writes that char, which changes
/// the query's meaning (functions.test:523 needs `"\xff"` to stay an invalid
/// label name). Go's printer keeps the bytes, so such literals are put back
/// as the original query wrote them.
fn restore_byte_escapes(original: &str, printed: String) -> String {
    let mut restored = printed;
    for literal in quoted_literals(original) {
        if !has_high_byte_escape(literal) {
            continue;
        }
        let Ok(decoded) = promql_parser::util::unquote_string(literal) else {
            continue;
        };
        let as_printed = format!("\"{}\"", promql_parser::util::escape_string(&decoded));
        restored = restored.replacen(&as_printed, literal, 1);
    }
    restored
}

/// The `"..."` and `'...'` literals of a query, quotes included.
fn quoted_literals(query: &str) -> Vec<&str> {
    let bytes = query.as_bytes();
    let mut literals = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let quote = bytes[i];
        if quote == b'`' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'`' {
                i += 1;
            }
            i += 1;
            continue;
        }
        if quote != b'"' && quote != b'\'' {
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        while i < bytes.len() && bytes[i] != quote {
            i += if bytes[i] == b'\\' { 2 } else { 1 };
        }
        i += 1;
        if i <= bytes.len() {
            literals.push(&query[start..i]);
        }
    }
    literals
}

/// Whether a literal has a `\xNN` or `\NNN` (octal) escape of a byte >= 0x80.
fn has_high_byte_escape(literal: &str) -> bool {
    let bytes = literal.as_bytes();
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        let escape = bytes[i + 1];
        let high = match escape {
            b'x' => bytes
                .get(i + 2)
                .is_some_and(|d| matches!(d, b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F')),
            b'2' | b'3' => true,
            _ => false,
        };
        if high {
            return true;
        }
        i += 2;
    }
    false
}

fn add_at_modifier(expr: &mut Expr, at: &AtModifier, uses_unsafe_function: &mut bool) {
    match expr {
        Expr::VectorSelector(selector) => {
            if selector.at.is_none() {
                selector.at = Some(at.clone());
            }
        }
        Expr::MatrixSelector(matrix) => {
            if matrix.vs.at.is_none() {
                matrix.vs.at = Some(at.clone());
            }
        }
        Expr::Subquery(subquery) => {
            // Everything inside a subquery is left alone (the subquery's own
            // `@` pins it), including @-unsafe functions.
            if subquery.at.is_none() {
                subquery.at = Some(at.clone());
            }
        }
        Expr::Call(call) => {
            if AT_UNSAFE_FUNCTIONS.contains(&call.func.name) {
                *uses_unsafe_function = true;
            }
            for arg in call.args.args.iter_mut() {
                add_at_modifier(arg, at, uses_unsafe_function);
            }
        }
        Expr::Aggregate(aggregate) => {
            add_at_modifier(&mut aggregate.expr, at, uses_unsafe_function);
            if let Some(param) = aggregate.param.as_mut() {
                add_at_modifier(param, at, uses_unsafe_function);
            }
        }
        Expr::Binary(binary) => {
            add_at_modifier(&mut binary.lhs, at, uses_unsafe_function);
            add_at_modifier(&mut binary.rhs, at, uses_unsafe_function);
        }
        Expr::Unary(unary) => add_at_modifier(&mut unary.expr, at, uses_unsafe_function),
        Expr::Paren(paren) => add_at_modifier(&mut paren.expr, at, uses_unsafe_function),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// Whether promql-parser prints `expr` (after adding `@`) to text that parses
/// back to the same tree, up to matcher order and `by ()` (which the printer
/// normalizes); `Err` says how it differs.
pub fn check_round_trip(parsed: &Expr) -> Result<(), String> {
    let mut ast = parsed.clone();
    let at = AtModifier::At(SystemTime::UNIX_EPOCH + Duration::from_millis(600_000));
    let mut uses_unsafe_function = false;
    add_at_modifier(&mut ast, &at, &mut uses_unsafe_function);
    let printed = ast.to_string();
    match parser::parse(&printed) {
        Ok(mut reparsed) => {
            normalize(&mut ast);
            normalize(&mut reparsed);
            if reparsed == ast {
                Ok(())
            } else {
                Err(format!("{printed:?} parses to a different tree"))
            }
        }
        Err(e) => Err(format!("{printed:?} does not parse: {e}")),
    }
}

fn normalize_matchers(matchers: &mut Matchers) {
    let key = |m: &Matcher| (m.name.clone(), m.op.to_string(), m.value.clone());
    matchers.matchers.sort_by_key(key);
    for group in matchers.or_matchers.iter_mut() {
        group.sort_by_key(key);
    }
}

/// Sorts matchers and turns `by ()` into no grouping.
fn normalize(expr: &mut Expr) {
    match expr {
        Expr::VectorSelector(selector) => normalize_matchers(&mut selector.matchers),
        Expr::MatrixSelector(matrix) => normalize_matchers(&mut matrix.vs.matchers),
        Expr::Subquery(subquery) => normalize(&mut subquery.expr),
        Expr::Call(call) => call.args.args.iter_mut().for_each(|arg| normalize(arg)),
        Expr::Aggregate(aggregate) => {
            if matches!(&aggregate.modifier, Some(LabelModifier::Include(labels)) if labels.labels.is_empty())
            {
                aggregate.modifier = None;
            }
            normalize(&mut aggregate.expr);
            if let Some(param) = aggregate.param.as_mut() {
                normalize(param);
            }
        }
        Expr::Binary(binary) => {
            normalize(&mut binary.lhs);
            normalize(&mut binary.rhs);
        }
        Expr::Unary(unary) => normalize(&mut unary.expr),
        Expr::Paren(paren) => normalize(&mut paren.expr),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

pub fn self_checks(checks: &mut Checks) {
    let cases = |expr: &str, t: i64| {
        at_modifier_cases(expr, t)
            .map(|cases| {
                cases
                    .into_iter()
                    .map(|c| (c.expr, c.eval_ms))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let got = cases("sum(rate(x[5m])) + y", 600_000);
    checks.eq(
        "@ check times",
        got.iter().map(|c| c.1).collect::<Vec<_>>(),
        vec![-6_000_000, 0, 120_000, 600_000, 6_000_000],
    );
    checks.ok(
        "@ added to selectors",
        got.first()
            .is_some_and(|c| c.0.matches("@ 600.000").count() == 2),
        || format!("{got:?}"),
    );
    let zero = cases("x", 0);
    checks.eq(
        "@ check times at 0",
        zero.iter().map(|c| c.1).collect::<Vec<_>>(),
        vec![-1000, 0, 1000],
    );
    checks.ok(
        "time() is @-unsafe",
        cases("x + time()", 60_000).is_empty(),
        || "not skipped".into(),
    );
    checks.ok(
        "time() inside a subquery is not looked at",
        !cases("max_over_time((x + time())[5m:1m])", 60_000).is_empty(),
        || "skipped".into(),
    );
    let escaped = cases(r#"label_replace(x, "\xff", "", "src", "(.*)")"#, 60_000);
    checks.ok(
        "byte escapes are printed as written",
        escaped.first().is_some_and(|c| c.0.contains(r#""\xff""#)),
        || format!("{escaped:?}"),
    );
    let pinned = cases("x @ 100 + y", 60_000);
    checks.ok(
        "an existing @ is kept",
        pinned
            .first()
            .is_some_and(|c| c.0.contains("@ 100.000") && c.0.contains("@ 60.000")),
        || format!("{pinned:?}"),
    );
}
