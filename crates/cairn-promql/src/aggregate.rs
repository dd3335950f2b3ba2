//! Aggregation operators, as Prometheus's `rangeEvalAgg`, `aggregation`,
//! `aggregationK` and `aggregationCountValues`.
//!
//! `sum`/`avg`/`count`/`min`/`max`/`group`/`stddev`/`stdvar` run
//! series-major into per-group arrays of step cells (VictoriaMetrics's
//! order), adding each group's values at each step in series order, so the
//! floating-point results equal Prometheus's step-major walk; over a plain
//! selector they are fused with it.

use std::collections::HashMap;

use cairn_model::{Labels, METRIC_NAME};
use promql_parser::parser::token::{
    T_AVG, T_BOTTOMK, T_COUNT, T_COUNT_VALUES, T_GROUP, T_LIMITK, T_LIMIT_RATIO, T_MAX, T_MIN,
    T_QUANTILE, T_STDDEV, T_STDVAR, T_SUM, T_TOPK,
};
use promql_parser::parser::{AggregateExpr, Expr, LabelModifier};

use crate::eval::Evaluator;
use crate::functions::{format_float, quantile};
use crate::value::{kahan_inc, total_points, transpose, Point, SeriesBuilder, StepSeries, Val};
use crate::QueryError;

/// `by`/`without` grouping.
pub(crate) struct Grouping {
    pub without: bool,
    pub names: Vec<String>,
}

impl Grouping {
    pub fn from_modifier(m: Option<&LabelModifier>) -> Grouping {
        let (without, mut names) = match m {
            Some(LabelModifier::Include(ls)) => (false, ls.labels.clone()),
            Some(LabelModifier::Exclude(ls)) => (true, ls.labels.clone()),
            None => (false, Vec::new()),
        };
        names.sort();
        names.dedup();
        Grouping { without, names }
    }

    /// Whether label `name` is part of a series' group labels.
    pub fn keeps(&self, name: &str) -> bool {
        let listed = self
            .names
            .binary_search_by(|n| n.as_str().cmp(name))
            .is_ok();
        if self.without {
            !listed && name != METRIC_NAME
        } else {
            listed
        }
    }

    /// Each series' group (in order of first appearance) and the groups'
    /// labels. `op (...)` without `by`/`without` names puts every series in
    /// one group with no labels, without looking at any series' labels.
    pub fn assign<'l>(
        &self,
        series: impl ExactSizeIterator<Item = &'l Labels>,
    ) -> (Vec<usize>, Vec<Labels>) {
        if !self.without && self.names.is_empty() {
            let n = series.len();
            let labels = if n == 0 {
                Vec::new()
            } else {
                vec![Labels::empty()]
            };
            return (vec![0; n], labels);
        }
        let mut found = GroupIndex::default();
        let of = series
            .map(|labels| found.index_of(labels, |name| self.keeps(name)))
            .collect();
        (of, found.into_labels())
    }

    /// The output labels of a series' group (`generateGroupingLabels`); they
    /// also serve as the group key.
    pub fn group_labels(&self, labels: &Labels) -> Labels {
        let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        if self.without {
            let mut all = names;
            all.push(METRIC_NAME);
            labels.without(&all)
        } else if names.is_empty() {
            Labels::empty()
        } else {
            labels.keep_only(&names)
        }
    }
}

/// Output groups found so far, looked up by a hash of the labels a series
/// keeps, so a series whose group exists costs no allocation (its group's
/// labels are built once, for the first series of the group).
#[derive(Default)]
pub(crate) struct GroupIndex {
    by_hash: HashMap<u64, Vec<usize>>,
    labels: Vec<Labels>,
}

