//! Splits a `.test` file into commands exactly as Go's runner
//! (`promql/promqltest/test.go`) does: `load`, `load_with_nhcb`, `clear` and
//! `eval` with its expect lines and result lines.

use std::collections::HashMap;
use std::sync::LazyLock;

use cairn_model::Labels;
use regex::Regex;

use crate::checks::Checks;
use crate::duration::parse_duration_ms;
use crate::series::{go_unquote, parse_go_number, parse_series_line, SeqValue};

pub enum Command {
    Clear,
    Load(LoadCmd),
    Eval(Box<EvalCmd>),
}

pub struct LoadCmd {
    /// 1-based line of the `load` line.
    pub line: usize,
    pub step_ms: i64,
    pub with_nhcb: bool,
    /// Series in first-appearance order; a repeated series line replaces the
    /// earlier values (Go keeps a map keyed by the label hash).
    pub series: Vec<(Labels, Vec<SeqValue>)>,
    /// Whether the block has start-timestamp (`@st`) lines.
    pub has_start_timestamps: bool,
}

#[derive(Clone, Debug)]
pub enum MatchText {
    /// No `msg:` or `regex:`: Go uses `^.*$`, which matches any one-line text.
    Any,
    /// `msg:` — the whole string must be equal.
    Exact(String),
    /// `regex:` (unanchored search).
    Pattern(Regex),
}

impl MatchText {
    pub fn matches(&self, text: &str) -> bool {
        match self {
            MatchText::Any => !text.contains('\n'),
            MatchText::Exact(expected) => expected == text,
            MatchText::Pattern(regex) => regex.is_match(text),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            MatchText::Any => "pattern \"^.*$\"".to_string(),
            MatchText::Exact(expected) => format!("message {expected:?}"),
            MatchText::Pattern(regex) => format!("pattern {:?}", regex.as_str()),
        }
    }
}

/// One expected series (or the scalar) of an eval.
#[derive(Clone, Debug)]
pub struct ExpectedSeries {
    /// Position among the block's result lines (Go's `j`), for `expect ordered`.
    pub pos: usize,
    pub values: Vec<SeqValue>,
}

pub struct EvalCmd {
    /// 1-based line of the `eval` line; known-failures entries use it.
    pub line: usize,
    pub expr: String,
    pub is_range: bool,
    /// Instant queries: evaluation time. With `expect range vector`, the `to` time.
    pub eval_ms: i64,
    /// Range queries and `expect range vector`: the expected points' grid.
    pub start_ms: i64,
    pub end_ms: Option<i64>,
    pub step_ms: i64,

    /// From the deprecated `eval_fail|warn|info|ordered` prefixes.
    pub legacy_fail: bool,
    pub legacy_warn: bool,
    pub legacy_info: bool,
    pub legacy_ordered: bool,
    pub expected_fail_message: Option<String>,
    pub expected_fail_regexp: Option<Regex>,

    pub expect_fail: Vec<MatchText>,
    pub expect_warn: Vec<MatchText>,
    pub expect_info: Vec<MatchText>,
    pub expect_no_warn: bool,
    pub expect_no_info: bool,
    pub expect_ordered: bool,

    pub expect_scalar: bool,
    pub scalar: Option<SeqValue>,
    pub expected: HashMap<Labels, ExpectedSeries>,
    /// Result lines as written, for the native-histogram skip rule.
    pub result_lines: Vec<String>,
    pub expected_string: String,
    pub expect_range_vector: bool,
    /// `expect range vector` and `expect string` evals skip the range-mode check.
    pub exclude_from_range_query: bool,
}

impl EvalCmd {
    pub fn is_fail(&self) -> bool {
        self.legacy_fail || !self.expect_fail.is_empty()
    }

    pub fn is_ordered(&self) -> bool {
        self.legacy_ordered || self.expect_ordered
    }
}

struct Patterns {
    space: Regex,
    load: Regex,
    eval_instant: Regex,
    eval_range: Regex,
    expect: Regex,
    expect_range: Regex,
    start_timestamp_item: Regex,
}

/// Compiled once: regex compilation is slow in a debug build.
static PATTERNS: LazyLock<Patterns> = LazyLock::new(Patterns::new);

