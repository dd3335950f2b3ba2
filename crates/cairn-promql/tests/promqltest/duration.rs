//! Prometheus duration syntax (`model.ParseDuration`): `1h30m`, `10s53ms`, `0`.

use crate::checks::Checks;

/// Parses a Prometheus duration into milliseconds (Cairn's own parser, the
/// one the HTTP API and configuration use).
pub fn parse_duration_ms(text: &str) -> Result<i64, String> {
    cairn_model::parse_duration_ms(text).map_err(|e| e.to_string())
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
