//! `drill.every` and `drill.window`: when drills run by themselves. A
//! window is days of the week and a span of hours, in UTC or at a fixed
//! offset from it (no time zone rules: a fixed offset never moves under a
//! daylight-saving change).

use std::time::Duration;

use serde::Deserialize;

/// Days as the config names them, Monday first.
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWindow {
    /// Such as [tue, wed, thu]; default every day.
    #[serde(default)]
    pub days: Option<Vec<String>>,
    /// `HH:MM-HH:MM`, which may wrap past midnight; default all day.
    #[serde(default)]
    pub hours: Option<String>,
    /// `+HH:MM` or `-HH:MM` from UTC; default `+00:00`.
    #[serde(default)]
    pub utc_offset: Option<String>,
}

/// When a scheduled drill may start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillWindow {
    /// Monday first.
    pub days: [bool; 7],
    /// Minutes after local midnight: from (inclusive), to (exclusive).
    pub hours: Option<(u32, u32)>,
    /// Local time minus UTC, in minutes.
    pub offset_minutes: i32,
}

impl Default for DrillWindow {
    fn default() -> Self {
        Self {
            days: [true; 7],
            hours: None,
            offset_minutes: 0,
        }
    }
}

/// Drills on a schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillSchedule {
    pub every: Duration,
    pub window: DrillWindow,
    /// The failover records' TTL during a scheduled drill, in seconds.
    pub lower_ttl: Option<u32>,
}

fn clock(text: &str) -> Option<u32> {
    let (h, m) = text.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && text.trim().len() == 5).then_some(h * 60 + m)
}

impl DrillWindow {
    pub fn from_raw(raw: RawWindow) -> Result<Self, String> {
        let mut window = Self::default();
        if let Some(days) = raw.days {
            if days.is_empty() {
                return Err(
                    "drill.window.days: empty: expected some of mon, tue, wed, thu, fri, sat, sun"
                        .into(),
                );
            }
            window.days = [false; 7];
            for day in days {
                let lower = day.to_ascii_lowercase();
                let i = DAYS
                    .iter()
                    .position(|d| lower.starts_with(d) && lower.len() >= 3)
                    .ok_or_else(|| {
                        format!(
                            "drill.window.days: `{day}`: expected mon, tue, wed, thu, fri, sat or sun"
                        )
                    })?;
                window.days[i] = true;
            }
        }
        if let Some(hours) = raw.hours {
            let span = hours
                .split_once('-')
                .and_then(|(from, to)| Some((clock(from)?, clock(to)?)))
                .filter(|(from, to)| from != to)
                .ok_or_else(|| {
                    format!(
                        "drill.window.hours: `{hours}`: expected HH:MM-HH:MM, such as 02:00-05:00 (it may wrap past midnight, as 22:00-02:00)"
                    )
                })?;
            window.hours = Some(span);
        }
        if let Some(offset) = raw.utc_offset {
            let (sign, rest) = match offset.trim().split_at_checked(1) {
                Some(("+", rest)) => (1, rest),
                Some(("-", rest)) => (-1, rest),
                _ => (0, ""),
            };
            let minutes = clock(rest)
                .filter(|m| sign != 0 && *m <= 14 * 60)
                .ok_or_else(|| {
                    format!(
                        "drill.window.utc_offset: `{offset}`: expected +HH:MM or -HH:MM, such as +01:00"
                    )
                })?;
            window.offset_minutes = sign * minutes as i32;
        }
        Ok(window)
    }

    /// Whether `ms` (since 1970, UTC) falls in the window.
    pub fn contains(&self, ms: u64) -> bool {
        let local = ms as i64 + i64::from(self.offset_minutes) * 60_000;
        let day_ms = 86_400_000;
        // 1970-01-01 was a Thursday: Monday-first index 3.
        let day = (local.div_euclid(day_ms) + 3).rem_euclid(7) as usize;
        let minute = (local.rem_euclid(day_ms) / 60_000) as u32;
        match self.hours {
            None => self.days[day],
            Some((from, to)) if from < to => self.days[day] && (from..to).contains(&minute),
            // Wraps past midnight: the part after midnight belongs to the
            // day the window opened.
            Some((from, to)) => {
                (minute >= from && self.days[day]) || (minute < to && self.days[(day + 6) % 7])
            }
        }
    }

