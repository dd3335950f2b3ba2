//! Prometheus duration syntax (`model.ParseDuration`): `1h30m`, `10s53ms`, `0`.

use crate::checks::Checks;

/// Parses a Prometheus duration into milliseconds. Units must appear largest
/// first, each at most once; fractions and signs are not allowed.
pub fn parse_duration_ms(text: &str) -> Result<i64, String> {
    if text == "0" {
        return Ok(0);
    }
    if text.is_empty() {
        return Err("empty duration string".to_string());
    }
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 24 * 3600 * 1000),
        ("w", 7 * 24 * 3600 * 1000),
        ("d", 24 * 3600 * 1000),
        ("h", 3600 * 1000),
        ("m", 60 * 1000),
        ("s", 1000),
        ("ms", 1),
    ];
    let bytes = text.as_bytes();
    let mut pos = 0;
    let mut next_unit = 0;
    let mut total: i64 = 0;
    while pos < bytes.len() {
        let digits_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        if pos == digits_start {
            return Err(format!("not a valid duration string: {text:?}"));
        }
        let number: i64 = text[digits_start..pos]
            .parse()
            .map_err(|_| format!("duration out of range: {text:?}"))?;
        let unit_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_alphabetic() {
            pos += 1;
        }
        let unit = &text[unit_start..pos];
        let Some(offset) = UNITS[next_unit..].iter().position(|(u, _)| *u == unit) else {
            return Err(format!("not a valid duration string: {text:?}"));
        };
        let (_, unit_ms) = UNITS[next_unit + offset];
        next_unit += offset + 1;
        total = number
            .checked_mul(unit_ms)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("duration out of range: {text:?}"))?;
    }
    Ok(total)
}

pub fn self_checks(checks: &mut Checks) {
    let cases: [(&str, Option<i64>); 10] = [
        ("0", Some(0)),
        ("5m", Some(300_000)),
        ("1h30m", Some(5_400_000)),
        ("10s53ms", Some(10_053)),
        ("1ms", Some(1)),
        ("2y", Some(2 * 365 * 86_400_000)),
        ("", None),
        ("1.5m", None),
        ("-1m", None),
        ("1s1m", None),
    ];
    for (text, want) in cases {
        checks.eq(
            &format!("parse_duration_ms({text:?})"),
            parse_duration_ms(text).ok(),
            want,
        );
    }
}