impl GroupIndex {
    /// The group of `labels` projected by `keep` (a label name predicate),
    /// added if new.
    pub fn index_of(&mut self, labels: &Labels, keep: impl Fn(&str) -> bool) -> usize {
        use std::hash::{Hash, Hasher};
        let kept = || labels.iter().filter(|l| keep(&l.name));
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for l in kept() {
            l.name.hash(&mut hasher);
            l.value.hash(&mut hasher);
        }
        let candidates = self.by_hash.entry(hasher.finish()).or_default();
        if let Some(&found) = candidates
            .iter()
            .find(|&&i| self.labels[i].iter().eq(kept()))
        {
            return found;
        }
        let index = self.labels.len();
        candidates.push(index);
        self.labels
            .push(Labels::from_sorted(kept().cloned().collect()));
        index
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// The groups' labels, in order of first appearance.
    pub fn into_labels(self) -> Vec<Labels> {
        self.labels
    }
}

pub(crate) fn eval_aggregate(ev: &Evaluator, e: &AggregateExpr) -> Result<Val, QueryError> {
    let op = e.op.id();
    let grouping = Grouping::from_modifier(e.modifier.as_ref());
    if op == T_COUNT_VALUES {
        return count_values(ev, e, &grouping);
    }
    let param = match (&e.param, op) {
        (Some(p), T_TOPK | T_BOTTOMK | T_LIMITK | T_LIMIT_RATIO | T_QUANTILE) => {
            Some(ev.eval_scalar(p)?)
        }
        _ => None,
    };
    let base = ev.sh.samples_now();
    if let Expr::VectorSelector(vs) = crate::functions::unparen(&e.expr) {
        if is_dense_op(op) {
            let out = aggregate_selector(ev, e, op, &grouping, vs)?;
            ev.sh.reset_samples(base, total_points(&out))?;
            return Ok(Val::Vector(out));
        }
    }
    let input = ev.eval_vector(&e.expr)?;
    let out = match op {
        T_TOPK | T_BOTTOMK | T_LIMITK | T_LIMIT_RATIO => {
            aggregate_k(ev, e, op, &grouping, input, param.as_deref().unwrap_or(&[]))?
        }
        _ => aggregate_simple(ev, e, op, &grouping, input, param.as_deref())?,
    };
    ev.sh.reset_samples(base, total_points(&out))?;
    Ok(Val::Vector(out))
}

/// One group's state at one step on the step-major path: a [`Cell`], plus
/// the values `quantile` needs.
#[derive(Clone, Default)]
struct Group {
    cell: Cell,
    values: Vec<f64>,
}

fn aggregate_simple(
    ev: &Evaluator,
    e: &AggregateExpr,
    op: u16,
    grouping: &Grouping,
    input: Vec<StepSeries>,
    param: Option<&[f64]>,
) -> Result<Vec<StepSeries>, QueryError> {
    // Map each input series to its output group.
    let (series_group, group_labels) = grouping.assign(input.iter().map(|s| &s.labels));
    if op == T_QUANTILE {
        if let Some(p) = param {
            crate::functions::quantile_param_warnings(ev, p, e.param.as_deref());
        }
    }
    if op != T_QUANTILE {
        let cells = group_labels.len().saturating_mul(ev.nsteps);
        // Series-major when the per-group step arrays are not much larger
        // than the input (always for instant queries and few groups).
        if cells <= total_points(&input).saturating_mul(2).max(ev.nsteps) {
            let out = aggregate_dense(ev, e, op, group_labels, &series_group, &input);
            let garbage = input.len().saturating_mul(8);
            crate::parallel::defer_drop(input, garbage);
            return out;
        }
    }
    let steps = transpose(&input, ev.nsteps);
    let mut out: Vec<StepSeries> = group_labels
        .iter()
        .map(|l| StepSeries {
            labels: l.clone(),
            drop_name: false,
            points: Vec::new(),
        })
        .collect();
    if !(is_dense_op(op) || op == T_QUANTILE) {
        return Err(QueryError::BadData(format!(
            "unsupported aggregation operator {}",
            e.op
        )));
    }
    let mut groups: Vec<Group> = vec![Group::default(); out.len()];
    for (step, vec) in steps.iter().enumerate() {
        ev.sh.check()?;
        for g in groups.iter_mut() {
            g.cell.seen = false;
        }
        for &(si, f) in vec {
            let g = &mut groups[series_group[si]];
            let drop = input[si].drop_name;
            if g.cell.seen {
                g.cell.drop_name |= drop;
                g.cell.add(op, f);
            } else {
                g.cell = Cell::first(op, f, drop);
                g.values.clear();
            }
            if op == T_QUANTILE {
                g.values.push(f);
            }
        }
        for (gi, g) in groups.iter_mut().enumerate() {
            if !g.cell.seen {
                continue;
            }
            let v = if op == T_QUANTILE {
                let q = param.and_then(|p| p.get(step).copied()).unwrap_or(f64::NAN);
                quantile(q, &mut g.values)
            } else {
                g.cell.result(op)
            };
            out[gi].points.push(Point { step, v });
            out[gi].drop_name = g.cell.drop_name;
        }
    }
    out.retain(|s| !s.points.is_empty());
    Ok(out)
}

/// The running state of one group at one step (`groupedAggregation`), for
/// the operators that need no list of values (both the step-major path and
/// the series-major and fused ones use it, so they agree bit for bit).
#[derive(Clone, Copy, Default)]
struct Cell {
    seen: bool,
    incremental_mean: bool,
    drop_name: bool,
    value: f64,
    mean: f64,
    kahan: f64,
    count: f64,
}

impl Cell {
    /// The first value of the group at this step.
    fn first(op: u16, f: f64, drop_name: bool) -> Cell {
        let value = match op {
            T_STDVAR | T_STDDEV => {
                if f.is_nan() || f.is_infinite() {
                    f64::NAN
                } else {
                    0.0
                }
            }
            T_GROUP => 1.0,
            _ => f,
        };
        Cell {
            seen: true,
            incremental_mean: false,
            drop_name,
            value,
            mean: f,
            kahan: 0.0,
            count: 1.0,
        }
    }

