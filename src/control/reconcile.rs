//! Reconciliation: the world made to match the agreed state, level by
//! level rather than remembered command by command. At every readiness
//! interval (and once a new leader's quiet time is over) the leader reads
//! every read-only step of each site (database `read_only`, flag file,
//! flag SQL, flag HTTP), compares it with what the agreed state requires,
//! and repairs what differs: journalled (`flag_drift`), told to the
//! webhooks, counted in `/metrics` and shown on the page. A late action
//! of a deposed leader (its flag request landing after the next leader's
//! undo) is then wrong for one interval at most.
//!
//! What the agreed state requires:
//! - secondary active: every step of the secondary set;
//! - primary active: the secondary's database read-only (a replica, once
//!   a failover has made it so: from epoch 1 on), its application flags
//!   clear once no flag clear is scheduled (after a fail-back they stay set
//!   for the TTL wait), and the primary's application flags clear.
//!
//! Nothing is compared while a failover, an undo, a flag clear or a drill
//! is under way (they own the flags then), nor before the quiet time after
//! a start or a change of leader has passed (a step of the previous
//! leader may still land until then).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::{
    ControlEvent, Controller, Notification, now_ms,
    steps::{self, Seen},
};
use crate::{
    config::{ReadOnlyStep, Site},
    engine::{Role, utc},
    store::{NewEntry, shared::Leadership},
};

/// What the page and the JSON show of the last pass.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileStatus {
    /// RFC 3339: when the last pass ended (none yet: `None`).
    pub checked: Option<String>,
    /// "in agreement with the agreed state", or what was repaired.
    pub sentence: String,
    /// Flags found apart from the agreed state since the start.
    pub drift_total: u64,
    /// Whether every flag read matched (or was repaired) at the last pass.
    pub in_agreement: bool,
}

/// One step compared at one site.
#[derive(Debug, Clone)]
pub struct Compared {
    pub site: Role,
    pub step: ReadOnlyStep,
    /// Set (true) or clear (false), as the agreed state requires.
    pub wanted: bool,
    /// What was found: the read, or why it could not be read.
    pub found: Result<(Seen, String), String>,
    /// The repair, when the step differed: read back after it.
    pub repair: Option<Result<String, String>>,
}

impl Compared {
    fn drifted(&self) -> bool {
        matches!(&self.found, Ok((seen, _)) if *seen != Seen::of(self.wanted))
    }
}

/// What the agreed state requires of `step` at the site of `role`:
/// `Some(true)` set, `Some(false)` clear, `None` not compared.
/// `promoted`: the secondary was made the primary (`mode: promote`).
pub fn wanted(
    role: Role,
    step: ReadOnlyStep,
    active: Role,
    epoch: u64,
    clears_scheduled: bool,
    promoted: bool,
) -> Option<bool> {
    if promoted {
        return match (role, step) {
            // The new primary: writable, its flags clear. One found
            // read-only (restarted with read_only in its my.cnf, or set
            // by hand) is made writable again: the old primary was fenced
            // before the promotion and is fenced again whenever it
            // answers, so this is as safe as the promotion was. Passes do
            // not run while a promotion or a switchover is under way.
            (Role::Secondary, _) => Some(false),
            // The old primary stays fenced: read-only, its flags set.
            (Role::Primary, _) => Some(true),
        };
    }
    match (role, step, active) {
        (Role::Secondary, _, Role::Secondary) => Some(true),
        // A replica again after fail-back; before any failover the
        // operator's setting stands.
        (Role::Secondary, ReadOnlyStep::Database, Role::Primary) => (epoch > 0).then_some(true),
        // Set until the fail-back's TTL wait ends, then cleared.
        (Role::Secondary, _, Role::Primary) => (!clears_scheduled).then_some(false),
        // The primary is written to while active: its application flags
        // clear. Its database is left as the operator set it.
        (Role::Primary, ReadOnlyStep::Database, _) => None,
        (Role::Primary, _, Role::Primary) => Some(false),
        (Role::Primary, _, Role::Secondary) => None,
    }
}

