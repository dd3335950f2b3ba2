//! `cairn import`: backfills a tenant from OpenMetrics (or Prometheus) text
//! exposition with timestamps, the input `promtool tsdb create-blocks-from
//! openmetrics` takes, into imported blocks (`cairn_tsdb::backfill`).
//!
//! The input is read once, as a stream (a file or standard input), line by
//! line. Each distinct series text (`name{labels}` as written) is parsed
//! once and mapped to a series ID; every later line of that series costs a
//! hash lookup and the sample's encoding into its open chunk. Memory is
//! bounded by the number of series (labels and one open chunk each) plus a
//! fixed spill buffer, not by the length of history: closed chunks go to
//! one spill file per block window, and blocks are built a window at a
//! time. Promtool instead reads (maps) the whole file once per block window.
//!
//! Rules (the OpenMetrics text format, as Prometheus's parser reads it):
//! - every sample has a timestamp: in seconds (decimals allowed) in
//!   OpenMetrics, in integer milliseconds with `--format prometheus`;
//! - OpenMetrics input ends with `# EOF` and nothing follows it;
//! - `# HELP`, `# TYPE` (a known type) and `# UNIT` lines name a metric and
//!   are otherwise not imported (metadata lives in the tenant's WAL, which
//!   only the server writes); other `#` lines are refused in OpenMetrics
//!   and skipped as comments in the Prometheus format;
//! - series are imported as written (`x_total`, `x_bucket{le="1"}`,
//!   `x_sum`, `x_count`, `x{quantile="0.5"}`), exemplars after ` # ` are
//!   skipped; label values take the escapes `\\`, `\"` and `\n`;
//! - the samples of one series are in increasing time order (a duplicate
//!   or older timestamp is refused with both line numbers), and an import
//!   must not overlap the tenant's existing blocks for the same series.
//!
//! Every refusal names the input line and exits non-zero with nothing
//! imported.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Read};
use std::path::PathBuf;

use cairn_model::{Label, Labels, TenantId};
use cairn_tsdb::backfill::{Backfill, BackfillError, BackfillOptions};

/// Input syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// OpenMetrics text: timestamps in seconds, `# EOF` required.
    Openmetrics,
    /// Prometheus text exposition 0.0.4: timestamps in milliseconds.
    Prometheus,
}

