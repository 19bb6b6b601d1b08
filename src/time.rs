//! Calendar dates from Unix time, without a date-time dependency for the
//! two places that print one (the admin API's timestamps and the GeoIP
//! database's build date).
//!
//! It sits at the bottom of the crate and imports nothing from it, so both
//! `admin` and `routing` can use it without one importing the other.

/// Days since 1970-01-01 to a proleptic Gregorian `(year, month, day)`,
/// month and day counted from 1. Valid for any `i64` day count whose year
/// fits in an `i64`, negative ones included.
///
/// Howard Hinnant's era-based `civil_from_days` (public domain): shifting
/// the year to start in March puts the leap day last, so each 400-year era
/// of 146,097 days maps to a date with plain integer arithmetic.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM-DD` of a Unix time in seconds, in UTC.
pub fn date_of_unix_seconds(seconds: u64) -> String {
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        // 2000 is a leap year (divisible by 400), 1900 and 2100 are not.
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(civil_from_days(-25_509), (1900, 2, 28));
        assert_eq!(civil_from_days(-25_508), (1900, 3, 1));
        assert_eq!(civil_from_days(47_540), (2100, 2, 28));
        assert_eq!(civil_from_days(47_541), (2100, 3, 1));
        assert_eq!(date_of_unix_seconds(0), "1970-01-01");
        assert_eq!(date_of_unix_seconds(951_782_400), "2000-02-29");
        assert_eq!(date_of_unix_seconds(1_780_666_922), "2026-06-05");
    }

    #[test]
    fn consecutive_days_are_consecutive_dates() {
        // Walk 1900-01-01 .. 2200-01-01 day by day against a plain counter.
        let mut date = (1900, 1, 1);
        for days in -25_567..84_006 {
            assert_eq!(civil_from_days(days), date, "day {days}");
            let (year, month, day) = date;
            let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
            let length = match month {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            date = match (day == length, month == 12) {
                (false, _) => (year, month, day + 1),
                (true, false) => (year, month + 1, 1),
                (true, true) => (year + 1, 1, 1),
            };
        }
        assert_eq!(date, (2200, 1, 1));
    }
}
