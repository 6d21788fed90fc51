//! The decision core, pure: no I/O, no clock, no async. The shell feeds it
//! check results, operator commands and the time; it answers each with a
//! `Decision` saying what it concluded, why, and which actions to run in
//! order. Everything that decides when traffic moves lives here, so it can
//! be simulated step by step (see tests/engine_sim.rs).

pub mod health;

use serde::{Deserialize, Serialize};

pub use health::{CheckHealth, CheckState, DownRule, SiteHealth};

/// The two sites' configured roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Primary,
    Secondary,
}

impl Role {
    pub const BOTH: [Role; 2] = [Role::Primary, Role::Secondary];

    fn index(self) -> usize {
        match self {
            Role::Primary => 0,
            Role::Secondary => 1,
        }
    }

    pub fn other(self) -> Role {
        match self {
            Role::Primary => Role::Secondary,
            Role::Secondary => Role::Primary,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Primary => "primary",
            Role::Secondary => "secondary",
        })
    }
}

/// What the engine needs to know of the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineSpec {
    /// Indexed by role: primary first.
    pub sites: [SiteSpec; 2],
    pub auto_failover: bool,
    /// Milliseconds after an automatic failover during which no other
    /// automatic failover happens.
    pub cooldown_ms: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SiteSpec {
    pub name: String,
    pub down_rule: DownRule,
    pub checks: Vec<CheckSpec>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CheckSpec {
    pub name: String,
    pub fall: u32,
    pub rise: u32,
}

/// The state that survives a restart; the shell stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Persisted {
    /// The site the failover records point at.
    pub active: Role,
    /// Grows by one at every change of active site.
    pub epoch: u64,
    pub paused: bool,
    /// Milliseconds (wall clock) until which no automatic failover happens.
    pub cooldown_until: Option<u64>,
    /// The last notable decision's sentence.
    pub last_decision: Option<String>,
    /// The sentence of the decision that made the active site active.
    #[serde(default)]
    pub last_change: Option<String>,
}

impl Default for Persisted {
    fn default() -> Self {
        Self {
            active: Role::Primary,
            epoch: 0,
            paused: false,
            cooldown_until: None,
            last_decision: None,
            last_change: None,
        }
    }
}

/// One of a site's checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckId {
    pub site: Role,
    pub index: usize,
}

/// Something that happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A check finished; `detail` says why it failed, or what it saw.
    Check {
        id: CheckId,
        ok: bool,
        detail: Option<String>,
    },
    /// An operator's command; `actor` names who gave it.
    Command { command: Command, actor: String },
    /// Time passed.
    Tick,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Move traffic to the secondary while the primary may be healthy.
    Failover { reason: String },
    /// Move traffic back to the primary.
    Failback,
    /// Stop automatic actions.
    Pause,
    /// Allow automatic actions again.
    Resume,
}

/// What the engine orders, in the order it is to be done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Point the failover records at `site`; `epoch` is the new epoch.
    Activate { site: Role, epoch: u64 },
}

/// The kind of conclusion a step reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// Nothing to do.
    Steady,
    /// A check or site changed state; nothing moves.
    HealthChanged,
    /// Traffic moves to the secondary.
    FailedOver {
        automatic: bool,
    },
    /// Traffic moves back to the primary.
    FailedBack,
    Paused,
    Resumed,
    /// A command was refused; `summary` says why.
    Refused,
}

/// One step's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Milliseconds, as given to `step`.
    pub at: u64,
    /// The epoch after this decision.
    pub epoch: u64,
    pub event: Event,
    /// One human sentence.
    pub summary: String,
    /// The observations and rules behind it.
    pub reasons: Vec<String>,
    pub actions: Vec<Action>,
    /// Worth logging: anything but a repeat of the last steady sentence.
    pub notable: bool,
}

