//! `mode: promote` in the shell: the promotion's steps and the old
//! primary's rejoin, each run in the background under the leadership that
//! ordered it, journalled step by step, the outcome fed back to the
//! engine. Every step is idempotent and checks before it changes: a
//! promotion resumed after a restart or by a new leader reads what is
//! already done (a secondary no longer a replica is not reset again) and
//! finishes the rest.

use std::time::Duration;

use tracing::{info, warn};

use super::{ControlEvent, Controller, StepOutcome, now_ms, preparation::undo_steps, steps};
use crate::{
    config::{Failover, ReadOnlyStep, Site},
    db::{Db, promote},
    engine::{Input, PromotionFailure, RejoinOutcome, Role},
    store::{NewEntry, shared::Leadership},
};

/// The background work of a promotion stage.
#[derive(Debug, Clone, Copy)]
enum Work {
    Promote { fence_required: bool },
    SwitchBack,
}

impl Work {
    fn name(self) -> &'static str {
        match self {
            Work::Promote { .. } => "promotion",
            Work::SwitchBack => "switchover",
        }
    }
}

fn outcome(step: &str, result: &Result<String, String>) -> StepOutcome {
    StepOutcome {
        at: now_ms(),
        step: step.to_string(),
        ok: result.is_ok(),
        detail: match result {
            Ok(d) | Err(d) => d.clone(),
        },
    }
}

/// The application flags of `site` (its read-only steps but the
/// database's).
fn flags(site: &Site) -> Vec<ReadOnlyStep> {
    site.read_only_steps()
        .into_iter()
        .filter(|s| *s != ReadOnlyStep::Database)
        .collect()
}

/// Fences the old primary: its database read-only (read back) with the
/// application's connections killed, then its site's application flags
/// set and verified.
pub(super) async fn fence(
    site: &Site,
    timeout: Duration,
    journal: &mut Vec<StepOutcome>,
) -> Result<String, String> {
    let Some(database) = &site.database else {
        return Err(format!("site {} has no database", site.name));
    };
    let fenced = async {
        let mut db = Db::connect(&database.target, timeout).await?;
        let fenced = db.fence().await;
        // MariaDB has no super_read_only: an application account that
        // may bypass read_only still writes, so the fence is not one.
        let bypass = match fenced {
            Ok(_)
                if !database.app_accounts.is_empty()
                    && matches!(db.flavor, crate::db::Flavor::MariaDb { .. }) =>
            {
                db.bypassing_accounts(&database.app_accounts).await
            }
            _ => Ok(Vec::new()),
        };
        db.close().await;
        match bypass {
            Ok(found) if !found.is_empty() => Err(format!(
                "read_only set, but these application accounts can still write: {}",
                found.join(", ")
            )),
            Ok(_) => fenced,
            Err(e) => Err(format!(
                "read_only set, but the application accounts' grants cannot be read: {e}"
            )),
        }
    }
    .await;
    journal.push(outcome("fence old primary database", &fenced));
    let mut verified = vec![fenced?];
    for step in flags(site) {
        let report = steps::set(step, site, timeout).await;
        journal.extend(report.journal.iter().map(|o| StepOutcome {
            step: format!("fence old primary {}", o.step),
            ..o.clone()
        }));
        verified.push(report.result?);
    }
    Ok(verified.join("; "))
}

