//! Calendar months on unix seconds, UTC: Jan 31 + 1 month is the last day of February.

use time::{Month, OffsetDateTime};

/// `ts` plus `months` calendar months, the day clamped to the target month's length.
pub fn add_months(ts: i64, months: u32) -> i64 {
    let Ok(dt) = OffsetDateTime::from_unix_timestamp(ts) else { return ts };
    let total = dt.year() as i64 * 12 + (dt.month() as i64 - 1) + months as i64;
    let year = (total.div_euclid(12)) as i32;
    let month = Month::try_from((total.rem_euclid(12) + 1) as u8).expect("1..=12");
    let last_day = time::util::days_in_month(month, year);
    let date = time::Date::from_calendar_date(year, month, dt.day().min(last_day)).expect("valid date");
    dt.replace_date(date).unix_timestamp()
}

/// Whole days between two times (for app_run_time / app_total_time).
pub fn whole_days(from: i64, to: i64) -> i64 {
    (to - from).max(0) / 86_400
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn months_are_calendar_months() {
        let jan15 = datetime!(2026-01-15 10:30 UTC).unix_timestamp();
        assert_eq!(add_months(jan15, 1), datetime!(2026-02-15 10:30 UTC).unix_timestamp());
        assert_eq!(add_months(jan15, 12), datetime!(2027-01-15 10:30 UTC).unix_timestamp());
        let jan31 = datetime!(2028-01-31 00:00 UTC).unix_timestamp();
        assert_eq!(add_months(jan31, 1), datetime!(2028-02-29 00:00 UTC).unix_timestamp(), "leap year");
        let nov30 = datetime!(2026-11-30 23:59:59 UTC).unix_timestamp();
        assert_eq!(add_months(nov30, 3), datetime!(2027-02-28 23:59:59 UTC).unix_timestamp());
    }
}