/// One condition fail-back needs, as it stands now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Precheck {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// The engine: configuration, persisted state and check health.
#[derive(Debug, Clone)]
pub struct Engine {
    spec: EngineSpec,
    state: Persisted,
    checks: [Vec<CheckHealth>; 2],
    last_summary: Option<String>,
}

impl Engine {
    /// An engine resuming from `state`: every check starts unknown, the
    /// active site is the one stored.
    pub fn new(spec: EngineSpec, state: Persisted) -> Self {
        let checks = [
            vec![CheckHealth::new(); spec.sites[0].checks.len()],
            vec![CheckHealth::new(); spec.sites[1].checks.len()],
        ];
        Self {
            spec,
            last_summary: state.last_decision.clone(),
            state,
            checks,
        }
    }

    pub fn spec(&self) -> &EngineSpec {
        &self.spec
    }

    pub fn persisted(&self) -> &Persisted {
        &self.state
    }

    pub fn checks(&self, site: Role) -> &[CheckHealth] {
        &self.checks[site.index()]
    }

    pub fn site_health(&self, site: Role) -> SiteHealth {
        let states: Vec<CheckState> = self.checks[site.index()].iter().map(|c| c.state).collect();
        health::site_health(self.spec.sites[site.index()].down_rule, &states)
    }

    /// The primary is healthy while traffic is on the secondary.
    pub fn ready_for_failback(&self) -> bool {
        self.state.active == Role::Secondary
            && self.site_health(Role::Primary) == SiteHealth::Healthy
    }

    /// The conditions a fail-back needs, each with how it stands.
    pub fn failback_prechecks(&self) -> Vec<Precheck> {
        let on_secondary = self.state.active == Role::Secondary;
        let primary = self.site_health(Role::Primary);
        vec![
            Precheck {
                name: "traffic on the secondary".into(),
                ok: on_secondary,
                detail: format!(
                    "answers point at {}",
                    self.spec.sites[self.state.active.index()].name
                ),
            },
            Precheck {
                name: "primary healthy".into(),
                ok: primary == SiteHealth::Healthy,
                detail: self.describe_site(Role::Primary),
            },
        ]
    }

    /// When the cooldown after the last automatic failover ends, if it has
    /// not yet.
    pub fn in_cooldown(&self, now: u64) -> Option<u64> {
        self.state.cooldown_until.filter(|until| *until > now)
    }

    /// Feeds one input at time `now` (milliseconds).
    pub fn step(&mut self, input: Input, now: u64) -> Decision {
        match input {
            Input::Check { id, ok, detail } => {
                let i = id.site.index();
                let Some((fall, rise)) = self.spec.sites[i]
                    .checks
                    .get(id.index)
                    .map(|c| (c.fall, c.rise))
                else {
                    let reason = format!("result for an unknown check {} #{}", id.site, id.index);
                    return self.evaluate(now, Event::Steady, vec![reason]);
                };
                let mut reasons = Vec::new();
                let mut event = Event::Steady;
                let before = self.site_health(id.site);
                let check = &mut self.checks[i][id.index];
                if let Some(state) = check.record(ok, detail.clone(), fall, rise, now) {
                    let result = if ok { "successes" } else { "failures" };
                    let why = detail.map(|d| format!(" ({d})")).unwrap_or_default();
                    reasons.push(format!(
                        "check {}/{} is now {} after {} {result} in a row{why}",
                        self.spec.sites[i].name,
                        self.spec.sites[i].checks[id.index].name,
                        state_word(state),
                        check.streak
                    ));
                    event = Event::HealthChanged;
                }
                let after = self.site_health(id.site);
                if after != before {
                    reasons.push(format!(
                        "site {} is now {} (down when {})",
                        self.spec.sites[i].name,
                        health_word(after),
                        self.spec.sites[i].down_rule.describe()
                    ));
                }
                self.evaluate(now, event, reasons)
            }
            Input::Command { command, actor } => self.command(command, &actor, now),
            Input::Tick => self.evaluate(now, Event::Steady, Vec::new()),
        }
    }

