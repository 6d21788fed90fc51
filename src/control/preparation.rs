//! Read-only mode for a failover attempt, step by step: each step is
//! stored as started, then as done, before the next begins, so a
//! controller that dies half-way knows what to read back (resume) or to
//! undo (roll back). Every attempt has its own id. An attempt that stops
//! has what it set undone, retried each minute until it is; one that
//! starts while an undo or a flag clear is running waits for it, and
//! takes over whatever the undo could not remove.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use super::{ControlEvent, Controller, Notification, PlanEvent, StepOutcome, now_ms, steps};
use crate::{
    config::{ReadOnlyStep, Site},
    engine::{Input, Role},
    store::{NewEntry, ReadOnlyProgress, shared::Leadership},
};

/// How long after a failed undo it is tried again.
const UNDO_RETRY: Duration = Duration::from_secs(60);

/// Tells the controller where a step is and waits until it has stored
/// it; `Err` when the preparation is to stop (the attempt was given up,
/// its state could not be stored, or the controller stopped).
async fn ask(
    outbox: &mpsc::Sender<ControlEvent>,
    attempt: u64,
    event: PlanEvent,
) -> Result<(), ()> {
    let (reply, stored) = oneshot::channel();
    outbox
        .send(ControlEvent::Plan {
            attempt,
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
async fn finish(outbox: &mpsc::Sender<ControlEvent>, attempt: u64, result: Result<String, String>) {
    let _ = outbox
        .send(ControlEvent::ReadOnlyDone { attempt, result })
        .await;
}

const STOPPED: &str =
    "the preparation was stopped: the attempt was given up, or its progress could not be stored";

/// Why a step did not run or was dropped: the leadership ended.
fn stopped(lost: &str) -> String {
    format!("the preparation was stopped: {lost}")
}

/// Runs the read-only steps of `site` for failover `attempt`: those
/// `progress` has as done are read back (and run again only if they no
/// longer hold), the others run in order. The first that fails stops the
/// rest. The result goes back as `ReadOnlyDone`.
async fn run_steps(
    site: Site,
    progress: ReadOnlyProgress,
    timeout: Duration,
    leadership: Leadership,
    outbox: mpsc::Sender<ControlEvent>,
) {
    let attempt = progress.attempt;
    let mut verified = Vec::new();
    for step in site.read_only_steps() {
        if progress.done.contains(&step) {
            let result = match leadership.run(steps::verify(step, &site, timeout)).await {
                Ok(result) => result,
                Err(lost) => return finish(&outbox, attempt, Err(stopped(&lost))).await,
            };
            if ask(&outbox, attempt, PlanEvent::Verified(step, result.clone()))
                .await
                .is_err()
            {
                return finish(&outbox, attempt, Err(STOPPED.into())).await;
            }
            if let Ok(detail) = result {
                verified.push(detail);
                continue;
            }
        }
        if ask(&outbox, attempt, PlanEvent::Starting(step))
            .await
            .is_err()
        {
            return finish(&outbox, attempt, Err(STOPPED.into())).await;
        }
        let report = match leadership.run(steps::set(step, &site, timeout)).await {
            Ok(report) => report,
            Err(lost) => return finish(&outbox, attempt, Err(stopped(&lost))).await,
        };
        let result = report.result.clone();
        let go_on = ask(&outbox, attempt, PlanEvent::Done(step, report)).await;
        match (result, go_on) {
            (Err(why), _) => return finish(&outbox, attempt, Err(why)).await,
            (Ok(_), Err(())) => return finish(&outbox, attempt, Err(STOPPED.into())).await,
            (Ok(detail), Ok(())) => verified.push(detail),
        }
    }
    if verified.is_empty() {
        verified.push("nothing to set".into());
    }
    finish(&outbox, attempt, Ok(verified.join("; "))).await;
}

/// Undoes `started` (newest first); `label` names the undo in the journal.
/// A step that started but never finished may not have taken effect: an
/// undo of it that fails is told, not counted as a failure.
pub(super) async fn undo_steps(
    site: &Site,
    started: &[ReadOnlyStep],
    finished: &[ReadOnlyStep],
    label: &str,
    timeout: Duration,
    leadership: &Leadership,
) -> Vec<(ReadOnlyStep, StepOutcome)> {
    let mut outcomes = Vec::new();
    for step in started.iter().rev() {
        let result = leadership
            .run(steps::undo(*step, site, timeout))
            .await
            .unwrap_or_else(|lost| Err(format!("not undone: {lost}")));
        let (ok, detail) = match result {
            Ok(d) => (true, d),
            Err(e) if !finished.contains(step) => (
                true,
                format!("not undone ({e}); it had not finished, so it may never have taken effect"),
            ),
            Err(e) => (false, e),
        };
        outcomes.push((
            *step,
            StepOutcome {
                at: now_ms(),
                step: format!("{label} {}", step.name()),
                ok,
                detail,
            },
        ));
    }
    outcomes
}

/// What waits for an undo or a flag clear to finish before it starts.
#[derive(Debug, Clone)]
pub(super) struct Waiting {
    site: Role,
    attempt: u64,
}

impl Controller {
    /// Starts the read-only steps of `site` for failover `attempt` (which
    /// leads to `epoch`) in the background: from where a stopped
    /// controller left them, or afresh (taking over what an undo of an
    /// earlier attempt could not remove). Nothing runs before the attempt
    /// is stored; nothing runs while an undo or a flag clear does.
    pub(super) async fn prepare(
        &mut self,
        site: Role,
        epoch: u64,
        attempt: u64,
        actor: &str,
        now: u64,
    ) {
        let Some(failing) = &mut self.failing else {
            return;
        };
        let target = failing.config.site(site).name.clone();
        let progress = match failing.read_only.take() {
            Some(progress) if progress.attempt == attempt => progress,
            Some(earlier) => ReadOnlyProgress {
                attempt,
                epoch,
                started: earlier.started,
                done: Vec::new(),
            },
            None => ReadOnlyProgress {
                attempt,
                epoch,
                started: Vec::new(),
                done: Vec::new(),
            },
        };
        let resumed = !progress.done.is_empty();
        let done: Vec<&str> = progress.done.iter().map(|s| s.name()).collect();
        let summary = if resumed {
            format!(
                "finishing read-only mode at {target} (attempt {attempt}): done before the restart: {}",
                done.join(", ")
            )
        } else {
            format!("putting {target} into read-only mode (attempt {attempt})")
        };
        failing.read_only = Some(progress);
        failing.warnings.clear();
        self.journal(NewEntry {
            at: now,
            epoch,
            actor: actor.to_string(),
            kind: "action",
            event: "read_only_started".into(),
            summary,
            reasons: Vec::new(),
            outcome: "ok".into(),
        });
        if let Err(why) = self.store_state(now).await {
            // Steps must not run before the attempt is stored: a crash
            // would leave them set with nothing to undo them.
            let outbox = self.outbox.clone();
            tokio::spawn(async move {
                let why = format!("the failover could not be stored before its first step: {why}");
                finish(&outbox, attempt, Err(why)).await;
            });
            return;
        }
        self.start_steps(Waiting { site, attempt });
    }

    /// Runs the steps now, or once a running undo or flag clear ends.
    fn start_steps(&mut self, waiting: Waiting) {
        let Some(failing) = &mut self.failing else {
            return;
        };
        if failing.undoing.is_some() || failing.clearing || failing.reconciling.is_some() {
            info!(
                attempt = waiting.attempt,
                "the read-only steps wait for an undo, a flag clear or a reconciliation pass to finish"
            );
            failing.waiting = Some(waiting);
            return;
        }
        let Some(progress) = failing
            .read_only
            .clone()
            .filter(|p| p.attempt == waiting.attempt)
        else {
            return;
        };
        failing.preparing = Some(waiting.attempt);
        let site = failing.config.site(waiting.site).clone();
        tokio::spawn(run_steps(
            site,
            progress,
            failing.config.step_timeout,
            self.leadership.clone(),
            self.outbox.clone(),
        ));
    }

    /// Starts what waited for an undo or a flag clear, once neither runs.
    pub(super) fn start_waiting(&mut self) {
        let Some(failing) = &mut self.failing else {
            return;
        };
        if failing.undoing.is_some() || failing.clearing || failing.reconciling.is_some() {
            return;
        }
        if let Some(waiting) = failing.waiting.take() {
            self.start_steps(waiting);
        }
    }

    /// A read-only step started, ran or was read back: journalled, and
    /// stored before the step goes on. Whether to go on: not once the
    /// attempt was given up, nor when a start cannot be stored.
    pub(super) async fn plan_event(&mut self, attempt: u64, event: PlanEvent) -> bool {
        let now = now_ms();
        let Some(failing) = &mut self.failing else {
            return false;
        };
        let pending = failing
            .engine
            .pending()
            .is_some_and(|p| p.attempt == attempt);
        if !pending && matches!(event, PlanEvent::Starting(_)) {
            return false;
        }
        let Some(progress) = failing.read_only.as_mut().filter(|p| p.attempt == attempt) else {
            return false;
        };
        let epoch = progress.epoch;
        let mut new_warnings = Vec::new();
        let mut lines = Vec::new();
        let starting = matches!(event, PlanEvent::Starting(_));
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
                    Ok(d) => format!(
                        "verified, set earlier (before a restart or a change of leader): {d}"
                    ),
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
        let stored = self.store_state(now).await;
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
        pending && (stored.is_ok() || !starting)
    }

    /// The preparation of `attempt` ended: an undo ordered meanwhile runs
    /// now, then the engine hears the result.
    pub(super) async fn read_only_done(&mut self, attempt: u64, result: Result<String, String>) {
        if let Some(failing) = &mut self.failing {
            if failing.preparing == Some(attempt) {
                failing.preparing = None;
            }
            if failing.undo_waiting == Some(attempt) {
                failing.undo_waiting = None;
                self.undo(Role::Secondary, attempt).await;
            }
        }
        self.step(Input::ReadOnly { attempt, result }, now_ms())
            .await;
    }

    /// Undoes, in the background, the read-only steps failover `attempt`
    /// started: the application flags; the database stays read-only.
    pub(super) async fn undo(&mut self, site: Role, attempt: u64) {
        let Some(failing) = &mut self.failing else {
            return;
        };
        if failing.preparing == Some(attempt) {
            // A step may be in flight: undone once the preparation stops.
            failing.undo_waiting = Some(attempt);
            return;
        }
        if failing.undoing.is_some() {
            return;
        }
        // A step of a previous leader (or of this controller before a
        // restart) may still land until the quiet time is over: the undo,
        // and its read-back, come after it.
        let now = now_ms();
        if now < failing.quiet_until {
            let wait = Duration::from_millis(failing.quiet_until - now);
            self.retry_undo(attempt, wait);
            return;
        }
        let Some(progress) = failing.read_only.clone().filter(|p| p.attempt == attempt) else {
            // A later attempt took over what this one left.
            return;
        };
        if progress.started.is_empty() {
            failing.read_only = None;
            self.save(now_ms()).await;
            return;
        }
        failing.undoing = Some(attempt);
        let target = failing.config.site(site).clone();
        let timeout = failing.config.step_timeout;
        let outbox = self.outbox.clone();
        let leadership = self.leadership.clone();
        tokio::spawn(async move {
            let outcomes = undo_steps(
                &target,
                &progress.started,
                &progress.done,
                "undo",
                timeout,
                &leadership,
            )
            .await;
            let _ = outbox
                .send(ControlEvent::Undone { attempt, outcomes })
                .await;
        });
    }

    /// The undo of a stopped attempt's steps finished: what was undone is
    /// forgotten, what was not is kept (stored) and tried again in a
    /// minute, unless a new attempt takes it over first.
    pub(super) async fn undone(
        &mut self,
        attempt: u64,
        outcomes: Vec<(ReadOnlyStep, StepOutcome)>,
    ) {
        let now = now_ms();
        let Some(failing) = &mut self.failing else {
            return;
        };
        failing.undoing = None;
        let epoch = failing
            .read_only
            .as_ref()
            .filter(|p| p.attempt == attempt)
            .map_or(failing.engine.persisted().epoch + 1, |p| p.epoch);
        let lines: Vec<StepOutcome> = outcomes.iter().map(|(_, o)| o.clone()).collect();
        self.journal_steps(epoch, &lines);
        let failed: Vec<String> = outcomes
            .iter()
            .filter(|(_, o)| !o.ok)
            .map(|(_, o)| format!("{}: {}", o.step, o.detail))
            .collect();
        let done: Vec<String> = outcomes.iter().map(|(_, o)| o.detail.clone()).collect();
        let summary = if failed.is_empty() {
            format!(
                "what failover attempt {attempt} had set is undone: {}",
                done.join("; ")
            )
        } else {
            format!(
                "failover attempt {attempt} could not be fully undone (tried again in a minute): {}",
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
            && let Some(progress) = failing.read_only.as_mut().filter(|p| p.attempt == attempt)
        {
            let undone: Vec<ReadOnlyStep> = outcomes
                .iter()
                .filter(|(_, o)| o.ok)
                .map(|(step, _)| *step)
                .collect();
            progress.started.retain(|s| !undone.contains(s));
            progress.done.retain(|s| !undone.contains(s));
            if progress.started.is_empty() {
                failing.read_only = None;
            } else {
                self.retry_undo(attempt, UNDO_RETRY);
            }
        }
        self.save(now).await;
        self.start_waiting();
    }

    /// A failed undo's minute is up: tried again, unless the attempt's
    /// steps were taken over by a newer one or are being prepared again.
    pub(super) async fn undo_retry(&mut self, attempt: u64) {
        let Some(failing) = &self.failing else {
            return;
        };
        if self.follows() {
            return;
        }
        let pending = failing
            .engine
            .pending()
            .is_some_and(|p| p.attempt == attempt);
        if !pending {
            self.undo(Role::Secondary, attempt).await;
        }
    }

    /// Tries the undo of `attempt` again after `wait`, while this node
    /// leads.
    pub(super) fn retry_undo(&self, attempt: u64, wait: Duration) {
        self.leader_timer(wait, ControlEvent::UndoRetry { attempt });
    }
}
