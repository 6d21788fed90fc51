//! `mode: promote`, the second stage after read-only mode: when the
//! primary stays down, the secondary is made the primary. The stages:
//! read-only (today's failover) -> promoting -> promoted -> rejoined (the
//! old primary replicates from the new one) or diverged (it holds
//! transactions the new one lacks).
//!
//! What an automatic promotion needs, each checked here:
//! - traffic already on the secondary (read-only mode verified), the
//!   primary down by the quorum's verdict for `promote_after`, the
//!   secondary healthy, not paused, automatic failover on;
//! - RPO 0 established: semi-synchronous replication with the AFTER_SYNC
//!   wait point, active and acknowledged by a replica, as last seen of
//!   the primary (or `allow_data_loss`);
//! - the old primary fenced: the shell verifies its `read_only` before it
//!   changes the secondary (`fence_required`), and stops if it cannot.
//!
//! An operator's `promote` skips the wait and the RPO rule (the journal
//! records what may be lost); `--primary-is-down` also skips the fence for
//! an old primary that cannot be reached.

use serde::{Deserialize, Serialize};

use super::{
    Action, Decision, Engine, Event, READ_ONLY_RETRY_MS, ReplicationView, Role, SiteHealth, utc,
};

/// What `mode: promote` asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromotionRules {
    /// The primary down this long before an automatic promotion.
    pub after_ms: u64,
    /// Promote by itself even when acknowledged writes could be lost.
    pub allow_data_loss: bool,
}

/// The primary's semi-synchronous replication as read there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SemiSync {
    /// `rpl_semi_sync_master_enabled` (MySQL: `_source_`).
    pub enabled: bool,
    /// `rpl_semi_sync_master_wait_point`: AFTER_SYNC or AFTER_COMMIT.
    pub wait_point: String,
    /// `Rpl_semi_sync_master_status`: on, not fallen back to asynchronous.
    pub active: bool,
    /// `Rpl_semi_sync_master_clients`: replicas acknowledging.
    pub clients: u64,
    /// The secondary's own `Rpl_semi_sync_slave_status` (MySQL:
    /// `_replica_`): whether it is one of those clients (another replica
    /// acknowledging proves nothing of the secondary). `None`: not read.
    #[serde(default)]
    pub secondary_acknowledging: Option<bool>,
}

impl SemiSync {
    /// Whether no acknowledged write can be missing at the replica, and
    /// the sentence that says so or why not.
    pub fn verdict(&self) -> (bool, String) {
        const LOSSY: &str = "writes not yet at the secondary would be lost";
        if !self.enabled {
            return (false, format!("asynchronous: {LOSSY}"));
        }
        if !self.wait_point.eq_ignore_ascii_case("AFTER_SYNC") {
            return (
                false,
                format!(
                    "semi-sync with wait point {} (a commit is visible before the replica has it): {LOSSY}",
                    self.wait_point
                ),
            );
        }
        if !self.active {
            return (
                false,
                format!(
                    "semi-sync AFTER_SYNC fell back to asynchronous (no acknowledgement in time): {LOSSY}"
                ),
            );
        }
        if self.clients == 0 {
            return (
                false,
                format!("semi-sync AFTER_SYNC with no replica acknowledging: {LOSSY}"),
            );
        }
        if self.secondary_acknowledging != Some(true) {
            return (
                false,
                format!(
                    "semi-sync AFTER_SYNC, but the secondary is not an acknowledging replica (its semi-sync status {}): {LOSSY}",
                    match self.secondary_acknowledging {
                        Some(_) => "is off",
                        None => "could not be read",
                    }
                ),
            );
        }
        (true, "RPO 0: semi-sync AFTER_SYNC, acknowledged".into())
    }
}

/// How safe a promotion is: whether every acknowledged write was at the
/// secondary, as last seen of the primary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rpo {
    pub zero: bool,
    pub sentence: String,
    /// When the primary was last read (ms).
    pub seen: u64,
    /// Transactions the primary had that the secondary had not applied.
    #[serde(default)]
    pub missing: Option<u64>,
}

