//! Which evals the runner skips, and why. The rules follow the per-eval
//! feature flags of `../shared/promql-tests/tools/promqltest_index.py`
//! (ported regex for regex, so the counts agree with its table), restricted
//! to the features Cairn does not have:
//!
//! | reason | flag | rule |
//! |---|---|---|
//! | native histograms | NH | `{{` in a result line, a native-histogram-only function, or a selector that matches a series with histogram samples (`{{...}}` in a load, or the `X` series `load_with_nhcb` makes from `X_bucket`) |
//! | anchored/smoothed modifiers | EXTSEL | the `anchored` / `smoothed` range-selector modifiers |
//! | duration expressions | DUREXPR | arithmetic, `step()`, `range()`, `min_of`/`max_of` inside `[...]` or `offset` |
//! | fill modifiers | FILL | `fill(...)`, `fill_left(...)`, `fill_right(...)` on binary operators |
//! | start timestamps | ST | `@st` load lines since the last `clear`, or `start_timestamp()` |
//! | type-and-unit labels | TYPEUNIT | `__type__` / `__unit__` in the loaded data since the last `clear`, or in the expression |
//! | promql-parser cannot parse | — | `promql_parser::parser::parse` rejects the expression (Prometheus's parser accepts every eval expression, so this is a parser gap, never an expected failure) |
//!
//! Reasons are checked in this order; an eval gets the first that applies.
//! By default (`run_optional_features`) only native histograms, start
//! timestamps and promql-parser gaps are skipped (what Cairn cannot store or
//! parse); `PROMQLTEST_FLOOR_ONLY=1` skips every rule above.

use std::cell::RefCell;
use std::collections::HashMap;

use regex::Regex;

use crate::script::{EvalCmd, LoadCmd};
use crate::series::SeqValue;

pub const NATIVE_HISTOGRAMS: &str = "native histograms";
pub const EXTENDED_SELECTORS: &str = "anchored/smoothed modifiers";
pub const DURATION_EXPRESSIONS: &str = "duration expressions";
pub const FILL_MODIFIERS: &str = "fill modifiers";
pub const START_TIMESTAMPS: &str = "start timestamps";
pub const TYPE_AND_UNIT: &str = "type-and-unit labels";
pub const PARSER_GAP: &str = "promql-parser cannot parse";

const NH_FUNCS: &str =
    "histogram_avg|histogram_count|histogram_sum|histogram_stddev|histogram_stdvar";

const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "and",
    "or",
    "unless",
    "atan2",
    "inf",
    "nan",
    "anchored",
    "smoothed",
    "fill",
    "fill_left",
    "fill_right",
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "count_values",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "limitk",
    "limit_ratio",
    "start",
    "end",
    "step",
    "range",
];

type LabelMap = HashMap<String, String>;
type SelectorMatchers = Vec<(String, String, String)>;

/// What the loads since the last `clear` put into storage, as far as the
/// skip rules care.
#[derive(Default)]
pub struct StorageFeatures {
    histogram_series: Vec<LabelMap>,
    any_start_timestamps: bool,
    any_type_and_unit: bool,
}

impl StorageFeatures {
    pub fn clear(&mut self) {
        *self = StorageFeatures::default();
    }

    pub fn record_load(&mut self, load: &LoadCmd) {
        if load.has_start_timestamps {
            self.any_start_timestamps = true;
        }
        for (labels, values) in &load.series {
            let map: LabelMap = labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect();
            if map.contains_key("__type__") || map.contains_key("__unit__") {
                self.any_type_and_unit = true;
            }
            if values.iter().any(|v| matches!(v, SeqValue::Histogram(_))) {
                self.histogram_series.push(map.clone());
            }
            let name = map.get("__name__").cloned().unwrap_or_default();
            if let Some(base) = name.strip_suffix("_bucket").filter(|_| load.with_nhcb) {
                let mut base_map = map.clone();
                base_map.remove("le");
                base_map.insert("__name__".to_string(), base.to_string());
                self.histogram_series.push(base_map);
            }
        }
    }
}

