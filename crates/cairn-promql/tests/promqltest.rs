//! PromQL conformance runner: Prometheus's own `promqltest` files, run against
//! Cairn's real storage (`cairn_tsdb::Tsdb`) and engine (`cairn_promql::Engine`).
//!
//! The files live in `../shared/promql-tests/testdata/` beside the checkout and
//! are never copied into the repository; their syntax is specified in
//! `../shared/promql-tests/README.md`. Modules:
//! - `script`: splits a file into `load` / `clear` / `eval` commands as Go's runner does;
//! - `series`: the series notation of load and result lines (`a+bxN`, `_`, `stale`, `{{...}}`);
//! - `flags`: which evals are skipped and why (features Cairn does not have);
//! - `exec`: runs the commands, with the range-mode and `@` re-checks of instant evals;
//! - `compare`: result comparison (`almost.Equal`), annotations, expected failures;
//! - `known`: `known-failures.txt`, the checked-in list of expected failures.
//!
//! The test fails when an eval fails that is not listed in
//! `known-failures.txt`, or when a listed eval no longer fails (the list only
//! shrinks). Environment:
//! - `PROMQLTEST_WRITE_KNOWN_FAILURES=1` rewrites the list from the current failures;
//! - `PROMQLTEST_FILE=<name>` runs one file (`functions.test` or `functions`);
//!   `PROMQLTEST_FILE=functions.test:523` runs only the eval on line 523 (after
//!   the file's loads before it);
//! - `PROMQLTEST_VERBOSE=1` prints every failure's details;
//! - evals of anchored/smoothed, duration expressions, fill modifiers and
//!   type-and-unit labels run whenever promql-parser parses them (the engine
//!   implements them, so CI guards them too); `PROMQLTEST_FLOOR_ONLY=1` skips
//!   them, to see the floor alone (see `flags`);
//! - `PROMQLTEST_DIR=<folder>` reads the `.test` files of another folder (for
//!   trying the runner on hand-written files; the corpus checks and
//!   `known-failures.txt` are then not used, and any failure fails the run).
//!
//! A load that storage does not accept in full also fails the run, as it
//! fails the file in Go's runner.

#[path = "promqltest/atmod.rs"]
mod atmod;
#[path = "promqltest/checks.rs"]
mod checks;
#[path = "promqltest/compare.rs"]
mod compare;
#[path = "promqltest/duration.rs"]
mod duration;
#[path = "promqltest/exec.rs"]
mod exec;
#[path = "promqltest/flags.rs"]
mod flags;
#[path = "promqltest/known.rs"]
mod known;
#[path = "promqltest/script.rs"]
mod script;
#[path = "promqltest/series.rs"]
mod series;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use cairn_promql::{Engine, EngineOptions};

use crate::checks::Checks;
use crate::exec::{FileResult, FileRunner, Outcome};
use crate::known::KnownFailures;
use crate::script::Command;

/// An eval (with its re-checks) slower than this is reported: the whole
/// suite has to stay well under a minute in a debug build on 2 cores.
const SLOW_EVAL: Duration = Duration::from_secs(1);

/// An eval still running after this is named by the watchdog.
const HUNG_EVAL: Duration = Duration::from_secs(30);

/// Evals per file in the pinned snapshot of the test files (README §3,
/// `tools/promqltest_index.py`); 2,214 in all.
const EXPECTED_EVALS_PER_FILE: &[(&str, usize)] = &[
    ("aggregators.test", 160),
    ("at_modifier.test", 78),
    ("collision.test", 2),
    ("duration_expression.test", 59),
    ("extended_vectors.test", 169),
    ("fill-modifier.test", 46),
    ("functions.test", 431),
    ("histograms.test", 185),
    ("info.test", 53),
    ("limit.test", 37),
    ("literals.test", 25),
    ("name_label_dropping.test", 30),
    ("native_histograms.test", 522),
    ("operators.test", 214),
    ("range_queries.test", 18),
    ("selectors.test", 31),
    ("staleness.test", 17),
    ("start_timestamps.test", 26),
    ("subquery.test", 34),
    ("trig_functions.test", 19),
    ("type_and_unit.test", 58),
];
const EXPECTED_EVAL_COUNT: usize = 2214;

