//! Carrying out the engine's actions, each journalled with its epoch:
//! preparing read-only mode step by step (each step stored as started,
//! then as done, before the next), undoing what a stopped failover set,
//! pointing the answers at a site, and clearing the application flag a
//! TTL after fail-back.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use super::{
    ControlEvent, Controller, Notification, PlanEvent, StepOutcome, answers, decide::event_word,
    now_ms, steps,
};
use crate::{
    config::{ReadOnlyStep, Site},
    engine::{Action, Decision, Input, Role},
    store::{NewEntry, ReadOnlyProgress, ScheduledClear},
};

/// Tells the controller where a step is and waits until it has stored
/// it; `Err` when the preparation is to stop (the failover was given up,
/// or the controller stopped).
async fn ask(outbox: &mpsc::Sender<ControlEvent>, epoch: u64, event: PlanEvent) -> Result<(), ()> {
    let (reply, stored) = oneshot::channel();
    outbox
        .send(ControlEvent::Plan {
            epoch,
            event,
            reply,
        })
        .await
        .map_err(|_| ())?;
    match stored.await {
        Ok(true) => Ok(()),
        Ok(false) | Err(_) => Err(()),
    }
}

/// The preparation's last word to the controller.
async fn finish(outbox: &mpsc::Sender<ControlEvent>, epoch: u64, result: Result<String, String>) {
    let _ = outbox
        .send(ControlEvent::ReadOnlyDone { epoch, result })
        .await;
}

const STOPPED: &str = "the preparation was stopped: the failover was given up meanwhile";

/// Runs the read-only steps of `site` for the failover of `epoch`: those
/// `progress` has as done are read back (and run again only if they no
/// longer hold), the others run in order. The first that fails stops the
/// rest. The result goes back as `ReadOnlyDone`.
async fn prepare_steps(
    site: Site,
    epoch: u64,
    progress: ReadOnlyProgress,
    timeout: Duration,
    outbox: mpsc::Sender<ControlEvent>,
) {
    let mut verified = Vec::new();
    for step in site.read_only_steps() {
        if progress.done.contains(&step) {
            let result = steps::verify(step, &site, timeout).await;
            if ask(&outbox, epoch, PlanEvent::Verified(step, result.clone()))
                .await
                .is_err()
            {
                return finish(&outbox, epoch, Err(STOPPED.into())).await;
            }
            if let Ok(detail) = result {
                verified.push(detail);
                continue;
            }
        }
        if ask(&outbox, epoch, PlanEvent::Starting(step))
            .await
            .is_err()
        {
            return finish(&outbox, epoch, Err(STOPPED.into())).await;
        }
        let report = steps::set(step, &site, timeout).await;
        let result = report.result.clone();
        let go_on = ask(&outbox, epoch, PlanEvent::Done(step, report)).await;
        match (result, go_on) {
            (Err(why), _) => return finish(&outbox, epoch, Err(why)).await,
            (Ok(_), Err(())) => return finish(&outbox, epoch, Err(STOPPED.into())).await,
            (Ok(detail), Ok(())) => verified.push(detail),
        }
    }
    if verified.is_empty() {
        verified.push("nothing to set".into());
    }
    finish(&outbox, epoch, Ok(verified.join("; "))).await;
}

/// Undoes `started` (newest first); `label` names the undo in the journal.
/// A step that started but never finished may not have taken effect: an
/// undo of it that fails is told, not counted as a failure.
async fn undo_steps(
    site: &Site,
    started: &[ReadOnlyStep],
    finished: &[ReadOnlyStep],
    label: &str,
    timeout: Duration,
) -> Vec<StepOutcome> {
    let mut outcomes = Vec::new();
    for step in started.iter().rev() {
        let result = steps::undo(*step, site, timeout).await;
        let (ok, detail) = match result {
            Ok(d) => (true, d),
            Err(e) if !finished.contains(step) => (
                true,
                format!("not undone ({e}); it had not finished, so it may never have taken effect"),
            ),
            Err(e) => (false, e),
        };
        outcomes.push(StepOutcome {
            at: now_ms(),
            step: format!("{label} {}", step.name()),
            ok,
            detail,
        });
    }
    outcomes
}

impl Controller {
    /// What a decision changes in the stored state beside the engine's:
    /// a change of answers bumps the serials, a finished failover drops
    /// its read-only progress. Done before the state is stored.
    pub(super) fn prepare_state(&mut self, decision: &Decision) {
        let Some(failing) = &mut self.failing else {
            return;
        };
        for action in &decision.actions {
            if let Action::Activate { site, .. } = action {
                self.serials = answers::bump(&self.serials, &self.zones, &failing.config);
                if *site == Role::Secondary {
                    failing.read_only = None;
                }
            }
        }
    }

