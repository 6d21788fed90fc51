//! A failover from its decision to DNS moving: the pending failover is
//! part of the stored state from its first step, has a deadline, and after
//! a restart is resumed (the conditions still hold) or rolled back (they
//! do not). A failover that stops for any reason orders the undo of what
//! its preparation set.

use super::{Action, Decision, Engine, Event, Pending, Role, SiteHealth};

impl Engine {
    /// Starts a failover: with read-only steps, asks for them and waits for
    /// their verification; without, moves traffic at once.
    pub(super) fn begin_failover(
        &mut self,
        automatic: bool,
        force: bool,
        summary: String,
        reasons: Vec<String>,
        now: u64,
    ) -> Decision {
        self.keep_rpo();
        if !self.spec.read_only {
            if automatic {
                self.state.cooldown_until = Some(now + self.spec.cooldown_ms);
            }
            let summary = format!(
                "{summary}: answers now point at {}",
                self.spec.sites[1].name
            );
            return self.activate(
                Role::Secondary,
                Event::FailedOver { automatic },
                summary,
                reasons,
                now,
            );
        }
        let epoch = self.state.epoch + 1;
        self.state.attempts += 1;
        let attempt = self.state.attempts;
        self.state.pending = Some(Pending {
            epoch,
            attempt,
            automatic,
            force,
            summary: summary.clone(),
            started: now,
            deadline: now + self.spec.prepare_timeout_ms,
        });
        let summary = format!(
            "{summary}: putting {} into read-only mode before DNS moves",
            self.spec.sites[1].name
        );
        let actions = vec![Action::PrepareReadOnly {
            site: Role::Secondary,
            epoch,
            attempt,
        }];
        self.decide(
            now,
            Event::FailoverStarted { automatic },
            summary,
            reasons,
            actions,
        )
    }

    /// While a failover is pending: after a restart, waits for the checks
    /// and then resumes or rolls it back; otherwise gives it up at its
    /// deadline.
    pub(super) fn evaluate_pending(
        &mut self,
        pending: Pending,
        now: u64,
        event: Event,
        reasons: Vec<String>,
    ) -> Decision {
        let secondary_name = self.spec.sites[1].name.clone();
        if self.resuming {
            let deadline = *self
                .resume_deadline
                .get_or_insert(now + self.spec.settle_ms);
            return match self.resume_verdict(&pending, now, deadline) {
                None => {
                    let summary = format!(
                        "the failover of epoch {} was under way when the controller stopped: waiting for the checks before resuming it",
                        pending.epoch
                    );
                    self.decide(now, event, summary, reasons, Vec::new())
                }
                Some(Ok(())) => {
                    self.resuming = false;
                    let mut resumed = pending.clone();
                    resumed.deadline = now + self.spec.prepare_timeout_ms;
                    self.state.pending = Some(resumed);
                    let summary = format!(
                        "resuming the failover of epoch {} after a restart or a change of leader ({}): the conditions still hold; finishing read-only mode at {secondary_name}",
                        pending.epoch, pending.summary
                    );
                    let mut reasons = reasons;
                    reasons.push(self.describe_site(Role::Primary));
                    reasons.push(self.describe_site(Role::Secondary));
                    let actions = vec![Action::PrepareReadOnly {
                        site: Role::Secondary,
                        epoch: pending.epoch,
                        attempt: pending.attempt,
                    }];
                    self.decide(now, Event::FailoverResumed, summary, reasons, actions)
                }
                Some(Err(why)) => {
                    self.resuming = false;
                    self.state.pending = None;
                    let summary = format!(
                        "the failover of epoch {} was rolled back after a restart: {why}; DNS stays on {}",
                        pending.epoch, self.spec.sites[0].name
                    );
                    let mut reasons = reasons;
                    reasons.push(pending.summary.clone());
                    let actions = vec![Action::UndoReadOnly {
                        site: Role::Secondary,
                        attempt: pending.attempt,
                    }];
                    self.decide(now, Event::FailoverRolledBack, summary, reasons, actions)
                }
            };
        }
        if now >= pending.deadline {
            self.state.pending = None;
            self.read_only_failed_at = Some(now);
            let summary = format!(
                "failover stopped: read-only mode at {secondary_name} was not verified within {} s; DNS stays on {}",
                self.spec.prepare_timeout_ms / 1000,
                self.spec.sites[0].name
            );
            let actions = vec![Action::UndoReadOnly {
                site: Role::Secondary,
                attempt: pending.attempt,
            }];
            return self.decide(
                now,
                Event::FailoverAborted,
                summary,
                vec![pending.summary],
                actions,
            );
        }
        let summary = format!(
            "failover in progress (epoch {}): waiting for read-only mode at {secondary_name} to be verified",
            pending.epoch
        );
        self.decide(now, event, summary, reasons, Vec::new())
    }