    /// Adds a further value, as Prometheus's `aggregation` does per sample.
    fn add(&mut self, op: u16, f: f64) {
        match op {
            T_SUM => {
                let (v, c) = kahan_inc(f, self.value, self.kahan);
                self.value = v;
                self.kahan = c;
            }
            T_AVG => {
                self.count += 1.0;
                if !self.incremental_mean {
                    let (v, c) = kahan_inc(f, self.value, self.kahan);
                    if !v.is_infinite() {
                        self.value = v;
                        self.kahan = c;
                        return;
                    }
                    self.incremental_mean = true;
                    self.mean = self.value / (self.count - 1.0);
                    self.kahan /= self.count - 1.0;
                }
                let q = (self.count - 1.0) / self.count;
                let (m, c) = kahan_inc(f / self.count, q * self.mean, q * self.kahan);
                self.mean = m;
                self.kahan = c;
            }
            T_MAX if self.value < f || self.value.is_nan() => self.value = f,
            T_MIN if self.value > f || self.value.is_nan() => self.value = f,
            T_COUNT => self.count += 1.0,
            T_STDVAR | T_STDDEV => {
                self.count += 1.0;
                let delta = f - self.mean;
                self.mean += delta / self.count;
                self.value += delta * (f - self.mean);
            }
            _ => {}
        }
    }

