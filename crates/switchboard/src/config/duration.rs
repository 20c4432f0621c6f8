//! Durations as people write them in `engine.yaml`: Go-style `30s`, `1m30s`, `200ms`, and
//! plain numbers of seconds (Arcade's worker `timeout: 30`).

use std::time::Duration;

/// Parses `30s`, `1m`, `200ms`, `1h`, `1m30s`, `1.5s`, or a plain number of seconds
/// (`30`, `2.5`). Units: `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`, and `d` (24 hours, for
/// token lifetimes like `30d`).
///
/// The error is a complete sentence naming the bad value, ready to follow a key path.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?} (use e.g. 30s, 1m, 200ms or seconds)");
    let text = s.trim();
    if text.is_empty() {
        return Err(bad());
    }
    if let Ok(seconds) = text.parse::<f64>() {
        return seconds_to_duration(seconds).ok_or_else(bad);
    }

    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if number_len == 0 {
            return Err(bad());
        }
        let value: f64 = rest[..number_len].parse().map_err(|_| bad())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit_seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total = seconds_to_duration(value * unit_seconds)
            .and_then(|part| total.checked_add(part))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

/// A non-negative, finite number of seconds; `None` otherwise.
fn seconds_to_duration(seconds: f64) -> Option<Duration> {
    if seconds.is_finite() && seconds >= 0.0 {
        Duration::try_from_secs_f64(seconds).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_units_and_plain_seconds_parse() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration(" 10s "), Ok(Duration::from_secs(10)));
    }

    #[test]
    fn days_parse_alone_and_combined() {
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("1d12h"), Ok(Duration::from_secs(36 * 3600)));
        assert!(parse_duration("d").is_err());
    }

    #[test]
    fn nonsense_is_rejected_with_the_value_and_a_hint() {
        assert_eq!(
            parse_duration("30 parsecs"),
            Err(r#"invalid duration "30 parsecs" (use e.g. 30s, 1m, 200ms or seconds)"#.into())
        );
        for bad in ["", "s", "10x", "-5", "-5s", "1..2s", "ms10", "NaN", "inf"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