    fn describe_site(&self, site: Role) -> String {
        let checks = &self.checks[site.index()];
        let up = checks.iter().filter(|c| c.state == CheckState::Up).count();
        let word = match self.site_health(site) {
            SiteHealth::Degraded if checks.iter().any(|c| c.state == CheckState::Unknown) => {
                "waiting for checks"
            }
            health => health_word(health),
        };
        let mut text = format!(
            "{} {word} ({up}/{} checks up",
            self.spec.sites[site.index()].name,
            checks.len()
        );
        for (spec, check) in self.spec.sites[site.index()].checks.iter().zip(checks) {
            if check.state == CheckState::Down
                && let Some(detail) = &check.last_detail
            {
                text.push_str(&format!("; {}: {detail}", spec.name));
            }
        }
        text.push(')');
        text
    }

    /// The automatic rules, after health was updated.
    fn evaluate(&mut self, now: u64, event: Event, mut reasons: Vec<String>) -> Decision {
        let primary = self.site_health(Role::Primary);
        let secondary = self.site_health(Role::Secondary);
        let summary = match self.state.active {
            Role::Primary if primary == SiteHealth::Down => {
                let blocked = if self.state.paused {
                    Some("paused".to_string())
                } else if !self.spec.auto_failover {
                    Some("automatic failover is off".to_string())
                } else if let Some(until) = self.in_cooldown(now) {
                    Some(format!(
                        "in cooldown after the last automatic failover, until {}",
                        utc(until)
                    ))
                } else if secondary != SiteHealth::Healthy {
                    Some(format!(
                        "{}: keeping the current answer",
                        self.describe_site(Role::Secondary)
                    ))
                } else {
                    None
                };
                match blocked {
                    Some(why) => {
                        format!("no failover: {}; {why}", self.describe_site(Role::Primary))
                    }
                    None => {
                        reasons.push(format!("primary: {}", self.describe_site(Role::Primary)));
                        reasons.push(format!(
                            "secondary: {}",
                            self.describe_site(Role::Secondary)
                        ));
                        self.state.cooldown_until = Some(now + self.spec.cooldown_ms);
                        let summary = format!(
                            "failover: {}; {}: answers now point at {}",
                            self.describe_site(Role::Primary),
                            self.describe_site(Role::Secondary),
                            self.spec.sites[1].name
                        );
                        return self.activate(
                            Role::Secondary,
                            Event::FailedOver { automatic: true },
                            summary,
                            reasons,
                            now,
                        );
                    }
                }
            }
            Role::Primary => format!(
                "no action: answers point at {}; {}",
                self.spec.sites[0].name,
                self.describe_site(Role::Primary)
            ),
            Role::Secondary if primary == SiteHealth::Healthy => format!(
                "no action: answers point at {}; {}: ready for fail-back",
                self.spec.sites[1].name,
                self.describe_site(Role::Primary)
            ),
            Role::Secondary => format!(
                "no action: answers point at {}; {}: not ready for fail-back",
                self.spec.sites[1].name,
                self.describe_site(Role::Primary)
            ),
        };
        let summary = if self.state.paused {
            format!("{summary} (paused)")
        } else {
            summary
        };
        self.decide(now, event, summary, reasons, Vec::new())
    }