    /// After a restart: `Some(Ok)` to resume, `Some(Err(why))` to roll
    /// back, `None` while the checks do not tell yet.
    fn resume_verdict(
        &self,
        pending: &Pending,
        now: u64,
        deadline: u64,
    ) -> Option<Result<(), String>> {
        let primary = self.site_health(Role::Primary);
        let secondary = self.site_health(Role::Secondary);
        if secondary == SiteHealth::Down {
            return Some(Err(self.describe_site(Role::Secondary)));
        }
        if pending.automatic {
            if primary == SiteHealth::Healthy {
                return Some(Err(format!(
                    "{}: the primary is healthy again",
                    self.describe_site(Role::Primary)
                )));
            }
            if self.state.paused {
                return Some(Err("automatic failover is paused".into()));
            }
        }
        let primary_ok = !pending.automatic || primary == SiteHealth::Down;
        let secondary_ok = secondary == SiteHealth::Healthy || pending.force;
        if primary_ok && secondary_ok {
            return Some(Ok(()));
        }
        (now >= deadline).then(|| {
            Err(format!(
                "the checks did not confirm it within {} s of the restart ({}; {})",
                self.spec.settle_ms / 1000,
                self.describe_site(Role::Primary),
                self.describe_site(Role::Secondary)
            ))
        })
    }

    /// Read-only mode was verified (traffic moves) or was not (it stays,
    /// unless the operator forced the failover, and what was set is undone).
    pub(super) fn read_only_result(
        &mut self,
        attempt: u64,
        result: Result<String, String>,
        now: u64,
    ) -> Decision {
        let awaited = !self.resuming
            && self
                .state
                .pending
                .as_ref()
                .is_some_and(|p| p.attempt == attempt);
        let Some(pending) = self.state.pending.take_if(|_| awaited) else {
            let summary = format!(
                "a read-only result for failover attempt {attempt}, which is not being prepared: ignored"
            );
            return self.decide(now, Event::Steady, summary, Vec::new(), Vec::new());
        };
        let epoch = pending.epoch;
        let secondary = self.site_health(Role::Secondary);
        let name = self.spec.sites[1].name.clone();
        let verdict = match (&result, secondary) {
            (_, health) if health != SiteHealth::Healthy && !pending.force => Err(format!(
                "{} while read-only mode was prepared",
                self.describe_site(Role::Secondary)
            )),
            (Ok(verified), _) => Ok(format!("read-only verified ({verified})")),
            (Err(why), _) if pending.force => Ok(format!(
                "read-only NOT verified ({why}), moved because the operator forced it"
            )),
            (Err(why), _) => Err(why.clone()),
        };
        match verdict {
            Ok(how) => {
                if pending.automatic {
                    self.state.cooldown_until = Some(now + self.spec.cooldown_ms);
                }
                let summary = format!("{}; {how}: answers now point at {name}", pending.summary);
                self.activate(
                    Role::Secondary,
                    Event::FailedOver {
                        automatic: pending.automatic,
                    },
                    summary,
                    vec![format!("read-only prepared for epoch {epoch}")],
                    now,
                )
            }
            Err(why) => {
                self.read_only_failed_at = Some(now);
                let summary = format!(
                    "failover stopped: read-only mode at {name} could not be verified ({why}); DNS stays on {}",
                    self.spec.sites[0].name
                );
                let actions = vec![Action::UndoReadOnly {
                    site: Role::Secondary,
                    attempt,
                }];
                self.decide(
                    now,
                    Event::FailoverAborted,
                    summary,
                    vec![pending.summary],
                    actions,
                )
            }
        }
    }

    pub(super) fn activate(
        &mut self,
        site: Role,
        event: Event,
        summary: String,
        reasons: Vec<String>,
        now: u64,
    ) -> Decision {
        self.state.active = site;
        self.state.epoch += 1;
        self.state.last_change = Some(summary.clone());
        let actions = vec![Action::Activate {
            site,
            epoch: self.state.epoch,
        }];
        self.decide(now, event, summary, reasons, actions)
    }
}
