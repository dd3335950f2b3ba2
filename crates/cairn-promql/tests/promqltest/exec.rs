//! Runs one file's commands against Cairn's real storage and engine:
//! `load` appends through `Tsdb::append`, `clear` opens a fresh `Tsdb` in a
//! fresh temporary directory, `eval` queries `Engine` (Go's `execEval`,
//! including the range-mode and @-modifier re-checks of instant evals).

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use cairn_model::{Sample, SeriesSamples};
use cairn_promql::{Engine, QueryOptions, Value, VectorSample};
use cairn_tsdb::{Tsdb, TsdbOptions};
use regex::Regex;

use crate::atmod::at_modifier_cases;
use crate::compare::{
    assert_matrix_sorted, check_annotations, check_expected_failure, compare_result,
    compare_scalar, compare_vector,
};
use crate::flags::{SkipRules, StorageFeatures};
use crate::script::{Command, EvalCmd, LoadCmd};
use crate::series::SeqValue;

pub enum Outcome {
    Passed,
    Failed(String),
    Skipped(&'static str),
}

pub struct EvalResult {
    pub line: usize,
    pub expr: String,
    pub outcome: Outcome,
    /// Wall time of the eval and its re-checks.
    pub elapsed: Duration,
}

pub struct FileResult {
    pub evals: Vec<EvalResult>,
    /// Loads that storage refused in part, or storage that could not be opened.
    pub storage_problems: Vec<String>,
}

/// Queries sent to the engine, counting the re-checks of instant evals.
pub static INSTANT_QUERIES: AtomicU64 = AtomicU64::new(0);
pub static RANGE_QUERIES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Whether this thread is inside `catch`, where panics are expected.
    static CATCHING: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs a panic hook that, inside `catch`, only remembers the message and
/// location (a panicking eval is then reported once, as a failure); any other
/// panic, a bug in the runner itself, goes to the default hook.
pub fn install_quiet_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default_hook = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !CATCHING.with(Cell::get) {
                default_hook(info);
                return;
            }
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".to_string());
            let location = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            LAST_PANIC.with(|last| *last.borrow_mut() = Some(format!("{message}{location}")));
        }));
    });
}

/// Runs `f`, turning a panic into `Err("panic: ...")`.
fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    LAST_PANIC.with(|last| *last.borrow_mut() = None);
    let was_catching = CATCHING.with(|catching| catching.replace(true));
    let outcome = panic::catch_unwind(AssertUnwindSafe(f));
    CATCHING.with(|catching| catching.set(was_catching));
    outcome.map_err(|_| {
        let message = LAST_PANIC
            .with(|last| last.borrow_mut().take())
            .unwrap_or_else(|| "unknown".to_string());
        format!("panic: {message}")
    })
}

/// What a worker thread is evaluating, so that a watchdog can name an eval
/// that hangs (the runner cannot interrupt it).
#[derive(Default)]
pub struct Progress {
    current: Mutex<Option<(String, usize, Instant)>>,
}

impl Progress {
    fn set(&self, value: Option<(String, usize, Instant)>) {
        if let Ok(mut current) = self.current.lock() {
            *current = value;
        }
    }

    /// The file, line and start of the running eval, if any.
    pub fn current(&self) -> Option<(String, usize, Instant)> {
        self.current.lock().ok().and_then(|c| c.clone())
    }
}

struct Storage {
    tsdb: Result<Tsdb, String>,
    // Dropped after `tsdb` (fields drop in declaration order).
    _dir: Option<tempfile::TempDir>,
}

impl Storage {
    fn closed() -> Storage {
        Storage {
            tsdb: Err("closed".to_string()),
            _dir: None,
        }
    }

    fn open() -> Storage {
        let dir = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(e) => {
                return Storage {
                    tsdb: Err(format!("cannot create a temporary directory: {e}")),
                    _dir: None,
                }
            }
        };
        let tsdb = match catch(|| Tsdb::open(dir.path(), TsdbOptions::default())) {
            Ok(Ok(tsdb)) => Ok(tsdb),
            Ok(Err(e)) => Err(format!("Tsdb::open failed: {e}")),
            Err(panic) => Err(format!("Tsdb::open {panic}")),
        };
        Storage {
            tsdb,
            _dir: Some(dir),
        }
    }
}