impl Rpo {
    /// As the page and the journal say it.
    pub fn describe(&self) -> String {
        let missing = match self.missing {
            Some(n) if !self.zero => {
                format!("; {n} transaction(s) not yet applied at the secondary then")
            }
            _ => String::new(),
        };
        format!("{} (as seen at {}){missing}", self.sentence, utc(self.seen))
    }
}

/// Where the promotion stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Its steps run (or are to be resumed).
    Promoting,
    /// The secondary is the primary; the old primary not yet rejoined.
    Promoted,
    /// The old primary replicates from the new one.
    Rejoined,
    /// The old primary holds transactions the new one lacks.
    Diverged,
    /// Fail-back as a planned switchover: its steps run (or are to be
    /// resumed).
    SwitchingBack,
}

impl Stage {
    pub fn word(self) -> &'static str {
        match self {
            Stage::Promoting => "promoting",
            Stage::Promoted => "promoted",
            Stage::Rejoined => "rejoined",
            Stage::Diverged => "diverged",
            Stage::SwitchingBack => "switching_back",
        }
    }

    /// Whether the secondary's database is the source of replication.
    pub fn secondary_is_source(self) -> bool {
        !matches!(self, Stage::Promoting)
    }
}

/// A promotion, stored from its decision on: a restart or a new leader
/// resumes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promotion {
    pub stage: Stage,
    /// The failover epoch it follows.
    pub epoch: u64,
    pub attempt: u64,
    pub automatic: bool,
    /// The old primary must be verified fenced (false: an operator said
    /// it is down).
    pub fence_required: bool,
    pub started: u64,
    pub summary: String,
    /// What could be lost, as judged when it began.
    pub rpo: String,
    /// The new primary's GTID position when it became writable.
    #[serde(default)]
    pub position: Option<String>,
    /// What the last step verified or why it failed.
    #[serde(default)]
    pub detail: Option<String>,
    /// Diverged: the GTIDs at the old primary the new one lacks.
    #[serde(default)]
    pub errant: Vec<String>,
    /// Why the old primary was taken as fenced without a verified fence:
    /// an operator's word, or its node gone long enough.
    #[serde(default)]
    pub fence_basis: Option<String>,
    /// An operator holds the old primary's rejoin (who, since when): it
    /// is left alone (no fence, no connection killed, not made a
    /// replica) while it is rebuilt.
    #[serde(default)]
    pub rejoin_held: Option<String>,
}

/// Why a promotion stopped; `changed` when the secondary was already
/// changed (its replication stopped), so it can only go forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromotionFailure {
    pub why: String,
    pub changed: bool,
}

/// What rejoining the old primary found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejoinOutcome {
    /// Replicating from the new primary, verified.
    Rejoined(String),
    /// It holds these GTIDs the new primary lacks.
    Diverged(Vec<String>),
    /// It could not be done now (unreachable, an error): tried again.
    Failed(String),
}

/// What the engine keeps of promotion beyond the stored state.
#[derive(Debug, Clone, Default)]
pub(super) struct Memory {
    /// Since when the primary has been down (ms).
    down_since: Option<u64>,
    /// The RPO as last seen of the primary.
    rpo: Option<Rpo>,
    /// The promotion or rejoin attempt whose steps run.
    pub(super) ordered: Option<(u64, Stage)>,
    /// A promotion or rejoin failed then: the next try waits.
    failed_at: Option<u64>,
    /// Why the last promotion attempt stopped.
    last_failure: Option<String>,
    /// Why no promotion starts, while that lasts.
    blocked: Option<String>,
    /// With several nodes: the primary site's node has been gone longer
    /// than its lease plus `fence_after`, so it has fenced its database
    /// (why, as a sentence).
    node_fenced: Option<String>,
}

