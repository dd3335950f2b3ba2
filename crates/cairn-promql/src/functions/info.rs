//! `info(v, {data labels})`: adds labels from info metrics (by default
//! `target_info`) that share `instance` and `job` with each series, as
//! promql/info.go.

use std::collections::{BTreeMap, HashMap, HashSet};

use cairn_model::{Labels, MatchOp, Matcher, METRIC_NAME};
use promql_parser::parser::{AtModifier, Call, Expr, Offset};

use super::{arg, unparen};
use crate::eval::{offset_ms, Evaluator};
use crate::selector::{select_instant_with, selector_matchers};
use crate::value::{transpose, SeriesBuilder, Val};
use crate::QueryError;

const TARGET_INFO: &str = "target_info";
const IDENTIFYING_LABELS: [&str; 2] = ["instance", "job"];

pub(super) fn eval(ev: &Evaluator, call: &Call, name: &str) -> Result<Option<Val>, QueryError> {
    if name != "info" {
        return Ok(None);
    }
    let base_expr = arg(call, 0)?;
    let (at, offset) = select_time_and_offset(ev, base_expr)?;
    let base = ev.eval_vector(base_expr)?;

    // Data-label matchers by label name; name matchers pick info metrics.
    let mut data_matchers: BTreeMap<String, Vec<Matcher>> = BTreeMap::new();
    let mut name_matchers: Vec<Matcher> = Vec::new();
    match call.args.args.get(1).map(|a| unparen(a)) {
        Some(Expr::VectorSelector(vs)) => {
            for m in selector_matchers(vs)? {
                if m.name == METRIC_NAME {
                    name_matchers.push(m.clone());
                }
                data_matchers.entry(m.name.clone()).or_default().push(m);
            }
        }
        Some(_) => {
            return Err(QueryError::BadData(
                "expected label selector as second argument of info".into(),
            ))
        }
        None => name_matchers.push(Matcher::equal(METRIC_NAME, TARGET_INFO)),
    }
    let effective = effective_name_matchers(&name_matchers)?;
    let ignored: Vec<bool> = base
        .iter()
        .map(|s| {
            let n = s.labels.metric_name().unwrap_or("");
            effective.iter().all(|m| m.matches(n))
        })
        .collect();

    // Values of the identifying labels over the series to enrich.
    let mut id_values: BTreeMap<&str, HashSet<&str>> = BTreeMap::new();
    for (s, ign) in base.iter().zip(&ignored) {
        if *ign {
            continue;
        }
        for l in IDENTIFYING_LABELS {
            if let Some(v) = s.labels.get(l) {
                id_values.entry(l).or_default().insert(v);
            }
        }
    }
    let data_name_matchers: Vec<Matcher> =
        data_matchers.get(METRIC_NAME).cloned().unwrap_or_default();
    data_matchers.remove(METRIC_NAME);

    let mut info_series = Vec::new();
    if !id_values.is_empty() {
        let mut matchers = Vec::new();
        for (name, vals) in &id_values {
            let mut vals: Vec<&str> = vals.iter().copied().collect();
            vals.sort_unstable();
            let re = vals
                .iter()
                .map(|v| regex::escape(v))
                .collect::<Vec<_>>()
                .join("|");
            matchers.push(
                Matcher::new(MatchOp::RegexMatch, *name, re)
                    .map_err(|e| QueryError::Execution(e.to_string()))?,
            );
        }
        for ms in data_matchers.values() {
            matchers.extend(ms.iter().cloned());
        }
        matchers.extend(effective_name_matchers(&data_name_matchers)?);
        info_series = select_instant_with(ev, &matchers, offset, at)?;
    }

    // Signature of a series for one info metric name.
    let sig = |name: &str, labels: &Labels| -> String {
        let mut s = String::from(name);
        for l in IDENTIFYING_LABELS {
            if let Some(v) = labels.get(l) {
                s.push('\u{ff}');
                s.push_str(l);
                s.push('=');
                s.push_str(v);
            }
        }
        s
    };
    let mut info_names: Vec<String> = info_series
        .iter()
        .filter_map(|s| s.labels.metric_name().map(str::to_string))
        .collect();
    info_names.sort();
    info_names.dedup();
    let info_sigs: Vec<String> = info_series
        .iter()
        .map(|s| sig(s.labels.metric_name().unwrap_or(""), &s.labels))
        .collect();
    let base_sigs: Vec<Vec<(usize, String)>> = base
        .iter()
        .map(|s| {
            info_names
                .iter()
                .enumerate()
                .map(|(i, n)| (i, sig(n, &s.labels)))
                .collect()
        })
        .collect();

    // Per step: points of info series, `(step, origT)`.
    let mut info_by_step: Vec<Vec<(usize, i64)>> = vec![Vec::new(); ev.nsteps];
    for (i, s) in info_series.iter().enumerate() {
        for &(step, t, _) in &s.points {
            info_by_step[step].push((i, t));
        }
    }
    let all_match_empty = data_matchers.values().flatten().all(|m| m.matches_empty());
    let base_steps = transpose(&base, ev.nsteps);
    let mut builder = SeriesBuilder::default();
    for step in 0..ev.nsteps {
        ev.sh.check()?;
        if base_steps[step].is_empty() {
            continue;
        }
        let mut by_sig: HashMap<&str, (usize, i64)> = HashMap::new();
        for &(i, t) in &info_by_step[step] {
            let key = info_sigs[i].as_str();
            match by_sig.get(key) {
                Some(&(j, existing_t)) => {
                    if existing_t < t {
                        by_sig.insert(key, (i, t));
                    } else if existing_t == t {
                        return Err(QueryError::Execution(format!(
                            "found duplicate series for info metric: existing {} @ {}, new {} @ {}",
                            crate::value::prom_labels_string(&info_series[j].labels),
                            existing_t,
                            crate::value::prom_labels_string(&info_series[i].labels),
                            t
                        )));
                    }
                }
                None => {
                    by_sig.insert(key, (i, t));
                }
            }
        }
        for &(bi, v) in &base_steps[step] {
            let bs = &base[bi];
            if ignored[bi] {
                builder.push(&bs.labels, bs.drop_name, step, v)?;
                continue;
            }
            let mut added: Vec<(String, String)> = Vec::new();
            let mut seen_any = false;
            for (_, s) in &base_sigs[bi] {
                let Some(&(ii, _)) = by_sig.get(s.as_str()) else {
                    continue;
                };
                seen_any = true;
                for l in info_series[ii].labels.iter() {
                    if l.name == METRIC_NAME {
                        continue;
                    }
                    if !data_matchers.is_empty() && !data_matchers.contains_key(&l.name) {
                        continue;
                    }
                    if let Some((_, existing)) = added.iter().find(|(n, _)| *n == l.name) {
                        if *existing != l.value {
                            return Err(QueryError::Execution(format!(
                                "conflicting label: {}",
                                l.name
                            )));
                        }
                    }
                    if bs.labels.get(&l.name).is_some() {
                        continue;
                    }
                    if !added.iter().any(|(n, _)| *n == l.name) {
                        added.push((l.name.clone(), l.value.clone()));
                    }
                }
            }
            if !seen_any && !all_match_empty {
                continue;
            }
            let labels = if added.is_empty() {
                bs.labels.clone()
            } else {
                let mut b = bs.labels.builder();
                for (n, v) in &added {
                    b.set(n, v);
                }
                b.build()
            };
            builder.push(&labels, bs.drop_name, step, v)?;
        }
    }
    Ok(Some(Val::Vector(builder.finish())))
}