fn testdata_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/promql-tests/testdata")
}

fn known_failures_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/known-failures.txt")
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

struct TestFile {
    name: String,
    commands: Vec<Command>,
}

fn main() -> ExitCode {
    let started = Instant::now();
    let verbose = env_flag("PROMQLTEST_VERBOSE");
    let write_known = env_flag("PROMQLTEST_WRITE_KNOWN_FAILURES");
    let run_optional = !env_flag("PROMQLTEST_FLOOR_ONLY");
    let (only_file, only_line) = match std::env::var("PROMQLTEST_FILE") {
        Ok(spec) if !spec.is_empty() => match parse_file_spec(&spec) {
            Some((file, line)) => (Some(file), line),
            None => {
                eprintln!(
                    "promqltest: PROMQLTEST_FILE must be <file>[.test][:<line>], got {spec:?}"
                );
                return ExitCode::FAILURE;
            }
        },
        _ => (None, None),
    };

    let custom_dir = std::env::var("PROMQLTEST_DIR")
        .ok()
        .filter(|d| !d.is_empty());
    let dir = custom_dir
        .as_ref()
        .map(PathBuf::from)
        .unwrap_or_else(testdata_dir);
    let files = match read_all_files(&dir) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("promqltest: {e}");
            return ExitCode::FAILURE;
        }
    };

    let mut checks = Checks::default();
    run_self_checks(&mut checks, &files, &dir, custom_dir.is_none());
    println!(
        "self-checks: {} passed, {} failed ({:.1}s)",
        checks.passed,
        checks.failures.len(),
        started.elapsed().as_secs_f64()
    );
    if !checks.failures.is_empty() {
        for failure in &checks.failures {
            println!("  self-check failed: {failure}");
        }
        println!("0 passed, {} failed", checks.failures.len());
        return ExitCode::FAILURE;
    }

    let selected: Vec<&TestFile> = files
        .iter()
        .filter(|f| only_file.as_ref().is_none_or(|only| &f.name == only))
        .collect();
    if selected.is_empty() {
        eprintln!(
            "promqltest: no test file named {:?} in {}",
            only_file,
            dir.display()
        );
        return ExitCode::FAILURE;
    }

    exec::install_quiet_panic_hook();
    let results = run_files(&selected, only_line, run_optional);

    print_table(&selected, &results);
    let mut passed = 0;
    let mut failed = 0;
    let mut skipped = 0;
    let mut failures: BTreeMap<(String, usize), String> = BTreeMap::new();
    let mut skip_reasons: BTreeMap<&str, usize> = BTreeMap::new();
    for (file, result) in selected.iter().zip(&results) {
        for problem in &result.storage_problems {
            println!("storage problem in {}: {problem}", file.name);
        }
        for eval in &result.evals {
            if eval.elapsed >= SLOW_EVAL {
                println!(
                    "slow eval {}:{} took {:.1}s: {}",
                    file.name,
                    eval.line,
                    eval.elapsed.as_secs_f64(),
                    eval.expr
                );
            }
            match &eval.outcome {
                Outcome::Passed => passed += 1,
                Outcome::Failed(message) => {
                    failed += 1;
                    failures.insert((file.name.clone(), eval.line), message.clone());
                    if verbose {
                        println!(
                            "FAIL {}:{} {}\n     {}",
                            file.name, eval.line, eval.expr, message
                        );
                    }
                }
                Outcome::Skipped(reason) => {
                    skipped += 1;
                    *skip_reasons.entry(reason).or_default() += 1;
                }
            }
        }
    }
    let reasons: Vec<String> = skip_reasons
        .iter()
        .map(|(r, n)| format!("{r}: {n}"))
        .collect();
    println!("skipped by reason: {}", reasons.join(", "));

    let known_path = known_failures_path();
    let mut ok = true;
    let storage_problems: usize = results.iter().map(|r| r.storage_problems.len()).sum();
    if storage_problems > 0 {
        // Go's runner fails the file when a load is refused; so does this one.
        println!("{storage_problems} load(s) not accepted in full by storage: the run fails");
        ok = false;
    }
    if custom_dir.is_some() {
        // Hand-written files: no known-failures list applies.
        ok = ok && failed == 0;
    } else if write_known && only_line.is_some() {
        println!("not rewriting known-failures.txt for a single eval; drop the :<line>");
        ok = false;
    } else if write_known {
        let selected_names: BTreeSet<String> = selected.iter().map(|f| f.name.clone()).collect();
        match known::write(&known_path, &failures, &selected_names) {
            Ok(count) => println!("wrote {count} entries to {}", known_path.display()),
            Err(e) => {
                println!("cannot write {}: {e}", known_path.display());
                ok = false;
            }
        }
    } else {
        ok = check_against_known(&known_path, &selected, only_line, &results, &failures) && ok;
    }

    println!(
        "took {:.1}s; {} instant and {} range queries (with the range-mode and @ re-checks)",
        started.elapsed().as_secs_f64(),
        exec::INSTANT_QUERIES.load(AtomicOrdering::Relaxed),
        exec::RANGE_QUERIES.load(AtomicOrdering::Relaxed)
    );
    println!("{passed} passed, {failed} failed, {skipped} skipped");
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `functions`, `functions.test` or `functions.test:523`.
fn parse_file_spec(spec: &str) -> Option<(String, Option<usize>)> {
    let (name, line) = match spec.rsplit_once(':') {
        Some((name, line)) => (name, Some(line.parse::<usize>().ok()?)),
        None => (spec, None),
    };
    if name.is_empty() {
        return None;
    }
    let file = if name.ends_with(".test") {
        name.to_string()
    } else {
        format!("{name}.test")
    };
    Some((file, line))
}