impl Engine {
    /// The primary's semi-sync state, when the primary could be read.
    pub(super) fn note_rpo(&mut self, view: &ReplicationView, at: u64) {
        if view.primary_error.is_some() || view.swapped {
            return;
        }
        let (zero, sentence) = match &view.semi_sync {
            Some(semi) => semi.verdict(),
            None => (
                false,
                "asynchronous (semi-sync not readable): writes not yet at the secondary would be lost".into(),
            ),
        };
        self.promoting.rpo = Some(Rpo {
            zero,
            sentence,
            seen: at,
            missing: view.missing,
        });
    }

    /// The newest RPO known: this engine's own, or the one stored when
    /// the failover began.
    pub fn rpo(&self) -> Option<&Rpo> {
        match (&self.promoting.rpo, &self.state.rpo) {
            (Some(mine), Some(stored)) if stored.seen > mine.seen => Some(stored),
            (Some(mine), _) => Some(mine),
            (None, stored) => stored.as_ref(),
        }
    }

    /// Kept with a failover's decision, so a new leader knows it.
    pub(super) fn keep_rpo(&mut self) {
        self.state.rpo = self.rpo().cloned();
    }

    /// With several nodes: whether the primary site's node has been gone
    /// longer than its lease plus `fence_after` (the sentence saying so).
    pub fn set_primary_node_fenced(&mut self, fenced: Option<String>) {
        self.promoting.node_fenced = fenced;
    }

    /// Why no promotion starts, while that lasts.
    pub fn promotion_blocked(&self) -> Option<&str> {
        self.promoting.blocked.as_deref()
    }

    /// The promotion that follows the current failover, if any.
    pub fn promotion(&self) -> Option<&Promotion> {
        self.state
            .promotion
            .as_ref()
            .filter(|p| p.epoch == self.state.epoch && self.state.active == Role::Secondary)
    }

    pub(super) fn track_primary_down(&mut self, now: u64) {
        if self.site_health(Role::Primary) == SiteHealth::Down {
            self.promoting.down_since.get_or_insert(now);
        } else {
            self.promoting.down_since = None;
        }
    }

    /// The sentence while nothing is to be done on the secondary.
    pub(super) fn promotion_sentence(&self, primary: SiteHealth) -> String {
        let name = &self.spec.sites[1].name;
        match (self.promotion(), primary) {
            (Some(p), _) => format!(
                "no action: {name} is the primary ({}){}{}",
                p.stage.word(),
                match p.stage {
                    Stage::Diverged => format!(
                        "; the old primary holds transactions the new one lacks: {}",
                        p.errant.join(", ")
                    ),
                    _ => String::new(),
                },
                p.rejoin_held
                    .as_ref()
                    .map(|held| format!("; the old primary's rejoin is held {held}"))
                    .unwrap_or_default()
            ),
            (None, SiteHealth::Healthy) => format!(
                "no action: answers point at {name} (read-only); {}: ready for fail-back",
                self.describe_site(Role::Primary)
            ),
            (None, _) => format!(
                "no action: answers point at {name} (read-only){}",
                self.promoting
                    .blocked
                    .as_ref()
                    .map(|b| format!("; not promoted: {b}"))
                    .unwrap_or_default()
            ),
        }
    }

