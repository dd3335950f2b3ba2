//! The test files' series notation (Go's `ParseSeriesDesc` grammar), used by
//! `load` lines and result lines: `name{l="v",...} <items>`, where each item
//! expands to one or more values (`1`, `_`, `_x3`, `stale`, `1+2x3`, `{{...}}`).

use cairn_model::{Label, Labels, STALE_NAN};

use crate::checks::Checks;

/// A native histogram literal, `{{schema:0 sum:5 count:4 buckets:[1 2 1]}}`.
/// Parsed so that the files are read completely; Cairn cannot store or return
/// native histograms, so nothing ever compares these values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistogramLiteral {
    pub schema: i64,
    pub sum: f64,
    pub count: f64,
    pub zero_count: f64,
    pub zero_threshold: f64,
    pub buckets: Vec<f64>,
    pub offset: i64,
    pub negative_buckets: Vec<f64>,
    pub negative_offset: i64,
    pub custom_values: Vec<f64>,
    pub counter_reset_hint: Option<String>,
}

/// One position of a value sequence.
#[derive(Clone, Debug, PartialEq)]
pub enum SeqValue {
    /// `_`: no sample at this position.
    Omitted,
    Float(f64),
    Histogram(Box<HistogramLiteral>),
}

/// Parses a whole series line: the series descriptor, then the value items.
pub fn parse_series_line(line: &str) -> Result<(Labels, Vec<SeqValue>), String> {
    let (labels, rest) = parse_series_descriptor(line)?;
    let values = parse_value_items(rest)?;
    Ok((labels, values))
}

/// Parses `name`, `name{...}` or `{...}` at the start of `text`; returns the
/// label set and the unparsed remainder.
pub fn parse_series_descriptor(text: &str) -> Result<(Labels, &str), String> {
    let mut cursor = Cursor::new(text.trim_start());
    let mut pairs: Vec<Label> = Vec::new();
    let mut saw_name = false;
    if cursor.peek().is_some_and(is_ident_start) {
        let name = cursor.take_while(is_ident_char);
        pairs.push(Label::new(cairn_model::METRIC_NAME, name));
        saw_name = true;
        cursor.skip_spaces();
    }
    if cursor.rest().starts_with('{') && !cursor.rest().starts_with("{{") {
        cursor.advance(1);
        parse_label_block(&mut cursor, &mut pairs)?;
    } else if !saw_name {
        return Err(format!("expected a series descriptor, found {:?}", text));
    }
    Ok((Labels::new(pairs), cursor.rest()))
}

/// Parses the inside of `{...}` after the opening brace, up to and including
/// the closing brace.
fn parse_label_block(cursor: &mut Cursor<'_>, pairs: &mut Vec<Label>) -> Result<(), String> {
    loop {
        cursor.skip_spaces();
        match cursor.peek() {
            Some('}') => {
                cursor.advance(1);
                return Ok(());
            }
            None => return Err("unterminated label set".to_string()),
            _ => {}
        }
        let name = if cursor.peek().is_some_and(is_quote) {
            go_unquote_prefix(cursor)?
        } else if cursor.peek().is_some_and(is_ident_start) {
            cursor.take_while(is_ident_char).to_string()
        } else {
            return Err(format!(
                "unexpected character in label set: {:?}",
                cursor.rest()
            ));
        };
        cursor.skip_spaces();
        if cursor.rest().starts_with('=') && !cursor.rest().starts_with("=~") {
            cursor.advance(1);
            cursor.skip_spaces();
            if !cursor.peek().is_some_and(is_quote) {
                return Err(format!("expected a quoted label value for {name:?}"));
            }
            let value = go_unquote_prefix(cursor)?;
            pairs.push(Label::new(name, value));
        } else if matches!(cursor.peek(), Some(',') | Some('}')) {
            // A lone (quoted) name inside the braces is the metric name.
            pairs.push(Label::new(cairn_model::METRIC_NAME, name));
        } else {
            return Err(format!(
                "only '=' is allowed in a series descriptor, found {:?}",
                cursor.rest()
            ));
        }
        cursor.skip_spaces();
        match cursor.peek() {
            Some(',') => cursor.advance(1),
            Some('}') => {}
            _ => {
                return Err(format!(
                    "expected ',' or '}}' in label set, found {:?}",
                    cursor.rest()
                ))
            }
        }
    }
}

