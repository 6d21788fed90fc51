//! Deciding: every input goes to the engine; its decision is logged and
//! journalled, the new state stored, then its actions carried out (see
//! `act`). An operator's command is carried out only when its new state
//! could be stored; otherwise it is answered with the error and nothing
//! changes.

use std::time::Duration;

use tracing::{error, info, warn};

use super::{Controller, status::view_of};
use crate::{
    db::Observed,
    engine::{CheckId, Command, Decision, Event, Input, Role},
    store::NewEntry,
};

pub(super) fn event_word(event: Event) -> &'static str {
    match event {
        Event::Steady => "steady",
        Event::HealthChanged => "health_changed",
        Event::FailoverStarted { .. } => "failover_started",
        Event::FailoverAborted => "failover_aborted",
        Event::FailoverResumed => "failover_resumed",
        Event::FailoverRolledBack => "failover_rolled_back",
        Event::FailedOver { automatic: true } => "failed_over",
        Event::FailedOver { automatic: false } => "switched_over",
        Event::FailedBack => "failed_back",
        Event::Paused => "paused",
        Event::Resumed => "resumed",
        Event::Refused => "refused",
        Event::PromotionStarted { .. } => "promotion_started",
        Event::Promoted => "promoted",
        Event::PromotionAborted => "promotion_aborted",
        Event::Rejoined => "rejoined",
        Event::Diverged => "diverged",
        Event::SwitchbackStarted => "switchback_started",
        Event::SwitchbackAborted => "switchback_aborted",
        Event::RejoinHeld => "rejoin_held",
        Event::RejoinReleased => "rejoin_released",
    }
}

impl Controller {
    /// Writes a journal entry; a journal that cannot be written is logged,
    /// and the decision stands.
    pub(super) fn journal(&mut self, entry: NewEntry) {
        let Some(failing) = &mut self.failing else {
            return;
        };
        match failing.journal.append(entry) {
            Ok(written) => self.share(&written),
            Err(e) => error!("{e}"),
        }
    }

    /// Feeds one input to the engine and carries out what it decides.
    pub async fn step(&mut self, input: Input, now: u64) -> Option<Decision> {
        self.resettle().await;
        let decision = self.step_engine(input, now).await;
        self.observe_timeline(now);
        if let Some(failing) = &self.failing {
            let swapped = failing
                .engine
                .promotion()
                .is_some_and(|p| p.stage.secondary_is_source());
            self.tasks.set_swapped(swapped);
        }
        decision
    }

    /// Gives the timeline what the engine holds now.
    pub(super) fn observe_timeline(&mut self, now: u64) {
        if let Some(failing) = &mut self.failing {
            let health = Role::BOTH.map(|role| failing.engine.site_health(role));
            let active = failing.engine.persisted().active;
            failing.timeline.observe(now, health, active);
        }
    }

    async fn step_engine(&mut self, input: Input, now: u64) -> Option<Decision> {
        let actor = match &input {
            Input::Command { actor, .. } => actor.clone(),
            Input::Check { .. }
            | Input::Replication { .. }
            | Input::ReadOnly { .. }
            | Input::Promoted { .. }
            | Input::Rejoined { .. }
            | Input::SwitchedBack { .. }
            | Input::Tick => "engine".to_string(),
        };
        let is_command = matches!(input, Input::Command { .. });
        let cluster = self
            .cluster
            .as_ref()
            .map(|c| c.leading && c.leadership.leads());
        let failing = self.failing.as_mut()?;
        match cluster {
            // A single controller: answers follow the decision, and a
            // save that fails is retried at every step.
            None => {
                let decision = failing.engine.step(input, now);
                self.carry_out(&decision, &actor, is_command, false, now)
                    .await;
                return Some(decision);
            }
            // A follower's engine only keeps its own view of the sites:
            // it decides nothing and acts on nothing; its answers change
            // when the agreed state does.
            Some(false) => return Some(failing.engine.step(input, now)),
            Some(true) => {}
        }
        // The leader of several nodes acts only on what it could write to
        // the agreed state: a decision it cannot store is not taken, so
        // no node ever answers what the others do not.
        let before = failing.engine.clone();
        let decision = failing.engine.step(input, now);
        if failing.engine.persisted() != before.persisted()
            && let Err(why) = self.store_decision(&decision).await
        {
            if let Some(failing) = &mut self.failing {
                failing.engine = before;
            }
            warn!(
                "not carried out: {} (the agreed state could not be written: {why})",
                decision.summary
            );
            return Some(decision);
        }
        self.carry_out(&decision, &actor, is_command, true, now)
            .await;
        Some(decision)
    }