fn read_all_files(dir: &Path) -> Result<Vec<TestFile>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        format!(
            "cannot read {} ({e}); the conformance files are expected in ../shared/promql-tests beside the checkout",
            dir.display()
        )
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "test"))
        .collect();
    paths.sort();
    let mut files = Vec::new();
    for path in paths {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let commands = script::parse_file(&text).map_err(|e| format!("{name}: {e}"))?;
        files.push(TestFile { name, commands });
    }
    Ok(files)
}

fn eval_commands(file: &TestFile) -> impl Iterator<Item = &script::EvalCmd> {
    file.commands.iter().filter_map(|c| match c {
        Command::Eval(eval) => Some(eval.as_ref()),
        _ => None,
    })
}

/// The DSL's unit checks, then checks over the whole corpus: the eval count,
/// promql-parser's rejections against the checked-in TSV, and that the
/// @-check's printed expressions parse back to the same tree.
fn run_self_checks(checks: &mut Checks, files: &[TestFile], dir: &Path, is_corpus: bool) {
    duration::self_checks(checks);
    series::self_checks(checks);
    script::self_checks(checks);
    compare::self_checks(checks);
    atmod::self_checks(checks);
    if !is_corpus {
        return;
    }

    let per_file: Vec<(&str, usize)> = files
        .iter()
        .map(|f| (f.name.as_str(), eval_commands(f).count()))
        .collect();
    checks.eq(
        "evals per file",
        per_file.as_slice(),
        EXPECTED_EVALS_PER_FILE,
    );
    let total: usize = per_file.iter().map(|(_, count)| count).sum();
    checks.eq("evals in all files", total, EXPECTED_EVAL_COUNT);

    let mut rejected: BTreeSet<(String, usize)> = BTreeSet::new();
    let mut round_trip_problems = Vec::new();
    for file in files {
        for eval in eval_commands(file) {
            match promql_parser::parser::parse(&eval.expr) {
                Err(_) => {
                    rejected.insert((file.name.clone(), eval.line));
                }
                Ok(parsed) => {
                    if let Err(e) = atmod::check_round_trip(&parsed) {
                        round_trip_problems.push(format!("{}:{}: {e}", file.name, eval.line));
                    }
                }
            }
        }
    }
    let tsv_path = dir.join("../tools/promql-parser-0.11.1-failures.tsv");
    match std::fs::read_to_string(&tsv_path) {
        Ok(tsv) => {
            let listed: BTreeSet<(String, usize)> = tsv
                .lines()
                .filter_map(|line| {
                    let mut parts = line.split('\t');
                    let file = parts.next()?;
                    let line_no = parts.next()?.parse().ok()?;
                    Some((file.to_string(), line_no))
                })
                .collect();
            let only_here: Vec<_> = rejected.difference(&listed).collect();
            let only_there: Vec<_> = listed.difference(&rejected).collect();
            checks.ok(
                "promql-parser rejections match tools/promql-parser-0.11.1-failures.tsv",
                only_here.is_empty() && only_there.is_empty(),
                || format!("rejected but not listed: {only_here:?}; listed but accepted: {only_there:?}"),
            );
        }
        Err(e) => println!(
            "note: cannot read {} ({e}); parser cross-check skipped",
            tsv_path.display()
        ),
    }
    if !round_trip_problems.is_empty() {
        println!(
            "note: promql-parser prints {} expression(s) with `@` added that do not parse back identically:",
            round_trip_problems.len()
        );
        for problem in round_trip_problems.iter().take(10) {
            println!("  {problem}");
        }
    }
}

