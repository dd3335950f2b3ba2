//! Binary operators: arithmetic, comparison (with `bool`) and set operators,
//! with `on`/`ignoring`/`group_left`/`group_right` vector matching, as
//! Prometheus's `VectorBinop`, `VectorAnd`, `VectorOr` and `VectorUnless`.

use std::collections::HashMap;

use cairn_model::{Labels, METRIC_NAME};
use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD,
    T_MUL, T_NEQ, T_POW, T_SUB,
};
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};

use crate::eval::Evaluator;
use crate::value::{drop_metadata, prom_labels_string, transpose, Point, StepSeries, Val};
use crate::QueryError;

/// Operator token ids, as `parser.ItemType`.
pub(crate) type Op = u16;

pub(crate) fn is_comparison(op: Op) -> bool {
    matches!(op, T_EQLC | T_NEQ | T_GTR | T_LSS | T_GTE | T_LTE)
}

/// Arithmetic operators change the meaning of a metric: its name goes
/// (Prometheus's `changesMetricSchema`).
pub(crate) fn changes_metric_schema(op: Op) -> bool {
    matches!(op, T_ADD | T_SUB | T_MUL | T_DIV | T_POW | T_MOD | T_ATAN2)
}

/// Go's `math.Mod`: result has the sign of `x`; Rust's `%` matches it.
fn go_mod(x: f64, y: f64) -> f64 {
    x % y
}

/// `scalarBinop` / `vectorElemBinop` for floats: the value and whether a
/// comparison keeps the element.
pub(crate) fn binop(op: Op, l: f64, r: f64) -> (f64, bool) {
    match op {
        T_ADD => (l + r, true),
        T_SUB => (l - r, true),
        T_MUL => (l * r, true),
        T_DIV => (l / r, true),
        T_POW => (l.powf(r), true),
        T_MOD => (go_mod(l, r), true),
        T_ATAN2 => (l.atan2(r), true),
        T_EQLC => (l, l == r),
        T_NEQ => (l, l != r),
        T_GTR => (l, l > r),
        T_LSS => (l, l < r),
        T_GTE => (l, l >= r),
        T_LTE => (l, l <= r),
        _ => (f64::NAN, false),
    }
}

pub(crate) fn eval_binary(ev: &Evaluator, e: &BinaryExpr) -> Result<Val, QueryError> {
    let op = e.op.id();
    let return_bool = e.return_bool();
    let base = ev.sh.samples_now();
    let val = eval_operands(ev, e, op, return_bool)?;
    // As rangeEval: the inputs are released, the result stays in memory.
    if let Val::Vector(v) = &val {
        ev.sh.reset_samples(base, crate::value::total_points(v))?;
    }
    Ok(val)
}

fn eval_operands(
    ev: &Evaluator,
    e: &BinaryExpr,
    op: Op,
    return_bool: bool,
) -> Result<Val, QueryError> {
    let lhs = ev.eval(&e.lhs)?;
    let rhs = ev.eval(&e.rhs)?;
    match (lhs, rhs) {
        (Val::Scalar(l), Val::Scalar(r)) => Ok(Val::Scalar(
            l.iter()
                .zip(r.iter())
                .map(|(a, b)| {
                    let (v, keep) = binop(op, *a, *b);
                    if is_comparison(op) {
                        if keep {
                            1.0
                        } else {
                            0.0
                        }
                    } else {
                        v
                    }
                })
                .collect(),
        )),
        (Val::Vector(l), Val::Scalar(r)) => {
            Ok(Val::Vector(vector_scalar(op, l, &r, false, return_bool)))
        }
        (Val::Scalar(l), Val::Vector(r)) => {
            Ok(Val::Vector(vector_scalar(op, r, &l, true, return_bool)))
        }
        (Val::Vector(l), Val::Vector(r)) => {
            let matching = Matching::from_expr(e, op);
            let out = match op {
                T_LAND => set_op(ev, SetOp::And, l, r, &matching)?,
                T_LOR => set_op(ev, SetOp::Or, l, r, &matching)?,
                T_LUNLESS => set_op(ev, SetOp::Unless, l, r, &matching)?,
                _ => vector_vector(ev, op, l, r, &matching, return_bool)?,
            };
            Ok(Val::Vector(out))
        }
        (l, r) => Err(QueryError::BadData(format!(
            "binary expression must contain only scalar and instant vector types, got {} and {}",
            l.type_name(),
            r.type_name()
        ))),
    }
}

