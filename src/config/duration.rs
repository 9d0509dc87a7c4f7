//! Prometheus-style durations: `90s`, `5m`, `1h30m`, `7d`, `1w`, `500ms`.

use std::time::Duration;

/// Parses a Prometheus duration. Units: ms, s, m, h, d, w, y (365d); components in
/// decreasing order, each at most once, like Prometheus' `model.ParseDuration`.
pub fn parse(text: &str) -> Result<Duration, String> {
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let invalid = || {
        format!("`{text}` is not a duration; write a number with a unit such as `30s`, `5m`, `1h30m` or `7d`")
    };
    if text.is_empty() {
        return Err(invalid());
    }
    let mut rest = text;
    let mut total_ms: u64 = 0;
    let mut last_unit_rank: Option<usize> = None;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        // "ms" must be tried before "m".
        let (rank, (unit, unit_ms)) = UNITS
            .iter()
            .enumerate()
            .filter(|(_, (unit, _))| rest.starts_with(unit))
            .max_by_key(|(_, (unit, _))| unit.len())
            .ok_or_else(invalid)?;
        if last_unit_rank.is_some_and(|last| rank <= last) {
            return Err(invalid());
        }
        last_unit_rank = Some(rank);
        rest = &rest[unit.len()..];
        total_ms = number
            .checked_mul(*unit_ms)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| format!("`{text}` is too long a duration"))?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Formats a duration in the same units (`1h30m`, `30d`, `0s`); days are the largest unit
/// because `30d` reads better in a message than `4w2d`.
pub fn format(duration: Duration) -> String {
    let mut ms = duration.as_millis() as u64;
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, unit_ms) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if ms >= unit_ms {
            out.push_str(&format!("{}{unit}", ms / unit_ms));
            ms %= unit_ms;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_and_compound_units() {
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("1m500ms"), Ok(Duration::from_millis(60_500)));
        assert_eq!(parse("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_malformed_text_with_an_example() {
        for bad in ["", "10", "m", "1.5h", "5m1h", "1m1m", "-1s", "1 m"] {
            let err = parse(bad).expect_err(bad);
            assert!(err.contains("such as `30s`"), "{bad}: {err}");
        }
    }

    #[test]
    fn formats_like_prometheus() {
        assert_eq!(format(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format(Duration::ZERO), "0s");
        assert_eq!(format(Duration::from_millis(1500)), "1s500ms");
        assert_eq!(format(Duration::from_secs(30 * 86_400)), "30d");
    }
}
