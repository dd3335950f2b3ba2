//! `known-failures.txt`: one line per eval that is expected to fail,
//! `<file>:<line> <one-line reason>`, where `<line>` is the eval's line.
//! Blank lines and lines starting with `#` are ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const HEADER: &str = "\
# PromQL conformance evals that are known to fail: `<file>:<line> <reason>`,
# where <line> is the line of the eval in ../shared/promql-tests/testdata/<file>.
# The promqltest runner fails on any failure not listed here, and on any entry
# that no longer fails: the list only shrinks. Regenerate it with
#   PROMQLTEST_WRITE_KNOWN_FAILURES=1 cargo test -p cairn-promql --test promqltest
# (add PROMQLTEST_FILE=<name> to rewrite only that file's entries).
";

/// Characters of the failure message kept as an entry's reason.
const REASON_CHARS: usize = 100;

pub struct KnownFailures {
    entries: BTreeMap<(String, usize), String>,
}

impl KnownFailures {
    /// A missing file is an empty list.
    pub fn load(path: &Path) -> Result<KnownFailures, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e.to_string()),
        };
        parse(&text).map(|entries| KnownFailures { entries })
    }

    pub fn contains(&self, file: &str, line: usize) -> bool {
        self.entries.contains_key(&(file.to_string(), line))
    }

    pub fn entries(&self) -> impl Iterator<Item = (String, usize)> + '_ {
        self.entries.keys().cloned()
    }
}

fn parse(text: &str) -> Result<BTreeMap<(String, usize), String>, String> {
    let mut entries = BTreeMap::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (location, reason) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let parsed = location
            .rsplit_once(':')
            .and_then(|(file, line_no)| Some((file.to_string(), line_no.parse::<usize>().ok()?)));
        let Some(key) = parsed else {
            return Err(format!(
                "line {}: expected `<file>:<line> <reason>`, got {line:?}",
                index + 1
            ));
        };
        entries.insert(key, reason.trim().to_string());
    }
    Ok(entries)
}

/// Rewrites the file: entries of `rewritten_files` come from `failures`,
/// entries of other files are kept. Returns the number of entries written.
pub fn write(
    path: &Path,
    failures: &BTreeMap<(String, usize), String>,
    rewritten_files: &BTreeSet<String>,
) -> Result<usize, String> {
    let mut entries = KnownFailures::load(path)?.entries;
    entries.retain(|(file, _), _| !rewritten_files.contains(file));
    for ((file, line), message) in failures {
        entries.insert(
            (file.clone(), *line),
            crate::one_line(message, REASON_CHARS),
        );
    }
    let mut text = HEADER.to_string();
    for ((file, line), reason) in &entries {
        text.push_str(&format!("{file}:{line} {reason}\n"));
    }
    std::fs::write(path, text).map_err(|e| e.to_string())?;
    Ok(entries.len())
}
