//! Prometheus API JSON, written by hand for exact number formatting and speed.
//!
//! Formats follow Prometheus's `util/jsonutil`: sample values are strings
//! formatted like Go's `strconv.FormatFloat(v, 'f' or 'e', -1, 64)` ('e' when
//! |v| < 1e-6 or ≥ 1e21), `NaN`, `+Inf`, `-Inf`; timestamps are JSON numbers
//! in seconds with the milliseconds written as a three-digit fraction.
//! Strings are escaped as Go's `encoding/json` does (HTML characters too).

use std::fmt::Write;

use cairn_model::{Labels, Sample};
use cairn_promql::{Value, VectorSample};

/// Appends `s` as a JSON string literal, escaped as Go's `encoding/json`.
pub fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends a millisecond timestamp as Prometheus's seconds number (`MarshalTimestamp`).
pub fn write_timestamp(out: &mut String, t_ms: i64) {
    let mut t = t_ms as i128;
    if t < 0 {
        out.push('-');
        t = -t;
    }
    let _ = write!(out, "{}", t / 1000);
    let fraction = t % 1000;
    if fraction != 0 {
        let _ = write!(out, ".{fraction:03}");
    }
}

/// Appends a sample value as Prometheus's quoted string (`MarshalFloat`).
pub fn write_float(out: &mut String, v: f64) {
    out.push('"');
    format_float(out, v);
    out.push('"');
}

/// Go's `strconv.FormatFloat(v, fmt, -1, 64)` with Prometheus's choice of fmt.
pub fn format_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    let abs = v.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Rust writes `1.5e-7`; Go writes `1.5e-07` (sign always, two digits at least).
        let rust = format!("{v:e}");
        let (mantissa, exponent) = rust.split_once('e').unwrap_or((&rust, "0"));
        let (sign, digits) = match exponent.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exponent),
        };
        let _ = write!(out, "{mantissa}e{sign}{digits:0>2}");
    } else {
        let _ = write!(out, "{v}");
    }
}

/// Appends `{"name":"value",...}`.
pub fn write_labels(out: &mut String, labels: &Labels) {
    out.push('{');
    for (i, label) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_string(out, &label.name);
        out.push(':');
        write_json_string(out, &label.value);
    }
    out.push('}');
}

fn write_point(out: &mut String, t: i64, v: f64) {
    out.push('[');
    write_timestamp(out, t);
    out.push(',');
    write_float(out, v);
    out.push(']');
}

fn write_vector_sample(out: &mut String, sample: &VectorSample) {
    out.push_str(r#"{"metric":"#);
    write_labels(out, &sample.labels);
    out.push_str(r#","value":"#);
    write_point(out, sample.t, sample.v);
    out.push('}');
}

fn write_series(out: &mut String, labels: &Labels, samples: &[Sample]) {
    out.push_str(r#"{"metric":"#);
    write_labels(out, labels);
    out.push_str(r#","values":["#);
    for (i, s) in samples.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_point(out, s.t, s.v);
    }
    out.push_str("]}");
}

/// Appends `{"resultType":...,"result":...}`.
pub fn write_query_data(out: &mut String, value: &Value) {
    write_query_data_open(out, value, &mut |_| {});
    out.push('}');
}

/// Appends `{"resultType":...,"result":...` without the closing brace (so
/// fields such as `stats` can follow), calling `flush` between result
/// elements once `out` holds at least [`FLUSH_BYTES`]; `flush` takes what is
/// in `out` (for streaming a large answer to the client).
pub fn write_query_data_open(out: &mut String, value: &Value, flush: &mut dyn FnMut(&mut String)) {
    match value {
        Value::Scalar(s) => {
            out.push_str(r#"{"resultType":"scalar","result":"#);
            write_point(out, s.t, s.v);
        }
        Value::String { t, value } => {
            out.push_str(r#"{"resultType":"string","result":["#);
            write_timestamp(out, *t);
            out.push(',');
            write_json_string(out, value);
            out.push(']');
        }
        Value::Vector(samples) => {
            out.push_str(r#"{"resultType":"vector","result":["#);
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_vector_sample(out, s);
                if out.len() >= FLUSH_BYTES {
                    flush(out);
                }
            }
            out.push(']');
        }
        Value::Matrix(series) => {
            out.push_str(r#"{"resultType":"matrix","result":["#);
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_series(out, &s.labels, &s.samples);
                if out.len() >= FLUSH_BYTES {
                    flush(out);
                }
            }
            out.push(']');
        }
    }
}

/// How much encoded JSON is buffered before it is handed to the client.
pub const FLUSH_BYTES: usize = 256 * 1024;

/// Appends `"key":["a","b"]` preceded by a comma when `strings` is not empty.
pub fn write_string_array_field(out: &mut String, key: &str, strings: &[String]) {
    if strings.is_empty() {
        return;
    }
    out.push(',');
    write_json_string(out, key);
    out.push_str(":[");
    for (i, s) in strings.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_string(out, s);
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(v: f64) -> String {
        let mut out = String::new();
        format_float(&mut out, v);
        out
    }

    fn ts(t: i64) -> String {
        let mut out = String::new();
        write_timestamp(&mut out, t);
        out
    }

    #[test]
    fn floats_are_formatted_as_go_strconv_does() {
        assert_eq!(float(1.0), "1");
        assert_eq!(float(-0.0), "-0");
        assert_eq!(float(0.1), "0.1");
        assert_eq!(float(1234567.5), "1234567.5");
        assert_eq!(float(1e-6), "0.000001");
        assert_eq!(float(1.5e-7), "1.5e-07");
        assert_eq!(float(1e21), "1e+21");
        assert_eq!(float(-2.5e300), "-2.5e+300");
        assert_eq!(float(1e20), "100000000000000000000");
        assert_eq!(float(f64::NAN), "NaN");
        assert_eq!(float(f64::INFINITY), "+Inf");
        assert_eq!(float(f64::NEG_INFINITY), "-Inf");
    }

    #[test]
    fn timestamps_are_seconds_with_millisecond_fraction() {
        assert_eq!(ts(1_435_781_451_781), "1435781451.781");
        assert_eq!(ts(1_000), "1");
        assert_eq!(ts(1_005), "1.005");
        assert_eq!(ts(1_500), "1.500");
        assert_eq!(ts(-1_500), "-1.500");
    }

    #[test]
    fn strings_are_escaped_as_go_encoding_json() {
        let mut out = String::new();
        write_json_string(&mut out, "a\"b\\c<d>&\n\u{1}");
        assert_eq!(out, r#""a\"b\\c\u003cd\u003e\u0026\n\u0001""#);
    }
}
