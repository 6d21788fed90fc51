//! The decision core, pure: no I/O, no clock, no async. The shell feeds it
//! check results, operator commands and the time; it answers each with a
//! `Decision` saying what it concluded, why, and which actions to run in
//! order. Everything that decides when traffic moves lives here, so it can
//! be simulated step by step (see tests/engine_sim.rs).

mod failover;
pub mod health;
mod prechecks;
mod promotion;
pub mod quorum;
mod rules;

use serde::{Deserialize, Serialize};

pub use health::{CheckHealth, CheckState, DownRule, SiteHealth};
pub use promotion::{
    Promotion, PromotionFailure, PromotionRules, RejoinOutcome, Rpo, SemiSync, Stage,
};

/// The two sites' configured roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Primary,
    Secondary,
}

impl Role {
    pub const BOTH: [Role; 2] = [Role::Primary, Role::Secondary];

    pub fn index(self) -> usize {
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
    /// The secondary has read-only steps (database, application flag) that
    /// must be verified before DNS moves to it.
    pub read_only: bool,
    /// Both sites have databases: fail-back needs replication caught up.
    pub replication: Option<ReplicationRules>,
    /// After a fail-back, how long to wait (the records' TTL plus a
    /// margin) before the application flag is cleared.
    pub flag_clear_delay_ms: u64,
    /// How long preparing read-only mode may take before the failover is
    /// given up and what it set undone.
    pub prepare_timeout_ms: u64,
    /// How long after a start the checks need to count up or down: a
    /// failover under way at a restart waits this long for them.
    pub settle_ms: u64,
    /// `mode: promote`: when the secondary is made the primary.
    pub promotion: Option<PromotionRules>,
}

/// What fail-back asks of replication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicationRules {
    /// Most seconds the secondary may lag.
    pub max_lag_s: u64,
    /// An observation older than this does not count.
    pub stale_ms: u64,
}

/// One look at both databases and the replication between them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationView {
    pub primary_error: Option<String>,
    pub secondary_error: Option<String>,
    pub io_running: Option<bool>,
    pub sql_running: Option<bool>,
    pub lag_s: Option<u64>,
    pub last_io_error: String,
    pub last_sql_error: String,
    /// Transactions the primary has that the secondary has not applied.
    #[serde(rename = "missing_transactions")]
    pub missing: Option<u64>,
    /// GTIDs at the secondary that did not come from the primary.
    pub errant: Vec<String>,
    /// The primary's semi-synchronous replication, when it was read.
    #[serde(default)]
    pub semi_sync: Option<SemiSync>,
    /// After a promotion the secondary is the source: `primary_*` then
    /// describe the secondary's database (the new primary) and
    /// `secondary_*`, the replica threads, `missing` and `errant` the old
    /// primary's.
    #[serde(default)]
    pub swapped: bool,
}

/// A failover between its decision and DNS moving. It is part of the
/// stored state from before its first step, so a restart resumes it (the
/// conditions still hold) or rolls it back (they do not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The epoch the failover leads to.
    pub epoch: u64,
    /// Which failover attempt this is: every attempt has its own, so the
    /// steps of one are never taken for another's.
    pub attempt: u64,
    pub automatic: bool,
    pub force: bool,
    /// Why it started.
    pub summary: String,
    pub started: u64,
    /// Given up, and what its preparation set undone, when read-only mode
    /// is not verified by then.
    pub deadline: u64,
}

/// After read-only could not be verified, automatic failover waits this
/// long before trying again.
pub const READ_ONLY_RETRY_MS: u64 = 30_000;

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
    /// A failover decided but not finished.
    #[serde(default)]
    pub pending: Option<Pending>,
    /// How many failover attempts were ever started: the last one's id.
    #[serde(default)]
    pub attempts: u64,
    /// `mode: promote`: the promotion that followed the last failover.
    #[serde(default)]
    pub promotion: Option<Promotion>,
    /// How safe a promotion was as last seen before the last failover
    /// began: whether acknowledged writes were all at the secondary.
    #[serde(default)]
    pub rpo: Option<Rpo>,
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
            pending: None,
            attempts: 0,
            promotion: None,
            rpo: None,
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
    /// What the replication watcher saw.
    /// What the replication watcher saw, in a round that began at `at`
    /// (freshness counts from when it looked, not when it reported).
    Replication { view: ReplicationView, at: u64 },
    /// The outcome of preparing read-only mode for failover `attempt`:
    /// what was verified, or why it could not be.
    ReadOnly {
        attempt: u64,
        result: Result<String, String>,
    },
    /// The outcome of promotion `attempt`: the GTID position the new
    /// primary started from and what was verified, or why it stopped.
    Promoted {
        attempt: u64,
        result: Result<String, promotion::PromotionFailure>,
    },
    /// The outcome of rejoining the old primary after promotion `attempt`.
    Rejoined {
        attempt: u64,
        outcome: RejoinOutcome,
    },
    /// The outcome of switchover `attempt` back to the primary.
    SwitchedBack {
        attempt: u64,
        result: Result<String, promotion::PromotionFailure>,
    },
    /// Time passed.
    Tick,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Move traffic to the secondary while the primary may be healthy;
    /// `force` moves it even when read-only mode cannot be verified.
    Failover { reason: String, force: bool },
    /// Move traffic back to the primary.
    Failback,
    /// Stop automatic actions.
    Pause,
    /// Allow automatic actions again.
    Resume,
    /// `mode: promote`: make the secondary the primary now;
    /// `primary_is_down` is the operator's word that the old primary
    /// takes no writes, for when it cannot be fenced.
    Promote { primary_is_down: bool },
    /// `mode: promote`: leave the old primary to the operator (`hold`,
    /// while it is rebuilt) or rejoin it again (release).
    HoldRejoin { hold: bool },
}

