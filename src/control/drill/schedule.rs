//! Drills on a schedule (`drill.every`, `drill.window`): due a period
//! after the last drill began (or, before any, from the controller's
//! start), run in the window like `geofailover drill` by the operator
//! `schedule`; a refusal is journalled as `drill_skipped` (once per due
//! drill) and tried again a quarter period later (between 1 s and 1 h),
//! while it is due; a drill overdue by more
//! than its period is told to the webhooks once as `drill_overdue`.

use std::time::Duration;

use tracing::{debug, info, warn};

use super::DrillRequest;
use crate::{
    control::{Controller, notify::Notification},
    store::NewEntry,
};

/// The schedule's memory between ticks.
#[derive(Debug, Clone)]
pub struct ScheduleState {
    /// The controller's start: the first drill is due from here.
    pub started: u64,
    /// After a skip, no new attempt before this.
    pub skipped_until: u64,
    /// The due time whose overdue drill was told to the webhooks.
    pub overdue_told: Option<u64>,
    /// The due time whose skip was journalled: once per due drill.
    pub skip_told: Option<u64>,
}

impl ScheduleState {
    pub fn new(started: u64) -> Self {
        Self {
            started,
            skipped_until: 0,
            overdue_told: None,
            skip_told: None,
        }
    }
}

/// Before any drill, the first is due this long after the start (or a
/// period, if shorter): the checks have settled by then.
const FIRST_AFTER: Duration = Duration::from_secs(60);

/// When the next drill is due, from the last one's start (0: none yet).
pub fn due(state: &ScheduleState, every: Duration, last_started: Option<u64>) -> u64 {
    match last_started {
        Some(at) if at > 0 => at.saturating_add(every.as_millis() as u64),
        _ => state
            .started
            .saturating_add(every.min(FIRST_AFTER).as_millis() as u64),
    }
}

impl Controller {
    /// When the last drill began, as far as this node knows: its own last
    /// report (older reports give their start in text), or, with several
    /// nodes, the shared journal's newest finished drill, whichever is later.
    pub(in crate::control) fn last_drill_at(&self) -> Option<u64> {
        let own = self.failing.as_ref()?.last_drill.as_ref().and_then(|r| {
            Some(r.started_at)
                .filter(|at| *at > 0)
                .or_else(|| crate::engine::parse_utc(&r.started))
        });
        let shared = self.cluster.as_ref().and_then(|c| {
            c.journal
                .iter()
                .rev()
                .find(|e| e.event == "drill_finished")
                .map(|e| e.at)
        });
        own.max(shared)
    }

    /// Runs on the controller's tick: starts a drill that is due in its
    /// window, journals one that cannot start, tells an overdue one.
    pub(in crate::control) async fn scheduled_drill(&mut self, now: u64) {
        let Some(schedule) = self.drill_config.schedule.clone() else {
            return;
        };
        // With several nodes, the leader keeps the schedule.
        if self.cluster.as_ref().is_some_and(|c| !c.leading) {
            return;
        }
        let Some(failing) = &self.failing else {
            return;
        };
        if failing.drill.is_some() {
            return;
        }
        let state = failing.schedule.clone();
        let last = self.last_drill_at();
        let due = due(&state, schedule.every, last);
        let every_ms = schedule.every.as_millis() as u64;
        let epoch = failing.engine.persisted().epoch;

        let overdue_at = due.saturating_add(every_ms);
        if now > overdue_at && state.overdue_told != Some(due) {
            let summary = match last {
                Some(at) if at > 0 => format!(
                    "no drill since {} (one is due every {}): due since {}, overdue since {}",
                    crate::engine::utc(at),
                    crate::config::duration::show(schedule.every),
                    crate::engine::utc(due),
                    crate::engine::utc(overdue_at)
                ),
                _ => format!(
                    "no drill in the {} since the start (one is due every {})",
                    crate::config::duration::show(Duration::from_secs(
                        (now - state.started) / 1000
                    )),
                    crate::config::duration::show(schedule.every),
                ),
            };
            warn!("drill overdue: {summary}");
            self.journal(NewEntry {
                at: now,
                epoch,
                actor: "schedule".into(),
                kind: "action",
                event: "drill_overdue".into(),
                summary: summary.clone(),
                reasons: Vec::new(),
                outcome: "failed: overdue".into(),
            });
            let active = self
                .failing
                .as_ref()
                .map(|f| f.config.site(f.engine.persisted().active).name.clone());
            self.notifier.send(Notification::new(
                "drill_overdue",
                epoch,
                active,
                format!("drill overdue: {summary}"),
                now,
            ));
            if let Some(failing) = &mut self.failing {
                failing.schedule.overdue_told = Some(due);
            }
        }

        if now < due || now < state.skipped_until || !schedule.window.contains(now) {
            return;
        }
        let request = DrillRequest {
            hold: self.drill_config.hold,
            lower_ttl: schedule.lower_ttl,
            operator: "schedule".into(),
            read_only: !self.drill_config.promote_scheduled,
        };
        let reply = self.drill_start(request, false, now).await;
        match (reply.id, reply.refused) {
            (Some(id), _) => info!(drill = %id, "scheduled drill started"),
            (None, refused) => {
                let why = refused.unwrap_or_else(|| "drill refused".into());
                let retry =
                    (schedule.every / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600));
                if let Some(failing) = &mut self.failing {
                    failing.schedule.skipped_until = now + retry.as_millis() as u64;
                }
                if state.skip_told == Some(due) {
                    debug!("scheduled drill skipped again: {why}");
                    return;
                }
                warn!("scheduled drill skipped: {why}");
                self.journal(NewEntry {
                    at: now,
                    epoch,
                    actor: "schedule".into(),
                    kind: "action",
                    event: "drill_skipped".into(),
                    summary: format!(
                        "scheduled drill skipped ({why}); tried again every {} while it is due",
                        crate::config::duration::show(retry)
                    ),
                    reasons: Vec::new(),
                    outcome: "refused".into(),
                });
                if let Some(failing) = &mut self.failing {
                    failing.schedule.skip_told = Some(due);
                }
            }
        }
    }
}