    /// On the secondary in `mode: promote`: resumes a promotion, rejoins
    /// the old primary, or starts a promotion when its time has come.
    pub(super) fn evaluate_promotion(
        &mut self,
        now: u64,
        event: Event,
        reasons: &mut Vec<String>,
    ) -> Option<Decision> {
        let rules = self.spec.promotion?;
        self.promoting.blocked = None;
        let retry_at = self
            .promoting
            .failed_at
            .map(|at| at + READ_ONLY_RETRY_MS)
            .filter(|at| *at > now);
        if let Some(promotion) = self.promotion().cloned() {
            if self.promoting.ordered.is_some() || retry_at.is_some() {
                return None;
            }
            return match promotion.stage {
                Stage::Promoting => {
                    self.promoting.ordered = Some((promotion.attempt, Stage::Promoting));
                    let summary = format!(
                        "resuming the promotion of {} ({})",
                        self.spec.sites[1].name, promotion.summary
                    );
                    let actions = vec![Action::Promote {
                        epoch: promotion.epoch,
                        attempt: promotion.attempt,
                        fence_required: promotion.fence_required,
                    }];
                    Some(self.decide(now, event, summary, reasons.clone(), actions))
                }
                Stage::Promoted | Stage::Diverged
                    if self.old_primary_answers(now) && promotion.rejoin_held.is_none() =>
                {
                    self.promoting.ordered = Some((promotion.attempt, Stage::Promoted));
                    let summary = format!(
                        "the old primary's database is reachable: fencing it and rejoining it as a replica of {}",
                        self.spec.sites[1].name
                    );
                    let actions = vec![Action::Rejoin {
                        attempt: promotion.attempt,
                    }];
                    Some(self.decide(now, event, summary, reasons.clone(), actions))
                }
                Stage::SwitchingBack => {
                    self.promoting.ordered = Some((promotion.attempt, Stage::SwitchingBack));
                    let summary = format!(
                        "resuming the switchover back to {} ({})",
                        self.spec.sites[0].name, promotion.summary
                    );
                    let actions = vec![Action::SwitchBack {
                        attempt: promotion.attempt,
                    }];
                    Some(self.decide(now, event, summary, reasons.clone(), actions))
                }
                Stage::Promoted | Stage::Diverged | Stage::Rejoined => None,
            };
        }
        let down_for = self
            .promoting
            .down_since
            .map(|since| now.saturating_sub(since));
        let rpo = self.rpo().cloned();
        let blocked = if self.site_health(Role::Primary) != SiteHealth::Down {
            Some(self.describe_site(Role::Primary))
        } else if self.state.paused {
            Some("paused".into())
        } else if !self.spec.auto_failover {
            Some("automatic failover is off".into())
        } else if self.site_health(Role::Secondary) != SiteHealth::Healthy {
            Some(self.describe_site(Role::Secondary))
        } else if !rules.allow_data_loss && !rpo.as_ref().is_some_and(|r| r.zero) {
            Some(format!(
                "automatic promotion needs RPO 0 (or allow_data_loss): {}; `geofailover promote` decides it by hand",
                rpo.map_or(
                    "the primary's replication was never read".to_string(),
                    |r| r.describe()
                )
            ))
        } else if !self.primary_database_reachable(now) && self.promoting.node_fenced.is_none() {
            let why = self
                .replication
                .as_ref()
                .and_then(|(_, v)| v.primary_error.clone())
                .unwrap_or_else(|| "not read lately".into());
            Some(format!(
                "the old primary could not be verified fenced: its database cannot be reached ({why}); promotion waits until it can be fenced, or for `geofailover promote --primary-is-down`"
            ))
        } else if let Some(at) = retry_at {
            Some(format!(
                "the last attempt failed ({}); the next is at {}",
                self.promoting.last_failure.as_deref().unwrap_or("unknown"),
                utc(at)
            ))
        } else if down_for.is_none_or(|d| d < rules.after_ms) {
            let since = self.promoting.down_since.unwrap_or(now);
            Some(format!(
                "waiting: the primary has been down since {}, promotion after {} s",
                utc(since),
                rules.after_ms / 1000
            ))
        } else {
            None
        };
        if let Some(why) = blocked {
            self.promoting.blocked = Some(why);
            return None;
        }
        reasons.push(format!("primary: {}", self.describe_site(Role::Primary)));
        let summary = format!(
            "promotion: the primary has been down for {} s (promote_after {} s)",
            down_for.unwrap_or(0) / 1000,
            rules.after_ms / 1000
        );
        // Fenced by its own node when that node is gone long enough; a
        // fence is still tried (and verified when it can be).
        let basis = self.promoting.node_fenced.clone();
        let fence_required = basis.is_none() || self.primary_database_reachable(now);
        if let Some(basis) = &basis {
            reasons.push(basis.clone());
        }
        let decision = self.begin_promotion(true, fence_required, summary, reasons.clone(), now);
        if let (Some(p), Some(basis)) = (self.state.promotion.as_mut(), basis)
            && !fence_required
        {
            p.fence_basis = Some(basis);
        }
        Some(decision)
    }