/// Runs the files on a few threads (one engine per thread), keeping file order.
fn run_files(files: &[&TestFile], only_line: Option<usize>, run_optional: bool) -> Vec<FileResult> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4);
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<FileResult>>> = files.iter().map(|_| Mutex::new(None)).collect();
    let progress_per_thread: Vec<exec::Progress> =
        (0..threads).map(|_| exec::Progress::default()).collect();
    let (stop_watchdog, stopped) = mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let workers: Vec<_> = progress_per_thread
            .iter()
            .map(|progress| {
                let (next, slots) = (&next, &slots);
                scope.spawn(move || {
                    let engine = Engine::new(engine_options());
                    let mut skip_rules = flags::SkipRules::new();
                    skip_rules.run_optional_features = run_optional;
                    let mut runner = FileRunner::new(&engine, &skip_rules);
                    runner.only_line = only_line;
                    loop {
                        let index = next.fetch_add(1, AtomicOrdering::Relaxed);
                        let Some(file) = files.get(index) else { break };
                        let result = runner.run(&file.name, &file.commands, progress);
                        if let Ok(mut slot) = slots[index].lock() {
                            *slot = Some(result);
                        }
                    }
                })
            })
            .collect();
        let watched = &progress_per_thread;
        scope.spawn(move || watchdog(watched, stopped));
        for worker in workers {
            let _ = worker.join();
        }
        drop(stop_watchdog);
    });
    slots
        .into_iter()
        .map(|slot| {
            slot.into_inner().ok().flatten().unwrap_or(FileResult {
                evals: Vec::new(),
                storage_problems: vec!["runner thread died".to_string()],
            })
        })
        .collect()
}

/// Names evals that have run for longer than `HUNG_EVAL` until the workers finish.
fn watchdog(progress: &[exec::Progress], stopped: mpsc::Receiver<()>) {
    let mut reported: BTreeSet<(String, usize)> = BTreeSet::new();
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(Duration::from_secs(5)) {
        for (file, line, started) in progress.iter().filter_map(|p| p.current()) {
            let running = started.elapsed();
            if running >= HUNG_EVAL && reported.insert((file.clone(), line)) {
                println!(
                    "still running {file}:{line} after {}s (the engine may hang on it)",
                    running.as_secs()
                );
            }
        }
    }
}