/// The promotion's steps, in order: the old primary fenced (required or
/// tried), the secondary promoted, its application flags cleared.
async fn run_promotion(
    config: Failover,
    fence_required: bool,
    leadership: Leadership,
    journal: &mut Vec<StepOutcome>,
) -> Result<String, PromotionFailure> {
    let timeout = config.step_timeout;
    let unchanged = |why: String| PromotionFailure {
        why,
        changed: false,
    };
    let old = config.site(Role::Primary);
    let secondary = config.site(Role::Secondary);
    // A promotion resumed after its first change (by a restart or a new
    // leader) goes on: its fence was verified, or not required, before
    // that change, and the old primary may be gone by now.
    let already = match &secondary.database {
        Some(database) => {
            let read = async {
                let mut db = Db::connect(&database.target, timeout).await?;
                let replica = db.replica_status().await;
                let read_only = db.read_only_state().await;
                db.close().await;
                Ok::<_, String>(replica?.is_none() || !read_only?.0)
            }
            .await;
            read.map_err(|why| PromotionFailure {
                why: format!("the secondary cannot be read: {why}"),
                changed: false,
            })?
        }
        None => false,
    };
    let fenced = tokio::time::timeout(timeout * 2, fence(old, timeout, journal))
        .await
        .unwrap_or_else(|_| Err("fencing timed out".into()));
    let final_position = match &fenced {
        Ok(_) => match &old.database {
            Some(database) => async {
                let mut db = Db::connect(&database.target, timeout).await?;
                let position = db.written_position().await;
                db.close().await;
                position
            }
            .await
            .ok(),
            None => None,
        },
        Err(_) => None,
    };
    let fence_note = match (fenced, fence_required) {
        (Ok(done), _) => format!("old primary fenced ({done})"),
        (Err(why), _) if already => {
            format!("old primary not reached now ({why}); the promotion was under way already")
        }
        (Err(why), true) => {
            return Err(unchanged(format!(
                "the old primary could not be verified fenced ({why}); promotion waits for it, for its node to be gone long enough, or for `geofailover promote --primary-is-down`"
            )));
        }
        (Err(why), false) => {
            format!("old primary not reached ({why}): promoted without a verified fence")
        }
    };
    let Some(database) = &secondary.database else {
        return Err(unchanged(format!(
            "site {} has no database",
            secondary.name
        )));
    };
    let promoted = async {
        let mut db = Db::connect(&database.target, timeout)
            .await
            .map_err(unchanged)?;
        let promoted = db.promote(timeout, final_position.as_deref()).await;
        db.close().await;
        promoted
    }
    .await
    .map_err(|failure| PromotionFailure {
        changed: failure.changed || already,
        ..failure
    });
    journal.push(outcome(
        "promote secondary database",
        &promoted.clone().map_err(|f| f.why),
    ));
    let promoted = promoted?;
    let clear = flags(secondary);
    let cleared = undo_steps(secondary, &clear, &clear, "clear", timeout, &leadership).await;
    let mut failed = Vec::new();
    for (_, step) in cleared {
        if !step.ok {
            failed.push(step.detail.clone());
        }
        journal.push(step);
    }
    if !failed.is_empty() {
        return Err(PromotionFailure {
            why: format!(
                "the application flag could not be cleared: {}",
                failed.join("; ")
            ),
            changed: true,
        });
    }
    Ok(format!("{fence_note}; {promoted}"))
}

/// Makes `site`'s database writable again and clears its flags: a
/// switchover that stopped before the primary took writes gives them
/// back to the secondary.
pub(super) async fn restore_writable(
    site: &Site,
    timeout: Duration,
    leadership: &Leadership,
    journal: &mut Vec<StepOutcome>,
) -> Result<(), String> {
    let Some(database) = &site.database else {
        return Ok(());
    };
    let restored = async {
        let mut db = Db::connect(&database.target, timeout).await?;
        let done = db.set_writable().await;
        db.close().await;
        done
    }
    .await;
    journal.push(outcome("give writes back to the secondary", &restored));
    restored?;
    let clear = flags(site);
    for (_, step) in undo_steps(site, &clear, &clear, "clear", timeout, leadership).await {
        journal.push(step);
    }
    Ok(())
}