/// What the engine orders, in the order it is to be done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Put `site` into read-only mode (database, then application flag),
    /// verify each, and report with `Input::ReadOnly`. Steps a stopped
    /// controller finished for this epoch are verified, not run again.
    PrepareReadOnly {
        site: Role,
        epoch: u64,
        attempt: u64,
    },
    /// Failover `attempt` stopped: undo the application flags its
    /// preparation set at `site` (the database stays read-only: it is a
    /// replica).
    UndoReadOnly { site: Role, attempt: u64 },
    /// Point the failover records at `site`; `epoch` is the new epoch.
    Activate { site: Role, epoch: u64 },
    /// Clear `site`'s application flag, not before `not_before` (ms): the
    /// database stays read-only, it is a replica again.
    ClearAppFlag {
        site: Role,
        epoch: u64,
        not_before: u64,
    },
    /// Promote the secondary (`mode: promote`): the old primary fenced
    /// first (verified, unless `fence_required` is false: the operator's
    /// word that it is down), the secondary's relay log applied, its
    /// replication stopped and reset, `read_only` off, its application
    /// flag cleared. Report with `Input::Promoted`.
    Promote {
        epoch: u64,
        attempt: u64,
        fence_required: bool,
    },
    /// Make the old primary a replica of the promoted secondary, unless it
    /// holds transactions the new primary lacks. Report with
    /// `Input::Rejoined`.
    Rejoin { attempt: u64 },
    /// Fail-back after a promotion, a planned switchover: the secondary
    /// (the primary now) fenced with its application flag set, the old
    /// primary caught up to its exact GTID position and made writable,
    /// the secondary made its replica, the primary's flags cleared.
    /// Report with `Input::SwitchedBack`.
    SwitchBack { attempt: u64 },
}

/// The kind of conclusion a step reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// Nothing to do.
    Steady,
    /// A check or site changed state; nothing moves.
    HealthChanged,
    /// A failover began: read-only mode is being prepared.
    FailoverStarted {
        automatic: bool,
    },
    /// A failover stopped: read-only mode could not be verified.
    FailoverAborted,
    /// A failover under way at a restart goes on: its conditions still hold.
    FailoverResumed,
    /// A failover under way at a restart is undone: its conditions no
    /// longer hold.
    FailoverRolledBack,
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
    /// A promotion began (`mode: promote`).
    PromotionStarted {
        automatic: bool,
    },
    /// The secondary is the primary now.
    Promoted,
    /// A promotion stopped before it changed the secondary.
    PromotionAborted,
    /// The old primary replicates from the new one.
    Rejoined,
    /// The old primary holds transactions the new one lacks.
    Diverged,
    /// Fail-back after a promotion began: a planned switchover.
    SwitchbackStarted,
    /// It stopped before the primary was made writable: the secondary
    /// stays the primary.
    SwitchbackAborted,
    /// An operator holds the old primary's rejoin (it is rebuilt).
    RejoinHeld,
    /// The hold ended: the old primary is rejoined when it can be.
    RejoinReleased,
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
    /// The stored state held a pending failover: it waits for the checks
    /// before it is resumed or rolled back.
    resuming: bool,
    /// Until when a resumed failover waits for the checks.
    resume_deadline: Option<u64>,
    /// Why the primary is down and no failover starts, while that lasts.
    blocked: Option<String>,
    /// With several controllers: the sites' health as the quorum of
    /// vantage points sees it, which decisions use instead of this
    /// controller's own checks.
    agreed: Option<[quorum::Agreed; 2]>,
    /// Whether this engine decides (one controller, or the leader); a
    /// follower keeps its checks and the agreed state but decides nothing.
    deciding: bool,
    /// The last replication observation and when it came.
    replication: Option<(u64, ReplicationView)>,
    read_only_failed_at: Option<u64>,
    /// Per site: how many checks are unknown, up and down, kept as they
    /// change so a step costs the same with 2 checks or 2,000.
    counts: [[u32; 3]; 2],
    /// Per site: `describe_site`'s sentence, until a check of the site
    /// changes state or a down check reports something new.
    described: std::cell::RefCell<[Option<String>; 2]>,
    /// `mode: promote`: what this engine knows beyond the stored state.
    promoting: promotion::Memory,
}