/// Makes `site`'s database writable and reads it back; with
/// `not_a_replica`, only if it has no replication configured. A fence
/// heartbeat there gets a fresh beat first, so its event does not fence
/// the database again at once.
async fn writable(site: &Site, timeout: Duration, not_a_replica: bool) -> Result<String, String> {
    let Some(database) = &site.database else {
        return Err(format!("site {} has no database", site.name));
    };
    let mut db = crate::db::Db::connect(&database.target, timeout).await?;
    let done = async {
        if not_a_replica && db.replica_status().await?.is_some() {
            return Err(format!(
                "{} is a replica: it is not made writable",
                site.name
            ));
        }
        db.refresh_beat().await?;
        db.set_writable().await
    }
    .await;
    db.close().await;
    done
}

/// Whether this pass found the old primary's database read-only (or set
/// it so), or could not reach it (as when it was promoted away from): a
/// promoted secondary is made writable again only then.
fn old_primary_fenced(compared: &[Compared]) -> Result<(), String> {
    let Some(old) = compared
        .iter()
        .find(|c| c.site == Role::Primary && c.step == ReadOnlyStep::Database)
    else {
        return Ok(());
    };
    match (&old.found, &old.repair) {
        (Err(_), _) | (Ok(_), Some(Ok(_))) => Ok(()),
        (Ok((Seen::Set, _)), None) => Ok(()),
        (Ok(_), Some(Err(e))) => Err(format!(
            "the old primary could not be set read-only ({e}), so the new one is not made writable"
        )),
        (Ok((_, read)), None) => Err(format!(
            "the old primary is not read-only ({read}), so the new one is not made writable"
        )),
    }
}

/// Reads each step of `plan` and repairs those that differ from what is
/// wanted, each bounded by `timeout`.
async fn pass(
    sites: [Site; 2],
    plan: Vec<(Role, ReadOnlyStep, bool)>,
    timeout: Duration,
    leadership: Leadership,
) -> Vec<Compared> {
    let mut compared = Vec::new();
    for (role, step, wanted) in plan {
        let site = &sites[role.index()];
        let found = steps::observe(step, site, timeout).await;
        let mut entry = Compared {
            site: role,
            step,
            wanted,
            found,
            repair: None,
        };
        if entry.drifted() {
            let done = match (wanted, role, step) {
                (true, _, _) => steps::set(step, site, timeout).await.result,
                // Planned to lift a primary node's self-fence.
                (false, Role::Primary, ReadOnlyStep::Database) => {
                    writable(site, timeout, false).await
                }
                // A promoted secondary: the old primary read-only first
                // (it comes first in the plan), this one no replica, and
                // the leadership held right before.
                (false, Role::Secondary, ReadOnlyStep::Database) => {
                    match old_primary_fenced(&compared).and_then(|()| leadership.hold().map(drop)) {
                        Ok(()) => writable(site, timeout, true).await,
                        Err(why) => Err(why),
                    }
                }
                (false, _, _) => steps::undo(step, site, timeout).await,
            };
            entry.repair = Some(match done {
                Err(e) => Err(e),
                Ok(detail) => match steps::observe(step, site, timeout).await {
                    Ok((seen, _)) if seen == Seen::of(wanted) => Ok(detail),
                    Ok((_, read)) => Err(format!("{detail}, but it reads back: {read}")),
                    Err(e) => Err(format!("{detail}, but it cannot be read back: {e}")),
                },
            });
        }
        compared.push(entry);
    }
    compared
}