impl Patterns {
    fn new() -> Patterns {
        let compile = |p: &str| Regex::new(p).expect("runner regex");
        Patterns {
            space: compile(r"[\t ]+"),
            load: compile(r"^load(?:_(with_nhcb))?\s+(.+?)$"),
            eval_instant: compile(
                r"^eval(?:_(fail|warn|ordered|info))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)$",
            ),
            eval_range: compile(
                r"^eval(?:_(fail|warn|info))?\s+range\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+?)\s+(.+)$",
            ),
            expect: compile(
                r"^expect\s+(ordered|fail|warn|no_warn|info|no_info)(?:\s+(regex|msg):(.+))?$",
            ),
            expect_range: compile(r"^expect range vector\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+)$"),
            start_timestamp_item: compile(
                r"^(?:_|_x\d+|\*|\*x\d+|[-+]?[0-9][0-9a-wyz]*(?:x\d+|[-+][0-9][0-9a-wyz]*x\d+)?)$",
            ),
        }
    }
}

/// Go's `getLines`: trimmed lines, comment lines turned into empty lines.
fn get_lines(input: &str) -> Vec<&str> {
    input
        .split('\n')
        .map(|line| {
            let trimmed = line.trim();
            if trimmed.starts_with('#') {
                ""
            } else {
                trimmed
            }
        })
        .collect()
}

/// Parses a whole file. Errors name the 1-based line.
pub fn parse_file(input: &str) -> Result<Vec<Command>, String> {
    let patterns: &Patterns = &PATTERNS;
    let lines = get_lines(input);
    let mut commands = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.is_empty() {
            i += 1;
            continue;
        }
        let first_word = patterns
            .space
            .splitn(line, 2)
            .next()
            .unwrap_or("")
            .to_lowercase();
        if first_word == "clear" {
            commands.push(Command::Clear);
        } else if first_word.starts_with("load") {
            let (last, load) = parse_load(patterns, &lines, i)?;
            commands.push(Command::Load(load));
            i = last;
        } else if first_word.starts_with("eval") {
            let (last, eval) = parse_eval(patterns, &lines, i)?;
            commands.push(Command::Eval(Box::new(eval)));
            i = last;
        } else {
            return Err(format!("line {}: invalid command {line:?}", i + 1));
        }
        i += 1;
    }
    Ok(commands)
}