/// Fail-back after a promotion, a planned switchover: the secondary
/// fenced (writes stop), the primary caught up to the secondary's exact
/// GTID position and made writable (writes resume), its flags cleared,
/// the secondary made its replica. Before the primary is changed, a
/// failure gives writes back to the secondary.
async fn run_switchback(
    config: Failover,
    leadership: Leadership,
    journal: &mut Vec<StepOutcome>,
) -> Result<String, PromotionFailure> {
    let timeout = config.step_timeout;
    let (primary, secondary) = (config.site(Role::Primary), config.site(Role::Secondary));
    let (Some(primary_db), Some(secondary_db), Some(promotion)) =
        (&primary.database, &secondary.database, &config.promotion)
    else {
        return Err(PromotionFailure {
            why: "both sites need databases".into(),
            changed: false,
        });
    };
    let started = std::time::Instant::now();
    // Writes stop here.
    let fenced = fence(secondary, timeout, journal).await;
    let position = match fenced {
        Ok(_) => {
            let read = async {
                let mut db = Db::connect(&secondary_db.target, timeout).await?;
                let position = db.written_position().await;
                db.close().await;
                position
            }
            .await;
            journal.push(outcome("exact GTID position at the secondary", &read));
            read
        }
        Err(e) => Err(e),
    };
    let caught_up = match position {
        Ok(position) => {
            let waited = async {
                let mut db = Db::connect(&primary_db.target, timeout).await?;
                let reached = db.wait_position(&position, timeout).await;
                db.close().await;
                match reached? {
                    true => Ok(format!("{} applied {position}", primary.name)),
                    false => Err(format!(
                        "{} did not reach {position} within {}",
                        primary.name,
                        crate::config::duration::show(timeout)
                    )),
                }
            }
            .await;
            journal.push(outcome("primary caught up", &waited));
            waited
        }
        Err(e) => Err(e),
    };
    let promoted = match caught_up {
        Ok(_) => {
            let promoted = async {
                let mut db = Db::connect(&primary_db.target, timeout)
                    .await
                    .map_err(|why| PromotionFailure {
                        why,
                        changed: false,
                    })?;
                let promoted = db.promote(timeout, None).await;
                db.close().await;
                promoted
            }
            .await;
            journal.push(outcome(
                "promote primary database",
                &promoted.clone().map_err(|f| f.why),
            ));
            promoted
        }
        Err(why) => Err(PromotionFailure {
            why,
            changed: false,
        }),
    };
    let promoted = match promoted {
        Ok(promoted) => promoted,
        Err(failure) if !failure.changed => {
            let why = failure.why;
            // Writes go back to the secondary only while the primary is
            // still a read-only replica: a switchover resumed after the
            // primary was made writable goes forward instead.
            let untouched = async {
                let mut db = Db::connect(&primary_db.target, timeout).await?;
                let replica = db.replica_status().await;
                let read_only = db.read_only_state().await;
                db.close().await;
                Ok::<_, String>(replica?.is_some() && read_only?.0)
            }
            .await;
            if !matches!(untouched, Ok(true)) {
                return Err(PromotionFailure {
                    why: format!(
                        "{why}; {} may already take writes ({}), so writes are not given back to {}",
                        primary.name,
                        match untouched {
                            Ok(_) => "it is writable or no replica".to_string(),
                            Err(e) => format!("it cannot be read: {e}"),
                        },
                        secondary.name
                    ),
                    changed: true,
                });
            }
            let restored = restore_writable(secondary, timeout, &leadership, journal).await;
            let changed = restored.is_err();
            return Err(PromotionFailure {
                why: match restored {
                    Ok(()) => format!("{why}; writes given back to {}", secondary.name),
                    Err(e) => format!("{why}; writes NOT given back to {}: {e}", secondary.name),
                },
                changed,
            });
        }
        Err(failure) => return Err(failure),
    };
    let window = started.elapsed();
    let clear = flags(primary);
    let mut failed = Vec::new();
    for (_, step) in undo_steps(primary, &clear, &clear, "clear", timeout, &leadership).await {
        if !step.ok {
            failed.push(step.detail.clone());
        }
        journal.push(step);
    }
    if !failed.is_empty() {
        return Err(PromotionFailure {
            why: format!(
                "{}'s application flag could not be cleared: {}",
                primary.name,
                failed.join("; ")
            ),
            changed: true,
        });
    }
    let window = window.max(started.elapsed());
    let replica = async {
        let mut db = Db::connect(&secondary_db.target, timeout).await?;
        let done = db
            .replicate_from(
                primary_db.replication_address,
                &promotion.replication_user,
                &promotion.replication_password,
                primary_db.target.tls.is_some(),
                timeout,
            )
            .await;
        db.close().await;
        done
    }
    .await;
    journal.push(outcome("secondary replicates from the primary", &replica));
    let replica = replica.map_err(|why| PromotionFailure { why, changed: true })?;
    Ok(format!(
        "writes stopped for {} ms; {promoted}; {}: {replica}",
        window.as_millis(),
        secondary.name
    ))
}

impl Controller {
    /// Runs switchover `attempt` back to the primary in the background.
    pub(super) fn switch_back(&mut self, attempt: u64) {
        let epoch = self.failing.as_ref().map(|f| f.engine.persisted().epoch);
        if let Some(epoch) = epoch {
            info!(epoch, attempt, "switchover back starts");
            self.spawn_work(epoch, attempt, Work::SwitchBack);
        }
    }

    pub(super) async fn switch_back_done(
        &mut self,
        epoch: u64,
        attempt: u64,
        result: Result<String, PromotionFailure>,
        journal: Vec<StepOutcome>,
    ) {
        self.journal_steps(epoch, &journal);
        if let Err(failure) = &result {
            warn!(attempt, "switchover back: {}", failure.why);
        }
        self.step(Input::SwitchedBack { attempt, result }, now_ms())
            .await;
    }

    /// Runs promotion `attempt`'s steps in the background.
    pub(super) fn promote(&mut self, epoch: u64, attempt: u64, fence_required: bool) {
        info!(epoch, attempt, "promotion steps start");
        self.spawn_work(epoch, attempt, Work::Promote { fence_required });
    }

