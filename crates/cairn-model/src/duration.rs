//! Prometheus duration notation (`model.ParseDuration`): `1h30m`, `10s53ms`, `0`.

use std::fmt;

const UNITS: [(&str, i64); 7] = [
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration string")]
    Empty,
    #[error("not a valid duration string: {0:?}")]
    Invalid(String),
    #[error("duration out of range: {0:?}")]
    OutOfRange(String),
}

/// Parses a Prometheus duration into milliseconds. Units (`y w d h m s ms`)
/// must appear largest first, each at most once; no fractions, no sign; a
/// bare `0` is allowed.
pub fn parse_duration_ms(text: &str) -> Result<i64, DurationError> {
    if text == "0" {
        return Ok(0);
    }
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let invalid = || DurationError::Invalid(text.to_string());
    let out_of_range = || DurationError::OutOfRange(text.to_string());
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
            return Err(invalid());
        }
        let number: i64 = text[digits_start..pos]
            .parse()
            .map_err(|_| out_of_range())?;
        let unit_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_alphabetic() {
            pos += 1;
        }
        let unit = &text[unit_start..pos];
        let index = UNITS[next_unit..]
            .iter()
            .position(|(u, _)| *u == unit)
            .map(|i| i + next_unit)
            .ok_or_else(invalid)?;
        next_unit = index + 1;
        let part = number
            .checked_mul(UNITS[index].1)
            .ok_or_else(out_of_range)?;
        total = total.checked_add(part).ok_or_else(out_of_range)?;
    }
    Ok(total)
}

/// Formats milliseconds in Prometheus notation, largest units first
/// (`model.Duration.String`): `1h30m`, `10s53ms`, `0s`.
pub struct DisplayDuration(pub i64);

impl fmt::Display for DisplayDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0;
        if ms == 0 {
            return f.write_str("0s");
        }
        if ms < 0 {
            f.write_str("-")?;
            ms = ms.checked_neg().unwrap_or(i64::MAX);
        }
        for (unit, size) in UNITS {
            if ms >= size {
                write!(f, "{}{unit}", ms / size)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_durations() {
        assert_eq!(parse_duration_ms("0"), Ok(0));
        assert_eq!(parse_duration_ms("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration_ms("10s53ms"), Ok(10_053));
        assert_eq!(parse_duration_ms("1y"), Ok(31_536_000_000));
        assert_eq!(parse_duration_ms("2w1d"), Ok(15 * 86_400_000));
        assert_eq!(parse_duration_ms(""), Err(DurationError::Empty));
        for bad in ["30s1m", "1m1m", "1.5h", "-1m", "1x", "m", "1h "] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            parse_duration_ms("99999999999999y"),
            Err(DurationError::OutOfRange(_))
        ));
    }

    #[test]
    fn formats_largest_units_first_and_round_trips() {
        for (ms, text) in [
            (0, "0s"),
            (5_400_000, "1h30m"),
            (10_053, "10s53ms"),
            (86_400_000, "1d"),
        ] {
            assert_eq!(DisplayDuration(ms).to_string(), text);
            assert_eq!(parse_duration_ms(text), Ok(ms));
        }
    }
}