/// An import refusal or failure.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("line {line}: {message}")]
    Syntax { line: u64, message: String },
    #[error("the input does not end with `# EOF` (required in OpenMetrics; use --format prometheus for Prometheus text)")]
    NoEof,
    #[error("cannot read the input: {0}")]
    Read(std::io::Error),
    #[error(transparent)]
    Backfill(#[from] BackfillError),
    #[error(transparent)]
    Tsdb(#[from] cairn_tsdb::TsdbError),
}

fn syntax(line: u64, message: impl Into<String>) -> ImportError {
    ImportError::Syntax {
        line,
        message: message.into(),
    }
}

/// What an import did, for the summary line.
pub struct ImportReport {
    pub series: u64,
    pub samples: u64,
    pub blocks: usize,
    pub min_time: Option<i64>,
    pub max_time: Option<i64>,
}

/// Counts bytes read, for the progress bar.
struct Counting<R> {
    inner: R,
    read: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// Imports `input` (`-`: standard input) into `tenant` under `data_dir`.
pub fn run(
    data_dir: &std::path::Path,
    tenant: &TenantId,
    input: &PathBuf,
    format: Format,
    block_range_ms: i64,
) -> Result<ImportReport, ImportError> {
    let (reader, total): (Box<dyn Read>, Option<u64>) = if input.as_os_str() == "-" {
        (Box::new(std::io::stdin().lock()), None)
    } else {
        let file = std::fs::File::open(input).map_err(ImportError::Read)?;
        let len = file.metadata().ok().map(|m| m.len());
        (Box::new(file), len)
    };
    let read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counting = Counting {
        inner: reader,
        read: read.clone(),
    };
    let bar = progress_bar(total);
    let mut backfill = Backfill::new(
        data_dir,
        tenant,
        BackfillOptions {
            block_range_ms,
            ..BackfillOptions::default()
        },
    )?;
    let mut parser = Parser::new(format);
    parse_into(
        std::io::BufReader::with_capacity(1 << 20, counting),
        &mut parser,
        &mut backfill,
        |line| {
            if line % 65_536 == 0 {
                bar.set_position(read.load(std::sync::atomic::Ordering::Relaxed));
            }
        },
    )?;
    bar.finish_and_clear();
    let windows = backfill.windows() as u64;
    let bar = blocks_bar(windows);
    let summary = backfill.finish(|done, _| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    Ok(ImportReport {
        series: summary.series,
        samples: summary.samples,
        blocks: summary.blocks.len(),
        min_time: summary.blocks.iter().map(|b| b.min_time).min(),
        max_time: summary.blocks.iter().map(|b| b.max_time).max(),
    })
}

fn progress_bar(total: Option<u64>) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    match total {
        Some(total) => indicatif::ProgressBar::new(total).with_style(
            indicatif::ProgressStyle::with_template(
                "reading {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
            )
            .expect("a valid template"),
        ),
        None => indicatif::ProgressBar::new_spinner().with_style(
            indicatif::ProgressStyle::with_template("reading {spinner} {bytes} ({bytes_per_sec})")
                .expect("a valid template"),
        ),
    }
}

fn blocks_bar(total: u64) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    indicatif::ProgressBar::new(total).with_style(
        indicatif::ProgressStyle::with_template("writing blocks {bar:40} {pos}/{len}")
            .expect("a valid template"),
    )
}

/// Reads every line of `reader` into `backfill`.
pub fn parse_into(
    mut reader: impl BufRead,
    parser: &mut Parser,
    backfill: &mut Backfill,
    mut tick: impl FnMut(u64),
) -> Result<(), ImportError> {
    let mut buf = Vec::with_capacity(4096);
    let mut number = 0u64;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(ImportError::Read)?;
        if n == 0 {
            break;
        }
        number += 1;
        tick(number);
        let mut line: &[u8] = &buf;
        if let Some(rest) = line.strip_suffix(b"\n") {
            line = rest;
        }
        if let Some(rest) = line.strip_suffix(b"\r") {
            line = rest;
        }
        parser.line(number, line, backfill)?;
    }
    parser.end()
}

/// The line parser and its series table.
pub struct Parser {
    format: Format,
    /// Series text as written (`name{labels}`) to series ID.
    by_text: HashMap<Box<[u8]>, u32>,
    /// Canonical label sets to series ID (two spellings of one series).
    by_labels: HashMap<Labels, u32>,
    eof_line: Option<u64>,
}

impl Parser {
    pub fn new(format: Format) -> Parser {
        Parser {
            format,
            by_text: HashMap::new(),
            by_labels: HashMap::new(),
            eof_line: None,
        }
    }

    fn line(
        &mut self,
        number: u64,
        line: &[u8],
        backfill: &mut Backfill,
    ) -> Result<(), ImportError> {
        if let Some(eof) = self.eof_line {
            if !line.is_empty() {
                return Err(syntax(number, format!("data after `# EOF` (line {eof})")));
            }
            return Ok(());
        }
        if line.is_empty() {
            return Ok(());
        }
        if line[0] == b'#' {
            return self.comment(number, line);
        }
        let text_end = series_text_end(line).map_err(|m| syntax(number, m))?;
        let text = &line[..text_end];
        let id = match self.by_text.get(text) {
            Some(&id) => id,
            None => {
                let labels = parse_series(text).map_err(|m| syntax(number, m))?;
                let id = match self.by_labels.get(&labels) {
                    Some(&id) => id,
                    None => {
                        let id = backfill.add_series(labels.clone());
                        self.by_labels.insert(labels, id);
                        id
                    }
                };
                self.by_text.insert(text.into(), id);
                id
            }
        };
        let rest = &line[text_end..];
        let (value, t) = self.value_and_time(rest).map_err(|m| syntax(number, m))?;
        backfill.append(id, t, value, number)?;
        Ok(())
    }

