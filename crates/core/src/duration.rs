//! Durations as QStash headers write them: Go-style with a day unit
//! (`50s`, `1d10h30m`, `1h30m3s`, `500ms`).

use std::time::Duration;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid duration {0:?}: expected a number with a unit such as 50s, 10m, 2h, 1d or 1d10h30m"
)]
pub struct DurationError(pub String);

/// Longest duration any header may give (100 years): past it, times in
/// milliseconds would overflow, so such a value is an error, not a wrap.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Parses a duration. humantime does the parsing; the pre-check narrows it to
/// the units QStash documents, since humantime also takes `2w`, `1.5h` or
/// `3 days`, which QStash rejects.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let s = input.trim();
    let allowed = |c: char| c.is_ascii_digit() || matches!(c, 'd' | 'h' | 'm' | 's');
    let starts_with_digit = s.chars().next().is_some_and(|c| c.is_ascii_digit());
    if !starts_with_digit || !s.chars().all(allowed) || s.ends_with(|c: char| c.is_ascii_digit()) {
        return Err(DurationError(input.to_string()));
    }
    humantime::parse_duration(s)
        .ok()
        .filter(|d| *d <= MAX_DURATION)
        .ok_or_else(|| DurationError(input.to_string()))
}

/// Parses a duration that may also be a bare number of seconds (`period=60`).
pub fn parse_seconds_or_duration(input: &str) -> Result<Duration, DurationError> {
    match input.trim().parse::<u64>() {
        Ok(secs) if secs <= MAX_DURATION.as_secs() => Ok(Duration::from_secs(secs)),
        Ok(_) => Err(DurationError(input.to_string())),
        Err(_) => parse_duration(input),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documented_forms() {
        assert_eq!(parse_duration("50s").unwrap(), Duration::from_secs(50));
        assert_eq!(
            parse_duration("1d10h30m").unwrap(),
            Duration::from_secs(86400 + 36000 + 1800)
        );
        assert_eq!(
            parse_duration("1h30m3s").unwrap(),
            Duration::from_secs(5403)
        );
        assert_eq!(parse_duration("10d").unwrap(), Duration::from_secs(864000));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
    }

    #[test]
    fn rejects_forms_qstash_does_not_document() {
        for bad in [
            "", "100", "1.5h", "2w", "3 days", "-5s", "s", "1x", "abc", "10s5",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn huge_durations_are_errors_not_wraps() {
        for huge in [
            "200000000000d",
            "213503982335d",
            "99999999999999999999s",
            "36501d",
        ] {
            assert!(parse_duration(huge).is_err(), "{huge}");
        }
        assert!(parse_seconds_or_duration("18446744073709551615").is_err());
        assert!(parse_duration("36500d").is_ok());
    }

    #[test]
    fn bare_seconds_allowed_where_documented() {
        assert_eq!(
            parse_seconds_or_duration("60").unwrap(),
            Duration::from_secs(60)
        );
        assert_eq!(
            parse_seconds_or_duration("1m").unwrap(),
            Duration::from_secs(60)
        );
    }
}