    fn command(&mut self, command: Command, actor: &str, now: u64) -> Decision {
        let reasons = vec![format!("command from {actor}")];
        match command {
            Command::Failover { reason } => {
                if self.state.active == Role::Secondary {
                    return self.refuse(
                        now,
                        "failover refused: traffic is already on the secondary",
                        reasons,
                    );
                }
                if self.site_health(Role::Secondary) != SiteHealth::Healthy {
                    let why = format!(
                        "failover refused: {} is not healthy",
                        self.describe_site(Role::Secondary)
                    );
                    return self.refuse(now, &why, reasons);
                }
                let summary = format!(
                    "failover by {actor} ({reason}): answers now point at {}",
                    self.spec.sites[1].name
                );
                self.activate(
                    Role::Secondary,
                    Event::FailedOver { automatic: false },
                    summary,
                    reasons,
                    now,
                )
            }
            Command::Failback => {
                let failed: Vec<String> = self
                    .failback_prechecks()
                    .into_iter()
                    .filter(|p| !p.ok)
                    .map(|p| format!("{} failed: {}", p.name, p.detail))
                    .collect();
                if !failed.is_empty() {
                    let why = format!("fail-back refused: {}", failed.join("; "));
                    return self.refuse(now, &why, reasons);
                }
                let summary = format!(
                    "fail-back by {actor}: answers now point at {}",
                    self.spec.sites[0].name
                );
                self.activate(Role::Primary, Event::FailedBack, summary, reasons, now)
            }
            Command::Pause => {
                let (event, summary) = if self.state.paused {
                    (
                        Event::Steady,
                        format!("already paused; {actor} asked again"),
                    )
                } else {
                    (
                        Event::Paused,
                        format!("paused by {actor}: no automatic failover until resumed"),
                    )
                };
                self.state.paused = true;
                self.decide(now, event, summary, reasons, Vec::new())
            }
            Command::Resume => {
                let (event, summary) = if self.state.paused {
                    (
                        Event::Resumed,
                        format!("resumed by {actor}: automatic failover allowed"),
                    )
                } else {
                    (
                        Event::Steady,
                        format!("not paused; {actor} asked to resume"),
                    )
                };
                self.state.paused = false;
                let decision = self.decide(now, event, summary, reasons, Vec::new());
                // A primary already down is acted on now, not at its next check.
                if self.state.active == Role::Primary
                    && self.site_health(Role::Primary) == SiteHealth::Down
                {
                    let follow = self.evaluate(now, Event::Steady, Vec::new());
                    if !follow.actions.is_empty() {
                        return follow;
                    }
                }
                decision
            }
        }
    }

    fn refuse(&mut self, now: u64, summary: &str, reasons: Vec<String>) -> Decision {
        self.decide(
            now,
            Event::Refused,
            summary.to_string(),
            reasons,
            Vec::new(),
        )
    }

    fn activate(
        &mut self,
        site: Role,
        event: Event,
        summary: String,
        reasons: Vec<String>,
        now: u64,
    ) -> Decision {
        self.state.active = site;
        self.state.epoch += 1;
        self.state.last_change = Some(summary.clone());
        let actions = vec![Action::Activate {
            site,
            epoch: self.state.epoch,
        }];
        self.decide(now, event, summary, reasons, actions)
    }

    fn decide(
        &mut self,
        now: u64,
        event: Event,
        summary: String,
        reasons: Vec<String>,
        actions: Vec<Action>,
    ) -> Decision {
        let notable = event != Event::Steady || self.last_summary.as_ref() != Some(&summary);
        if notable {
            self.last_summary = Some(summary.clone());
            self.state.last_decision = Some(summary.clone());
        }
        Decision {
            at: now,
            epoch: self.state.epoch,
            event,
            summary,
            reasons,
            actions,
            notable,
        }
    }
}

fn state_word(state: CheckState) -> &'static str {
    match state {
        CheckState::Unknown => "unknown",
        CheckState::Up => "up",
        CheckState::Down => "down",
    }
}

fn health_word(health: SiteHealth) -> &'static str {
    match health {
        SiteHealth::Healthy => "healthy",
        SiteHealth::Down => "down",
        SiteHealth::Degraded => "degraded",
    }
}

/// Milliseconds since 1970 as an RFC 3339 UTC time, to the second.
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_795_305_600_123), "2026-11-22T00:00:00Z");
        assert_eq!(utc(1_795_219_199_999), "2026-11-20T23:59:59Z");
    }
}