    fn comment(&mut self, number: u64, line: &[u8]) -> Result<(), ImportError> {
        let text = std::str::from_utf8(line).map_err(|_| syntax(number, "not valid UTF-8"))?;
        if text == "# EOF" {
            if self.format == Format::Openmetrics {
                self.eof_line = Some(number);
            }
            return Ok(());
        }
        let mut words = text.splitn(4, ' ');
        let _hash = words.next();
        let keyword = words.next().unwrap_or("");
        match keyword {
            "HELP" | "TYPE" | "UNIT" => {
                let name = words.next().unwrap_or("");
                if !valid_metric_name(name) {
                    return Err(syntax(
                        number,
                        format!("`# {keyword}` needs a valid metric name, got {name:?}"),
                    ));
                }
                if keyword == "TYPE" {
                    let kind = words.next().unwrap_or("");
                    let known: &[&str] = match self.format {
                        Format::Openmetrics => &[
                            "counter",
                            "gauge",
                            "histogram",
                            "gaugehistogram",
                            "stateset",
                            "info",
                            "summary",
                            "unknown",
                        ],
                        Format::Prometheus => {
                            &["counter", "gauge", "histogram", "summary", "untyped"]
                        }
                    };
                    if !known.contains(&kind) {
                        return Err(syntax(number, format!("unknown metric type {kind:?}")));
                    }
                }
                Ok(())
            }
            _ if self.format == Format::Prometheus => Ok(()),
            _ => Err(syntax(
                number,
                "a `#` line must be `# HELP`, `# TYPE`, `# UNIT` or `# EOF` in OpenMetrics",
            )),
        }
    }

    /// ` value timestamp` and an optional ` # exemplar`.
    fn value_and_time(&self, rest: &[u8]) -> Result<(f64, i64), String> {
        let rest = std::str::from_utf8(rest).map_err(|_| "not valid UTF-8".to_string())?;
        let rest = match rest.find(" # ") {
            Some(at) => &rest[..at],
            None => rest,
        };
        let mut fields = rest.split([' ', '\t']).filter(|f| !f.is_empty());
        let value = fields.next().ok_or("missing sample value")?;
        let value = parse_value(value)?;
        let Some(t) = fields.next() else {
            return Err("missing timestamp (an import needs a timestamp on every sample)".into());
        };
        if let Some(extra) = fields.next() {
            return Err(format!("unexpected {extra:?} after the timestamp"));
        }
        let t = match self.format {
            Format::Openmetrics => seconds_to_ms(t)?,
            Format::Prometheus => t
                .parse::<i64>()
                .map_err(|_| format!("invalid timestamp {t:?} (integer milliseconds)"))?,
        };
        Ok((value, t))
    }

    fn end(&self) -> Result<(), ImportError> {
        if self.format == Format::Openmetrics && self.eof_line.is_none() {
            return Err(ImportError::NoEof);
        }
        Ok(())
    }
}

fn valid_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

fn valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Where the series text (`name` or `name{...}`) ends; checks only what
/// is needed to find the end (quotes and escapes inside braces).
fn series_text_end(line: &[u8]) -> Result<usize, String> {
    let name_end = line
        .iter()
        .position(|&b| b == b'{' || b == b' ' || b == b'\t')
        .ok_or("a sample line needs a value and a timestamp after the series")?;
    if line[name_end] != b'{' {
        return Ok(name_end);
    }
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, &b) in line.iter().enumerate().skip(name_end + 1) {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quotes = false;
            }
        } else if b == b'"' {
            in_quotes = true;
        } else if b == b'}' {
            return Ok(i + 1);
        }
    }
    Err("unterminated label set (no closing `}`)".into())
}

