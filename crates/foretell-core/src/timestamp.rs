//! Timestamps as people and tools write them: Unix seconds, `YYYY-MM-DD HH:MM:SS[.ffffff]` (NAB's
//! form, read as UTC) or RFC 3339 (`2024-05-01T12:00:00Z`, `...+02:00`).

use std::fmt;

/// The spelling of a timestamp column. A file must use one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampFormat {
    UnixSeconds,
    DateTime,
    Rfc3339,
}

impl fmt::Display for TimestampFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimestampFormat::UnixSeconds => "Unix seconds",
            TimestampFormat::DateTime => "`YYYY-MM-DD HH:MM:SS` (UTC)",
            TimestampFormat::Rfc3339 => "RFC 3339",
        })
    }
}

/// The newest instant accepted anywhere: 9999-12-31T23:59:59Z, the last one RFC 3339 can write.
pub const MAX_UNIX_SECONDS: f64 = 253_402_300_799.0;

/// Unix seconds as milliseconds, when they fall between 1970 and the end of year 9999: what a
/// monitoring sample can carry. Anything else (`1e300`, `-1e18`, `NaN`) is refused here, once,
/// so that no later arithmetic on timestamps can overflow.
pub fn unix_seconds_to_ms(seconds: f64) -> Option<i64> {
    (0.0..=MAX_UNIX_SECONDS)
        .contains(&seconds)
        .then(|| (seconds * 1000.0).round() as i64)
}

/// Reads `text` as one of the formats; returns milliseconds since the epoch and the format.
pub fn parse(text: &str) -> Result<(i64, TimestampFormat), String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let seconds: f64 = text
            .parse()
            .map_err(|_| format!("`{text}` is not a number of Unix seconds"))?;
        let ms = unix_seconds_to_ms(seconds).ok_or_else(|| {
            format!("`{text}` Unix seconds is after the year 9999; is it in milliseconds or nanoseconds?")
        })?;
        return Ok((ms, TimestampFormat::UnixSeconds));
    }
    let invalid = || {
        format!("`{text}` is not a timestamp; use Unix seconds, `YYYY-MM-DD HH:MM:SS` or RFC 3339")
    };
    let bytes = text.as_bytes();
    if bytes.len() < 19
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return Err(invalid());
    }
    let format = match bytes[10] {
        b' ' => TimestampFormat::DateTime,
        b'T' | b't' => TimestampFormat::Rfc3339,
        _ => return Err(invalid()),
    };
    let number = |range: std::ops::Range<usize>| -> Result<i64, String> {
        text.get(range)
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .ok_or_else(invalid)
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(format!("`{text}` is not a valid date and time"));
    }
    let mut rest = &text[19..];
    let mut millis = 0i64;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid());
        }
        let padded = format!("{:0<3}", &fraction[..digits.min(3)]);
        millis = padded.parse().map_err(|_| invalid())?;
        rest = &fraction[digits..];
    }
    let offset_minutes = match (format, rest) {
        (TimestampFormat::DateTime, "") => 0,
        (TimestampFormat::Rfc3339, "Z" | "z") => 0,
        (TimestampFormat::Rfc3339, zone)
            if zone.len() == 6 && (zone.starts_with('+') || zone.starts_with('-')) =>
        {
            let hours: i64 = zone[1..3].parse().map_err(|_| invalid())?;
            let minutes: i64 = zone[4..6].parse().map_err(|_| invalid())?;
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            sign * (hours * 60 + minutes)
        }
        (TimestampFormat::Rfc3339, _) => {
            return Err(format!(
                "`{text}` needs a zone (`Z` or `+HH:MM`) after the time"
            ))
        }
        _ => return Err(invalid()),
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Ok((seconds * 1000 + millis, format))
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The wait an HTTP `Retry-After` value asks for, in milliseconds from `now_ms`: delay-seconds
/// (`120`) or an HTTP-date (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110's IMF-fixdate). A date in
/// the past is no wait; anything else is `None` (ignored, as RFC 9110 lets a client do).
pub fn retry_after_ms(value: &str, now_ms: i64) -> Option<i64> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value
            .parse::<i64>()
            .ok()
            .map(|seconds| seconds.saturating_mul(1000));
    }
    let fields: Vec<&str> = value.split_whitespace().collect();
    let [weekday, day, month, year, time, "GMT"] = fields.as_slice() else {
        return None;
    };
    if !weekday.ends_with(',') || day.len() != 2 || year.len() != 4 || time.len() != 8 {
        return None;
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m == month)? as i64 + 1;
    let number = |text: &str| -> Option<i64> {
        text.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| text.parse().ok())
            .flatten()
    };
    let (day, year) = (number(day)?, number(year)?);
    let clock: Vec<&str> = time.split(':').collect();
    let [hour, minute, second] = clock.as_slice() else {
        return None;
    };
    let (hour, minute, second) = (number(hour)?, number(minute)?, number(second)?);
    if !(1..=days_in_month(year, month)).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let at_ms =
        (days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second) * 1000;
    Some((at_ms - now_ms).max(0))
}

