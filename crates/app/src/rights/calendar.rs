//! Working days and deadlines: a configurable calendar of weekend days, listed public
//! holidays and make-up working days, in one local time offset.

use std::collections::BTreeSet;

use time::{Date, Duration, Month, OffsetDateTime, Time, UtcOffset, Weekday};

use super::RightsConfig;

/// The calendar deadlines are computed in.
#[derive(Debug, Clone)]
pub struct Calendar {
    weekend: Vec<Weekday>,
    holidays: BTreeSet<Date>,
    extra_working: BTreeSet<Date>,
    offset: UtcOffset,
}

fn weekday(s: &str) -> anyhow::Result<Weekday> {
    Ok(match s.to_ascii_lowercase().get(..3).unwrap_or("") {
        "mon" => Weekday::Monday,
        "tue" => Weekday::Tuesday,
        "wed" => Weekday::Wednesday,
        "thu" => Weekday::Thursday,
        "fri" => Weekday::Friday,
        "sat" => Weekday::Saturday,
        "sun" => Weekday::Sunday,
        _ => anyhow::bail!("rights.weekend: `{s}` is not a day of the week"),
    })
}

fn date(key: &str, s: &str) -> anyhow::Result<Date> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s, &fmt)
        .map_err(|_| anyhow::anyhow!("rights.{key}: `{s}` is not a YYYY-MM-DD date"))
}

impl Calendar {
    pub fn from_config(cfg: &RightsConfig) -> anyhow::Result<Calendar> {
        let weekend = match &cfg.weekend {
            Some(days) => days
                .iter()
                .map(|d| weekday(d))
                .collect::<anyhow::Result<_>>()?,
            None => vec![Weekday::Saturday, Weekday::Sunday],
        };
        let list = |key: &str, v: &Option<Vec<String>>| -> anyhow::Result<BTreeSet<Date>> {
            v.iter().flatten().map(|s| date(key, s)).collect()
        };
        let minutes = cfg.utc_offset_minutes.unwrap_or(480);
        let offset = UtcOffset::from_whole_seconds(minutes.saturating_mul(60))
            .map_err(|_| anyhow::anyhow!("rights.utc_offset_minutes: {minutes} is out of range"))?;
        Ok(Calendar {
            weekend,
            holidays: list("holidays", &cfg.holidays)?,
            extra_working: list("extra_working_days", &cfg.extra_working_days)?,
            offset,
        })
    }

    /// Whether `d` is a working day.
    pub fn is_working_day(&self, d: Date) -> bool {
        if self.extra_working.contains(&d) {
            return true;
        }
        !self.weekend.contains(&d.weekday()) && !self.holidays.contains(&d)
    }

    fn local_date(&self, ms: i64) -> Date {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
            .to_offset(self.offset)
            .date()
    }

    /// The first instant after local day `d` ends, in ms.
    fn end_of(&self, d: Date) -> i64 {
        let next = d.next_day().unwrap_or(d);
        let t = next.with_time(Time::MIDNIGHT).assume_offset(self.offset);
        (t.unix_timestamp_nanos() / 1_000_000) as i64
    }

    /// The end of the `n`th working day after the local day of `at_ms` (that day itself
    /// does not count).
    pub fn add_working_days(&self, at_ms: i64, n: u32) -> i64 {
        let mut d = self.local_date(at_ms);
        let mut left = n;
        while left > 0 {
            d = d.next_day().unwrap_or(d);
            if self.is_working_day(d) {
                left -= 1;
            }
        }
        self.end_of(d)
    }

    /// The end of the same local day `months` calendar months later (the last day of the
    /// month when it is shorter).
    pub fn add_months(&self, at_ms: i64, months: u32) -> i64 {
        let d = self.local_date(at_ms);
        let total =
            i64::from(d.year()) * 12 + i64::from(u8::from(d.month()) - 1) + i64::from(months);
        let year = (total / 12) as i32;
        let month = Month::try_from((total % 12) as u8 + 1).unwrap_or(Month::January);
        let day = d.day().min(month.length(year));
        let target = Date::from_calendar_date(year, month, day).unwrap_or(d + Duration::days(30));
        self.end_of(target)
    }
}