    /// The old primary's database answered the replication watcher lately.
    fn primary_database_reachable(&self, now: u64) -> bool {
        let stale = self.spec.replication.map_or(10_000, |r| r.stale_ms);
        self.replication.as_ref().is_some_and(|(at, view)| {
            now.saturating_sub(*at) <= stale && view.primary_error.is_none()
        })
    }

    /// After a promotion: the old primary's database answered the last
    /// round of the watcher, which read it as the new primary's replica.
    fn old_primary_answers(&self, now: u64) -> bool {
        let stale = self.spec.replication.map_or(10_000, |r| r.stale_ms);
        self.replication.as_ref().is_some_and(|(at, view)| {
            view.swapped && view.secondary_error.is_none() && now.saturating_sub(*at) <= stale
        })
    }

    fn begin_promotion(
        &mut self,
        automatic: bool,
        fence_required: bool,
        summary: String,
        mut reasons: Vec<String>,
        now: u64,
    ) -> Decision {
        self.state.attempts += 1;
        let attempt = self.state.attempts;
        let rpo = self.rpo().map_or(
            "unknown: the primary's replication was never read".to_string(),
            Rpo::describe,
        );
        reasons.push(format!("RPO: {rpo}"));
        self.state.promotion = Some(Promotion {
            stage: Stage::Promoting,
            epoch: self.state.epoch,
            attempt,
            automatic,
            fence_required,
            started: now,
            summary: summary.clone(),
            rpo,
            position: None,
            detail: None,
            errant: Vec::new(),
            fence_basis: (!fence_required)
                .then(|| "the operator's word that the old primary is down".to_string()),
            rejoin_held: None,
        });
        self.promoting.ordered = Some((attempt, Stage::Promoting));
        let fence = if fence_required {
            "fencing the old primary, then "
        } else if automatic {
            "the old primary taken as fenced by its own node; "
        } else {
            "the old primary taken as down by the operator's word; "
        };
        let summary = format!(
            "{summary}: {fence}making {} writable",
            self.spec.sites[1].name
        );
        let actions = vec![Action::Promote {
            epoch: self.state.epoch,
            attempt,
            fence_required,
        }];
        self.decide(
            now,
            Event::PromotionStarted { automatic },
            summary,
            reasons,
            actions,
        )
    }

    pub(super) fn promote_command(
        &mut self,
        primary_is_down: bool,
        actor: &str,
        reasons: Vec<String>,
        now: u64,
    ) -> Decision {
        if self.spec.promotion.is_none() {
            return self.refuse(
                now,
                "promotion refused: failover.mode is read_only (set mode: promote to allow it)",
                reasons,
            );
        }
        if self.state.pending.is_some() {
            return self.refuse(
                now,
                "promotion refused: a failover is in progress; promotion follows it",
                reasons,
            );
        }
        if self.state.active != Role::Secondary {
            return self.refuse(
                now,
                "promotion refused: traffic is on the primary; fail over first (read-only mode), then promote",
                reasons,
            );
        }
        if let Some(p) = self.promotion() {
            let why = format!(
                "promotion refused: {} is already {}",
                self.spec.sites[1].name,
                p.stage.word()
            );
            return self.refuse(now, &why, reasons);
        }
        if self.site_health(Role::Secondary) == SiteHealth::Down {
            let why = format!("promotion refused: {}", self.describe_site(Role::Secondary));
            return self.refuse(now, &why, reasons);
        }
        self.promoting.failed_at = None;
        let word = if primary_is_down {
            ", the primary is down by the operator's word"
        } else {
            ""
        };
        let summary = format!("promotion by {actor}{word}");
        self.begin_promotion(false, !primary_is_down, summary, reasons, now)
    }