/// Parses whitespace-separated value items.
pub fn parse_value_items(text: &str) -> Result<Vec<SeqValue>, String> {
    let mut values = Vec::new();
    let mut cursor = Cursor::new(text);
    loop {
        cursor.skip_spaces();
        if cursor.at_end() {
            return Ok(values);
        }
        if cursor.rest().starts_with("{{") {
            parse_histogram_item(&mut cursor, &mut values)?;
        } else {
            let token = cursor.take_while(|c| !c.is_whitespace());
            expand_float_item(token, &mut values)?;
        }
    }
}

/// `{{A}}`, `{{A}}x<n>`, `{{A}}+{{B}}x<n>` or `{{A}}-{{B}}x<n>`.
fn parse_histogram_item(cursor: &mut Cursor<'_>, values: &mut Vec<SeqValue>) -> Result<(), String> {
    let first = parse_histogram_literal(cursor)?;
    let mut copies = 1u64;
    let rest = cursor.rest();
    if rest.starts_with('x') {
        cursor.advance(1);
        copies = parse_repeat_count(cursor.take_while(|c| c.is_ascii_digit()))? + 1;
    } else if (rest.starts_with("+{{") || rest.starts_with("-{{")) && rest.len() > 1 {
        cursor.advance(1);
        // The increment is parsed for completeness; its sums are never needed
        // because histogram samples cannot be stored (see HistogramLiteral).
        let _increment = parse_histogram_literal(cursor)?;
        if !cursor.rest().starts_with('x') {
            return Err("expected 'x<n>' after a histogram increment".to_string());
        }
        cursor.advance(1);
        copies = parse_repeat_count(cursor.take_while(|c| c.is_ascii_digit()))? + 1;
    }
    if !cursor.at_end() && !cursor.peek().is_some_and(char::is_whitespace) {
        return Err(format!(
            "unexpected text after histogram: {:?}",
            cursor.rest()
        ));
    }
    for _ in 0..copies {
        values.push(SeqValue::Histogram(Box::new(first.clone())));
    }
    Ok(())
}

fn parse_histogram_literal(cursor: &mut Cursor<'_>) -> Result<HistogramLiteral, String> {
    if !cursor.rest().starts_with("{{") {
        return Err(format!("expected '{{{{', found {:?}", cursor.rest()));
    }
    cursor.advance(2);
    let Some(end) = cursor.rest().find("}}") else {
        return Err("unterminated histogram literal".to_string());
    };
    let body = &cursor.rest()[..end];
    cursor.advance(end + 2);
    let mut histogram = HistogramLiteral::default();
    let mut body_cursor = Cursor::new(body);
    loop {
        body_cursor.skip_spaces();
        if body_cursor.at_end() {
            return Ok(histogram);
        }
        let key = body_cursor.take_while(|c| c != ':' && !c.is_whitespace());
        if !body_cursor.rest().starts_with(':') {
            return Err(format!("expected ':' after histogram key {key:?}"));
        }
        body_cursor.advance(1);
        body_cursor.skip_spaces();
        let value_text = if body_cursor.rest().starts_with('[') {
            let Some(close) = body_cursor.rest().find(']') else {
                return Err(format!("unterminated list for histogram key {key:?}"));
            };
            let list = &body_cursor.rest()[..=close];
            body_cursor.advance(close + 1);
            list
        } else {
            body_cursor.take_while(|c| !c.is_whitespace())
        };
        match key {
            "schema" => histogram.schema = parse_histogram_int(key, value_text)?,
            "sum" => histogram.sum = parse_histogram_float(key, value_text)?,
            "count" => histogram.count = parse_histogram_float(key, value_text)?,
            "z_bucket" => histogram.zero_count = parse_histogram_float(key, value_text)?,
            "z_bucket_w" => histogram.zero_threshold = parse_histogram_float(key, value_text)?,
            "offset" => histogram.offset = parse_histogram_int(key, value_text)?,
            "n_offset" => histogram.negative_offset = parse_histogram_int(key, value_text)?,
            "buckets" => histogram.buckets = parse_histogram_list(key, value_text)?,
            "n_buckets" => histogram.negative_buckets = parse_histogram_list(key, value_text)?,
            "custom_values" => histogram.custom_values = parse_histogram_list(key, value_text)?,
            "counter_reset_hint" => match value_text {
                "unknown" | "reset" | "not_reset" | "gauge" => {
                    histogram.counter_reset_hint = Some(value_text.to_string())
                }
                _ => return Err(format!("invalid counter_reset_hint {value_text:?}")),
            },
            _ => return Err(format!("unknown histogram key {key:?}")),
        }
    }
}