/// Returns the index of the block's last line and the command.
fn parse_load(
    patterns: &Patterns,
    lines: &[&str],
    start: usize,
) -> Result<(usize, LoadCmd), String> {
    let caps = patterns
        .load
        .captures(lines[start])
        .ok_or_else(|| format!("line {}: invalid load command", start + 1))?;
    let step_text = caps.get(2).map_or("", |m| m.as_str());
    let step_ms = parse_duration_ms(step_text)
        .map_err(|e| format!("line {}: invalid step: {e}", start + 1))?;
    let mut load = LoadCmd {
        line: start + 1,
        step_ms,
        with_nhcb: caps.get(1).is_some(),
        series: Vec::new(),
        has_start_timestamps: false,
    };
    let mut index_of: HashMap<Labels, usize> = HashMap::new();
    let mut i = start;
    while i + 1 < lines.len() && !lines[i + 1].is_empty() {
        i += 1;
        let line = lines[i];
        let first_word = line.split([' ', '\t']).next().unwrap_or("");
        if line.contains([' ', '\t']) && first_word.ends_with("@st") {
            // Start-timestamp line: the items are durations; Cairn has no start
            // timestamps, so only the syntax is checked and the block is flagged.
            check_start_timestamp_line(line).map_err(|e| format!("line {}: {e}", i + 1))?;
            load.has_start_timestamps = true;
            continue;
        }
        let (labels, values) =
            parse_series_line(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        match index_of.get(&labels) {
            Some(&at) => load.series[at].1 = values,
            None => {
                index_of.insert(labels.clone(), load.series.len());
                load.series.push((labels, values));
            }
        }
    }
    Ok((i, load))
}

/// `metric{...}@st <items>` with items `_`, `_x<n>`, `<dur>`, `<dur>x<n>`,
/// `<dur>+<dur>x<n>`, `<dur>-<dur>x<n>` (durations may be signed).
fn check_start_timestamp_line(line: &str) -> Result<(), String> {
    let (_, items) = line
        .split_once([' ', '\t'])
        .ok_or("@st line without items")?;
    for item in items.split_whitespace() {
        if !PATTERNS.start_timestamp_item.is_match(item) {
            return Err(format!("invalid @st item {item:?}"));
        }
    }
    Ok(())
}

fn parse_eval(
    patterns: &Patterns,
    lines: &[&str],
    start: usize,
) -> Result<(usize, EvalCmd), String> {
    let header = lines[start];
    let line_no = start + 1;
    let err = |msg: String| format!("line {line_no}: {msg}");
    let mut eval = EvalCmd {
        line: line_no,
        expr: String::new(),
        is_range: false,
        eval_ms: 0,
        start_ms: 0,
        end_ms: None,
        step_ms: 0,
        legacy_fail: false,
        legacy_warn: false,
        legacy_info: false,
        legacy_ordered: false,
        expected_fail_message: None,
        expected_fail_regexp: None,
        expect_fail: Vec::new(),
        expect_warn: Vec::new(),
        expect_info: Vec::new(),
        expect_no_warn: false,
        expect_no_info: false,
        expect_ordered: false,
        expect_scalar: false,
        scalar: None,
        expected: HashMap::new(),
        result_lines: Vec::new(),
        expected_string: String::new(),
        expect_range_vector: false,
        exclude_from_range_query: false,
    };
    let modifier;
    if let Some(caps) = patterns.eval_instant.captures(header) {
        modifier = caps.get(1).map(|m| m.as_str().to_string());
        let at = caps.get(2).map_or("", |m| m.as_str());
        eval.expr = caps[3].to_string();
        eval.eval_ms = parse_duration_ms(at)
            .map_err(|e| err(format!("invalid timestamp definition {at:?}: {e}")))?;
        eval.start_ms = eval.eval_ms;
    } else if let Some(caps) = patterns.eval_range.captures(header) {
        modifier = caps.get(1).map(|m| m.as_str().to_string());
        eval.is_range = true;
        let (from, to, step) = parse_range(&caps[2], &caps[3], &caps[4]).map_err(err)?;
        eval.start_ms = from;
        eval.end_ms = Some(to);
        eval.step_ms = step;
        eval.expr = caps[5].to_string();
    } else {
        return Err(err(format!("invalid evaluation command {header:?}")));
    }
    match modifier.as_deref() {
        Some("fail") => eval.legacy_fail = true,
        Some("warn") => eval.legacy_warn = true,
        Some("info") => eval.legacy_info = true,
        Some("ordered") => eval.legacy_ordered = true,
        _ => {}
    }

    let mut i = start;
    let mut j = 1usize;
    while i + 1 < lines.len() {
        i += 1;
        let line = lines[i];
        if line.is_empty() {
            i -= 1;
            break;
        }
        let line_err = |msg: String| format!("line {}: {msg}", i + 1);
        if eval.legacy_fail {
            if let Some(message) = line.strip_prefix("expected_fail_message") {
                eval.expected_fail_message = Some(message.trim().to_string());
                break;
            }
            if let Some(pattern) = line.strip_prefix("expected_fail_regexp") {
                let regex = Regex::new(pattern.trim())
                    .map_err(|e| line_err(format!("invalid regexp: {e}")))?;
                eval.expected_fail_regexp = Some(regex);
                break;
            }
        }
        if line.starts_with("expect range vector") {
            let caps = patterns
                .expect_range
                .captures(line)
                .ok_or_else(|| line_err(format!("invalid range vector definition {line:?}")))?;
            let (from, to, step) = parse_range(&caps[1], &caps[2], &caps[3]).map_err(line_err)?;
            eval.expect_range_vector = true;
            eval.start_ms = from;
            eval.end_ms = Some(to);
            eval.step_ms = step;
            eval.eval_ms = to;
            eval.exclude_from_range_query = true;
            j += 1;
            continue;
        }
        if line.starts_with("expect string") {
            let literal = line
                .strip_prefix("expect string ")
                .filter(|s| !s.is_empty())
                .ok_or_else(|| line_err("expected string literal not valid".to_string()))?;
            eval.expected_string =
                go_unquote(literal).map_err(|e| line_err(format!("bad string literal: {e}")))?;
            eval.exclude_from_range_query = true;
            j += 1;
            continue;
        }
        if line.split(' ').next() == Some("expect") {
            parse_expect(patterns, line, &mut eval).map_err(line_err)?;
            continue;
        }
        if let Some(value) = parse_go_number(line) {
            eval.expect_scalar = true;
            eval.scalar = Some(SeqValue::Float(value));
            eval.result_lines.push(line.to_string());
            break;
        }
        let (labels, values) = parse_series_line(line).map_err(line_err)?;
        if values.len() > 1 && !eval.is_range && !eval.expect_range_vector {
            return Err(line_err(
                "expecting multiple values in instant evaluation not allowed".to_string(),
            ));
        }
        eval.expect_scalar = false;
        eval.result_lines.push(line.to_string());
        eval.expected
            .insert(labels, ExpectedSeries { pos: j, values });
        j += 1;
    }
    Ok((i, eval))
}

fn parse_expect(patterns: &Patterns, line: &str, eval: &mut EvalCmd) -> Result<(), String> {
    let caps = patterns.expect.captures(line.trim()).ok_or_else(|| {
        "invalid expect statement, must match `expect <type> <match_type>: <string>` format"
            .to_string()
    })?;
    let text = match (caps.get(2).map(|m| m.as_str()), caps.get(3)) {
        (Some("msg"), Some(m)) => MatchText::Exact(m.as_str().trim().to_string()),
        (Some("regex"), Some(m)) => MatchText::Pattern(
            Regex::new(m.as_str().trim()).map_err(|e| format!("invalid regex: {e}"))?,
        ),
        _ => MatchText::Any,
    };
    match &caps[1] {
        "fail" => eval.expect_fail.push(text),
        "warn" => eval.expect_warn.push(text),
        "info" => eval.expect_info.push(text),
        "no_warn" => eval.expect_no_warn = true,
        "no_info" => eval.expect_no_info = true,
        "ordered" => eval.expect_ordered = true,
        other => return Err(format!("invalid expect type {other}")),
    }
    if !eval.expect_info.is_empty() && eval.expect_no_info {
        return Err("invalid expect lines, info and no_info cannot be used together".to_string());
    }
    if !eval.expect_warn.is_empty() && eval.expect_no_warn {
        return Err("invalid expect lines, warn and no_warn cannot be used together".to_string());
    }
    if eval.expect_fail.len() > 1 {
        return Err("invalid expect lines, multiple expect fail lines are not allowed".to_string());
    }
    Ok(())
}

fn parse_range(from: &str, to: &str, step: &str) -> Result<(i64, i64, i64), String> {
    let from_ms = parse_duration_ms(from)
        .map_err(|e| format!("invalid start timestamp definition {from:?}: {e}"))?;
    let to_ms = parse_duration_ms(to)
        .map_err(|e| format!("invalid end timestamp definition {to:?}: {e}"))?;
    if to_ms < from_ms {
        return Err(format!(
            "end timestamp ({to}) is before start timestamp ({from})"
        ));
    }
    let step_ms =
        parse_duration_ms(step).map_err(|e| format!("invalid step definition {step:?}: {e}"))?;
    Ok((from_ms, to_ms, step_ms))
}

pub fn self_checks(checks: &mut Checks) {
    let text = "# comment\nload 1m\n  a{x=\"1\"} 1 2\n  a{x=\"1\"} 3\n\neval instant at 1m a\n  expect no_warn\n  a{x=\"1\"} 3\n\n\
                eval range from 0 to 2m step 1m a\n  {} 1 _ 2\n\neval_fail instant at 0 b\n  expected_fail_message boom\n\
                clear\neval instant at 0 1\n  1\neval instant at 0 \"x\"\n  expect string \"x\"\n";
    let commands = match parse_file(text) {
        Ok(commands) => commands,
        Err(e) => {
            checks.ok("parse sample script", false, || e);
            return;
        }
    };
    checks.eq("command count", commands.len(), 7);
    if let Some(Command::Load(load)) = commands.first() {
        checks.eq("load step", load.step_ms, 60_000);
        checks.eq("repeated series replaces", load.series.len(), 1);
        checks.eq(
            "replacement values",
            load.series[0].1.clone(),
            vec![SeqValue::Float(3.0)],
        );
    } else {
        checks.ok("first command is load", false, || "not a load".into());
    }
    let evals: Vec<&EvalCmd> = commands
        .iter()
        .filter_map(|c| match c {
            Command::Eval(e) => Some(e.as_ref()),
            _ => None,
        })
        .collect();
    checks.eq("eval count", evals.len(), 5);
    if evals.len() == 5 {
        checks.eq("instant line", evals[0].line, 6);
        checks.eq("instant time", evals[0].eval_ms, 60_000);
        checks.ok("no_warn", evals[0].expect_no_warn, || "not set".into());
        checks.eq("range end", evals[1].end_ms, Some(120_000));
        checks.eq(
            "legacy fail message",
            evals[2].expected_fail_message.clone(),
            Some("boom".to_string()),
        );
        checks.ok("scalar result", evals[3].expect_scalar, || {
            "not scalar".into()
        });
        checks.eq("expect string", evals[4].expected_string.as_str(), "x");
    }
    checks.ok(
        "bad command rejected",
        parse_file("bogus 1\n").is_err(),
        || "accepted".into(),
    );
    checks.ok(
        "multi-value instant result rejected",
        parse_file("eval instant at 0 a\n  a 1 2\n").is_err(),
        || "accepted".into(),
    );
}