    /// Holds the old primary's rejoin while an operator rebuilds it, or
    /// releases the hold (the next attempt comes at once).
    pub(super) fn hold_rejoin_command(
        &mut self,
        hold: bool,
        actor: &str,
        reasons: Vec<String>,
        now: u64,
    ) -> Decision {
        let Some(mut promotion) = self.promotion().cloned() else {
            return self.refuse(
                now,
                "refused: no promotion, so no old primary to rejoin",
                reasons,
            );
        };
        let old = self.spec.sites[0].name.clone();
        let (event, summary) = match (hold, &promotion.rejoin_held) {
            (true, Some(held)) => (
                Event::Steady,
                format!("the rejoin of {old} is already held ({held}); {actor} asked again"),
            ),
            (true, None)
                if self
                    .promoting
                    .ordered
                    .is_some_and(|(_, stage)| stage == Stage::Promoted) =>
            {
                let why = format!(
                    "rejoin hold refused: a rejoin of {old} is under way; ask again once it ends"
                );
                return self.refuse(now, &why, reasons);
            }
            (true, None) if !matches!(promotion.stage, Stage::Promoted | Stage::Diverged) => {
                let why = format!(
                    "rejoin hold refused: {old} is not waiting to be rejoined ({})",
                    promotion.stage.word()
                );
                return self.refuse(now, &why, reasons);
            }
            (true, None) => {
                promotion.rejoin_held = Some(format!("by {actor} since {}", utc(now)));
                (
                    Event::RejoinHeld,
                    format!(
                        "the rejoin of {old} held by {actor}: it is not fenced again, its connections are not killed and it is not made a replica until released (reconciliation still keeps it read-only)"
                    ),
                )
            }
            (false, None) => (
                Event::Steady,
                format!("the rejoin of {old} is not held; {actor} asked to release it"),
            ),
            (false, Some(_)) => {
                promotion.rejoin_held = None;
                self.promoting.failed_at = None;
                (
                    Event::RejoinReleased,
                    format!(
                        "the rejoin of {old} released by {actor}: it is fenced and compared again, and rejoined when it holds nothing {} lacks",
                        self.spec.sites[1].name
                    ),
                )
            }
        };
        self.state.promotion = Some(promotion);
        self.decide(now, event, summary, reasons, Vec::new())
    }

    /// Fail-back after a promotion: a planned switchover, once the old
    /// primary is rejoined and caught up (the pre-checks say so).
    pub(super) fn switchback_command(
        &mut self,
        actor: &str,
        reasons: Vec<String>,
        now: u64,
    ) -> Decision {
        let failed: Vec<String> = self
            .failback_prechecks(now)
            .into_iter()
            .filter(|p| !p.ok)
            .map(|p| format!("{} failed: {}", p.name, p.detail))
            .collect();
        let Some(mut promotion) = self.promotion().cloned() else {
            return self.refuse(
                now,
                "fail-back refused: no promotion to switch back from",
                reasons,
            );
        };
        if !failed.is_empty() {
            let why = format!("fail-back refused: {}", failed.join("; "));
            return self.refuse(now, &why, reasons);
        }
        self.state.attempts += 1;
        promotion.attempt = self.state.attempts;
        promotion.stage = Stage::SwitchingBack;
        promotion.summary = format!("switchover back to {} by {actor}", self.spec.sites[0].name);
        let summary = format!(
            "{}: {} set read-only, {} caught up to its exact GTID position and made writable, then answers move",
            promotion.summary, self.spec.sites[1].name, self.spec.sites[0].name
        );
        let attempt = promotion.attempt;
        self.state.promotion = Some(promotion);
        self.state.cooldown_until = None;
        self.promoting.ordered = Some((attempt, Stage::SwitchingBack));
        self.promoting.failed_at = None;
        self.decide(
            now,
            Event::SwitchbackStarted,
            summary,
            reasons,
            vec![Action::SwitchBack { attempt }],
        )
    }