fn parse_histogram_int(key: &str, text: &str) -> Result<i64, String> {
    text.parse::<i64>()
        .map_err(|_| format!("invalid integer {text:?} for histogram key {key:?}"))
}

fn parse_histogram_float(key: &str, text: &str) -> Result<f64, String> {
    parse_number_literal(text)
        .ok_or_else(|| format!("invalid number {text:?} for histogram key {key:?}"))
}

fn parse_histogram_list(key: &str, text: &str) -> Result<Vec<f64>, String> {
    let inner = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .ok_or_else(|| format!("expected a [list] for histogram key {key:?}"))?;
    inner
        .split_whitespace()
        .map(|item| parse_histogram_float(key, item))
        .collect()
}

/// Expands one non-histogram item.
fn expand_float_item(token: &str, values: &mut Vec<SeqValue>) -> Result<(), String> {
    if token == "_" {
        values.push(SeqValue::Omitted);
        return Ok(());
    }
    if let Some(count) = token.strip_prefix("_x") {
        let n = parse_repeat_count(count)?;
        values.extend(std::iter::repeat_n(SeqValue::Omitted, n as usize));
        return Ok(());
    }
    if let Some(v) = parse_item_value(token) {
        values.push(SeqValue::Float(v));
        return Ok(());
    }
    // `<a>x<n>`, `<a>+<b>x<n>`, `<a>-<b>x<n>`: split off the repeat count at the last 'x'.
    let Some(x_at) = token.rfind('x') else {
        return Err(format!("invalid value item {token:?}"));
    };
    let (prefix, count_text) = (&token[..x_at], &token[x_at + 1..]);
    let n =
        parse_repeat_count(count_text).map_err(|e| format!("invalid value item {token:?}: {e}"))?;
    let (start, increment) =
        split_start_and_increment(prefix).ok_or_else(|| format!("invalid value item {token:?}"))?;
    let mut value = start;
    for _ in 0..=n {
        values.push(SeqValue::Float(value));
        // Repeated float addition, exactly as Go's runner builds the sequence.
        value += increment;
    }
    Ok(())
}

/// `a` (increment 0), `a+b` or `a-b`.
fn split_start_and_increment(prefix: &str) -> Option<(f64, f64)> {
    if let Some(start) = parse_item_value(prefix) {
        return Some((start, 0.0));
    }
    let bytes = prefix.as_bytes();
    for i in 1..bytes.len() {
        let sign = bytes[i];
        if sign != b'+' && sign != b'-' {
            continue;
        }
        if matches!(bytes[i - 1], b'e' | b'E') && parse_item_value(&prefix[..i - 1]).is_some() {
            continue; // an exponent sign, as in 1e-3
        }
        let (Some(start), Some(step)) = (
            parse_item_value(&prefix[..i]),
            parse_number_literal(&prefix[i + 1..]),
        ) else {
            continue;
        };
        let increment = if sign == b'-' { -step } else { step };
        return Some((start, increment));
    }
    None
}

/// A single value in load syntax: a number or `stale`.
fn parse_item_value(text: &str) -> Option<f64> {
    if text == "stale" {
        return Some(STALE_NAN);
    }
    parse_number_literal(text)
}

/// A number as the series lexer reads it: decimal, exponent, `Inf` or `NaN`
/// (any case), optionally signed. Go's lexer disallows hexadecimal in series
/// descriptions ("the syntax is ambiguous"): `0x59` is 0 repeated 59 more
/// times, which functions.test relies on.
pub fn parse_number_literal(text: &str) -> Option<f64> {
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if unsigned.is_empty() || unsigned.starts_with(['+', '-']) {
        return None;
    }
    let magnitude = if unsigned.eq_ignore_ascii_case("inf") {
        f64::INFINITY
    } else if unsigned.eq_ignore_ascii_case("nan") {
        f64::NAN
    } else if unsigned
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        unsigned.parse::<f64>().ok()?
    } else {
        return None;
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// Go's `parseNumber` for result lines: `strconv.ParseInt(s, 0, 64)`, then
/// `strconv.ParseFloat(s, 64)`.
pub fn parse_go_number(text: &str) -> Option<f64> {
    if let Some(v) = parse_go_int_base0(text) {
        return Some(v as f64);
    }
    parse_go_float(text)
}

fn parse_go_int_base0(text: &str) -> Option<i64> {
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = unsigned.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d.to_string())
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d.to_string())
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d.to_string())
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string())
    } else {
        (10, lower.clone())
    };
    // Base 0 allows underscores between digits.
    let digits: String = if radix != 10 || !digits.contains('_') {
        digits.replace('_', "")
    } else {
        return None;
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i128::from_str_radix(&digits, radix).ok()?;
    let value = if negative { -magnitude } else { magnitude };
    i64::try_from(value).ok()
}

