//! Token expiry as clients may write it: an RFC 3339 time, a calendar date,
//! a Unix timestamp (number or digits), or the words `today` / `tomorrow`
//! (the last millisecond of that UTC day).

use serde_json::Value;
use time::{Date, Duration, OffsetDateTime, Time};

use crate::wire::{format_time, parse_time};

/// Timestamps above this are read as milliseconds: 10^11 seconds is in the
/// year 5138, 10^11 milliseconds in 1973.
const MILLIS_THRESHOLD: f64 = 1e11;

/// Parses an expiry relative to `now`. `Ok(None)` means "never".
pub fn parse(value: &Value, now: OffsetDateTime) -> Result<Option<OffsetDateTime>, String> {
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => {
            let Some(secs) = n.as_f64() else {
                return Err("must be a valid timestamp".into());
            };
            from_unix(secs).map(Some)
        }
        Value::String(s) => parse_text(s.trim(), now).map(Some),
        _ => Err("must be an ISO 8601 time, a Unix timestamp, \"today\" or \"tomorrow\"".into()),
    }
}

fn parse_text(s: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    let today = now.to_offset(time::UtcOffset::UTC).date();
    match s.to_ascii_lowercase().as_str() {
        "today" => return Ok(end_of(today)),
        "tomorrow" => {
            return today
                .next_day()
                .map(end_of)
                .ok_or_else(|| "out of range".to_string())
        }
        _ => {}
    }
    if !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let secs: f64 = s.parse().map_err(|_| "must be a valid timestamp")?;
        return from_unix(secs);
    }
    if let Some(t) = parse_time(s) {
        return Ok(t);
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(date) = Date::parse(s, &date_format) {
        return Ok(end_of(date));
    }
    Err("must be an ISO 8601 time, a Unix timestamp, \"today\" or \"tomorrow\"".into())
}

fn end_of(date: Date) -> OffsetDateTime {
    date.with_time(Time::MIDNIGHT).assume_utc() + Duration::days(1) - Duration::milliseconds(1)
}

fn from_unix(value: f64) -> Result<OffsetDateTime, String> {
    if !value.is_finite() || value < 0.0 {
        return Err("must be a non-negative timestamp".into());
    }
    let millis = if value > MILLIS_THRESHOLD {
        value
    } else {
        value * 1000.0
    };
    // Year 9999 is far enough for any token.
    if millis > 253_402_300_799_000.0 {
        return Err("is too far in the future".into());
    }
    OffsetDateTime::from_unix_timestamp_nanos(millis as i128 * 1_000_000)
        .map_err(|_| "is out of range".to_string())
}

/// The stored form of an expiry.
pub fn to_wire(t: OffsetDateTime) -> String {
    format_time(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-03-10 15:04:05 UTC);

    fn wire(v: Value) -> Result<Option<String>, String> {
        parse(&v, NOW).map(|t| t.map(to_wire))
    }

    #[test]
    fn accepts_every_documented_form() {
        assert_eq!(wire(json!(null)), Ok(None));
        assert_eq!(
            wire(json!("today")),
            Ok(Some("2026-03-10T23:59:59.999Z".into()))
        );
        assert_eq!(
            wire(json!("Tomorrow")),
            Ok(Some("2026-03-11T23:59:59.999Z".into()))
        );
        assert_eq!(
            wire(json!("2030-01-02T03:04:05Z")),
            Ok(Some("2030-01-02T03:04:05Z".into()))
        );
        assert_eq!(
            wire(json!("2030-01-02")),
            Ok(Some("2030-01-02T23:59:59.999Z".into()))
        );
        assert_eq!(
            wire(json!(1_900_000_000)),
            Ok(Some("2030-03-17T17:46:40Z".into()))
        );
        assert_eq!(wire(json!("1900000000")), wire(json!(1_900_000_000)));
        assert_eq!(
            wire(json!(1_900_000_000_000u64)),
            wire(json!(1_900_000_000))
        );
    }

    #[test]
    fn rejects_garbage_negative_and_absurd_values() {
        assert!(wire(json!("next week")).is_err());
        assert!(wire(json!(-1)).is_err());
        assert!(wire(json!(true)).is_err());
        assert!(wire(json!({})).is_err());
        assert!(wire(json!(1e300)).is_err());
        assert!(wire(json!("99999999999999999999")).is_err());
    }
}