/// `2014-04-01T00:00:00Z` (milliseconds are dropped).
pub fn format_rfc3339(ms: i64) -> String {
    let seconds = ms.div_euclid(1000);
    let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        let now = parse("1994-11-06T08:49:00Z").expect("valid").0;
        assert_eq!(retry_after_ms("120", now), Some(120_000));
        assert_eq!(retry_after_ms(" 0 ", now), Some(0));
        assert_eq!(
            retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(37_000)
        );
        assert_eq!(
            retry_after_ms("Sun, 06 Nov 1994 08:48:00 GMT", now),
            Some(0)
        );
        for bad in [
            "",
            "-5",
            "1.5",
            "soon",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 31 Feb 1994 08:49:37 GMT",
            "Sun, 06 Now 1994 08:49:37 GMT",
        ] {
            assert_eq!(retry_after_ms(bad, now), None, "{bad}");
        }
    }

    #[test]
    fn formatting_round_trips_through_parsing() {
        for text in [
            "2014-04-01T00:00:00Z",
            "2024-02-29T12:34:56Z",
            "1969-12-31T23:59:59Z",
            "2000-03-01T00:00:00Z",
            "2026-11-22T06:30:00Z",
        ] {
            let (ms, _) = parse(text).expect(text);
            assert_eq!(format_rfc3339(ms), text);
        }
    }

    /// Issue 16, item 2: a CSV row at an absurd Unix time is an error naming it, not an
    /// overflow further on.
    #[test]
    fn unix_seconds_past_the_year_9999_are_refused() {
        let long = "9".repeat(400);
        for text in ["253402300800", "100000000000000000000", long.as_str()] {
            let error = parse(text).expect_err(text);
            assert!(error.contains("after the year 9999"), "{error}");
        }
        assert_eq!(
            parse("253402300799"),
            Ok((253_402_300_799_000, TimestampFormat::UnixSeconds))
        );
        assert_eq!(unix_seconds_to_ms(f64::NAN), None);
        assert_eq!(unix_seconds_to_ms(-0.5), None);
    }

    #[test]
    fn the_three_formats_agree_on_the_same_instant() {
        // 2014-04-01 00:00:00 UTC = 1396310400 (date -u -d '2014-04-01' +%s)
        let expected = 1_396_310_400_000;
        assert_eq!(
            parse("1396310400"),
            Ok((expected, TimestampFormat::UnixSeconds))
        );
        assert_eq!(
            parse("2014-04-01 00:00:00"),
            Ok((expected, TimestampFormat::DateTime))
        );
        assert_eq!(
            parse("2014-04-01T00:00:00Z"),
            Ok((expected, TimestampFormat::Rfc3339))
        );
        assert_eq!(
            parse("2014-04-01T02:00:00+02:00"),
            Ok((expected, TimestampFormat::Rfc3339))
        );
        assert_eq!(
            parse("2014-04-01 00:00:00.250000"),
            Ok((expected + 250, TimestampFormat::DateTime))
        );
        assert_eq!(
            parse("1396310400.5"),
            Ok((expected + 500, TimestampFormat::UnixSeconds))
        );
    }

    #[test]
    fn leap_days_and_pre_epoch_dates() {
        // 2024-02-29 12:00:00 UTC = 1709208000
        assert_eq!(
            parse("2024-02-29 12:00:00").map(|p| p.0),
            Ok(1_709_208_000_000)
        );
        assert_eq!(parse("1969-12-31 23:59:59").map(|p| p.0), Ok(-1000));
    }

    #[test]
    fn malformed_timestamps_say_what_is_accepted() {
        for bad in [
            "",
            "yesterday",
            "2014-13-01 00:00:00",
            "2023-02-29 00:00:00",
            "2014-04-01T00:00:00",
            "2014/04/01 00:00:00",
            "2014-04-01 00:00:00Z",
        ] {
            let error = parse(bad).expect_err(bad);
            assert!(
                error.contains("timestamp") || error.contains("valid") || error.contains("zone"),
                "{bad}: {error}"
            );
        }
    }
}