fn parse_go_float(text: &str) -> Option<f64> {
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = unsigned.to_ascii_lowercase();
    let magnitude = match lower.as_str() {
        "inf" | "infinity" => f64::INFINITY,
        "nan" => f64::NAN,
        _ if lower
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'+' | b'-')) =>
        {
            lower.parse::<f64>().ok()?
        }
        _ => return None,
    };
    Some(if negative { -magnitude } else { magnitude })
}

fn parse_repeat_count(text: &str) -> Result<u64, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid repeat count {text:?}"));
    }
    text.parse::<u64>()
        .map_err(|e| format!("invalid repeat count {text:?}: {e}"))
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

fn is_quote(c: char) -> bool {
    matches!(c, '"' | '\'' | '`')
}

/// Reads one Go string literal (`"..."`, `'...'` or a raw `` `...` ``) at the
/// cursor and returns its value, with Go's escapes (`strconv.Unquote`).
fn go_unquote_prefix(cursor: &mut Cursor<'_>) -> Result<String, String> {
    let rest = cursor.rest();
    let quote = rest.chars().next().ok_or("expected a string")?;
    let body = &rest[1..];
    if quote == '`' {
        let end = body.find('`').ok_or("unterminated raw string")?;
        let value = body[..end].to_string();
        cursor.advance(end + 2);
        return Ok(value);
    }
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == quote {
            cursor.advance(1 + i + 1);
            return Ok(value);
        }
        if c != '\\' {
            value.push(c);
            continue;
        }
        let (_, escape) = chars.next().ok_or("unterminated escape")?;
        let mut read_hex = |len: usize| -> Result<u32, String> {
            let mut code = 0u32;
            for _ in 0..len {
                let (_, h) = chars.next().ok_or("short escape")?;
                code = code * 16 + h.to_digit(16).ok_or("bad hex escape")?;
            }
            Ok(code)
        };
        match escape {
            'a' => value.push('\u{7}'),
            'b' => value.push('\u{8}'),
            'f' => value.push('\u{c}'),
            'n' => value.push('\n'),
            'r' => value.push('\r'),
            't' => value.push('\t'),
            'v' => value.push('\u{b}'),
            '\\' | '"' | '\'' => value.push(escape),
            'x' => value.push(char::from_u32(read_hex(2)?).ok_or("bad \\x escape")?),
            'u' => value.push(char::from_u32(read_hex(4)?).ok_or("bad \\u escape")?),
            'U' => value.push(char::from_u32(read_hex(8)?).ok_or("bad \\U escape")?),
            '0'..='7' => {
                let mut code = escape.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    let (_, o) = chars.next().ok_or("short octal escape")?;
                    code = code * 8 + o.to_digit(8).ok_or("bad octal escape")?;
                }
                value.push(char::from_u32(code).ok_or("bad octal escape")?);
            }
            other => return Err(format!("unknown escape \\{other}")),
        }
    }
    Err("unterminated string".to_string())
}

/// Go's `strconv.Unquote` of a whole string.
pub fn go_unquote(text: &str) -> Result<String, String> {
    let mut cursor = Cursor::new(text);
    if !cursor.peek().is_some_and(is_quote) {
        return Err("not a quoted string".to_string());
    }
    let value = go_unquote_prefix(&mut cursor)?;
    if !cursor.at_end() {
        return Err("text after the closing quote".to_string());
    }
    Ok(value)
}

struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Cursor<'a> {
        Cursor { text, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn advance(&mut self, bytes: usize) {
        self.pos += bytes;
    }

    fn skip_spaces(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> &'a str {
        let rest = self.rest();
        let len = rest.find(|c: char| !keep(c)).unwrap_or(rest.len());
        self.pos += len;
        &rest[..len]
    }
}