impl Controller {
    /// Starts a pass when one is due: this node leads, nothing else owns
    /// the flags now, and the quiet time is over.
    pub(super) fn reconcile(&mut self, now: u64) {
        if self.follows() {
            return;
        }
        let self_fenced = self.primary_self_fenced();
        let Some(failing) = &mut self.failing else {
            return;
        };
        let busy = failing.engine.pending().is_some()
            || failing.preparing.is_some()
            || failing.undoing.is_some()
            || failing.undo_waiting.is_some()
            || failing.clearing
            || failing.waiting.is_some()
            || failing.reconciling.is_some()
            || failing.read_only.is_some()
            || failing.drill.is_some()
            || failing.engine.promotion().is_some_and(|p| {
                matches!(
                    p.stage,
                    crate::engine::Stage::Promoting | crate::engine::Stage::SwitchingBack
                )
            });
        if busy || now < failing.quiet_until {
            return;
        }
        let persisted = failing.engine.persisted();
        let (active, epoch) = (persisted.active, persisted.epoch);
        let clears = !failing.scheduled_clears.is_empty();
        let promoted = failing.engine.promotion().is_some();
        let lift = !promoted && self_fenced;
        let mut plan: Vec<(Role, ReadOnlyStep, bool)> = Role::BOTH
            .iter()
            .flat_map(|&role| {
                failing
                    .config
                    .site(role)
                    .read_only_steps()
                    .into_iter()
                    .filter_map(move |step| {
                        wanted(role, step, active, epoch, clears, promoted).map(|w| (role, step, w))
                    })
            })
            .collect();
        if lift {
            // The primary site's node fenced its database while cut off,
            // and no promotion followed: the leader gives it its writes
            // back (the database first, then its flags).
            plan.retain(|(role, _, _)| *role != Role::Primary);
            for step in failing.config.site(Role::Primary).read_only_steps() {
                plan.push((Role::Primary, step, false));
            }
        }
        if persisted.paused {
            // Paused: an operator may hold the new primary read-only.
            plan.retain(|p| *p != (Role::Secondary, ReadOnlyStep::Database, false));
        }
        if plan.is_empty() {
            return;
        }
        failing.reconciling = Some(epoch);
        let sites = [
            failing.config.site(Role::Primary).clone(),
            failing.config.site(Role::Secondary).clone(),
        ];
        let timeout = failing.config.step_timeout;
        let leadership = self.leadership.clone();
        let outbox = self.outbox.clone();
        tokio::spawn(async move {
            let compared = leadership
                .run(pass(sites, plan, timeout, leadership.clone()))
                .await
                .unwrap_or_default();
            let _ = outbox
                .send(ControlEvent::Reconciled { epoch, compared })
                .await;
        });
    }

    /// Asks for a pass after `wait`, while this node leads.
    pub(super) fn reconcile_after(&self, wait: Duration) {
        self.leader_timer(wait, ControlEvent::Reconcile);
    }

    /// A pass ended: each drift found is journalled, told and counted.
    /// A pass ended: what it found is taken, then the promotion work
    /// held back while it ran goes ahead (it never runs beside a pass,
    /// whose repairs could undo its steps).
    pub(super) async fn reconciled(&mut self, epoch: u64, compared: Vec<Compared>) {
        let deferred = self
            .failing
            .as_mut()
            .map(|f| std::mem::take(&mut f.deferred))
            .unwrap_or_default();
        self.reconciled_pass(epoch, compared).await;
        for action in deferred {
            match action {
                crate::engine::Action::Promote {
                    epoch,
                    attempt,
                    fence_required,
                } => self.promote(epoch, attempt, fence_required),
                crate::engine::Action::Rejoin { attempt } => self.rejoin(attempt),
                crate::engine::Action::SwitchBack { attempt } => self.switch_back(attempt),
                _ => {}
            }
        }
    }

