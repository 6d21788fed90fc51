//! Health with hysteresis: a check counts as down after `fall` consecutive
//! failures and as up after `rise` consecutive successes; a site is down
//! when its rule over its checks says so.

use serde::{Deserialize, Serialize};

/// What one check currently counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckState {
    /// Not enough results yet since the start.
    Unknown,
    Up,
    Down,
}

/// One check's hysteresis counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckHealth {
    pub state: CheckState,
    /// Consecutive results equal to the last one.
    pub streak: u32,
    pub last_ok: Option<bool>,
    pub last_detail: Option<String>,
    /// When the state last changed (milliseconds), if it has.
    pub since: Option<u64>,
}

impl CheckHealth {
    pub fn new() -> Self {
        Self {
            state: CheckState::Unknown,
            streak: 0,
            last_ok: None,
            last_detail: None,
            since: None,
        }
    }

    /// Records one result; returns the new state if it changed.
    pub fn record(
        &mut self,
        ok: bool,
        detail: Option<String>,
        fall: u32,
        rise: u32,
        now: u64,
    ) -> Option<CheckState> {
        if self.last_ok == Some(ok) {
            self.streak = self.streak.saturating_add(1);
        } else {
            self.streak = 1;
        }
        self.last_ok = Some(ok);
        self.last_detail = detail;
        let next = match (ok, self.state) {
            (true, CheckState::Up) | (false, CheckState::Down) => return None,
            (true, _) if self.streak >= rise => CheckState::Up,
            (false, _) if self.streak >= fall => CheckState::Down,
            (true, _) | (false, _) => return None,
        };
        self.state = next;
        self.since = Some(now);
        Some(next)
    }
}

impl Default for CheckHealth {
    fn default() -> Self {
        Self::new()
    }
}

/// When a site counts as down, from the states of its checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DownRule {
    /// Every check is down.
    All,
    /// Any check is down.
    Any,
    /// At least this many checks are down.
    AtLeast(u32),
}

impl DownRule {
    pub fn describe(&self) -> String {
        match self {
            DownRule::All => "all checks down".into(),
            DownRule::Any => "any check down".into(),
            DownRule::AtLeast(n) => format!("at least {n} checks down"),
        }
    }
}

/// What a site counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SiteHealth {
    /// Its down rule does not hold and every check is up.
    Healthy,
    /// Its down rule holds.
    Down,
    /// Neither: some check unknown, or down but not enough for the rule.
    Degraded,
}

/// Applies `rule` to the states of a site's checks.
pub fn site_health(rule: DownRule, checks: &[CheckState]) -> SiteHealth {
    let count = |state| checks.iter().filter(|s| **s == state).count() as u32;
    site_health_counts(
        rule,
        checks.len() as u32,
        count(CheckState::Up),
        count(CheckState::Down),
    )
}

/// `site_health` from how many of `total` checks are up and down.
pub fn site_health_counts(rule: DownRule, total: u32, up: u32, down: u32) -> SiteHealth {
    let rule_holds = match rule {
        DownRule::All => total > 0 && down == total,
        DownRule::Any => down > 0,
        DownRule::AtLeast(n) => down >= n,
    };
    if rule_holds {
        SiteHealth::Down
    } else if up == total {
        SiteHealth::Healthy
    } else {
        SiteHealth::Degraded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fall_failures_in_a_row_make_a_check_down_and_rise_successes_up() {
        let mut h = CheckHealth::new();
        assert_eq!(h.record(true, None, 3, 2, 0), None);
        assert_eq!(h.record(true, None, 3, 2, 1), Some(CheckState::Up));
        assert_eq!(h.record(false, None, 3, 2, 2), None);
        assert_eq!(h.record(false, None, 3, 2, 3), None);
        assert_eq!(h.record(true, None, 3, 2, 4), None, "streak broken");
        for t in 5..7 {
            assert_eq!(h.record(false, None, 3, 2, t), None);
        }
        assert_eq!(h.record(false, None, 3, 2, 7), Some(CheckState::Down));
        assert_eq!(h.since, Some(7));
    }

    #[test]
    fn site_rules() {
        use CheckState::*;
        assert_eq!(
            site_health(DownRule::All, &[Down, Up]),
            SiteHealth::Degraded
        );
        assert_eq!(site_health(DownRule::All, &[Down, Down]), SiteHealth::Down);
        assert_eq!(site_health(DownRule::Any, &[Down, Up]), SiteHealth::Down);
        assert_eq!(
            site_health(DownRule::AtLeast(2), &[Down, Up, Down]),
            SiteHealth::Down
        );
        assert_eq!(
            site_health(DownRule::AtLeast(2), &[Down, Up, Up]),
            SiteHealth::Degraded
        );
        assert_eq!(site_health(DownRule::Any, &[Up, Up]), SiteHealth::Healthy);
        assert_eq!(
            site_health(DownRule::Any, &[Up, Unknown]),
            SiteHealth::Degraded
        );
    }
}