pub struct SkipRules {
    /// Also run the evals of features that need nothing Cairn's storage
    /// lacks (anchored/smoothed, duration expressions, fill modifiers,
    /// type-and-unit labels) when promql-parser parses them
    /// (the runner's default; off with `PROMQLTEST_FLOOR_ONLY=1`). Native histograms and start timestamps
    /// cannot be stored, so those evals are always skipped.
    pub run_optional_features: bool,
    strings: Regex,
    nh_funcs: Regex,
    extsel: Regex,
    fill: Regex,
    start_timestamp_fn: Regex,
    brackets: Regex,
    plain_duration: Regex,
    offset_expr: Regex,
    offset_arith: Regex,
    brace_selector: Regex,
    label_pair: Regex,
    grouping: Regex,
    number: Regex,
    ident: Regex,
    /// Matcher regexes, compiled once per pattern.
    anchored_regexes: RefCell<HashMap<String, Option<Regex>>>,
}

impl Default for SkipRules {
    fn default() -> Self {
        Self::new()
    }
}

impl SkipRules {
    pub fn new() -> SkipRules {
        let compile = |p: &str| Regex::new(p).expect("runner regex");
        SkipRules {
            run_optional_features: false,
            strings: compile(r#""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`"#),
            nh_funcs: compile(&format!(r"\b({NH_FUNCS})\s*\(")),
            extsel: compile(r"\b(anchored|smoothed)\b"),
            fill: compile(r"\b(fill|fill_left|fill_right)\s*\("),
            start_timestamp_fn: compile(r"\bstart_timestamp\s*\("),
            brackets: compile(r"\[([^\]]*)\]"),
            plain_duration: compile(r"^\s*(?:(?:\d+(?:ms|s|m|h|d|w|y))+|\d+(?:\.\d+)?)\s*$"),
            offset_expr: compile(r"\boffset\s*[-+]?\s*(\(|step\s*\(|range\s*\(|min_of|max_of)"),
            offset_arith: compile(r"\boffset\s*[-+]?\s*[0-9a-z.]+\s*[-+*/%^]\s*[0-9(]"),
            brace_selector: compile(r"([A-Za-z_:][A-Za-z0-9_:]*)?\s*\{([^{}]*)\}"),
            label_pair: compile(
                r#"([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)"#,
            ),
            grouping: compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"),
            number: compile(r"(^|[^A-Za-z0-9_:])\d+(\.\d+)?([eE][-+]?\d+)?[a-z]*"),
            ident: compile(r"[A-Za-z_:][A-Za-z0-9_:]*"),
            anchored_regexes: RefCell::new(HashMap::new()),
        }
    }

    /// The reason to skip `eval`, or `None` to run it.
    pub fn skip_reason(&self, eval: &EvalCmd, storage: &StorageFeatures) -> Option<&'static str> {
        let expr = eval.expr.as_str();
        let stripped = self.strings.replace_all(expr, "\"\"").into_owned();
        let lower = stripped.to_lowercase();
        if self.uses_native_histograms(eval, &stripped, storage) {
            return Some(NATIVE_HISTOGRAMS);
        }
        let optional = !self.run_optional_features;
        if optional && self.extsel.is_match(&lower) {
            return Some(EXTENDED_SELECTORS);
        }
        if optional && self.has_duration_expression(&stripped, &lower) {
            return Some(DURATION_EXPRESSIONS);
        }
        if optional && self.fill.is_match(&lower) {
            return Some(FILL_MODIFIERS);
        }
        if storage.any_start_timestamps || self.start_timestamp_fn.is_match(&lower) {
            return Some(START_TIMESTAMPS);
        }
        if optional
            && (storage.any_type_and_unit || expr.contains("__type__") || expr.contains("__unit__"))
        {
            return Some(TYPE_AND_UNIT);
        }
        if promql_parser::parser::parse(expr).is_err() {
            return Some(PARSER_GAP);
        }
        None
    }