fn slot(state: CheckState) -> usize {
    match state {
        CheckState::Unknown => 0,
        CheckState::Up => 1,
        CheckState::Down => 2,
    }
}

impl Engine {
    /// An engine resuming from `state`: every check starts unknown, the
    /// active site is the one stored.
    pub fn new(spec: EngineSpec, state: Persisted) -> Self {
        let spec_counts = [
            spec.sites[0].checks.len() as u32,
            spec.sites[1].checks.len() as u32,
        ];
        let checks = [
            vec![CheckHealth::new(); spec.sites[0].checks.len()],
            vec![CheckHealth::new(); spec.sites[1].checks.len()],
        ];
        Self {
            spec,
            last_summary: state.last_decision.clone(),
            resuming: state.pending.is_some(),
            resume_deadline: None,
            blocked: None,
            agreed: None,
            deciding: true,
            state,
            checks,
            replication: None,
            read_only_failed_at: None,
            counts: [[spec_counts[0], 0, 0], [spec_counts[1], 0, 0]],
            described: std::cell::RefCell::new([None, None]),
            promoting: promotion::Memory::default(),
        }
    }

    /// The failover being prepared, if any.
    pub fn pending(&self) -> Option<&Pending> {
        self.state.pending.as_ref()
    }

    /// Why no failover starts although the primary is down, while that
    /// lasts (paused, automatic failover off, cooldown, the secondary not
    /// healthy, waiting to retry read-only mode).
    pub fn failover_blocked(&self) -> Option<&str> {
        self.blocked.as_deref()
    }

    /// Takes over from `old` (the same state under an earlier
    /// configuration): the health of each check `same` maps to one of
    /// `old`'s, the last replication observation and the wait after a
    /// failed read-only attempt.
    pub fn carry_over(&mut self, old: &Engine, same: impl Fn(Role, usize) -> Option<usize>) {
        for role in Role::BOTH {
            let i = role.index();
            for (index, check) in self.checks[i].iter_mut().enumerate() {
                if let Some(before) = same(role, index).and_then(|j| old.checks[i].get(j)) {
                    *check = before.clone();
                }
            }
            let mut counts = [0u32; 3];
            for check in &self.checks[i] {
                counts[slot(check.state)] += 1;
            }
            self.counts[i] = counts;
        }
        self.described = std::cell::RefCell::new([None, None]);
        self.replication = old.replication.clone();
        self.read_only_failed_at = old.read_only_failed_at;
        self.promoting = old.promoting.clone();
    }

