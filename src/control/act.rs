//! Carrying out the engine's actions, each journalled with its epoch:
//! what a decision changes in the stored state beside the engine's,
//! pointing the answers at a site, and clearing the application flag a
//! TTL after fail-back. Read-only mode itself is `preparation`.

use std::time::Duration;

use tracing::{error, info, warn};

use super::{
    ControlEvent, Controller, Notification, StepOutcome, answers, decide::event_word, now_ms,
    preparation::undo_steps,
};
use crate::{
    config::ReadOnlyStep,
    engine::{Action, Decision, Role},
    store::{NewEntry, ScheduledClear},
};

impl Controller {
    /// What a decision changes in the stored state beside the engine's:
    /// a change of answers bumps the serials, a finished failover drops
    /// its read-only progress. Done before the state is stored.
    pub(super) fn prepare_state(&mut self, decision: &Decision) {
        let Some(failing) = &mut self.failing else {
            return;
        };
        for action in &decision.actions {
            match action {
                Action::Activate { site, .. } => {
                    self.serials = answers::bump(&self.serials, &self.zones, &failing.config);
                    if *site == Role::Secondary {
                        failing.read_only = None;
                    }
                }
                // A new failover makes the flag clears of the last
                // fail-back moot: the flag is set again now.
                Action::PrepareReadOnly { .. } => failing.scheduled_clears.clear(),
                Action::ClearAppFlag {
                    epoch, not_before, ..
                } => {
                    let clear = ScheduledClear {
                        epoch: *epoch,
                        not_before: *not_before,
                    };
                    if !failing.scheduled_clears.contains(&clear) {
                        failing.scheduled_clears.push(clear);
                    }
                }
                Action::UndoReadOnly { .. }
                | Action::Promote { .. }
                | Action::Rejoin { .. }
                | Action::SwitchBack { .. } => {}
            }
        }
    }

    pub(super) async fn run_actions(&mut self, decision: &Decision, actor: &str, now: u64) {
        for action in &decision.actions {
            match action {
                Action::PrepareReadOnly {
                    site,
                    epoch,
                    attempt,
                } => self.prepare(*site, *epoch, *attempt, actor, now).await,
                Action::UndoReadOnly { site, attempt } => self.undo(*site, *attempt).await,
                Action::Activate { site, epoch } => {
                    self.activate(*site, *epoch, decision, actor, now).await
                }
                Action::ClearAppFlag {
                    site: _,
                    epoch,
                    not_before,
                } => self.arm(ScheduledClear {
                    epoch: *epoch,
                    not_before: *not_before,
                }),
                Action::Promote { .. } | Action::Rejoin { .. } | Action::SwitchBack { .. }
                    if self
                        .failing
                        .as_ref()
                        .is_some_and(|f| f.reconciling.is_some()) =>
                {
                    if let Some(failing) = &mut self.failing {
                        failing.deferred.push(action.clone());
                    }
                }
                Action::Promote {
                    epoch,
                    attempt,
                    fence_required,
                } => self.promote(*epoch, *attempt, *fence_required),
                Action::Rejoin { attempt } => self.rejoin(*attempt),
                Action::SwitchBack { attempt } => self.switch_back(*attempt),
            }
        }
    }

    /// The failover records point at `site`: the new state (serials
    /// included) was stored with the decision and the new table is in;
    /// journalled and told here.
    async fn activate(
        &mut self,
        site: Role,
        epoch: u64,
        decision: &Decision,
        actor: &str,
        now: u64,
    ) {
        let Some(failing) = &mut self.failing else {
            return;
        };
        if site == Role::Secondary {
            failing.failovers_total += 1;
        }
        let name = failing.config.site(site).name.clone();
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

    pub(super) fn arm(&self, clear: ScheduledClear) {
        let wait = Duration::from_millis(clear.not_before.saturating_sub(now_ms()));
        info!(
            epoch = clear.epoch,
            "the application flag is cleared at {}",
            crate::engine::utc(clear.not_before)
        );
        self.leader_timer(wait, ControlEvent::ClearDue { epoch: clear.epoch });
    }

    /// A flag clear is due: carried out unless the active site changed
    /// since or a failover is under way (the flag then belongs to a newer
    /// failover), or it was dropped meanwhile.
    pub(super) async fn clear_due(&mut self, epoch: u64) {
        if self.follows() {
            return;
        }
        let Some(failing) = &mut self.failing else {
            return;
        };
        if !failing.scheduled_clears.iter().any(|c| c.epoch == epoch) || failing.clearing {
            return;
        }
        let current = failing.engine.persisted().epoch;
        let active = failing.engine.persisted().active;
        let under_way = failing.engine.pending().is_some() || failing.preparing.is_some();
        if current != epoch || active != Role::Primary || under_way {
            failing.scheduled_clears.retain(|c| c.epoch != epoch);
            let summary = format!(
                "the flag clear of epoch {epoch} is skipped: a failover followed it (now epoch {current})"
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
            self.save(now_ms()).await;
            return;
        }
        failing.clearing = true;
        let site = failing.config.site(Role::Secondary).clone();
        let timeout = failing.config.step_timeout;
        let outbox = self.outbox.clone();
        let leadership = self.leadership.clone();
        tokio::spawn(async move {
            let flags: Vec<ReadOnlyStep> = site
                .read_only_steps()
                .into_iter()
                .filter(|s| *s != ReadOnlyStep::Database)
                .collect();
            let steps: Vec<StepOutcome> =
                undo_steps(&site, &flags, &flags, "clear", timeout, &leadership)
                    .await
                    .into_iter()
                    .map(|(_, outcome)| outcome)
                    .collect();
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

    pub(super) async fn flag_cleared(
        &mut self,
        epoch: u64,
        result: Result<String, String>,
        steps: Vec<StepOutcome>,
    ) {
        if let Some(failing) = &mut self.failing {
            failing.clearing = false;
        }
        self.journal_steps(epoch, &steps);
        let now = now_ms();
        let superseded = self
            .failing
            .as_ref()
            .is_some_and(|f| !f.scheduled_clears.iter().any(|c| c.epoch == epoch));
        match result {
            // A failover began meanwhile and dropped the clear: its own
            // steps set the flag again once this has finished.
            Err(_) if superseded => {}
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
                self.save(now).await;
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
        self.start_waiting();
    }
}