    /// The group's result at this step.
    fn result(&self, op: u16) -> f64 {
        match op {
            T_AVG => {
                if self.incremental_mean {
                    self.mean + self.kahan
                } else {
                    self.value / self.count + self.kahan / self.count
                }
            }
            T_COUNT => self.count,
            T_STDVAR => self.value / self.count,
            T_STDDEV => (self.value / self.count).sqrt(),
            T_SUM => self.value + self.kahan,
            _ => self.value,
        }
    }
}

/// The operators [`Cell`] computes.
fn is_dense_op(op: u16) -> bool {
    matches!(
        op,
        T_SUM | T_AVG | T_COUNT | T_MIN | T_MAX | T_GROUP | T_STDVAR | T_STDDEV
    )
}

/// Most per-group step cells an aggregation fused with its selector holds
/// beyond what the selected samples would (it falls back to the general
/// path above this).
const MAX_FUSED_CELLS: usize = 4_000_000;

/// `op by/without (...) (selector)`, fused: each series' sample at every
/// step goes straight into its group's cell, with no per-series list of
/// points in between. Same results, annotations and sample accounting as
/// evaluating the selector and then [`aggregate_simple`]: groups are
/// ordered by their first series that selects a sample, and every group and
/// step sees its values in series order.
fn aggregate_selector(
    ev: &Evaluator,
    e: &AggregateExpr,
    op: u16,
    grouping: &Grouping,
    vs: &promql_parser::parser::VectorSelector,
) -> Result<Vec<StepSeries>, QueryError> {
    let matchers = crate::selector::selector_matchers(vs)?;
    let offset = crate::eval::offset_ms(vs.offset.as_ref())?;
    let at = ev.at_ms(vs.at.as_ref())?;
    let fetched = crate::selector::fetch_instant(ev, &matchers, offset, at)?;
    // Every fetched series' candidate group, whether or not it selects a
    // sample (decides the cells' size before the walk).
    let set = &*fetched.set;
    let (candidate_of, candidates) = grouping.assign((0..set.len()).map(|i| set.labels(i)));
    let nsteps = ev.nsteps;
    let cells_needed = candidates.len().saturating_mul(nsteps);
    if cells_needed > MAX_FUSED_CELLS.max(set.decode_cost().saturating_mul(2)) {
        let input: Vec<StepSeries> =
            crate::selector::instant_points(ev, fetched, |step, _, v| Point { step, v })?
                .into_iter()
                .map(|(labels, points)| StepSeries {
                    labels,
                    drop_name: false,
                    points,
                })
                .collect();
        return aggregate_simple(ev, e, op, grouping, input, None);
    }
    let mut cells = vec![Cell::default(); cells_needed];
    // Candidate groups in order of their first series with a sample.
    let mut order: Vec<usize> = Vec::new();
    let mut present = vec![false; candidates.len()];
    // Series by series in order, each decoded as it comes.
    crate::parallel::for_each_series(ev, set, |i, samples| {
        ev.sh.check()?;
        let g = candidate_of[i];
        let row = &mut cells[g * nsteps..(g + 1) * nsteps];
        let n = fetched.walk(ev, samples, |step, _, v| {
            let cell = &mut row[step];
            if cell.seen {
                cell.add(op, v);
            } else {
                *cell = Cell::first(op, v, false);
            }
        });
        if n > 0 {
            ev.sh.add_samples(n)?;
            if !present[g] {
                present[g] = true;
                order.push(g);
            }
        }
        Ok(())
    })?;
    let garbage = set.len().saturating_mul(2);
    crate::parallel::defer_drop(fetched, garbage);
    let mut labels: Vec<Option<Labels>> = candidates.into_iter().map(Some).collect();
    let mut out = Vec::with_capacity(order.len());
    for g in order {
        let row = &cells[g * nsteps..(g + 1) * nsteps];
        let points: Vec<Point> = row
            .iter()
            .enumerate()
            .filter(|(_, c)| c.seen)
            .map(|(step, c)| Point {
                step,
                v: c.result(op),
            })
            .collect();
        out.push(StepSeries {
            labels: labels[g].take().unwrap_or_else(Labels::empty),
            drop_name: false,
            points,
        });
    }
    Ok(out)
}

/// [`aggregate_simple`] series-major: every input series adds its points
/// into its group's array of per-step cells, in series order, so each
/// group and step sees its values in the same order as the step-major
/// walk (identical floating-point results) without a per-step list of
/// every series' value.
fn aggregate_dense(
    ev: &Evaluator,
    e: &AggregateExpr,
    op: u16,
    group_labels: Vec<Labels>,
    series_group: &[usize],
    input: &[StepSeries],
) -> Result<Vec<StepSeries>, QueryError> {
    if !is_dense_op(op) {
        return Err(QueryError::BadData(format!(
            "unsupported aggregation operator {}",
            e.op
        )));
    }
    let nsteps = ev.nsteps;
    let mut cells = vec![Cell::default(); group_labels.len() * nsteps];
    for (s, &g) in input.iter().zip(series_group) {
        ev.sh.check()?;
        let row = &mut cells[g * nsteps..(g + 1) * nsteps];
        for p in &s.points {
            let Some(cell) = row.get_mut(p.step) else {
                continue;
            };
            if cell.seen {
                cell.drop_name |= s.drop_name;
                cell.add(op, p.v);
            } else {
                *cell = Cell::first(op, p.v, s.drop_name);
            }
        }
    }
    let mut out = Vec::with_capacity(group_labels.len());
    for (g, labels) in group_labels.into_iter().enumerate() {
        let row = &cells[g * nsteps..(g + 1) * nsteps];
        let n = row.iter().filter(|c| c.seen).count();
        if n == 0 {
            continue;
        }
        let mut points = Vec::with_capacity(n);
        let mut drop_name = false;
        for (step, cell) in row.iter().enumerate() {
            if cell.seen {
                points.push(Point {
                    step,
                    v: cell.result(op),
                });
                // As the step-major walk: the last step decides.
                drop_name = cell.drop_name;
            }
        }
        out.push(StepSeries {
            labels,
            drop_name,
            points,
        });
    }
    Ok(out)
}

/// Go's `vectorByValueHeap.Less`: NaN sorts first.
fn heap_less(a: f64, b: f64) -> bool {
    if a.is_nan() {
        return true;
    }
    a < b
}

/// Go's `vectorByReverseValueHeap.Less`.
fn rev_heap_less(a: f64, b: f64) -> bool {
    if a.is_nan() {
        return true;
    }
    a > b
}

/// A binary min-heap with Go `container/heap`'s exact sift order, so ties
/// resolve as in Prometheus.
struct GoHeap<'a> {
    items: Vec<(usize, f64)>,
    less: &'a dyn Fn(f64, f64) -> bool,
}