    /// Runs a promotion's or a switchover's steps in the background under
    /// the leadership; the result and the steps journalled so far go back
    /// to the controller (a lost leadership stops them as "changed", so
    /// the next leader reads what is done and goes on).
    fn spawn_work(&mut self, epoch: u64, attempt: u64, work: Work) {
        let Some(failing) = &mut self.failing else {
            return;
        };
        let config = failing.config.clone();
        let leadership = self.leadership.clone();
        let outbox = self.outbox.clone();
        tokio::spawn(async move {
            let mut journal = Vec::new();
            let steps = async {
                match work {
                    Work::Promote { fence_required } => {
                        run_promotion(config, fence_required, leadership.clone(), &mut journal)
                            .await
                    }
                    Work::SwitchBack => {
                        run_switchback(config, leadership.clone(), &mut journal).await
                    }
                }
            };
            let result = leadership.run(steps).await.unwrap_or_else(|lost| {
                Err(PromotionFailure {
                    why: format!("the {} was stopped: {lost}", work.name()),
                    changed: true,
                })
            });
            let event = match work {
                Work::Promote { .. } => ControlEvent::PromotionDone {
                    epoch,
                    attempt,
                    result,
                    journal,
                },
                Work::SwitchBack => ControlEvent::SwitchBackDone {
                    epoch,
                    attempt,
                    result,
                    journal,
                },
            };
            let _ = outbox.send(event).await;
        });
    }

    /// Rejoins the old primary in the background.
    pub(super) fn rejoin(&mut self, attempt: u64) {
        let Some(failing) = &mut self.failing else {
            return;
        };
        let config = failing.config.clone();
        let epoch = failing.engine.persisted().epoch;
        let leadership = self.leadership.clone();
        let outbox = self.outbox.clone();
        tokio::spawn(async move {
            let work = async {
                let (old, new) = (config.site(Role::Primary), config.site(Role::Secondary));
                let (Some(old_db), Some(new_db), Some(promotion)) =
                    (&old.database, &new.database, &config.promotion)
                else {
                    return RejoinOutcome::Failed("both sites need databases".into());
                };
                let timeout = config.step_timeout;
                let mut old_conn = match Db::connect(&old_db.target, timeout).await {
                    Ok(db) => db,
                    Err(e) => return RejoinOutcome::Failed(e),
                };
                let mut new_conn = match Db::connect(&new_db.target, timeout).await {
                    Ok(db) => db,
                    Err(e) => {
                        old_conn.close().await;
                        return RejoinOutcome::Failed(e);
                    }
                };
                let outcome = promote::rejoin(
                    &mut old_conn,
                    &mut new_conn,
                    new_db.replication_address,
                    &promotion.replication_user,
                    &promotion.replication_password,
                    new_db.target.tls.is_some(),
                    timeout,
                )
                .await;
                old_conn.close().await;
                new_conn.close().await;
                outcome
            };
            let outcome = leadership
                .run(work)
                .await
                .unwrap_or_else(|lost| RejoinOutcome::Failed(format!("stopped: {lost}")));
            let _ = outbox
                .send(ControlEvent::RejoinDone {
                    epoch,
                    attempt,
                    outcome,
                })
                .await;
        });
    }

    pub(super) async fn promotion_done(
        &mut self,
        epoch: u64,
        attempt: u64,
        result: Result<String, PromotionFailure>,
        journal: Vec<StepOutcome>,
    ) {
        self.journal_steps(epoch, &journal);
        if let Err(failure) = &result {
            warn!(attempt, "promotion: {}", failure.why);
        }
        self.step(Input::Promoted { attempt, result }, now_ms())
            .await;
    }

    pub(super) async fn rejoin_done(&mut self, epoch: u64, attempt: u64, outcome: RejoinOutcome) {
        let (ok, detail) = match &outcome {
            RejoinOutcome::Rejoined(d) => (true, d.clone()),
            RejoinOutcome::Diverged(errant) => (
                false,
                format!("diverged: errant GTIDs {}", errant.join(", ")),
            ),
            RejoinOutcome::Failed(why) => (false, why.clone()),
        };
        self.journal(NewEntry {
            at: now_ms(),
            epoch,
            actor: "engine".into(),
            kind: "action",
            event: "rejoin_old_primary".into(),
            summary: detail.clone(),
            reasons: Vec::new(),
            outcome: if ok {
                "ok".into()
            } else {
                format!("failed: {detail}")
            },
        });
        self.step(Input::Rejoined { attempt, outcome }, now_ms())
            .await;
    }
}