    fn uses_native_histograms(
        &self,
        eval: &EvalCmd,
        stripped: &str,
        storage: &StorageFeatures,
    ) -> bool {
        if eval.result_lines.iter().any(|l| l.contains("{{")) || self.nh_funcs.is_match(stripped) {
            return true;
        }
        if storage.histogram_series.is_empty() {
            return false;
        }
        self.selectors_in(&eval.expr).iter().any(|selector| {
            storage
                .histogram_series
                .iter()
                .any(|series| self.selector_matches(series, selector))
        })
    }

    fn has_duration_expression(&self, stripped: &str, lower: &str) -> bool {
        for caps in self.brackets.captures_iter(stripped) {
            for part in caps[1].split(':') {
                if !part.trim().is_empty() && !self.plain_duration.is_match(part) {
                    return true;
                }
            }
        }
        self.offset_expr.is_match(lower) || self.offset_arith.is_match(lower)
    }

    /// A rough extraction of an expression's vector selectors as matcher
    /// lists (`promqltest_index.py`'s `selectors_in`), which also works on
    /// expressions promql-parser cannot parse.
    fn selectors_in(&self, expr: &str) -> Vec<SelectorMatchers> {
        let mut selectors = Vec::new();
        for caps in self.brace_selector.captures_iter(expr) {
            let name = caps
                .get(1)
                .map(|m| m.as_str())
                .filter(|n| !KEYWORDS.contains(&n.to_lowercase().as_str()));
            let mut matchers: SelectorMatchers = self
                .label_pair
                .captures_iter(&caps[2])
                .map(|lp| (lp[1].to_string(), lp[2].to_string(), simple_unquote(&lp[3])))
                .collect();
            if let Some(name) = name {
                matchers.push(("__name__".to_string(), "=".to_string(), name.to_string()));
            }
            selectors.push(matchers);
        }
        let mut bare = self.strings.replace_all(expr, "\"\"").into_owned();
        bare = self.brace_selector.replace_all(&bare, " ").into_owned();
        bare = self.grouping.replace_all(&bare, " ").into_owned();
        bare = self.brackets.replace_all(&bare, " ").into_owned();
        bare = self.number.replace_all(&bare, "${1} ").into_owned();
        for m in self.ident.find_iter(&bare) {
            let token = m.as_str();
            if bare[m.end()..].trim_start().starts_with('(') {
                continue; // a function call or aggregation
            }
            if KEYWORDS.contains(&token.to_lowercase().as_str()) {
                continue;
            }
            selectors.push(vec![(
                "__name__".to_string(),
                "=".to_string(),
                token.to_string(),
            )]);
        }
        selectors
    }
}

fn simple_unquote(quoted: &str) -> String {
    let inner = &quoted[1..quoted.len() - 1];
    if quoted.starts_with('`') {
        return inner.to_string();
    }
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl SkipRules {
    /// Python's `matches`: every matcher must hold; an invalid regex matches.
    fn selector_matches(&self, series: &LabelMap, matchers: &SelectorMatchers) -> bool {
        for (name, op, value) in matchers {
            let have = series.get(name).map(String::as_str).unwrap_or("");
            let ok = match op.as_str() {
                "=" => have == value,
                "!=" => have != value,
                "=~" | "!~" => match self.full_match(value, have) {
                    Some(matched) => matched == (op == "=~"),
                    None => return true,
                },
                _ => true,
            };
            if !ok {
                return false;
            }
        }
        true
    }

    /// Whether `pattern` matches all of `text`; `None` for an invalid pattern.
    fn full_match(&self, pattern: &str, text: &str) -> Option<bool> {
        let mut cache = self.anchored_regexes.borrow_mut();
        let regex = cache
            .entry(pattern.to_string())
            .or_insert_with(|| Regex::new(&format!("^(?:{pattern})$")).ok());
        regex.as_ref().map(|re| re.is_match(text))
    }
}