impl GoHeap<'_> {
    fn l(&self, i: usize, j: usize) -> bool {
        (self.less)(self.items[i].1, self.items[j].1)
    }

    fn push(&mut self, x: (usize, f64)) {
        self.items.push(x);
        self.up(self.items.len() - 1);
    }

    fn up(&mut self, mut j: usize) {
        while j > 0 {
            let i = (j - 1) / 2;
            if i == j || !self.l(j, i) {
                break;
            }
            self.items.swap(i, j);
            j = i;
        }
    }

    fn down(&mut self, i0: usize, n: usize) -> bool {
        let mut i = i0;
        loop {
            let j1 = 2 * i + 1;
            if j1 >= n {
                break;
            }
            let mut j = j1;
            let j2 = j1 + 1;
            if j2 < n && self.l(j2, j1) {
                j = j2;
            }
            if !self.l(j, i) {
                break;
            }
            self.items.swap(i, j);
            i = j;
        }
        i > i0
    }

    fn fix(&mut self, i: usize) {
        let n = self.items.len();
        if !self.down(i, n) {
            self.up(i);
        }
    }
}

/// Sorts with Go's `sort.Sort(sort.Reverse(h))` for small inputs (insertion
/// sort, which is what Go's pdqsort does below 12 elements).
fn sort_reverse(items: &mut [(usize, f64)], less: &dyn Fn(f64, f64) -> bool) {
    // Reverse(h).Less(i, j) == h.Less(j, i)
    for i in 1..items.len() {
        let mut j = i;
        while j > 0 && less(items[j - 1].1, items[j].1) {
            items.swap(j, j - 1);
            j -= 1;
        }
    }
}

fn aggregate_k(
    ev: &Evaluator,
    e: &AggregateExpr,
    op: u16,
    grouping: &Grouping,
    input: Vec<StepSeries>,
    param: &[f64],
) -> Result<Vec<StepSeries>, QueryError> {
    let mut groups_found = GroupIndex::default();
    let series_group: Vec<usize> = input
        .iter()
        .map(|s| groups_found.index_of(&s.labels, |name| grouping.keeps(name)))
        .collect();
    let ngroups = groups_found.len();
    // As Go's math.Max/Min in fParams: a NaN parameter makes both NaN.
    let any_nan = param.iter().any(|p| p.is_nan());
    let (pmax, pmin) = if any_nan {
        (f64::NAN, f64::NAN)
    } else {
        (
            param.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            param.iter().copied().fold(f64::INFINITY, f64::min),
        )
    };
    match op {
        T_TOPK | T_BOTTOMK | T_LIMITK => {
            if pmax < 1.0 {
                return Ok(Vec::new());
            }
            if any_nan {
                return Err(QueryError::Execution("Parameter value is NaN".into()));
            }
            if pmin <= i64::MIN as f64 {
                return Err(QueryError::Execution(format!(
                    "Scalar value {} underflows int64",
                    crate::functions::format_g(pmin)
                )));
            }
            if pmax >= i64::MAX as f64 {
                return Err(QueryError::Execution(format!(
                    "Scalar value {} overflows int64",
                    crate::functions::format_g(pmax)
                )));
            }
        }
        _ => {
            if pmax == 0.0 && pmin == 0.0 {
                return Ok(Vec::new());
            }
            if any_nan {
                return Err(QueryError::Execution("Ratio value is NaN".into()));
            }
            crate::functions::ratio_param_warnings(ev, pmin, pmax, e.param.as_deref());
        }
    }
    let steps = transpose(&input, ev.nsteps);
    let mut out: Vec<Vec<Point>> = vec![Vec::new(); input.len()];
    // For instant queries the output order is the heap order per group.
    let mut instant_order: Vec<usize> = Vec::new();
    let less_fn: &dyn Fn(f64, f64) -> bool = if op == T_BOTTOMK {
        &rev_heap_less
    } else {
        &heap_less
    };
    for (step, vec) in steps.iter().enumerate() {
        ev.sh.check()?;
        let fparam = param.get(step).copied().unwrap_or(f64::NAN);
        let mut heaps: Vec<Option<GoHeap>> = (0..ngroups).map(|_| None).collect();
        let k: i64 = (fparam as i64).min(input.len() as i64);
        if matches!(op, T_TOPK | T_BOTTOMK | T_LIMITK) && k < 1 {
            continue;
        }
        let ratio = fparam.clamp(-1.0, 1.0);
        if op == T_LIMIT_RATIO && fparam == 0.0 {
            continue;
        }
        for &(si, f) in vec {
            let gi = series_group[si];
            let heap = heaps[gi].get_or_insert_with(|| GoHeap {
                items: Vec::new(),
                less: less_fn,
            });
            match op {
                T_TOPK | T_BOTTOMK => {
                    if (heap.items.len() as i64) < k {
                        heap.push((si, f));
                    } else {
                        let top = heap.items[0].1;
                        let better = if op == T_TOPK {
                            top < f || (top.is_nan() && !f.is_nan())
                        } else {
                            top > f || (top.is_nan() && !f.is_nan())
                        };
                        if better {
                            heap.items[0] = (si, f);
                            if k > 1 {
                                heap.fix(0);
                            }
                        }
                    }
                }
                T_LIMITK => {
                    if (heap.items.len() as i64) < k {
                        heap.push((si, f));
                    }
                }
                _ => {
                    if ratio_sample(ratio, &input[si].labels) {
                        heap.push((si, f));
                    }
                }
            }
        }
        for heap in heaps.into_iter().flatten() {
            let mut items = heap.items;
            if matches!(op, T_TOPK | T_BOTTOMK) && items.len() > 1 {
                sort_reverse(&mut items, less_fn);
            }
            for (si, v) in items {
                out[si].push(Point { step, v });
                if ev.is_instant() {
                    instant_order.push(si);
                }
            }
        }
    }
    let mut result = Vec::new();
    if ev.is_instant() {
        for si in instant_order {
            result.push(StepSeries {
                labels: input[si].labels.clone(),
                drop_name: input[si].drop_name,
                points: std::mem::take(&mut out[si]),
            });
        }
    } else {
        for (s, pts) in input.into_iter().zip(out) {
            if !pts.is_empty() {
                result.push(StepSeries {
                    labels: s.labels,
                    drop_name: s.drop_name,
                    points: pts,
                });
            }
        }
    }
    Ok(result)
}

