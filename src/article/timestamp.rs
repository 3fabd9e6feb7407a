//! Timestamps as the corpora write them and as YAML allows them.
//!
//! Reading fields and rendering entries both need them; they sit together so that the form written
//! is always one the reader takes back.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

/// Renders a timestamp the way the corpora write it: RFC 3339 in UTC with `Z`, fractional
/// seconds only when there are any.
pub fn format_timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Reads a timestamp: RFC 3339 with any offset, or YAML's forms without an offset (taken as
/// UTC), or a bare date (midnight UTC).
pub fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f %#z"] {
        if let Ok(time) = DateTime::parse_from_str(text, format) {
            return Some(time.with_timezone(&Utc));
        }
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(time) = NaiveDateTime::parse_from_str(text, format) {
            return Some(time.and_utc());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|time| time.and_utc())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn timestamps_render_like_the_files() {
        let t = Utc.with_ymd_and_hms(2021, 5, 11, 16, 27, 0).unwrap();
        assert_eq!(format_timestamp(t), "2021-05-11T16:27:00Z");
        let frac = t + chrono::Duration::milliseconds(250);
        assert_eq!(format_timestamp(frac), "2021-05-11T16:27:00.250Z");
        assert_eq!(parse_timestamp("2021-05-11T18:27:00+02:00"), Some(t));
        assert_eq!(parse_timestamp("2021-05-11 16:27:00"), Some(t));
        assert_eq!(
            parse_timestamp("2021-05-11"),
            Some(Utc.with_ymd_and_hms(2021, 5, 11, 0, 0, 0).unwrap())
        );
        assert_eq!(parse_timestamp("soon"), None);
    }
}
