//! Warning and info annotations with Prometheus's texts
//! (`util/annotations/annotations.go`), and source positions for them.

use crate::Annotations;

/// Annotations collected during evaluation, deduplicated as Prometheus's
/// `annotations.Annotations` map is.
#[derive(Debug, Default)]
pub(crate) struct AnnotationSet {
    warnings: Vec<String>,
    infos: Vec<String>,
}

impl AnnotationSet {
    pub fn warn(&mut self, text: String) {
        let full = format!("PromQL warning: {text}");
        if !self.warnings.contains(&full) {
            self.warnings.push(full);
        }
    }

    pub fn info(&mut self, text: String) {
        let full = format!("PromQL info: {text}");
        if !self.infos.contains(&full) {
            self.infos.push(full);
        }
    }

    pub fn into_annotations(self) -> Annotations {
        Annotations {
            warnings: self.warnings,
            infos: self.infos,
        }
    }
}

/// The position suffix ` (line:col)` of a sub-expression for annotation
/// texts, or "" when it cannot be found. The parser keeps no positions, so
/// the sub-expression is located in the query text: first by its printed
/// form, then by re-parsing token-aligned substrings until one parses to
/// the same tree (only done when an annotation is emitted).
pub(crate) fn position(query: &str, e: &promql_parser::parser::Expr) -> String {
    match find_offset(query, e) {
        Some(offset) => {
            let (line, col) = line_col(query, offset);
            format!(" ({line}:{col})")
        }
        None => String::new(),
    }
}

/// Most tokens for which the substring search is attempted.
const MAX_SEARCH_TOKENS: usize = 80;

fn find_offset(query: &str, e: &promql_parser::parser::Expr) -> Option<usize> {
    let printed = e.to_string();
    let parses_to = |start: usize, end: usize| -> bool {
        promql_parser::parser::parse(&query[start..end]).is_ok_and(|parsed| &parsed == e)
    };
    // Fast path: the expression is written the way it prints.
    if let Some(start) = query.find(&printed) {
        if parses_to(start, start + printed.len()) {
            return Some(start);
        }
    }
    let tokens = token_spans(query);
    if tokens.len() <= MAX_SEARCH_TOKENS {
        for (i, &(start, _)) in tokens.iter().enumerate() {
            // Only substrings with balanced brackets can be expressions.
            let mut depth: i64 = 0;
            for &(tstart, end) in &tokens[i..] {
                match query.as_bytes()[tstart] {
                    b'(' | b'[' | b'{' => depth += 1,
                    b')' | b']' | b'}' => depth -= 1,
                    _ => {}
                }
                if depth < 0 {
                    break;
                }
                if depth == 0 && parses_to(start, end) {
                    return Some(start);
                }
            }
        }
    }
    query.find(&printed)
}

/// Byte spans of the query's tokens: strings, words (identifiers, numbers,
/// durations) and operator characters, skipping spaces and comments.
fn token_spans(query: &str) -> Vec<(usize, usize)> {
    let bytes = query.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'#' {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        } else if c == b'"' || c == b'\'' || c == b'`' {
            let start = i;
            i += 1;
            while i < bytes.len() && bytes[i] != c {
                if bytes[i] == b'\\' && c != b'`' {
                    i += 1;
                }
                i += 1;
            }
            i = (i + 1).min(bytes.len());
            out.push((start, i));
        } else if c.is_ascii_alphanumeric() || c == b'_' || c == b':' || c == b'.' || c >= 0x80 {
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric()
                    || bytes[i] == b'_'
                    || bytes[i] == b':'
                    || bytes[i] == b'.'
                    || bytes[i] >= 0x80)
            {
                i += 1;
            }
            out.push((start, i));
        } else {
            out.push((i, i + 1));
            i += 1;
        }
    }
    out
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(query: &str, offset: usize) -> (usize, usize) {
    let before = &query[..offset.min(query.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// String literals of a query that are not valid UTF-8 in Go (byte escapes
/// such as `"\xff"`): the string promql-parser decodes them to (one char
/// per byte) and Go's quoted form of the raw bytes. Such strings can never be
/// label names, as Prometheus checks with `IsValidLabelName`.
pub(crate) fn invalid_utf8_literals(query: &str) -> Vec<(String, String)> {
    let chars: Vec<char> = query.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let quote = chars[i];
        if quote == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if quote == '`' {
            i += 1;
            while i < chars.len() && chars[i] != '`' {
                i += 1;
            }
            i += 1;
            continue;
        }
        if quote != '"' && quote != '\'' {
            i += 1;
            continue;
        }
        i += 1;
        let mut bytes: Vec<u8> = Vec::new();
        let mut decoded = String::new();
        let mut had_byte_escape = false;
        while i < chars.len() && chars[i] != quote {
            let c = chars[i];
            if c != '\\' || i + 1 >= chars.len() {
                let mut buf = [0u8; 4];
                bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                decoded.push(c);
                i += 1;
                continue;
            }
            let e = chars[i + 1];
            i += 2;
            let (radix, len) = match e {
                'x' => (16, 2),
                'u' => (16, 4),
                'U' => (16, 8),
                '0'..='7' => {
                    i -= 1;
                    (8, 3)
                }
                _ => {
                    let c = match e {
                        'a' => '\u{7}',
                        'b' => '\u{8}',
                        'f' => '\u{c}',
                        'n' => '\n',
                        'r' => '\r',
                        't' => '\t',
                        'v' => '\u{b}',
                        other => other,
                    };
                    let mut buf = [0u8; 4];
                    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    decoded.push(c);
                    continue;
                }
            };
            let digits: String = chars[i..(i + len).min(chars.len())].iter().collect();
            i += len;
            let Ok(v) = u32::from_str_radix(&digits, radix) else {
                return out;
            };
            let c = char::from_u32(v).unwrap_or('\u{fffd}');
            decoded.push(c);
            if e == 'u' || e == 'U' {
                let mut buf = [0u8; 4];
                bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            } else {
                had_byte_escape = true;
                bytes.push(v as u8);
            }
        }
        i += 1;
        if had_byte_escape && std::str::from_utf8(&bytes).is_err() {
            out.push((decoded, go_quote_bytes(&bytes)));
        }
    }
    out
}

/// Go's `strconv.Quote` of raw bytes: invalid UTF-8 bytes as `\xNN`.
fn go_quote_bytes(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    let mut rest = bytes;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                push_quoted(&mut out, valid);
                break;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                push_quoted(&mut out, std::str::from_utf8(valid).unwrap_or(""));
                out.push_str(&format!("\\x{:02x}", after[0]));
                rest = &after[1..];
            }
        }
    }
    out.push('"');
    out
}

fn push_quoted(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
}