/// Parses `name` or `name{a="b",...}` into labels.
fn parse_series(text: &[u8]) -> Result<Labels, String> {
    let text = std::str::from_utf8(text).map_err(|_| "not valid UTF-8".to_string())?;
    let (name, body) = match text.find('{') {
        Some(at) => (&text[..at], Some(&text[at + 1..text.len() - 1])),
        None => (text, None),
    };
    if !valid_metric_name(name) {
        return Err(format!("invalid metric name {name:?}"));
    }
    let mut pairs = vec![Label::new("__name__", name)];
    if let Some(body) = body {
        let mut rest = body.trim_start();
        while !rest.is_empty() {
            let eq = rest
                .find('=')
                .ok_or_else(|| format!("expected `name=\"value\"` at {rest:?}"))?;
            let label = rest[..eq].trim();
            if !valid_label_name(label) {
                return Err(format!("invalid label name {label:?}"));
            }
            if label == "__name__" {
                return Err("`__name__` cannot be given as a label".into());
            }
            let after = rest[eq + 1..].trim_start();
            let Some(quoted) = after.strip_prefix('"') else {
                return Err(format!(
                    "label {label:?}: the value must be in double quotes"
                ));
            };
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    '\\' => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        other => {
                            return Err(format!(
                                "label {label:?}: invalid escape `\\{}` (only \\\\, \\\" and \\n)",
                                other.map_or(String::new(), |(_, c)| c.to_string())
                            ))
                        }
                    },
                    c => value.push(c),
                }
            }
            let end = end.ok_or_else(|| format!("label {label:?}: unterminated value"))?;
            if pairs.iter().any(|p| p.name == label) {
                return Err(format!("label {label:?} appears twice"));
            }
            pairs.push(Label::new(label, value));
            rest = quoted[end + 1..].trim_start();
            if let Some(after_comma) = rest.strip_prefix(',') {
                rest = after_comma.trim_start();
            } else if !rest.is_empty() {
                return Err(format!("expected `,` or `}}` after label {label:?}"));
            }
        }
    }
    Ok(Labels::new(pairs))
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "NaN" => return Ok(f64::NAN),
        "+Inf" | "Inf" => return Ok(f64::INFINITY),
        "-Inf" => return Ok(f64::NEG_INFINITY),
        _ => {}
    }
    let plain = text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'));
    if !plain {
        return Err(format!("invalid sample value {text:?}"));
    }
    text.parse::<f64>()
        .map_err(|_| format!("invalid sample value {text:?}"))
}

/// OpenMetrics timestamp (seconds, maybe with a fraction or exponent) to
/// milliseconds. Plain decimals are converted exactly (digits past the
/// millisecond are truncated toward zero); other forms via f64 and rounded.
fn seconds_to_ms(text: &str) -> Result<i64, String> {
    let invalid = || format!("invalid timestamp {text:?} (seconds since the epoch)");
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let decimal = !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit());
    if decimal {
        let whole: i64 = whole.parse().map_err(|_| invalid())?;
        let mut millis = 0i64;
        for (i, b) in fraction.bytes().take(3).enumerate() {
            millis += i64::from(b - b'0') * [100, 10, 1][i];
        }
        let ms = whole
            .checked_mul(1000)
            .and_then(|ms| ms.checked_add(millis))
            .ok_or_else(invalid)?;
        return Ok(if negative { -ms } else { ms });
    }
    let seconds = parse_value(text).map_err(|_| invalid())?;
    if !seconds.is_finite() || seconds.abs() > 9.0e15 {
        return Err(invalid());
    }
    Ok((seconds * 1000.0).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_and_values_parse_like_prometheus() {
        let text = br#"http_requests_total{method="post",code="200",path="a\"b\\c\nd"}"#;
        let labels = parse_series(text).unwrap();
        assert_eq!(labels.get("__name__"), Some("http_requests_total"));
        assert_eq!(labels.get("path"), Some("a\"b\\c\nd"));
        assert_eq!(labels.len(), 4);
        // Empty values drop the label; a trailing comma is allowed.
        let labels = parse_series(br#"up{job="x",instance="",}"#).unwrap();
        assert_eq!(
            labels,
            Labels::from_pairs(&[("__name__", "up"), ("job", "x")])
        );
        for bad in [
            &br#"up{job="x",job="y"}"#[..],
            br#"up{job=x}"#,
            br#"up{1job="x"}"#,
            br#"up{job="\q"}"#,
            br#"9up"#,
            br#"up{__name__="x"}"#,
        ] {
            assert!(
                parse_series(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(series_text_end(br#"a{b="}"} 1 2"#).unwrap(), 8);
        assert!(parse_value("NaN").unwrap().is_nan());
        assert_eq!(parse_value("-Inf").unwrap(), f64::NEG_INFINITY);
        assert_eq!(parse_value("1.5e3").unwrap(), 1500.0);
        assert!(parse_value("0x10").is_err());
        assert_eq!(
            seconds_to_ms("1700000000.123456").unwrap(),
            1_700_000_000_123
        );
        assert_eq!(seconds_to_ms("1700000000").unwrap(), 1_700_000_000_000);
        assert_eq!(seconds_to_ms("1.7e9").unwrap(), 1_700_000_000_000);
        assert_eq!(seconds_to_ms("-1.5").unwrap(), -1500);
        assert!(seconds_to_ms("abc").is_err());
    }
}