pub struct FileRunner<'a> {
    pub engine: &'a Engine,
    pub skip_rules: &'a SkipRules,
    pub query_context_funcs: Regex,
    /// Run only the eval on this line (the file's loads and clears still run).
    pub only_line: Option<usize>,
}

impl<'a> FileRunner<'a> {
    pub fn new(engine: &'a Engine, skip_rules: &'a SkipRules) -> FileRunner<'a> {
        FileRunner {
            engine,
            skip_rules,
            query_context_funcs: Regex::new(r"(start|end|range|step)\(\)").expect("runner regex"),
            only_line: None,
        }
    }

    pub fn run(&self, file_name: &str, commands: &[Command], progress: &Progress) -> FileResult {
        let mut result = FileResult {
            evals: Vec::new(),
            storage_problems: Vec::new(),
        };
        let mut storage = Storage::open();
        let mut features = StorageFeatures::default();
        let mut reported_open_error = false;
        for command in commands {
            match command {
                Command::Clear => {
                    // Drop the old database (and its directory) before opening the next one.
                    let previous = std::mem::replace(&mut storage, Storage::closed());
                    drop(previous);
                    storage = Storage::open();
                    features.clear();
                    reported_open_error = false;
                }
                Command::Load(load) => {
                    features.record_load(load);
                    match &storage.tsdb {
                        Ok(tsdb) => {
                            if let Err(problem) = load_into(tsdb, load) {
                                result
                                    .storage_problems
                                    .push(format!("load at line {}: {problem}", load.line));
                            }
                        }
                        Err(e) if !reported_open_error => {
                            reported_open_error = true;
                            result
                                .storage_problems
                                .push(format!("load at line {}: {e}", load.line));
                        }
                        Err(_) => {}
                    }
                }
                Command::Eval(eval) if self.only_line.is_some_and(|line| line != eval.line) => {}
                Command::Eval(eval) => {
                    let started = Instant::now();
                    progress.set(Some((file_name.to_string(), eval.line, started)));
                    let outcome = match self.skip_rules.skip_reason(eval, &features) {
                        Some(reason) => Outcome::Skipped(reason),
                        None => match &storage.tsdb {
                            Ok(tsdb) => match catch(|| self.run_eval(tsdb, eval)) {
                                Ok(Ok(())) => Outcome::Passed,
                                Ok(Err(message)) => Outcome::Failed(message),
                                Err(panic) => Outcome::Failed(panic),
                            },
                            Err(e) => Outcome::Failed(format!("no storage: {e}")),
                        },
                    };
                    result.evals.push(EvalResult {
                        line: eval.line,
                        expr: eval.expr.clone(),
                        outcome,
                        elapsed: started.elapsed(),
                    });
                    progress.set(None);
                }
            }
        }
        result
    }

    fn run_eval(&self, tsdb: &Tsdb, eval: &EvalCmd) -> Result<(), String> {
        if eval.is_range {
            return self.run_range_eval(tsdb, eval);
        }
        let mut queries = vec![(eval.expr.clone(), eval.eval_ms)];
        let at_cases =
            at_modifier_cases(&eval.expr, eval.eval_ms).map_err(|e| format!("@ check: {e}"))?;
        queries.extend(at_cases.into_iter().map(|case| (case.expr, case.eval_ms)));
        for (index, (query, time_ms)) in queries.iter().enumerate() {
            self.run_instant_query(tsdb, eval, query, *time_ms)
                .map_err(|e| {
                    if index == 0 {
                        e
                    } else {
                        format!("@ check ({query} at t={time_ms}ms): {e}")
                    }
                })?;
        }
        Ok(())
    }

    fn run_range_eval(&self, tsdb: &Tsdb, eval: &EvalCmd) -> Result<(), String> {
        let end_ms = eval.end_ms.unwrap_or(eval.start_ms);
        RANGE_QUERIES.fetch_add(1, Ordering::Relaxed);
        let result = self.engine.range_query(
            tsdb,
            &eval.expr,
            eval.start_ms,
            end_ms,
            eval.step_ms,
            &QueryOptions::default(),
        );
        match result {
            Err(error) => {
                if eval.is_fail() {
                    return check_expected_failure(eval, &error.to_string());
                }
                Err(format!("error evaluating range query: {error}"))
            }
            Ok(_) if eval.is_fail() => {
                Err("expected error evaluating range query but got none".to_string())
            }
            Ok(result) => {
                check_annotations(eval, &eval.expr, &result.annotations)?;
                compare_result(eval, &result.value)
            }
        }
    }

    /// Go's `runInstantQuery`: the query itself, then its range-mode check.
    fn run_instant_query(
        &self,
        tsdb: &Tsdb,
        eval: &EvalCmd,
        query: &str,
        time_ms: i64,
    ) -> Result<(), String> {
        INSTANT_QUERIES.fetch_add(1, Ordering::Relaxed);
        let result = match self
            .engine
            .instant_query(tsdb, query, time_ms, &QueryOptions::default())
        {
            Err(error) => {
                if eval.is_fail() {
                    return check_expected_failure(eval, &error.to_string());
                }
                return Err(format!("error evaluating query: {error}"));
            }
            Ok(_) if eval.is_fail() => {
                return Err("expected error evaluating query but got none".to_string())
            }
            Ok(result) => result,
        };
        check_annotations(eval, query, &result.annotations)?;
        compare_result(eval, &result.value)?;

        if eval.exclude_from_range_query || self.query_context_funcs.is_match(query) {
            return Ok(());
        }
        RANGE_QUERIES.fetch_add(1, Ordering::Relaxed);
        let range = self
            .engine
            .range_query(
                tsdb,
                query,
                time_ms - 60_000,
                time_ms + 60_000,
                60_000,
                &QueryOptions::default(),
            )
            .map_err(|e| format!("range mode: error evaluating query: {e}"))?;
        if eval.is_ordered() {
            return Ok(());
        }
        let Value::Matrix(matrix) = &range.value else {
            return Err(format!(
                "range mode: expected a matrix, got {}",
                value_kind(&range.value)
            ));
        };
        assert_matrix_sorted(matrix).map_err(|e| format!("range mode: {e}"))?;
        let mut vector = Vec::with_capacity(matrix.len());
        for series in matrix {
            if let Some(point) = series.samples.iter().find(|s| s.t == time_ms) {
                vector.push(VectorSample {
                    labels: series.labels.clone(),
                    t: point.t,
                    v: point.v,
                });
            }
        }
        let checked = if matches!(result.value, Value::Scalar(_)) {
            match vector.first() {
                Some(first) => compare_scalar(eval, first.v),
                None => Err(format!("no point at t={time_ms}")),
            }
        } else {
            compare_vector(eval, &vector)
        };
        checked.map_err(|e| format!("range mode: {e}"))
    }
}

