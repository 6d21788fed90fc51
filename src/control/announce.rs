//! What the webhooks hear after a decision, each occasion once: a failover
//! that stopped (`action_failed`) and a failover that cannot start
//! (`failover_blocked`), once per outage of the primary; the primary ready
//! for fail-back, once each time it becomes so; each change of promotion
//! stage (`mode: promote`). A change of active site is told by `act` as it
//! happens.

use super::{Controller, Notification};
use crate::engine::{Decision, Event, Role, SiteHealth};

/// What has been told, so it is not told again.
#[derive(Debug, Default)]
pub(super) struct Announced {
    /// "Ready for fail-back" was the last thing told about the primary.
    pub ready_for_failback: bool,
    /// A stopped failover was told in this outage.
    pub abort: bool,
    /// A blocked failover was told in this outage.
    pub blocked: bool,
    /// The epoch whose failed save was last told.
    pub unsaved: Option<u64>,
    /// The last failover readiness told (`None` before the first check).
    pub ready: Option<bool>,
}

impl Controller {
    pub(super) fn announce(&mut self, decision: &Decision, is_command: bool, now: u64) {
        let Some(failing) = &mut self.failing else {
            return;
        };
        let engine = &failing.engine;
        let outage = engine.site_health(Role::Primary) == SiteHealth::Down
            && engine.persisted().active == Role::Primary;
        if is_command || !outage {
            failing.announced.abort = false;
        }
        if !outage {
            failing.announced.blocked = false;
        }
        let primary = failing.config.site(Role::Primary).name.clone();
        if decision.event == Event::FailoverAborted && !failing.announced.abort {
            // The primary is down and traffic could not move: the operator
            // must hear of it, once per outage.
            failing.announced.abort = true;
            self.notifier.send(Notification::new(
                "action_failed",
                decision.epoch,
                Some(primary.clone()),
                decision.summary.clone(),
                now,
            ));
        }
        if let Some(why) = failing.engine.failover_blocked()
            && !failing.announced.blocked
        {
            failing.announced.blocked = true;
            let summary = format!("{primary} is down, but no failover: {why}");
            self.notifier.send(Notification::new(
                "failover_blocked",
                decision.epoch,
                Some(primary),
                summary,
                now,
            ));
        }
        // Every change of promotion stage is told: it changes which
        // database takes writes.
        let stage = match decision.event {
            Event::PromotionStarted { .. } => Some("promotion_started"),
            Event::Promoted => Some("promoted"),
            Event::PromotionAborted => Some("promotion_aborted"),
            Event::Rejoined => Some("rejoined"),
            Event::Diverged => Some("diverged"),
            Event::SwitchbackStarted => Some("switchback_started"),
            Event::SwitchbackAborted => Some("switchback_aborted"),
            Event::RejoinHeld => Some("rejoin_held"),
            Event::RejoinReleased => Some("rejoin_released"),
            _ => None,
        };
        if let Some(word) = stage {
            self.notifier.send(Notification::new(
                word,
                decision.epoch,
                Some(failing.config.sites[1].name.clone()),
                decision.summary.clone(),
                now,
            ));
        }
        let ready = failing.engine.ready_for_failback();
        if ready && !failing.announced.ready_for_failback {
            let summary = format!(
                "{} is healthy again: ready for fail-back",
                failing.config.sites[0].name
            );
            self.notifier.send(Notification::new(
                "ready_for_failback",
                failing.engine.persisted().epoch,
                Some(failing.config.sites[1].name.clone()),
                summary,
                now,
            ));
        }
        failing.announced.ready_for_failback = ready;
    }
}