/// `effectiveInfoNameMatchers`: without an `=` or `=~` name matcher, info
/// metrics are those named `*_info` (or `target_info` when none is given).
fn effective_name_matchers(matchers: &[Matcher]) -> Result<Vec<Matcher>, QueryError> {
    if matchers
        .iter()
        .any(|m| matches!(m.op, MatchOp::Equal | MatchOp::RegexMatch))
    {
        return Ok(matchers.to_vec());
    }
    if !matchers.is_empty() {
        let mut out = vec![Matcher::new(MatchOp::RegexMatch, METRIC_NAME, ".+_info")
            .map_err(|e| QueryError::Execution(e.to_string()))?];
        out.extend(matchers.iter().cloned());
        return Ok(out);
    }
    Ok(vec![Matcher::equal(METRIC_NAME, TARGET_INFO)])
}

/// `infoSelectTimestampAndOffset`: the `@` time and offset of the first
/// vector selector, adding the offsets of enclosing subqueries up to the
/// first one with an `@`.
fn select_time_and_offset(ev: &Evaluator, e: &Expr) -> Result<(Option<i64>, i64), QueryError> {
    struct Found<'e> {
        at: Option<&'e AtModifier>,
        offset: Option<&'e Offset>,
        path: Vec<(Option<&'e AtModifier>, Option<&'e Offset>)>,
    }
    fn walk<'e>(
        e: &'e Expr,
        path: &mut Vec<(Option<&'e AtModifier>, Option<&'e Offset>)>,
    ) -> Option<Found<'e>> {
        match e {
            Expr::VectorSelector(vs) => Some(Found {
                at: vs.at.as_ref(),
                offset: vs.offset.as_ref(),
                path: path.clone(),
            }),
            Expr::MatrixSelector(ms) => Some(Found {
                at: ms.vs.at.as_ref(),
                offset: ms.vs.offset.as_ref(),
                path: path.clone(),
            }),
            Expr::Subquery(sq) => {
                path.push((sq.at.as_ref(), sq.offset.as_ref()));
                let r = walk(&sq.expr, path);
                path.pop();
                r
            }
            Expr::Paren(p) => walk(&p.expr, path),
            Expr::Unary(u) => walk(&u.expr, path),
            Expr::Aggregate(a) => a
                .param
                .as_deref()
                .and_then(|p| walk(p, path))
                .or_else(|| walk(&a.expr, path)),
            Expr::Binary(b) => walk(&b.lhs, path).or_else(|| walk(&b.rhs, path)),
            Expr::Call(c) => c.args.args.iter().find_map(|a| walk(a, path)),
            _ => None,
        }
    }
    let mut path = Vec::new();
    let Some(found) = walk(e, &mut path) else {
        return Ok((None, 0));
    };
    let mut at = ev.at_ms(found.at)?;
    let mut offset = offset_ms(found.offset)?;
    for (sq_at, sq_offset) in found.path.iter().rev() {
        if at.is_some() {
            break;
        }
        offset = offset.saturating_add(offset_ms(*sq_offset)?);
        at = ev.at_ms(*sq_at)?;
    }
    Ok((at, offset))
}