/// `VectorscalarBinop`: `swap` when the scalar is the left operand.
fn vector_scalar(
    op: Op,
    mut series: Vec<StepSeries>,
    scalar: &[f64],
    swap: bool,
    return_bool: bool,
) -> Vec<StepSeries> {
    let comparison = is_comparison(op);
    for s in series.iter_mut() {
        s.points.retain_mut(|p| {
            let sv = scalar.get(p.step).copied().unwrap_or(f64::NAN);
            let (l, r) = if swap { (sv, p.v) } else { (p.v, sv) };
            let (mut v, mut keep) = binop(op, l, r);
            // The vector element's value is kept even when it is on the right.
            if comparison && swap {
                v = r;
            }
            if return_bool {
                v = if keep { 1.0 } else { 0.0 };
                keep = true;
            }
            p.v = v;
            keep
        });
        if changes_metric_schema(op) || return_bool {
            s.drop_name = true;
        }
    }
    series.retain(|s| !s.points.is_empty());
    series
}

/// Vector matching parameters (`parser.VectorMatching`).
pub(crate) struct Matching {
    pub card: Card,
    pub on: bool,
    pub labels: Vec<String>,
    pub include: Vec<String>,
    pub fill_lhs: Option<f64>,
    pub fill_rhs: Option<f64>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Card {
    OneToOne,
    ManyToOne,
    OneToMany,
    ManyToMany,
}

impl Matching {
    fn from_expr(e: &BinaryExpr, op: Op) -> Matching {
        let set_op = matches!(op, T_LAND | T_LOR | T_LUNLESS);
        let mut m = Matching {
            card: if set_op {
                Card::ManyToMany
            } else {
                Card::OneToOne
            },
            on: false,
            labels: Vec::new(),
            include: Vec::new(),
            fill_lhs: None,
            fill_rhs: None,
        };
        if let Some(modifier) = &e.modifier {
            match &modifier.matching {
                Some(LabelModifier::Include(ls)) => {
                    m.on = true;
                    m.labels = ls.labels.clone();
                }
                Some(LabelModifier::Exclude(ls)) => {
                    m.labels = ls.labels.clone();
                }
                None => {}
            }
            if !set_op {
                match &modifier.card {
                    VectorMatchCardinality::ManyToOne(ls) => {
                        m.card = Card::ManyToOne;
                        m.include = ls.labels.clone();
                    }
                    VectorMatchCardinality::OneToMany(ls) => {
                        m.card = Card::OneToMany;
                        m.include = ls.labels.clone();
                    }
                    _ => {}
                }
            }
            m.fill_lhs = modifier.fill_values.lhs;
            m.fill_rhs = modifier.fill_values.rhs;
        }
        m.labels.sort();
        m.labels.dedup();
        m
    }

    /// The join signature of a series.
    pub fn signature(&self, labels: &Labels) -> String {
        let mut sig = String::new();
        for l in labels.iter() {
            let include = if self.on {
                self.labels.iter().any(|n| n == &l.name)
            } else {
                l.name != METRIC_NAME && !self.labels.iter().any(|n| n == &l.name)
            };
            if include {
                sig.push_str(&l.name);
                sig.push('\u{ff}');
                sig.push_str(&l.value);
                sig.push('\u{ff}');
            }
        }
        sig
    }