pub fn self_checks(checks: &mut Checks) {
    use SeqValue::{Float as F, Omitted as O};
    let values = |text: &str| parse_value_items(text).map_err(|e| e.to_string());
    checks.eq(
        "0+10x3",
        values("0+10x3"),
        Ok(vec![F(0.0), F(10.0), F(20.0), F(30.0)]),
    );
    checks.eq(
        "1-2x4",
        values("1-2x4"),
        Ok(vec![F(1.0), F(-1.0), F(-3.0), F(-5.0), F(-7.0)]),
    );
    checks.eq(
        "-2+4x3",
        values("-2+4x3"),
        Ok(vec![F(-2.0), F(2.0), F(6.0), F(10.0)]),
    );
    checks.eq("_x3 is three gaps", values("_x3"), Ok(vec![O, O, O]));
    checks.eq(
        "1x2 is three copies",
        values("1x2"),
        Ok(vec![F(1.0), F(1.0), F(1.0)]),
    );
    checks.eq(
        "exponents",
        values("1e3 -1e-3+1x1"),
        Ok(vec![F(1000.0), F(-0.001), F(0.999)]),
    );
    checks.eq(
        "0x2 is not hex",
        values("0x2"),
        Ok(vec![F(0.0), F(0.0), F(0.0)]),
    );
    checks.eq(
        "Inf",
        values("Inf -Inf +inf"),
        Ok(vec![
            F(f64::INFINITY),
            F(f64::NEG_INFINITY),
            F(f64::INFINITY),
        ]),
    );
    let nan_and_stale = parse_value_items("NaN stale").unwrap_or_default();
    checks.ok("NaN and stale", nan_and_stale.len() == 2, || {
        format!("{nan_and_stale:?}")
    });
    if let [F(nan), F(stale)] = nan_and_stale.as_slice() {
        checks.ok(
            "NaN is not stale",
            nan.is_nan() && !cairn_model::is_stale_nan(*nan),
            || "bad NaN".into(),
        );
        checks.ok(
            "stale is StaleNaN",
            cairn_model::is_stale_nan(*stale),
            || "bad stale".into(),
        );
    }
    let histograms = parse_value_items(
        "{{schema:0 sum:5 count:4 buckets:[1 2 1]}}x2 1 {{count:1}}+{{count:2}}x1",
    );
    checks.ok(
        "histogram items",
        histograms
            .as_ref()
            .is_ok_and(|v| v.len() == 6 && matches!(v[3], F(1.0))),
        || format!("{histograms:?}"),
    );
    checks.ok("bad item rejected", values("1+x").is_err(), || {
        "accepted 1+x".into()
    });

    let descriptor = |text: &str| parse_series_line(text).map(|(labels, _)| labels);
    checks.eq(
        "name and labels",
        descriptor(r#"http_requests{job="api", instance="0"} 1"#),
        Ok(Labels::from_pairs(&[
            ("__name__", "http_requests"),
            ("job", "api"),
            ("instance", "0"),
        ])),
    );
    checks.eq(
        "__name__ label and trailing comma",
        descriptor(r#"{__name__="x", a="b",} 1"#),
        Ok(Labels::from_pairs(&[("__name__", "x"), ("a", "b")])),
    );
    checks.eq("empty label set", descriptor("{} 1"), Ok(Labels::empty()));
    checks.eq(
        "quoted UTF-8 names",
        descriptor(r#"{"a.b", "c.d"="x"} 1"#),
        Ok(Labels::from_pairs(&[("__name__", "a.b"), ("c.d", "x")])),
    );
    checks.eq(
        "Go escapes in values",
        descriptor(r#"m{a="x\"y\\z\n", b='\u00e9', c=`r\n`} 1"#),
        Ok(Labels::from_pairs(&[
            ("__name__", "m"),
            ("a", "x\"y\\z\n"),
            ("b", "é"),
            ("c", "r\\n"),
        ])),
    );
    checks.eq("result scalar", parse_go_number("0x10"), Some(16.0));
    checks.eq("result scalar -0.5", parse_go_number("-0.5"), Some(-0.5));
    checks.eq(
        "result scalar +Inf",
        parse_go_number("+Inf"),
        Some(f64::INFINITY),
    );
    checks.eq(
        "series line is not a number",
        parse_go_number("foo 1"),
        None,
    );
}
