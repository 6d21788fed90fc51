//! The rules: when the primary's outage leads to a failover and what
//! blocks one, and what each operator command does.

use super::{Action, Command, Decision, Engine, Event, READ_ONLY_RETRY_MS, Role, SiteHealth, utc};

impl Engine {
    /// The automatic rules, after health was updated.
    pub(super) fn evaluate(
        &mut self,
        now: u64,
        event: Event,
        mut reasons: Vec<String>,
    ) -> Decision {
        self.track_primary_down(now);
        let primary = self.site_health(Role::Primary);
        let secondary = self.site_health(Role::Secondary);
        self.blocked = None;
        if !self.deciding {
            let summary = "following the leader: this controller decides nothing".to_string();
            return self.decide(now, event, summary, reasons, Vec::new());
        }
        if let Some(pending) = self.state.pending.clone() {
            return self.evaluate_pending(pending, now, event, reasons);
        }
        let retry_at = self
            .read_only_failed_at
            .map(|at| at + READ_ONLY_RETRY_MS)
            .filter(|at| *at > now);
        let summary = match self.state.active {
            Role::Primary if primary == SiteHealth::Down => {
                let blocked = if self.state.paused {
                    Some("paused".to_string())
                } else if !self.spec.auto_failover {
                    Some("automatic failover is off".to_string())
                } else if let Some(until) = self.in_cooldown(now) {
                    Some(format!(
                        "in cooldown after the last automatic failover, until {}",
                        utc(until)
                    ))
                } else if secondary != SiteHealth::Healthy {
                    Some(format!(
                        "{}: keeping the current answer",
                        self.describe_site(Role::Secondary)
                    ))
                } else if let Some(at) = retry_at {
                    Some(format!(
                        "read-only mode at {} could not be verified; the next attempt is at {}",
                        self.spec.sites[1].name,
                        utc(at)
                    ))
                } else {
                    None
                };
                match blocked {
                    Some(why) => {
                        self.blocked = Some(why.clone());
                        format!("no failover: {}; {why}", self.describe_site(Role::Primary))
                    }
                    None => {
                        reasons.push(format!("primary: {}", self.describe_site(Role::Primary)));
                        reasons.push(format!(
                            "secondary: {}",
                            self.describe_site(Role::Secondary)
                        ));
                        let summary = format!(
                            "failover: {}; {}",
                            self.describe_site(Role::Primary),
                            self.describe_site(Role::Secondary),
                        );
                        return self.begin_failover(true, false, summary, reasons, now);
                    }
                }
            }
            Role::Primary => format!(
                "no action: answers point at {}; {}",
                self.spec.sites[0].name,
                self.describe_site(Role::Primary)
            ),
            Role::Secondary if self.spec.promotion.is_some() => {
                if let Some(decision) = self.evaluate_promotion(now, event, &mut reasons) {
                    return decision;
                }
                self.promotion_sentence(primary)
            }
            Role::Secondary if primary == SiteHealth::Healthy => format!(
                "no action: answers point at {}; {}: ready for fail-back",
                self.spec.sites[1].name,
                self.describe_site(Role::Primary)
            ),
            Role::Secondary => format!(
                "no action: answers point at {}; {}: not ready for fail-back",
                self.spec.sites[1].name,
                self.describe_site(Role::Primary)
            ),
        };
        let summary = if self.state.paused {
            format!("{summary} (paused)")
        } else {
            summary
        };
        self.decide(now, event, summary, reasons, Vec::new())
    }

    pub(super) fn command(&mut self, command: Command, actor: &str, now: u64) -> Decision {
        let reasons = vec![format!("command from {actor}")];
        match command {
            Command::Failover { reason, force } => {
                if self.state.pending.is_some() {
                    return self.refuse(
                        now,
                        "failover refused: a failover is already in progress",
                        reasons,
                    );
                }
                if self.state.active == Role::Secondary {
                    return self.refuse(
                        now,
                        "failover refused: traffic is already on the secondary",
                        reasons,
                    );
                }
                if self.site_health(Role::Secondary) != SiteHealth::Healthy {
                    let why = format!(
                        "failover refused: {} is not healthy",
                        self.describe_site(Role::Secondary)
                    );
                    return self.refuse(now, &why, reasons);
                }
                let forced = if force { ", forced" } else { "" };
                let summary = format!("failover by {actor} ({reason}{forced})");
                self.begin_failover(false, force, summary, reasons, now)
            }
            Command::Promote { primary_is_down } => {
                self.promote_command(primary_is_down, actor, reasons, now)
            }
            Command::HoldRejoin { hold } => self.hold_rejoin_command(hold, actor, reasons, now),
            Command::Failback if self.promotion().is_some() => {
                self.switchback_command(actor, reasons, now)
            }
            Command::Failback => {
                let failed: Vec<String> = self
                    .failback_prechecks(now)
                    .into_iter()
                    .filter(|p| !p.ok)
                    .map(|p| format!("{} failed: {}", p.name, p.detail))
                    .collect();
                if !failed.is_empty() {
                    let why = format!("fail-back refused: {}", failed.join("; "));
                    return self.refuse(now, &why, reasons);
                }
                let summary = format!(
                    "fail-back by {actor}: answers now point at {}",
                    self.spec.sites[0].name
                );
                // An operator's decision ends the cooldown and the wait
                // after a failed read-only attempt: the next outage is
                // acted on at once.
                self.state.cooldown_until = None;
                self.read_only_failed_at = None;
                let mut decision =
                    self.activate(Role::Primary, Event::FailedBack, summary, reasons, now);
                if self.spec.read_only {
                    decision.actions.push(Action::ClearAppFlag {
                        site: Role::Secondary,
                        epoch: decision.epoch,
                        not_before: now + self.spec.flag_clear_delay_ms,
                    });
                }
                decision
            }
            Command::Pause => {
                let (event, summary) = if self.state.paused {
                    (
                        Event::Steady,
                        format!("already paused; {actor} asked again"),
                    )
                } else {
                    (
                        Event::Paused,
                        format!("paused by {actor}: no automatic failover until resumed"),
                    )
                };
                self.state.paused = true;
                self.decide(now, event, summary, reasons, Vec::new())
            }
            Command::Resume => {
                let (event, summary) = if self.state.paused {
                    (
                        Event::Resumed,
                        format!("resumed by {actor}: automatic failover allowed"),
                    )
                } else {
                    (
                        Event::Steady,
                        format!("not paused; {actor} asked to resume"),
                    )
                };
                self.state.paused = false;
                let decision = self.decide(now, event, summary, reasons, Vec::new());
                // A primary already down is acted on now, not at its next check.
                if self.state.active == Role::Primary
                    && self.site_health(Role::Primary) == SiteHealth::Down
                {
                    let follow = self.evaluate(now, Event::Steady, Vec::new());
                    if !follow.actions.is_empty() {
                        return follow;
                    }
                }
                decision
            }
        }
    }
}