/// The engine as Go's runner configures it (`NewTestEngine(t, false, 0, 10000)`):
/// default 5m lookback, at most 10,000 samples per query.
fn engine_options() -> EngineOptions {
    EngineOptions {
        max_samples: 10_000,
        ..EngineOptions::default()
    }
}

fn print_table(files: &[&TestFile], results: &[FileResult]) {
    let width = files.iter().map(|f| f.name.len()).max().unwrap_or(4).max(5);
    println!(
        "{:<width$} {:>6} {:>6} {:>7} {:>6}",
        "file", "passed", "failed", "skipped", "evals"
    );
    let mut totals = [0usize; 4];
    for (file, result) in files.iter().zip(results) {
        let mut counts = [0usize; 4];
        for eval in &result.evals {
            match eval.outcome {
                Outcome::Passed => counts[0] += 1,
                Outcome::Failed(_) => counts[1] += 1,
                Outcome::Skipped(_) => counts[2] += 1,
            }
            counts[3] += 1;
        }
        for (total, count) in totals.iter_mut().zip(counts) {
            *total += count;
        }
        println!(
            "{:<width$} {:>6} {:>6} {:>7} {:>6}",
            file.name, counts[0], counts[1], counts[2], counts[3]
        );
    }
    println!(
        "{:<width$} {:>6} {:>6} {:>7} {:>6}",
        "total", totals[0], totals[1], totals[2], totals[3]
    );
}

/// Compares the failures with `known-failures.txt`; prints what is new and
/// what no longer fails. Returns whether the run is acceptable.
fn check_against_known(
    path: &Path,
    files: &[&TestFile],
    only_line: Option<usize>,
    results: &[FileResult],
    failures: &BTreeMap<(String, usize), String>,
) -> bool {
    let known = match KnownFailures::load(path) {
        Ok(known) => known,
        Err(e) => {
            println!("cannot read {}: {e}", path.display());
            return false;
        }
    };
    let mut ok = true;
    let mut unexpected = 0;
    for ((file, line), message) in failures {
        if !known.contains(file, *line) {
            unexpected += 1;
            ok = false;
            println!("NEW FAILURE {file}:{line}: {}", one_line(message, 300));
        }
    }
    let mut status: BTreeMap<(String, usize), &Outcome> = BTreeMap::new();
    for (file, result) in files.iter().zip(results) {
        for eval in &result.evals {
            status.insert((file.name.clone(), eval.line), &eval.outcome);
        }
    }
    let selected: BTreeSet<&str> = files.iter().map(|f| f.name.as_str()).collect();
    let mut stale = 0;
    for (file, line) in known.entries() {
        if !selected.contains(file.as_str()) || only_line.is_some_and(|only| only != line) {
            continue;
        }
        let what = match status.get(&(file.clone(), line)) {
            Some(Outcome::Failed(_)) => continue,
            Some(Outcome::Passed) => "now passes",
            Some(Outcome::Skipped(_)) => "is now skipped",
            None => "is not an eval line",
        };
        stale += 1;
        ok = false;
        println!(
            "FIXED {file}:{line} {what}: remove it from known-failures.txt (the list only shrinks; \
             or regenerate with PROMQLTEST_WRITE_KNOWN_FAILURES=1)"
        );
    }
    if unexpected > 0 {
        println!(
            "{unexpected} failure(s) not listed in known-failures.txt (PROMQLTEST_VERBOSE=1 for details)"
        );
    }
    if stale > 0 {
        println!("{stale} known failure(s) no longer fail");
    }
    ok
}

/// The message on one line, cut to at most `max` characters.
pub fn one_line(message: &str, max: usize) -> String {
    let flat: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        flat
    } else {
        let cut: String = flat.chars().take(max).collect();
        format!("{cut}...")
    }
}
