//! The one duration syntax of the whole program: settings (`[ocsp]`), environment variables
//! (`PNC_WEBHOOK_RETRY`, `PNC_CRL_VALIDITY`, timeouts …) and CLI flags (`report expiring
//! --within`).
//!
//! A duration is a whole number followed by a unit: `ms`, `s`, `m` (minutes), `h`, `d`, `w`
//! (7 days), `y` (365 days); long forms (`sec`, `min`, `hours`, `days`, `weeks`, `years` …) are
//! accepted too, with or without a space (`30d`, `30 days`). The unit is required because a bare
//! number was read as seconds before, so `--within 30` meant 30 *seconds* where people meant
//! days; now it is an error that says which unit to add. Only `0` needs none (it is zero in
//! every unit). Months are refused: they have no fixed length, the message suggests `w` or `d`.

use std::time::Duration;

/// A text that is not a duration, with a message saying how to write it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DurationError(pub String);

/// The units, as written in error messages.
pub const UNITS: &str = "ms, s, m (minutes), h, d, w, y";

/// Parses `250ms`, `30s`, `5m`, `1h`, `7d`, `4w`, `1y` (or long forms such as `30 days`).
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(DurationError(format!(
            "'{s}' is not a duration: write a number and a unit, e.g. 30d, 4w, 12h, 250ms (units: {UNITS})"
        )));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| DurationError(format!("duration '{s}' is too large")))?;
    let unit = unit.trim();
    if unit.is_empty() {
        if n == 0 {
            return Ok(Duration::ZERO);
        }
        return Err(DurationError(format!(
            "{t}: add a unit, e.g. {n}d or {n}s (units: {UNITS})"
        )));
    }
    let ms: u64 = match unit.to_ascii_lowercase().as_str() {
        "ms" | "msec" | "millis" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1000,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        "w" | "wk" | "week" | "weeks" => 7 * 86_400_000,
        "y" | "yr" | "year" | "years" => 365 * 86_400_000,
        "mo" | "mon" | "month" | "months" => {
            return Err(DurationError(format!(
                "{t}: months have no fixed length; write weeks or days instead, e.g. {}w or {}d",
                n.saturating_mul(4),
                n.saturating_mul(30)
            )));
        }
        _ => {
            return Err(DurationError(format!(
                "unknown unit '{unit}' in '{t}' (units: {UNITS})"
            )));
        }
    };
    n.checked_mul(ms)
        .map(Duration::from_millis)
        .ok_or_else(|| DurationError(format!("duration '{t}' is too large")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_parses() {
        let cases = [
            ("250ms", Duration::from_millis(250)),
            ("30s", Duration::from_secs(30)),
            ("5m", Duration::from_secs(300)),
            ("2min", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("7d", Duration::from_secs(604_800)),
            ("30 days", Duration::from_secs(30 * 86_400)),
            ("4w", Duration::from_secs(28 * 86_400)),
            ("1y", Duration::from_secs(365 * 86_400)),
            (" 2 Hours ", Duration::from_secs(7200)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn a_bare_number_names_the_unit_to_add() {
        let e = parse_duration("30").unwrap_err().0;
        assert!(e.contains("add a unit"), "{e}");
        assert!(e.contains("30d") && e.contains("30s"), "{e}");
    }

    #[test]
    fn months_and_nonsense_are_refused_with_a_hint() {
        let e = parse_duration("3months").unwrap_err().0;
        assert!(e.contains("12w") && e.contains("90d"), "{e}");
        assert!(parse_duration("3mo").is_err());
        let e = parse_duration("3x").unwrap_err().0;
        assert!(e.contains("unknown unit 'x'") && e.contains("ms, s"), "{e}");
        assert!(parse_duration("").is_err());
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1.5h").is_err());
        assert!(parse_duration("99999999999999999999s").is_err());
        assert!(parse_duration("18446744073709551615y").is_err());
    }
}