/// `HashRatioSampler.AddRatioSample`: a series is in the sample when its
/// label hash, scaled to [0, 1), is below the ratio (or above 1+ratio).
fn ratio_sample(ratio: f64, labels: &Labels) -> bool {
    let offset = crate::functions::label_hash(labels) as f64 / u64::MAX as f64;
    (ratio >= 0.0 && offset < ratio) || (ratio < 0.0 && offset >= 1.0 + ratio)
}

fn count_values(ev: &Evaluator, e: &AggregateExpr, grouping: &Grouping) -> Result<Val, QueryError> {
    let value_label = match e.param.as_deref() {
        Some(Expr::StringLiteral(s)) => s.val.clone(),
        Some(other) => match ev.eval(other)? {
            Val::String(s) => s,
            _ => {
                return Err(QueryError::BadData(
                    "expected string parameter for count_values".into(),
                ))
            }
        },
        None => {
            return Err(QueryError::BadData(
                "count_values needs a label name parameter".into(),
            ))
        }
    };
    if !crate::functions::is_valid_label_name(ev, &value_label) {
        return Err(QueryError::Execution(format!(
            "invalid label name {}",
            crate::functions::go_quoted(ev, &value_label)
        )));
    }
    let mut names = grouping.names.clone();
    if !grouping.without {
        names.push(value_label.clone());
        names.sort();
        names.dedup();
    }
    let g = Grouping {
        without: grouping.without,
        names,
    };
    let base = ev.sh.samples_now();
    let input = ev.eval_vector(&e.expr)?;
    let steps = transpose(&input, ev.nsteps);
    let mut builder = SeriesBuilder::default();
    for (step, vec) in steps.iter().enumerate() {
        ev.sh.check()?;
        let mut counts: Vec<(Labels, f64)> = Vec::new();
        let mut index: HashMap<Labels, usize> = HashMap::new();
        for &(si, f) in vec {
            let mut b = input[si].labels.builder();
            b.set(&value_label, &format_float(f));
            let metric = b.build();
            let gl = g.group_labels(&metric);
            match index.get(&gl) {
                Some(&i) => counts[i].1 += 1.0,
                None => {
                    index.insert(gl.clone(), counts.len());
                    counts.push((gl, 1.0));
                }
            }
        }
        for (labels, c) in counts {
            builder.push(&labels, false, step, c)?;
        }
    }
    let out = builder.finish();
    ev.sh.reset_samples(base, total_points(&out))?;
    Ok(Val::Vector(out))
}