fn value_kind(value: &Value) -> &'static str {
    match value {
        Value::Scalar(_) => "scalar",
        Value::String { .. } => "string",
        Value::Vector(_) => "vector",
        Value::Matrix(_) => "matrix",
    }
}

/// Appends a load block's float samples (histogram samples cannot be stored;
/// evals that read them are skipped).
fn load_into(tsdb: &Tsdb, load: &LoadCmd) -> Result<(), String> {
    let mut batch = Vec::with_capacity(load.series.len());
    for (labels, values) in &load.series {
        let samples: Vec<Sample> = values
            .iter()
            .enumerate()
            .filter_map(|(i, value)| match value {
                SeqValue::Float(v) => Some(Sample::new(i as i64 * load.step_ms, *v)),
                SeqValue::Omitted | SeqValue::Histogram(_) => None,
            })
            .collect();
        if samples.is_empty() {
            continue;
        }
        batch.push(SeriesSamples {
            labels: labels.clone(),
            samples,
            exemplars: Vec::new(),
        });
    }
    match catch(|| tsdb.append(batch)) {
        Ok(Ok(outcome)) => match outcome.first_rejection {
            None => Ok(()),
            Some(rejection) => Err(format!(
                "storage refused samples {:?}; first: {} at t={} ({:?})",
                outcome.discarded, rejection.labels, rejection.t, rejection.reason
            )),
        },
        Ok(Err(e)) => Err(format!("Tsdb::append failed: {e}")),
        Err(panic) => Err(format!("Tsdb::append {panic}")),
    }
}