    pub(super) fn switched_back(
        &mut self,
        attempt: u64,
        result: Result<String, PromotionFailure>,
        now: u64,
    ) -> Decision {
        let Some(mut promotion) =
            self.take_result(attempt, Stage::SwitchingBack, &[Stage::SwitchingBack])
        else {
            let summary = format!(
                "a result of switchover attempt {attempt}, which is not under way: ignored"
            );
            return self.decide(now, Event::Steady, summary, Vec::new(), Vec::new());
        };
        let (primary, secondary) = (
            self.spec.sites[0].name.clone(),
            self.spec.sites[1].name.clone(),
        );
        match result {
            Ok(done) => {
                self.state.promotion = None;
                self.read_only_failed_at = None;
                let summary = format!(
                    "{}: {done}; answers now point at {primary}",
                    promotion.summary
                );
                let mut decision = self.activate(
                    Role::Primary,
                    Event::FailedBack,
                    summary,
                    vec![format!("switchover attempt {attempt}")],
                    now,
                );
                decision.actions.push(Action::ClearAppFlag {
                    site: Role::Secondary,
                    epoch: decision.epoch,
                    not_before: now + self.spec.flag_clear_delay_ms,
                });
                decision
            }
            Err(failure) if failure.changed => {
                self.promoting.failed_at = Some(now);
                self.promoting.last_failure = Some(failure.why.clone());
                promotion.detail = Some(failure.why.clone());
                self.state.promotion = Some(promotion);
                let summary = format!(
                    "the switchover back to {primary} stopped half-way ({}); it goes on at {}",
                    failure.why,
                    utc(now + READ_ONLY_RETRY_MS)
                );
                self.decide(now, Event::Steady, summary, Vec::new(), Vec::new())
            }
            Err(failure) => {
                promotion.stage = Stage::Rejoined;
                promotion.detail = Some(failure.why.clone());
                self.state.promotion = Some(promotion);
                let summary = format!(
                    "switchover back stopped: {}; {secondary} stays the primary, writable again",
                    failure.why
                );
                self.decide(
                    now,
                    Event::SwitchbackAborted,
                    summary,
                    Vec::new(),
                    Vec::new(),
                )
            }
        }
    }

    /// A result of attempt `attempt`, ordered at `ordered`: its order is
    /// taken back, and the promotion returned when that attempt is still
    /// at one of `stages` (else the result is ignored).
    fn take_result(&mut self, attempt: u64, ordered: Stage, stages: &[Stage]) -> Option<Promotion> {
        if self
            .promoting
            .ordered
            .is_some_and(|(a, s)| a == attempt && s == ordered)
        {
            self.promoting.ordered = None;
        }
        self.promotion()
            .filter(|p| p.attempt == attempt && stages.contains(&p.stage))
            .cloned()
    }

    pub(super) fn promotion_result(
        &mut self,
        attempt: u64,
        result: Result<String, PromotionFailure>,
        now: u64,
    ) -> Decision {
        let Some(mut promotion) = self.take_result(attempt, Stage::Promoting, &[Stage::Promoting])
        else {
            let summary =
                format!("a result of promotion attempt {attempt}, which is not under way: ignored");
            return self.decide(now, Event::Steady, summary, Vec::new(), Vec::new());
        };
        let name = self.spec.sites[1].name.clone();
        match result {
            Ok(verified) => {
                promotion.stage = Stage::Promoted;
                promotion.position = verified
                    .split("GTID position ")
                    .nth(1)
                    .map(|rest| rest.split([' ', ';', ')']).next().unwrap_or("").to_string());
                promotion.detail = Some(verified.clone());
                let summary = format!(
                    "{} is the primary now: writable, verified ({verified}); RPO: {}",
                    name, promotion.rpo
                );
                self.state.promotion = Some(promotion);
                self.decide(now, Event::Promoted, summary, Vec::new(), Vec::new())
            }
            Err(failure) if failure.changed => {
                self.promoting.failed_at = Some(now);
                self.promoting.last_failure = Some(failure.why.clone());
                promotion.detail = Some(failure.why.clone());
                self.state.promotion = Some(promotion);
                let summary = format!(
                    "the promotion of {name} stopped half-way ({}); it goes on at {}",
                    failure.why,
                    utc(now + READ_ONLY_RETRY_MS)
                );
                self.decide(now, Event::Steady, summary, Vec::new(), Vec::new())
            }
            Err(failure) => {
                self.promoting.failed_at = Some(now);
                self.promoting.last_failure = Some(failure.why.clone());
                self.state.promotion = None;
                let summary = format!("promotion stopped: {}; {name} stays read-only", failure.why);
                self.decide(
                    now,
                    Event::PromotionAborted,
                    summary,
                    vec![promotion.summary],
                    Vec::new(),
                )
            }
        }
    }