    pub(super) fn run_actions(&mut self, decision: &Decision, actor: &str, now: u64) {
        for action in &decision.actions {
            match action {
                Action::PrepareReadOnly { site, epoch } => self.prepare(*site, *epoch, actor, now),
                Action::UndoReadOnly { site, epoch } => self.undo(*site, *epoch),
                Action::Activate { site, epoch } => {
                    self.activate(*site, *epoch, decision, actor, now)
                }
                Action::ClearAppFlag {
                    site: _,
                    epoch,
                    not_before,
                } => self.schedule_clear(*epoch, *not_before),
            }
        }
    }

    /// Points the failover records at `site`: the new state (serials
    /// included) was stored with the decision, so the new table goes in.
    fn activate(&mut self, site: Role, epoch: u64, decision: &Decision, actor: &str, now: u64) {
        let Some(failing) = &mut self.failing else {
            return;
        };
        if site == Role::Secondary {
            failing.failovers_total += 1;
        }
        let name = failing.config.site(site).name.clone();
        self.publish();
        let summary = format!("answers switched to {name} (serials {:?})", self.serials);
        info!(%site, epoch, "{summary}");
        self.journal(NewEntry {
            at: now,
            epoch,
            actor: actor.to_string(),
            kind: "action",
            event: "answers_switched".into(),
            summary,
            reasons: vec![decision.summary.clone()],
            outcome: "ok".into(),
        });
        self.notifier.send(Notification::new(
            event_word(decision.event),
            epoch,
            Some(name),
            decision.summary.clone(),
            now,
        ));
    }

    /// Starts the read-only steps of `site` for the failover of `epoch` in
    /// the background, from where a stopped controller left them.
    fn prepare(&mut self, site: Role, epoch: u64, actor: &str, now: u64) {
        let Some(failing) = &mut self.failing else {
            return;
        };
        let target = failing.config.site(site).clone();
        let progress = match failing.read_only.take() {
            Some(progress) if progress.epoch == epoch => progress,
            _ => ReadOnlyProgress::new(epoch),
        };
        let resumed = !progress.started.is_empty();
        failing.read_only = Some(progress.clone());
        failing.preparing = Some(epoch);
        failing.warnings.clear();
        let timeout = failing.config.step_timeout;
        self.save(now);
        self.journal(NewEntry {
            at: now,
            epoch,
            actor: actor.to_string(),
            kind: "action",
            event: "read_only_started".into(),
            summary: if resumed {
                let done: Vec<&str> = progress.done.iter().map(|s| s.name()).collect();
                format!(
                    "finishing read-only mode at {}: done before the restart: {}",
                    target.name,
                    if done.is_empty() {
                        "nothing".into()
                    } else {
                        done.join(", ")
                    }
                )
            } else {
                format!("putting {} into read-only mode", target.name)
            },
            reasons: Vec::new(),
            outcome: "ok".into(),
        });
        tokio::spawn(prepare_steps(
            target,
            epoch,
            progress,
            timeout,
            self.outbox.clone(),
        ));
    }

    /// A read-only step started, ran or was read back: journalled, and
    /// stored before the step goes on. Whether to go on: not once the
    /// failover of `epoch` was given up.
    pub(super) fn plan_event(&mut self, epoch: u64, event: super::PlanEvent) -> bool {
        let now = now_ms();
        let Some(failing) = &mut self.failing else {
            return false;
        };
        let pending = failing.engine.pending().is_some_and(|p| p.epoch == epoch);
        if !pending && matches!(event, PlanEvent::Starting(_)) {
            return false;
        }
        let Some(progress) = failing.read_only.as_mut().filter(|p| p.epoch == epoch) else {
            return false;
        };
        let mut new_warnings = Vec::new();
        let mut lines = Vec::new();
        match event {
            PlanEvent::Starting(step) => {
                if !progress.started.contains(&step) {
                    progress.started.push(step);
                }
            }
            PlanEvent::Done(step, report) => {
                if report.result.is_ok() && !progress.done.contains(&step) {
                    progress.done.push(step);
                }
                for warning in report.warnings {
                    if !failing.warnings.contains(&warning) {
                        failing.warnings.push(warning.clone());
                        new_warnings.push(warning);
                    }
                }
                lines = report.journal;
            }
            PlanEvent::Verified(step, result) => {
                let detail = match &result {
                    Ok(d) => format!("verified, set before the restart: {d}"),
                    Err(e) => format!("no longer in place ({e}): set again"),
                };
                lines.push(StepOutcome {
                    at: now,
                    step: step.name().to_string(),
                    ok: true,
                    detail,
                });
            }
        }
        self.save(now);
        self.journal_steps(epoch, &lines);
        for warning in new_warnings {
            warn!(epoch, "{warning}");
            self.notifier.send(Notification::new(
                "read_only_warning",
                epoch,
                None,
                format!("read-only mode is set, with a warning: {warning}"),
                now,
            ));
        }
        pending
    }