    /// The first moment from `from` on (to the minute) in the window;
    /// none within eight days (it never opens).
    pub fn next_open(&self, from: u64) -> Option<u64> {
        if self.contains(from) {
            return Some(from);
        }
        let minute = 60_000;
        let mut at = from - from % minute + minute;
        for _ in 0..8 * 24 * 60 {
            if self.contains(at) {
                return Some(at);
            }
            at += minute;
        }
        None
    }

    /// As the status shows it, such as `tue, thu 02:00-05:00 UTC+01:00`.
    pub fn describe(&self) -> String {
        let days = if self.days == [true; 7] {
            "every day".to_string()
        } else {
            DAYS.iter()
                .zip(self.days)
                .filter(|(_, on)| *on)
                .map(|(d, _)| *d)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let hours = self.hours.map_or(" at any hour".to_string(), |(f, t)| {
            format!(" {:02}:{:02}-{:02}:{:02}", f / 60, f % 60, t / 60, t % 60)
        });
        let offset = match self.offset_minutes {
            0 => " UTC".to_string(),
            m => format!(
                " UTC{}{:02}:{:02}",
                if m < 0 { '-' } else { '+' },
                m.unsigned_abs() / 60,
                m.unsigned_abs() % 60
            ),
        };
        format!("{days}{hours}{offset}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-01 (a Tuesday) at `h`:`m` UTC.
    fn tuesday(h: u64, m: u64) -> u64 {
        1_796_083_200_000 + (h * 60 + m) * 60_000
    }

    fn window(days: Option<&[&str]>, hours: Option<&str>, offset: Option<&str>) -> DrillWindow {
        DrillWindow::from_raw(RawWindow {
            days: days.map(|d| d.iter().map(|s| s.to_string()).collect()),
            hours: hours.map(str::to_string),
            utc_offset: offset.map(str::to_string),
        })
        .unwrap()
    }

    #[test]
    fn days_hours_and_offsets() {
        assert!(DrillWindow::default().contains(tuesday(12, 0)));
        let tue_night = window(Some(&["tue"]), Some("02:00-05:00"), None);
        assert!(tue_night.contains(tuesday(2, 0)));
        assert!(tue_night.contains(tuesday(4, 59)));
        assert!(!tue_night.contains(tuesday(5, 0)));
        assert!(!tue_night.contains(tuesday(2, 0) + 86_400_000), "Wednesday");
        // 02:00 at UTC+01:00 is 01:00 UTC.
        let shifted = window(Some(&["tue"]), Some("02:00-05:00"), Some("+01:00"));
        assert!(shifted.contains(tuesday(1, 0)));
        assert!(!shifted.contains(tuesday(4, 30)));
        // Monday 22:00 to Tuesday 02:00.
        let wrap = window(Some(&["mon"]), Some("22:00-02:00"), None);
        assert!(wrap.contains(tuesday(1, 59)));
        assert!(!wrap.contains(tuesday(2, 0)));
        assert!(
            !wrap.contains(tuesday(23, 0)),
            "Tuesday evening is not Monday's"
        );
        assert!(wrap.contains(tuesday(23, 0) - 86_400_000));
        assert_eq!(shifted.describe(), "tue 02:00-05:00 UTC+01:00");
        assert_eq!(tue_night.next_open(tuesday(1, 30)), Some(tuesday(2, 0)));
        assert_eq!(tue_night.next_open(tuesday(3, 0)), Some(tuesday(3, 0)));
        assert_eq!(
            tue_night.next_open(tuesday(5, 0)),
            Some(tuesday(2, 0) + 7 * 86_400_000)
        );
    }

    #[test]
    fn bad_windows_say_what_was_expected() {
        let bad = |days: Option<&[&str]>, hours: Option<&str>, offset: Option<&str>| {
            DrillWindow::from_raw(RawWindow {
                days: days.map(|d| d.iter().map(|s| s.to_string()).collect()),
                hours: hours.map(str::to_string),
                utc_offset: offset.map(str::to_string),
            })
            .unwrap_err()
        };
        assert!(bad(Some(&["someday"]), None, None).contains("expected mon, tue"));
        assert!(bad(None, Some("2-5"), None).contains("expected HH:MM-HH:MM"));
        assert!(bad(None, Some("02:00-02:00"), None).contains("expected HH:MM-HH:MM"));
        assert!(bad(None, None, Some("01:00")).contains("expected +HH:MM"));
    }
}