    /// An operator's command. Refused outright when there is no failover;
    /// an error, with nothing changed, when its new state cannot be stored.
    pub async fn command(
        &mut self,
        command: Command,
        actor: String,
        now: u64,
    ) -> Result<Decision, String> {
        let Some(failing) = &mut self.failing else {
            return Ok(Decision {
                at: now,
                epoch: 0,
                event: Event::Refused,
                summary: "refused: the configuration has no failover section".into(),
                reasons: Vec::new(),
                actions: Vec::new(),
                notable: true,
            });
        };
        let before = failing.engine.clone();
        let input = Input::Command {
            command,
            actor: actor.clone(),
        };
        let decision = failing.engine.step(input, now);
        if decision.event != Event::Refused
            && failing.engine.persisted() != before.persisted()
            && let Err(why) = self.store_decision(&decision).await
        {
            if let Some(failing) = &mut self.failing {
                failing.engine = before;
            }
            let summary = format!(
                "not carried out: {} (the new state could not be stored: {why})",
                decision.summary
            );
            error!(%actor, "{summary}");
            self.journal(NewEntry {
                at: now,
                epoch: decision.epoch,
                actor,
                kind: "command",
                event: "command_failed".into(),
                summary: summary.clone(),
                reasons: decision.reasons.clone(),
                outcome: format!("failed: {why}"),
            });
            return Err(summary);
        }
        self.carry_out(&decision, &actor, true, true, now).await;
        self.observe_timeline(now);
        // With several nodes, "done" means in the agreed state and in the
        // shared journal: an operator who hears it can find it in both.
        if decision.event != Event::Refused
            && let Err(why) = self.flush_journal().await
        {
            return Err(format!(
                "carried out ({}; epoch {}), but the shared journal could not record it ({why}): the status shows the agreed state",
                decision.summary, decision.epoch
            ));
        }
        Ok(decision)
    }

    /// Logs a decision, stores the state it leads to before anything is
    /// done on it (unless `prepared`: a command's was), serves a change
    /// of answers at once, then journals it, tells who must hear, and runs
    /// its other actions. Only the state's fsync stands between a decision
    /// and its answers; the journal's follows.
    async fn carry_out(
        &mut self,
        decision: &Decision,
        actor: &str,
        is_command: bool,
        prepared: bool,
        now: u64,
    ) {
        if decision.notable {
            info!(
                event = ?decision.event,
                epoch = decision.epoch,
                reasons = ?decision.reasons,
                "{}",
                decision.summary
            );
        }
        if !prepared {
            self.prepare_state(decision);
        }
        if (decision.notable && !prepared) || self.failing.as_ref().is_some_and(|f| f.dirty) {
            self.save(now).await;
        }
        if decision
            .actions
            .iter()
            .any(|a| matches!(a, crate::engine::Action::Activate { .. }))
        {
            self.publish();
        }
        if decision.notable {
            let outcome = if decision.event == Event::Refused {
                "refused"
            } else {
                "ok"
            };
            self.journal(NewEntry {
                at: now,
                epoch: decision.epoch,
                actor: actor.to_string(),
                kind: if is_command { "command" } else { "decision" },
                event: event_word(decision.event).into(),
                summary: decision.summary.clone(),
                reasons: decision.reasons.clone(),
                outcome: outcome.into(),
            });
        }
        self.announce(decision, is_command, now);
        self.run_actions(decision, actor, now).await;
    }

    /// Stores the state a command leads to, with what its actions change
    /// in the stored state (serials, read-only progress).
    async fn store_decision(&mut self, decision: &Decision) -> Result<(), String> {
        let serials = self.serials.clone();
        let kept = self
            .failing
            .as_ref()
            .map(|f| (f.read_only.clone(), f.scheduled_clears.clone()));
        self.prepare_state(decision);
        let result = self.try_save().await;
        if result.is_err() {
            self.serials = serials;
            if let (Some(failing), Some((progress, clears))) = (&mut self.failing, kept) {
                failing.read_only = progress;
                failing.scheduled_clears = clears;
            }
        }
        result
    }

    /// Records a probe's result.
    pub async fn probe(
        &mut self,
        id: CheckId,
        ok: bool,
        detail: String,
        latency: Duration,
        now: u64,
    ) {
        if let Some(failing) = &mut self.failing
            && let Some(slot) =
                failing.latencies[usize::from(id.site == Role::Secondary)].get_mut(id.index)
        {
            slot.push(super::timeline::Sample {
                at: now,
                ms: latency.as_secs_f64() * 1000.0,
                ok,
            });
        }
        self.step(
            Input::Check {
                id,
                ok,
                detail: Some(detail),
            },
            now,
        )
        .await;
        self.publish_view().await;
    }

    /// Feeds a replication observation, from a round that began at
    /// `at`, to the engine.
    pub(super) async fn replication(&mut self, observed: Observed, at: u64) {
        let now = super::now_ms();
        let view = view_of(&observed);
        if let Some(failing) = &mut self.failing {
            failing.observed = Some((at, observed));
        }
        self.step(Input::Replication { view, at }, now).await;
    }
}