    /// The preparation of `epoch` ended: an undo ordered meanwhile runs
    /// now, then the engine hears the result.
    pub(super) fn read_only_done(&mut self, epoch: u64, result: Result<String, String>) {
        if let Some(failing) = &mut self.failing {
            if failing.preparing == Some(epoch) {
                failing.preparing = None;
            }
            if failing.undo_waiting == Some(epoch) {
                failing.undo_waiting = None;
                self.undo(Role::Secondary, epoch);
            }
        }
        self.step(Input::ReadOnly { epoch, result }, now_ms());
    }

    /// Undoes, in the background, the read-only steps the failover of
    /// `epoch` started: the application flags; the database stays
    /// read-only.
    pub(super) fn undo(&mut self, site: Role, epoch: u64) {
        let Some(failing) = &mut self.failing else {
            return;
        };
        if failing.preparing == Some(epoch) {
            // A step may be in flight: undone once the preparation stops.
            failing.undo_waiting = Some(epoch);
            return;
        }
        let (started, finished) = match &failing.read_only {
            Some(progress) if progress.epoch == epoch => {
                (progress.started.clone(), progress.done.clone())
            }
            _ => (Vec::new(), Vec::new()),
        };
        if started.is_empty() {
            failing.read_only = None;
            self.save(now_ms());
            return;
        }
        let target = failing.config.site(site).clone();
        let timeout = failing.config.step_timeout;
        let outbox = self.outbox.clone();
        tokio::spawn(async move {
            let outcomes = undo_steps(&target, &started, &finished, "undo", timeout).await;
            let _ = outbox.send(ControlEvent::Undone { epoch, outcomes }).await;
        });
    }

    /// The undo of a stopped failover's steps finished.
    pub(super) fn undone(&mut self, epoch: u64, outcomes: Vec<StepOutcome>) {
        let now = now_ms();
        self.journal_steps(epoch, &outcomes);
        let failed: Vec<String> = outcomes
            .iter()
            .filter(|o| !o.ok)
            .map(|o| format!("{}: {}", o.step, o.detail))
            .collect();
        let done: Vec<String> = outcomes.iter().map(|o| o.detail.clone()).collect();
        let summary = if failed.is_empty() {
            format!(
                "what the stopped failover of epoch {epoch} had set is undone: {}",
                done.join("; ")
            )
        } else {
            format!(
                "the stopped failover of epoch {epoch} could not be fully undone: {}",
                failed.join("; ")
            )
        };
        if failed.is_empty() {
            info!(epoch, "{summary}");
        } else {
            error!(epoch, "{summary}");
            self.notifier.send(Notification::new(
                "action_failed",
                epoch,
                None,
                summary.clone(),
                now,
            ));
        }
        self.journal(NewEntry {
            at: now,
            epoch,
            actor: "engine".into(),
            kind: "action",
            event: "read_only_undone".into(),
            summary,
            reasons: Vec::new(),
            outcome: if failed.is_empty() {
                "ok".into()
            } else {
                format!("failed: {}", failed.join("; "))
            },
        });
        if let Some(failing) = &mut self.failing
            && failing.read_only.as_ref().is_some_and(|p| p.epoch == epoch)
        {
            failing.read_only = None;
        }
        self.save(now);
    }

    pub(super) fn journal_steps(&mut self, epoch: u64, steps: &[StepOutcome]) {
        for step in steps {
            let warning = step.ok && step.detail.starts_with("warning:");
            self.journal(NewEntry {
                at: step.at,
                epoch,
                actor: "engine".into(),
                kind: "action",
                event: step.step.replace(' ', "_").to_lowercase(),
                summary: step.detail.clone(),
                reasons: Vec::new(),
                outcome: match (step.ok, warning) {
                    (true, false) => "ok".into(),
                    (true, true) => step.detail.clone(),
                    (false, _) => format!("failed: {}", step.detail),
                },
            });
            if step.ok && !warning {
                info!(epoch, step = %step.step, "{}", step.detail);
            } else {
                warn!(epoch, step = %step.step, "{}", step.detail);
            }
        }
    }