    async fn reconciled_pass(&mut self, epoch: u64, compared: Vec<Compared>) {
        let now = now_ms();
        let Some(failing) = &mut self.failing else {
            return;
        };
        failing.reconciling = None;
        let persisted = failing.engine.persisted();
        // A pass cut short by the end of the leadership, or overtaken by
        // a change of active site, says nothing about the state now.
        if compared.is_empty() || persisted.epoch != epoch {
            self.start_waiting();
            return;
        }
        let active_name = failing.config.site(persisted.active).name.clone();
        let names = [
            failing.config.site(Role::Primary).name.clone(),
            failing.config.site(Role::Secondary).name.clone(),
        ];
        let mut lines = Vec::new();
        let mut unread = Vec::new();
        let mut agreement = true;
        let mut drifts = Vec::new();
        for c in &compared {
            let site = &names[c.site.index()];
            match (&c.found, &c.repair) {
                (Err(e), _) => unread.push(format!("{site} {}: {e}", c.step.name())),
                (Ok(_), None) => {}
                (Ok((seen, read)), Some(repair)) => {
                    let (ok, how) = match repair {
                        Ok(d) => (true, format!("repaired: {d}")),
                        Err(e) => (false, format!("NOT repaired: {e}")),
                    };
                    agreement &= ok;
                    drifts.push((
                        ok,
                        format!(
                            "{site} {} was {} ({read}); the agreed state ({active_name} active, epoch {epoch}) needs it {}: {how}",
                            c.step.name(),
                            seen.word(),
                            Seen::of(c.wanted).word()
                        ),
                    ));
                    lines.push(format!(
                        "{site} {} {}",
                        c.step.name(),
                        if ok { "repaired" } else { "not repaired" }
                    ));
                }
            }
        }
        failing.reconcile_status.drift_total += drifts.len() as u64;
        failing.reconcile_status.checked = Some(utc(now));
        failing.reconcile_status.in_agreement = agreement;
        failing.reconcile_status.sentence = match (lines.is_empty(), unread.is_empty()) {
            (true, true) => "every flag matches the agreed state".into(),
            (true, false) => format!(
                "every flag read matches the agreed state; not read: {}",
                unread.join("; ")
            ),
            (false, _) => format!("drift found: {}", lines.join(", ")),
        };
        for (ok, summary) in drifts {
            if ok {
                warn!(epoch, "flag drift: {summary}");
            } else {
                tracing::error!(epoch, "flag drift: {summary}");
            }
            self.journal(NewEntry {
                at: now,
                epoch,
                actor: "engine".into(),
                kind: "action",
                event: "flag_drift".into(),
                summary: summary.clone(),
                reasons: Vec::new(),
                outcome: if ok {
                    "ok".into()
                } else {
                    format!("failed: {summary}")
                },
            });
            self.notifier
                .send(Notification::new("flag_drift", epoch, None, summary, now));
        }
        if agreement && lines.is_empty() {
            tracing::debug!("reconciled: every flag matches the agreed state");
        } else if agreement {
            info!("reconciled: every flag matches the agreed state again");
        }
        self.start_waiting();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agreed_state_requires_the_secondary_set_while_it_is_active() {
        for step in [
            ReadOnlyStep::Database,
            ReadOnlyStep::FlagFile,
            ReadOnlyStep::FlagSql,
            ReadOnlyStep::FlagHttp,
        ] {
            assert_eq!(
                wanted(Role::Secondary, step, Role::Secondary, 3, false, false),
                Some(true)
            );
        }
        // The primary is not compared while the secondary serves.
        assert_eq!(
            wanted(
                Role::Primary,
                ReadOnlyStep::FlagHttp,
                Role::Secondary,
                3,
                false,
                false
            ),
            None
        );
    }

    #[test]
    fn after_fail_back_the_flags_clear_once_the_ttl_wait_ends_and_the_replica_stays_read_only() {
        let flag = ReadOnlyStep::FlagHttp;
        assert_eq!(
            wanted(Role::Secondary, flag, Role::Primary, 2, true, false),
            None
        );
        assert_eq!(
            wanted(Role::Secondary, flag, Role::Primary, 2, false, false),
            Some(false)
        );
        assert_eq!(
            wanted(
                Role::Secondary,
                ReadOnlyStep::Database,
                Role::Primary,
                2,
                false,
                false
            ),
            Some(true)
        );
        // Before any failover, the replica's setting is the operator's.
        assert_eq!(
            wanted(
                Role::Secondary,
                ReadOnlyStep::Database,
                Role::Primary,
                0,
                false,
                false
            ),
            None
        );
        assert_eq!(
            wanted(Role::Primary, flag, Role::Primary, 0, false, false),
            Some(false)
        );
        assert_eq!(
            wanted(
                Role::Primary,
                ReadOnlyStep::Database,
                Role::Primary,
                0,
                false,
                false
            ),
            None
        );
    }

    #[test]
    fn after_a_promotion_the_old_primary_stays_fenced_and_the_new_one_unflagged() {
        for active_epoch in [(Role::Secondary, 1)] {
            let (active, epoch) = active_epoch;
            for step in [ReadOnlyStep::Database, ReadOnlyStep::FlagFile] {
                assert_eq!(
                    wanted(Role::Primary, step, active, epoch, false, true),
                    Some(true)
                );
            }
            assert_eq!(
                wanted(
                    Role::Secondary,
                    ReadOnlyStep::FlagFile,
                    active,
                    epoch,
                    false,
                    true
                ),
                Some(false)
            );
            // Writable: one found read-only is made writable again.
            assert_eq!(
                wanted(
                    Role::Secondary,
                    ReadOnlyStep::Database,
                    active,
                    epoch,
                    false,
                    true
                ),
                Some(false)
            );
        }
    }
}