    /// The last replication observation, with its time.
    pub fn replication(&self) -> Option<&(u64, ReplicationView)> {
        self.replication.as_ref()
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

    /// A site's health as decisions see it: the quorum's verdict with
    /// several controllers, else this controller's checks.
    pub fn site_health(&self, site: Role) -> SiteHealth {
        match &self.agreed {
            Some(agreed) => agreed[site.index()].health,
            None => self.local_health(site),
        }
    }

    /// A site's health by this controller's own checks: its vantage point.
    pub fn local_health(&self, site: Role) -> SiteHealth {
        let [unknown, up, down] = self.counts[site.index()];
        health::site_health_counts(
            self.spec.sites[site.index()].down_rule,
            unknown + up + down,
            up,
            down,
        )
    }

    /// The primary is healthy while traffic is on the secondary.
    pub fn ready_for_failback(&self) -> bool {
        self.state.active == Role::Secondary
            && self.site_health(Role::Primary) == SiteHealth::Healthy
            && self.promotion().is_none()
    }

    /// When the cooldown after the last automatic failover ends, if it has
    /// not yet.
    pub fn in_cooldown(&self, now: u64) -> Option<u64> {
        self.state.cooldown_until.filter(|until| *until > now)
    }

    /// Feeds one input at time `now` (milliseconds).
    pub fn step(&mut self, input: Input, now: u64) -> Decision {
        match input {
            // A controller that does not decide acts on nothing: neither
            // a late read-only result of the failover it prepared while it
            // led, nor a command.
            Input::ReadOnly { attempt, .. } if !self.deciding => {
                let summary = format!(
                    "a read-only result for failover attempt {attempt} ignored: this controller follows the leader and decides nothing"
                );
                self.decide(now, Event::Steady, summary, Vec::new(), Vec::new())
            }
            Input::Command { .. } if !self.deciding => self.refuse(
                now,
                "refused: this controller follows the leader and decides nothing",
                Vec::new(),
            ),
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
                let old = check.state;
                let old_detail = check.last_detail.clone();
                let changed = check.record(ok, detail.clone(), fall, rise, now);
                if changed.is_some()
                    || (check.state == CheckState::Down && check.last_detail != old_detail)
                {
                    self.described.borrow_mut()[i] = None;
                }
                let check = &self.checks[i][id.index];
                if let Some(state) = changed {
                    self.counts[i][slot(old)] -= 1;
                    self.counts[i][slot(state)] += 1;
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
            Input::Promoted { .. } | Input::Rejoined { .. } | Input::SwitchedBack { .. }
                if !self.deciding =>
            {
                let summary = "a promotion result ignored: this controller follows the leader and decides nothing".to_string();
                self.decide(now, Event::Steady, summary, Vec::new(), Vec::new())
            }
            Input::Promoted { attempt, result } => self.promotion_result(attempt, result, now),
            Input::Rejoined { attempt, outcome } => self.rejoin_result(attempt, outcome, now),
            Input::SwitchedBack { attempt, result } => self.switched_back(attempt, result, now),
            Input::Replication { view, at } => {
                self.note_rpo(&view, at.min(now));
                self.replication = Some((at.min(now), view));
                self.evaluate(now, Event::Steady, Vec::new())
            }
            Input::ReadOnly { attempt, result } => self.read_only_result(attempt, result, now),
            Input::Tick => self.evaluate(now, Event::Steady, Vec::new()),
        }
    }

    /// This controller's own sentence for a site: what its checks see.
    pub fn local_description(&self, site: Role) -> String {
        if let Some(text) = &self.described.borrow()[site.index()] {
            return text.clone();
        }
        let text = self.describe_site_afresh(site);
        self.described.borrow_mut()[site.index()] = Some(text.clone());
        text
    }

    /// Takes the quorum's verdict on both sites (`None`: this controller's
    /// own checks decide again).
    pub fn set_agreed(&mut self, agreed: Option<[quorum::Agreed; 2]>) {
        self.agreed = agreed;
    }

    /// Whether this engine decides; a follower's does not.
    pub fn set_deciding(&mut self, deciding: bool) {
        self.deciding = deciding;
    }

    pub fn deciding(&self) -> bool {
        self.deciding
    }

    /// Takes the state agreed elsewhere (a follower hears the leader's
    /// decisions); a failover under way in it is resumed or rolled back
    /// if this engine comes to decide.
    pub fn adopt(&mut self, state: Persisted) {
        self.promoting.ordered = None;
        self.resuming = state.pending.is_some();
        self.resume_deadline = None;
        self.last_summary = state.last_decision.clone();
        self.state = state;
    }

    fn describe_site(&self, site: Role) -> String {
        if let Some(agreed) = &self.agreed {
            return agreed[site.index()].text.clone();
        }
        if let Some(text) = &self.described.borrow()[site.index()] {
            return text.clone();
        }
        let text = self.describe_site_afresh(site);
        self.described.borrow_mut()[site.index()] = Some(text.clone());
        text
    }

    fn describe_site_afresh(&self, site: Role) -> String {
        let checks = &self.checks[site.index()];
        let up = checks.iter().filter(|c| c.state == CheckState::Up).count();
        let word = match self.local_health(site) {
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

    fn refuse(&mut self, now: u64, summary: &str, reasons: Vec<String>) -> Decision {
        self.decide(
            now,
            Event::Refused,
            summary.to_string(),
            reasons,
            Vec::new(),
        )
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

/// The milliseconds since 1970 of a time `utc` wrote
/// (`YYYY-MM-DDTHH:MM:SSZ`); `None` for anything else.
pub fn parse_utc(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    let n = |from: usize, to: usize| -> Option<i64> { text.get(from..to)?.parse().ok() };
    let (year, month, day) = (n(0, 4)?, n(5, 7)?, n(8, 10)?);
    let (h, m, sec) = (n(11, 13)?, n(14, 16)?, n(17, 19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 59 {
        return None;
    }
    // Howard Hinnant's days-from-civil algorithm.
    let y = year - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from((days * 86_400 + h * 3600 + m * 60 + sec) * 1000).ok()
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn parse_utc_reads_what_utc_writes() {
        for ms in [0, 1_796_083_200_000, 1_796_169_599_000, 951_782_400_000] {
            assert_eq!(super::parse_utc(&utc(ms)), Some(ms), "{}", utc(ms));
        }
        assert_eq!(super::parse_utc("2026-13-01T00:00:00Z"), None);
        assert_eq!(super::parse_utc("yesterday"), None);
    }

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_795_305_600_123), "2026-11-22T00:00:00Z");
        assert_eq!(utc(1_795_219_199_999), "2026-11-20T23:59:59Z");
    }
}