    /// Remembers a flag clear (stored, so a restart does it) and starts its
    /// timer.
    fn schedule_clear(&mut self, epoch: u64, not_before: u64) {
        let Some(failing) = &mut self.failing else {
            return;
        };
        let clear = ScheduledClear { epoch, not_before };
        if !failing.scheduled_clears.contains(&clear) {
            failing.scheduled_clears.push(clear.clone());
        }
        self.save(now_ms());
        self.arm(clear);
    }

    pub(super) fn arm(&self, clear: ScheduledClear) {
        let outbox = self.outbox.clone();
        let wait = Duration::from_millis(clear.not_before.saturating_sub(now_ms()));
        info!(
            epoch = clear.epoch,
            "the application flag is cleared at {}",
            crate::engine::utc(clear.not_before)
        );
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let _ = outbox
                .send(ControlEvent::ClearDue { epoch: clear.epoch })
                .await;
        });
    }

    /// A flag clear is due: carried out unless the active site changed
    /// since (the flag then belongs to a newer failover).
    pub(super) fn clear_due(&mut self, epoch: u64) {
        let Some(failing) = &mut self.failing else {
            return;
        };
        let current = failing.engine.persisted().epoch;
        let active = failing.engine.persisted().active;
        if current != epoch || active != Role::Primary {
            failing.scheduled_clears.retain(|c| c.epoch != epoch);
            let summary = format!(
                "the flag clear of epoch {epoch} is skipped: the active site changed since (epoch {current})"
            );
            info!("{summary}");
            self.journal(NewEntry {
                at: now_ms(),
                epoch,
                actor: "engine".into(),
                kind: "action",
                event: "flag_clear_skipped".into(),
                summary,
                reasons: Vec::new(),
                outcome: "ok".into(),
            });
            self.save(now_ms());
            return;
        }
        let site = failing.config.site(Role::Secondary).clone();
        let timeout = failing.config.step_timeout;
        let outbox = self.outbox.clone();
        tokio::spawn(async move {
            let flags: Vec<ReadOnlyStep> = site
                .read_only_steps()
                .into_iter()
                .filter(|s| *s != ReadOnlyStep::Database)
                .collect();
            let steps = undo_steps(&site, &flags, &flags, "clear", timeout).await;
            let failed: Vec<String> = steps
                .iter()
                .filter(|s| !s.ok)
                .map(|s| s.detail.clone())
                .collect();
            let result = if !failed.is_empty() {
                Err(failed.join("; "))
            } else if steps.is_empty() {
                Ok("no application flag to clear".to_string())
            } else {
                Ok(steps
                    .iter()
                    .map(|s| s.detail.clone())
                    .collect::<Vec<_>>()
                    .join("; "))
            };
            let _ = outbox
                .send(ControlEvent::FlagCleared {
                    epoch,
                    result,
                    steps,
                })
                .await;
        });
    }

    pub(super) fn flag_cleared(
        &mut self,
        epoch: u64,
        result: Result<String, String>,
        steps: Vec<StepOutcome>,
    ) {
        self.journal_steps(epoch, &steps);
        let now = now_ms();
        match result {
            Ok(done) => {
                if let Some(failing) = &mut self.failing {
                    failing.scheduled_clears.retain(|c| c.epoch != epoch);
                }
                info!(epoch, "application flag cleared: {done}");
                self.journal(NewEntry {
                    at: now,
                    epoch,
                    actor: "engine".into(),
                    kind: "action",
                    event: "flag_cleared".into(),
                    summary: format!("application flag cleared after the TTL wait: {done}"),
                    reasons: Vec::new(),
                    outcome: "ok".into(),
                });
                self.save(now);
            }
            Err(why) => {
                // Kept scheduled: tried again in a minute.
                error!(epoch, "the application flag could not be cleared: {why}");
                self.notifier.send(Notification::new(
                    "action_failed",
                    epoch,
                    None,
                    format!("the application flag could not be cleared: {why}"),
                    now,
                ));
                self.arm(ScheduledClear {
                    epoch,
                    not_before: now + 60_000,
                });
            }
        }
    }
}