    pub(super) fn rejoin_result(
        &mut self,
        attempt: u64,
        outcome: RejoinOutcome,
        now: u64,
    ) -> Decision {
        let Some(mut promotion) = self.take_result(
            attempt,
            Stage::Promoted,
            &[Stage::Promoted, Stage::Diverged],
        ) else {
            let summary = format!(
                "a rejoin result of promotion attempt {attempt}, which is not awaited: ignored"
            );
            return self.decide(now, Event::Steady, summary, Vec::new(), Vec::new());
        };
        let old = self.spec.sites[0].name.clone();
        let (event, summary) = match outcome {
            RejoinOutcome::Rejoined(detail) => {
                promotion.stage = Stage::Rejoined;
                promotion.errant.clear();
                promotion.detail = Some(detail.clone());
                (
                    Event::Rejoined,
                    format!(
                        "{old} rejoined as a replica of {} ({detail})",
                        self.spec.sites[1].name
                    ),
                )
            }
            RejoinOutcome::Diverged(errant) => {
                self.promoting.failed_at = Some(now);
                let event = if promotion.stage == Stage::Diverged && promotion.errant == errant {
                    Event::Steady
                } else {
                    Event::Diverged
                };
                promotion.stage = Stage::Diverged;
                promotion.errant = errant.clone();
                (
                    event,
                    format!(
                        "{old} diverged: it holds transactions {} lacks ({}); it is not rejoined and fail-back is blocked until it is rebuilt from {}",
                        self.spec.sites[1].name,
                        errant.join(", "),
                        self.spec.sites[1].name
                    ),
                )
            }
            RejoinOutcome::Failed(why) => {
                self.promoting.failed_at = Some(now);
                promotion.detail = Some(why.clone());
                (
                    Event::Steady,
                    format!(
                        "{old} not rejoined yet ({why}); tried again at {}",
                        utc(now + READ_ONLY_RETRY_MS)
                    ),
                )
            }
        };
        self.state.promotion = Some(promotion);
        self.decide(now, event, summary, Vec::new(), Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::SemiSync;

    fn semi(enabled: bool, wait_point: &str, active: bool, clients: u64) -> SemiSync {
        SemiSync {
            enabled,
            wait_point: wait_point.into(),
            active,
            clients,
            secondary_acknowledging: Some(true),
        }
    }

    #[test]
    fn only_an_acknowledged_after_sync_is_rpo_zero() {
        assert!(semi(true, "AFTER_SYNC", true, 1).verdict().0);
        for (case, why) in [
            (semi(false, "AFTER_SYNC", false, 0), "asynchronous"),
            (semi(true, "AFTER_COMMIT", true, 1), "AFTER_COMMIT"),
            (semi(true, "AFTER_SYNC", false, 1), "fell back"),
            (semi(true, "AFTER_SYNC", true, 0), "no replica"),
            (
                SemiSync {
                    secondary_acknowledging: Some(false),
                    ..semi(true, "AFTER_SYNC", true, 1)
                },
                "the secondary is not an acknowledging replica",
            ),
        ] {
            let (zero, sentence) = case.verdict();
            assert!(!zero, "{case:?}");
            assert!(sentence.contains(why), "{sentence}");
            assert!(sentence.contains("would be lost"), "{sentence}");
        }
    }
}