    /// `labels.MatchLabels(on, names...)`: the labels a signature is built from.
    pub fn match_labels(&self, labels: &Labels) -> Labels {
        if self.on {
            let names: Vec<&str> = self.labels.iter().map(String::as_str).collect();
            labels.keep_only(&names)
        } else {
            let mut names: Vec<&str> = self.labels.iter().map(String::as_str).collect();
            names.push(METRIC_NAME);
            labels.without(&names)
        }
    }
}

/// Assigns each series a signature ordinal shared across both sides.
fn signature_ordinals(
    m: &Matching,
    lhs: &[StepSeries],
    rhs: &[StepSeries],
) -> (Vec<usize>, Vec<usize>, usize) {
    let mut ords: HashMap<String, usize> = HashMap::new();
    let mut assign = |series: &[StepSeries]| -> Vec<usize> {
        series
            .iter()
            .map(|s| {
                let sig = m.signature(&s.labels);
                let next = ords.len();
                *ords.entry(sig).or_insert(next)
            })
            .collect()
    };
    let l = assign(lhs);
    let r = assign(rhs);
    let n = ords.len();
    (l, r, n)
}

#[derive(Clone, Copy)]
enum SetOp {
    And,
    Or,
    Unless,
}

fn set_op(
    ev: &Evaluator,
    kind: SetOp,
    lhs: Vec<StepSeries>,
    rhs: Vec<StepSeries>,
    m: &Matching,
) -> Result<Vec<StepSeries>, QueryError> {
    let (lsig, rsig, nsigs) = signature_ordinals(m, &lhs, &rhs);
    let lsteps = transpose(&lhs, ev.nsteps);
    let rsteps = transpose(&rhs, ev.nsteps);
    // Output series: lhs series first, then rhs series (for `or`).
    let mut lout: Vec<Vec<Point>> = vec![Vec::new(); lhs.len()];
    let mut rout: Vec<Vec<Point>> = vec![Vec::new(); rhs.len()];
    let mut seen = vec![usize::MAX; nsigs];
    for step in 0..ev.nsteps {
        ev.sh.check()?;
        let lv = &lsteps[step];
        let rv = &rsteps[step];
        match kind {
            SetOp::And => {
                if lv.is_empty() || rv.is_empty() {
                    continue;
                }
                for &(i, _) in rv {
                    seen[rsig[i]] = step;
                }
                for &(i, v) in lv {
                    if seen[lsig[i]] == step {
                        lout[i].push(Point { step, v });
                    }
                }
            }
            SetOp::Or => {
                for &(i, v) in lv {
                    seen[lsig[i]] = step;
                    lout[i].push(Point { step, v });
                }
                for &(i, v) in rv {
                    if seen[rsig[i]] != step {
                        rout[i].push(Point { step, v });
                    }
                }
            }
            SetOp::Unless => {
                for &(i, _) in rv {
                    seen[rsig[i]] = step;
                }
                for &(i, v) in lv {
                    if seen[lsig[i]] != step {
                        lout[i].push(Point { step, v });
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    for (s, pts) in lhs.into_iter().zip(lout) {
        if !pts.is_empty() {
            out.push(StepSeries {
                labels: s.labels,
                drop_name: s.drop_name,
                points: pts,
            });
        }
    }
    for (s, pts) in rhs.into_iter().zip(rout) {
        if !pts.is_empty() {
            out.push(StepSeries {
                labels: s.labels,
                drop_name: s.drop_name,
                points: pts,
            });
        }
    }
    // With delayed name removal, lhs and rhs series may share labels; merge
    // them when their points do not collide.
    merge_same_labels(out)
}

/// Merges series with identical labels whose points never share a step.
pub(crate) fn merge_same_labels(series: Vec<StepSeries>) -> Result<Vec<StepSeries>, QueryError> {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vec<StepSeries> = Vec::with_capacity(series.len());
    for s in series {
        match index.get(&s.labels) {
            Some(&i) => {
                let target = &mut out[i];
                target.points.extend(s.points);
                target.points.sort_by_key(|p| p.step);
                if target.points.windows(2).any(|w| w[0].step == w[1].step) {
                    return Err(QueryError::Execution(
                        "vector cannot contain metrics with the same labelset".into(),
                    ));
                }
                target.drop_name |= s.drop_name;
            }
            None => {
                index.insert(s.labels.clone(), out.len());
                out.push(s);
            }
        }
    }
    Ok(out)
}

/// `resultMetric`: the output labels of one arithmetic/comparison match.
fn result_metric(op: Op, lhs: &Labels, rhs: &Labels, m: &Matching) -> Labels {
    let base = if changes_metric_schema(op) {
        drop_metadata(lhs)
    } else {
        lhs.clone()
    };
    let mut labels = if m.card == Card::OneToOne {
        let names: Vec<&str> = m.labels.iter().map(String::as_str).collect();
        if m.on {
            base.keep_only(&names)
        } else {
            base.without(&names)
        }
    } else {
        base
    };
    if !m.include.is_empty() {
        let mut b = labels.builder();
        for name in &m.include {
            match rhs.get(name) {
                Some(v) => b.set(name, v),
                None => b.remove(name),
            };
        }
        labels = b.build();
    }
    labels
}

fn vector_vector(
    ev: &Evaluator,
    op: Op,
    lhs: Vec<StepSeries>,
    rhs: Vec<StepSeries>,
    m: &Matching,
    return_bool: bool,
) -> Result<Vec<StepSeries>, QueryError> {
    let (lsig, rsig, nsigs) = signature_ordinals(m, &lhs, &rhs);
    let lsteps = transpose(&lhs, ev.nsteps);
    let rsteps = transpose(&rhs, ev.nsteps);
    // For one-to-many, swap sides so that the rhs is always the "one" side.
    let swapped = m.card == Card::OneToMany;
    let (many, one, many_sig, one_sig, many_steps, one_steps) = if swapped {
        (&rhs, &lhs, &rsig, &lsig, &rsteps, &lsteps)
    } else {
        (&lhs, &rhs, &lsig, &rsig, &lsteps, &rsteps)
    };
    // Output series, found through a cache keyed by the matched pair, so
    // labels are computed and hashed once per pair, not once per step.
    let mut out: Vec<StepSeries> = Vec::new();
    let mut out_index: HashMap<Labels, usize> = HashMap::new();
    // Per output series: the (step, signature) of its last match.
    let mut out_last: Vec<(usize, usize)> = Vec::new();
    let mut pair_cache: HashMap<(usize, usize), usize> = HashMap::new();
    // Per signature: the "one"-side sample at this step.
    let mut one_at: Vec<Option<(usize, f64)>> = vec![None; nsigs];
    let mut matched_step = vec![usize::MAX; nsigs];
    const FILL: usize = usize::MAX;
    let fills = m.fill_lhs.is_some() || m.fill_rhs.is_some();
    for step in 0..ev.nsteps {
        ev.sh.check()?;
        let mv = &many_steps[step];
        let ov = &one_steps[step];
        if (mv.is_empty() && ov.is_empty()) || ((mv.is_empty() || ov.is_empty()) && !fills) {
            continue;
        }
        for &(i, v) in ov {
            let sig = one_sig[i];
            if let Some((j, _)) = one_at[sig] {
                let one_side = if swapped { "left" } else { "right" };
                let matched = prom_labels_string(&m.match_labels(&one[i].labels));
                let mut a = prom_labels_string(&one[i].labels);
                let mut b = prom_labels_string(&one[j].labels);
                if a > b {
                    std::mem::swap(&mut a, &mut b);
                }
                return Err(QueryError::Execution(format!(
                    "found duplicate series for the match group {matched} on the {one_side} hand-side of the operation: [{a}, {b}];many-to-many matching not allowed: matching labels must be unique on one side"
                )));
            }
            one_at[sig] = Some((i, v));
        }
        // One match: `doBinOp` of Prometheus's VectorBinop.
        let mut do_op = |mi: usize,
                         mval: f64,
                         oi: usize,
                         oval: f64,
                         sig: usize,
                         matched_step: &mut [usize]|
         -> Result<(), QueryError> {
            // Undo the swap for the computation.
            let (l, r) = if swapped { (oval, mval) } else { (mval, oval) };
            let (mut v, keep) = binop(op, l, r);
            if return_bool {
                v = if keep { 1.0 } else { 0.0 };
            }
            let o = match pair_cache.get(&(mi, oi)) {
                Some(&o) => o,
                None => {
                    let many_labels = if mi == FILL {
                        m.match_labels(&one[oi].labels)
                    } else {
                        many[mi].labels.clone()
                    };
                    let one_labels = if oi == FILL {
                        m.match_labels(&many[mi].labels)
                    } else {
                        one[oi].labels.clone()
                    };
                    let metric = result_metric(op, &many_labels, &one_labels, m);
                    let o = match out_index.get(&metric) {
                        Some(&o) => o,
                        None => {
                            out_index.insert(metric.clone(), out.len());
                            out.push(StepSeries {
                                labels: metric,
                                drop_name: return_bool,
                                points: Vec::new(),
                            });
                            out_last.push((usize::MAX, usize::MAX));
                            out.len() - 1
                        }
                    };
                    pair_cache.insert((mi, oi), o);
                    o
                }
            };
            if m.card == Card::OneToOne {
                if matched_step[sig] == step {
                    return Err(QueryError::Execution(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
                    ));
                }
            } else if out_last[o] == (step, sig) {
                return Err(QueryError::Execution(
                    "multiple matches for labels: grouping labels must ensure unique matches"
                        .into(),
                ));
            }
            matched_step[sig] = step;
            out_last[o] = (step, sig);
            if !keep && !return_bool {
                return Ok(());
            }
            let series = &mut out[o];
            if series.points.last().is_some_and(|p| p.step == step) {
                return Err(QueryError::Execution(
                    "vector cannot contain metrics with the same labelset".into(),
                ));
            }
            series.points.push(Point { step, v });
            Ok(())
        };
        for &(i, v) in mv {
            let sig = many_sig[i];
            match one_at[sig] {
                Some((j, ovv)) => do_op(i, v, j, ovv, sig, &mut matched_step)?,
                None => {
                    // As Prometheus, the fill values are not swapped with
                    // the sides for group_right.
                    if let Some(f) = m.fill_rhs {
                        do_op(i, v, FILL, f, sig, &mut matched_step)?;
                    }
                }
            }
        }
        if let Some(f) = m.fill_lhs {
            for &(j, v) in ov {
                let sig = one_sig[j];
                if matched_step[sig] == step {
                    continue;
                }
                do_op(FILL, f, j, v, sig, &mut matched_step)?;
            }
        }
        reset(&mut one_at, ov, one_sig);
    }
    out.retain(|s| !s.points.is_empty());
    Ok(out)
}

fn reset(one_at: &mut [Option<(usize, f64)>], ov: &[(usize, f64)], one_sig: &[usize]) {
    for &(i, _) in ov {
        one_at[one_sig[i]] = None;
    }
}
