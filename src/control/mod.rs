//! The shell around the engine: restores state before the first answer,
//! runs the probes, feeds their results, operator commands and the time to
//! the engine, and carries out the actions it orders (journal and store the
//! new state durably, then swap in the new answer table). It also answers
//! status requests for the page, the API and the CLI.

pub mod answers;
pub mod drill;
mod notify;
mod probes;
pub mod readonly;
pub mod status;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, info, warn};

use crate::{
    config::{Config, Failover},
    db::{self, Observed},
    dns::{ResponseCounters, SharedTable},
    engine::{Action, CheckId, Command, Decision, Engine, Event, Input, ReplicationView, Role},
    store::{
        DrillProgress, Journal, JournalEntry, LocalStore, NewEntry, ScheduledClear, Store,
        StoreError, StoredState, journal,
    },
    zone::Zone,
};
pub use notify::{Notification, Notifier};
pub use probes::spawn_probes;
use readonly::StepOutcome;
pub use status::Status;

/// How often the engine is given the time when nothing else happens.
const TICK: Duration = Duration::from_secs(1);

/// What the controller loop reacts to.
pub enum ControlEvent {
    /// A probe finished.
    Probe {
        id: CheckId,
        ok: bool,
        detail: String,
        latency: Duration,
    },
    /// An operator's command; the decision comes back.
    Command {
        command: Command,
        actor: String,
        reply: oneshot::Sender<Decision>,
    },
    /// A snapshot for the page, the API or the CLI.
    Status { reply: oneshot::Sender<Box<Status>> },
    /// Journal entries after a sequence number.
    Events {
        since: u64,
        reply: oneshot::Sender<Vec<JournalEntry>>,
    },
    /// New config and zones, fully loaded and checked.
    Reload {
        config: Box<Config>,
        zones: Vec<Zone>,
        done: oneshot::Sender<()>,
    },
    /// The replication watcher looked at both databases.
    Replication(Box<Observed>),
    /// Read-only mode for the failover of `epoch` was prepared, or not.
    ReadOnlyDone {
        epoch: u64,
        result: Result<String, String>,
        steps: Vec<StepOutcome>,
    },
    /// A scheduled application-flag clear is due.
    ClearDue { epoch: u64 },
    /// The application flag was cleared, or not.
    FlagCleared {
        epoch: u64,
        result: Result<String, String>,
        steps: Vec<StepOutcome>,
    },
    /// Start a drill (or, with `dry_run`, show its plan).
    DrillStart {
        request: drill::DrillRequest,
        dry_run: bool,
        reply: oneshot::Sender<DrillStartReply>,
    },
    /// Abort the running drill: it fails back at once. Answers whether one
    /// was running.
    DrillAbort {
        reason: String,
        reply: oneshot::Sender<bool>,
    },
    /// A drill reached a phase (stored, so a restart can finish it).
    DrillPhase {
        progress: Option<DrillProgress>,
        reply: oneshot::Sender<()>,
    },
    /// A drill ended with this report.
    DrillFinished(Box<drill::DrillReport>),
    /// The last drill's report.
    LastDrill {
        reply: oneshot::Sender<Option<drill::DrillReport>>,
    },
    /// Serve the failover records with this TTL (`None`: the configured).
    SetTtl {
        ttl: Option<u32>,
        reply: oneshot::Sender<()>,
    },
    /// Stop the loop.
    Shutdown,
}

/// The answer to a drill request.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DrillStartReply {
    /// The drill's id, when one started.
    pub id: Option<String>,
    /// Why it did not start.
    pub refused: Option<String>,
    pub prechecks: Vec<crate::engine::Precheck>,
    pub plan: Vec<drill::PlannedStep>,
}

/// The failover part of the controller: absent when the config has no
/// failover records.
struct Failing {
    config: Failover,
    engine: Engine,
    store: Box<dyn Store>,
    journal: Journal,
    /// The stored state is behind the engine's (a save failed).
    dirty: bool,
    /// The epoch whose failed save was last told (journal, webhook).
    unsaved_announced: Option<u64>,
    /// Each check's last probe time, by role then check.
    latencies: [Vec<Option<Duration>>; 2],
    failovers_total: u64,
    /// Whether "ready for fail-back" was last announced.
    ready_announced: bool,
    /// The webhooks heard of a stopped failover in this outage: retries
    /// (every 30 s) that stop the same way are not announced again.
    abort_announced: bool,
    /// The last replication observation, with its time.
    observed: Option<(u64, Observed)>,
    scheduled_clears: Vec<ScheduledClear>,
    ttl_override: Option<u32>,
    drill: Option<DrillProgress>,
    drill_abort: Option<watch::Sender<Option<String>>>,
    last_drill: Option<drill::DrillReport>,
    drill_config: crate::config::DrillConfig,
    state_dir: std::path::PathBuf,
}

pub struct Controller {
    failing: Option<Failing>,
    zones: Vec<Zone>,
    serials: BTreeMap<String, u32>,
    table: SharedTable,
    counters: Arc<ResponseCounters>,
    notifier: Notifier,
    /// The controller's own inbox, for work done in the background.
    outbox: Option<mpsc::Sender<ControlEvent>>,
    /// Each configured DNS address and the address actually bound.
    dns_addresses: Vec<(std::net::SocketAddr, std::net::SocketAddr)>,
}

/// How long one read-only step may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// Milliseconds since 1970 by the wall clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn event_word(event: Event) -> &'static str {
    match event {
        Event::Steady => "steady",
        Event::HealthChanged => "health_changed",
        Event::FailoverStarted { .. } => "failover_started",
        Event::FailoverAborted => "failover_aborted",
        Event::FailedOver { automatic: true } => "failed_over",
        Event::FailedOver { automatic: false } => "switched_over",
        Event::FailedBack => "failed_back",
        Event::Paused => "paused",
        Event::Resumed => "resumed",
        Event::Refused => "refused",
    }
}

impl Controller {
    /// Restores the stored state and builds the first answer table from it:
    /// nothing is answered before this, and a restart never moves traffic.
    pub fn start(config: &Config, zones: Vec<Zone>) -> Result<Self, StoreError> {
        let mut stored_serials = BTreeMap::new();
        let failing = match &config.failover {
            Some(failover) => {
                let store: Box<dyn Store> = Box::new(LocalStore::new(&config.state_dir));
                let stored = store.load()?;
                let restored = stored.is_some();
                let stored = stored.unwrap_or_default();
                let engine = Engine::new(failover.engine_spec(), stored.engine.clone());
                let journal = Journal::open(&config.state_dir, journal::DEFAULT_LIMIT)?;
                info!(
                    active = %engine.persisted().active,
                    epoch = engine.persisted().epoch,
                    state = %config.state_dir.display(),
                    "{}",
                    if restored { "state restored" } else { "no stored state: starting on the primary" }
                );
                stored_serials = stored.serials;
                let scheduled_clears = stored.scheduled_clears;
                let (ttl_override, drill_progress) = (stored.ttl_override, stored.drill);
                let latencies = [
                    vec![None; failover.sites[0].checks.len()],
                    vec![None; failover.sites[1].checks.len()],
                ];
                Some(Failing {
                    config: failover.clone(),
                    engine,
                    store,
                    journal,
                    dirty: false,
                    latencies,
                    failovers_total: 0,
                    ready_announced: false,
                    abort_announced: false,
                    unsaved_announced: None,
                    observed: None,
                    scheduled_clears,
                    ttl_override,
                    drill: drill_progress,
                    drill_abort: None,
                    last_drill: drill::last(&config.state_dir),
                    drill_config: config.drill.clone(),
                    state_dir: config.state_dir.clone(),
                })
            }
            None => None,
        };
        let serials = answers::serials(&zones, &stored_serials);
        let controller = Self {
            failing,
            zones,
            serials,
            table: SharedTable::default(),
            counters: Arc::default(),
            notifier: Notifier::new(config.webhooks.clone()),
            outbox: None,
            dns_addresses: Vec::new(),
        };
        controller.publish();
        // Store at once: a state directory that cannot be written is found
        // now, not at the first failover.
        if let Some(failing) = &controller.failing {
            failing.store.save(&controller.stored_state(failing))?;
        }
        Ok(controller)
    }

    /// The table the DNS side reads.
    pub fn table(&self) -> SharedTable {
        self.table.clone()
    }

    /// The DNS side's response counters.
    pub fn counters(&self) -> Arc<ResponseCounters> {
        self.counters.clone()
    }

    pub fn failover(&self) -> Option<&Failover> {
        self.failing.as_ref().map(|f| &f.config)
    }

    pub fn engine(&self) -> Option<&Engine> {
        self.failing.as_ref().map(|f| &f.engine)
    }

    fn stored_state(&self, failing: &Failing) -> StoredState {
        StoredState {
            engine: failing.engine.persisted().clone(),
            serials: self.serials.clone(),
            scheduled_clears: failing.scheduled_clears.clone(),
            ttl_override: failing.ttl_override,
            drill: failing.drill.clone(),
        }
    }

    /// Builds the table for the current active site and serials, swaps it in.
    fn publish(&self) {
        let records = match &self.failing {
            Some(f) => {
                answers::failover_records(&f.config, f.engine.persisted().active, f.ttl_override)
            }
            None => Vec::new(),
        };
        let table = answers::build(&self.zones, &records, &self.serials);
        self.table.store(Arc::new(crate::dns::Served::new(table)));
    }

    /// Writes a journal entry; a journal that cannot be written is logged,
    /// and the decision stands.
    fn journal(&mut self, entry: NewEntry) {
        if let Some(failing) = &mut self.failing
            && let Err(e) = failing.journal.append(entry)
        {
            error!("{e}");
        }
    }

    /// Feeds one input to the engine and carries out what it decides.
    pub fn step(&mut self, input: Input, now: u64) -> Option<Decision> {
        let actor = match &input {
            Input::Command { actor, .. } => actor.clone(),
            Input::Check { .. } | Input::Replication(_) | Input::ReadOnly { .. } | Input::Tick => {
                "engine".to_string()
            }
        };
        let is_command = matches!(input, Input::Command { .. });
        let failing = self.failing.as_mut()?;
        let decision = failing.engine.step(input, now);
        if decision.notable {
            info!(
                event = ?decision.event,
                epoch = decision.epoch,
                reasons = ?decision.reasons,
                "{}",
                decision.summary
            );
            let outcome = if decision.event == Event::Refused {
                "refused"
            } else {
                "ok"
            };
            self.journal(NewEntry {
                at: now,
                epoch: decision.epoch,
                actor: actor.clone(),
                kind: if is_command { "command" } else { "decision" },
                event: event_word(decision.event).into(),
                summary: decision.summary.clone(),
                reasons: decision.reasons.clone(),
                outcome: outcome.into(),
            });
        }
        let failing = self.failing.as_mut()?;
        if is_command
            || failing.engine.site_health(Role::Primary) != crate::engine::SiteHealth::Down
            || failing.engine.persisted().active != Role::Primary
        {
            failing.abort_announced = false;
        }
        if decision.event == Event::FailoverAborted && !failing.abort_announced {
            // The primary is down and traffic could not move: the operator
            // must hear of it, once per outage.
            failing.abort_announced = true;
            let active = Some(failing.config.site(Role::Primary).name.clone());
            self.notifier.send(Notification::new(
                "action_failed",
                decision.epoch,
                active,
                decision.summary.clone(),
                now,
            ));
        }
        for action in &decision.actions {
            match action {
                Action::PrepareReadOnly { site, epoch } => {
                    self.prepare_read_only(*site, *epoch, &actor, now)
                }
                Action::Activate { site, epoch } => {
                    self.activate(*site, *epoch, &decision, &actor, now)
                }
                Action::ClearAppFlag {
                    site: _,
                    epoch,
                    not_before,
                } => self.schedule_clear(*epoch, *not_before),
            }
        }
        if decision.notable || self.failing.as_ref().is_some_and(|f| f.dirty) {
            self.save(now);
        }
        self.announce_readiness(now);
        Some(decision)
    }

    /// Points the failover records at `site`: the new state is journalled
    /// and stored first, then the new table swapped in.
    fn activate(&mut self, site: Role, epoch: u64, decision: &Decision, actor: &str, now: u64) {
        let Some(failing) = &mut self.failing else {
            return;
        };
        if site == Role::Secondary {
            failing.failovers_total += 1;
        }
        let name = failing.config.site(site).name.clone();
        let serials = answers::bump(&self.serials, &self.zones, &failing.config);
        self.serials = serials;
        self.save(now);
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

    /// Starts putting `site` into read-only mode in the background; the
    /// outcome comes back as `ControlEvent::ReadOnlyDone`.
    fn prepare_read_only(&mut self, site: Role, epoch: u64, actor: &str, now: u64) {
        let (Some(failing), Some(outbox)) = (&self.failing, self.outbox.clone()) else {
            return;
        };
        let target = failing.config.site(site).clone();
        self.journal(NewEntry {
            at: now,
            epoch,
            actor: actor.to_string(),
            kind: "action",
            event: "read_only_started".into(),
            summary: format!("putting {} into read-only mode", target.name),
            reasons: Vec::new(),
            outcome: "ok".into(),
        });
        tokio::spawn(async move {
            let (result, steps) = readonly::prepare(&target, STEP_TIMEOUT).await;
            let _ = outbox
                .send(ControlEvent::ReadOnlyDone {
                    epoch,
                    result,
                    steps,
                })
                .await;
        });
    }

    /// Journals each read-only step, then tells the engine.
    fn read_only_done(
        &mut self,
        epoch: u64,
        result: Result<String, String>,
        steps: Vec<StepOutcome>,
    ) {
        self.journal_steps(epoch, &steps);
        self.step(Input::ReadOnly { epoch, result }, now_ms());
    }

    fn journal_steps(&mut self, epoch: u64, steps: &[StepOutcome]) {
        for step in steps {
            self.journal(NewEntry {
                at: step.at,
                epoch,
                actor: "engine".into(),
                kind: "action",
                event: step.step.replace(' ', "_").to_lowercase(),
                summary: step.detail.clone(),
                reasons: Vec::new(),
                outcome: if step.ok {
                    "ok".into()
                } else {
                    format!("failed: {}", step.detail)
                },
            });
            if step.ok {
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

    fn arm(&self, clear: ScheduledClear) {
        let Some(outbox) = self.outbox.clone() else {
            return;
        };
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
    fn clear_due(&mut self, epoch: u64) {
        let (Some(failing), Some(outbox)) = (&mut self.failing, &self.outbox) else {
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
        let outbox = outbox.clone();
        tokio::spawn(async move {
            let (result, steps) = readonly::clear_flag(&site, STEP_TIMEOUT).await;
            let _ = outbox
                .send(ControlEvent::FlagCleared {
                    epoch,
                    result,
                    steps,
                })
                .await;
        });
    }

    fn flag_cleared(
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

    /// Feeds a replication observation to the engine.
    fn replication(&mut self, observed: Observed) {
        let now = now_ms();
        let view = view_of(&observed);
        if let Some(failing) = &mut self.failing {
            failing.observed = Some((now, observed));
        }
        self.step(Input::Replication(view), now);
    }

    /// Tells the controller which addresses DNS is bound to, for drills.
    pub fn set_dns_addresses(
        &mut self,
        addresses: Vec<(std::net::SocketAddr, std::net::SocketAddr)>,
    ) {
        self.dns_addresses = addresses;
    }

    /// The nameservers a drill verifies: the configured list (a listen
    /// address stands for where it is actually bound), or the zones' NS
    /// records at port 53.
    fn drill_nameservers(&self, failing: &Failing) -> Vec<std::net::SocketAddr> {
        use hickory_proto::rr::{LowerName, RData, RecordType};
        let actual = |addr: std::net::SocketAddr| {
            self.dns_addresses
                .iter()
                .find(|(configured, _)| *configured == addr)
                .map_or(addr, |(_, bound)| *bound)
        };
        if !failing.drill_config.nameservers.is_empty() {
            return failing
                .drill_config
                .nameservers
                .iter()
                .map(|a| actual(*a))
                .collect();
        }
        let table = self.table.load();
        let mut servers = Vec::new();
        for zone in &self.zones {
            let origin = LowerName::new(&zone.origin);
            let holds = failing
                .config
                .records
                .iter()
                .any(|r| origin.zone_of(&LowerName::new(&r.name)));
            if !holds {
                continue;
            }
            for record in zone.records.iter().filter(|r| r.name == zone.origin) {
                let RData::NS(ns) = &record.data else {
                    continue;
                };
                for rtype in [RecordType::A, RecordType::AAAA] {
                    for answer in table.table.resolve(&ns.0, rtype).answer {
                        let ip = match answer.data {
                            RData::A(a) => std::net::IpAddr::V4(a.0),
                            RData::AAAA(a) => std::net::IpAddr::V6(a.0),
                            _ => continue,
                        };
                        let addr = std::net::SocketAddr::new(ip, 53);
                        if !servers.contains(&addr) {
                            servers.push(addr);
                        }
                    }
                }
            }
        }
        servers
    }

    /// Starts a drill, or refuses with the reason, or (dry run) returns the
    /// plan and the pre-checks as they stand.
    fn drill_start(
        &mut self,
        request: drill::DrillRequest,
        dry_run: bool,
        now: u64,
    ) -> DrillStartReply {
        use crate::engine::{Precheck, SiteHealth};
        let Some(failing) = &self.failing else {
            return DrillStartReply {
                id: None,
                refused: Some("drill refused: the configuration has no failover section".into()),
                prechecks: Vec::new(),
                plan: Vec::new(),
            };
        };
        let engine = &failing.engine;
        let persisted = engine.persisted();
        let nameservers = self.drill_nameservers(failing);
        let secondary_health = engine.site_health(Role::Secondary);
        let cooldown = engine.in_cooldown(now);
        let prechecks = vec![
            Precheck {
                name: "not paused".into(),
                ok: !persisted.paused,
                detail: if persisted.paused {
                    "paused".into()
                } else {
                    "automatic actions on".into()
                },
            },
            Precheck {
                name: "no cooldown".into(),
                ok: cooldown.is_none(),
                detail: cooldown.map_or("none".into(), |until| {
                    format!("cooldown until {}", crate::engine::utc(until))
                }),
            },
            Precheck {
                name: "traffic on the primary".into(),
                ok: persisted.active == Role::Primary && engine.pending().is_none(),
                detail: format!(
                    "answers point at {}",
                    failing.config.site(persisted.active).name
                ),
            },
            Precheck {
                name: "secondary healthy".into(),
                ok: secondary_health == SiteHealth::Healthy,
                detail: format!("{} is {:?}", failing.config.sites[1].name, secondary_health)
                    .to_lowercase(),
            },
            Precheck {
                name: "no drill running".into(),
                ok: failing.drill.is_none(),
                detail: failing
                    .drill
                    .as_ref()
                    .map_or("none".into(), |d| format!("drill {} is {}", d.id, d.phase)),
            },
            Precheck {
                name: "nameservers to verify".into(),
                ok: !nameservers.is_empty(),
                detail: nameservers
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            },
        ];
        let Some(ctx) = self.drill_context(nameservers) else {
            return DrillStartReply {
                id: None,
                refused: Some("drill refused: the controller is not running".into()),
                prechecks,
                plan: Vec::new(),
            };
        };
        let plan = drill::plan(&ctx, &request);
        let failed: Vec<String> = prechecks
            .iter()
            .filter(|p| !p.ok)
            .map(|p| format!("{}: {}", p.name, p.detail))
            .collect();
        if dry_run || !failed.is_empty() {
            return DrillStartReply {
                id: None,
                refused: (!failed.is_empty())
                    .then(|| format!("drill refused: {}", failed.join("; "))),
                prechecks,
                plan,
            };
        }
        let id = crate::engine::utc(now);
        self.spawn_drill(ctx, request, id.clone(), false);
        DrillStartReply {
            id: Some(id),
            refused: None,
            prechecks,
            plan,
        }
    }

    fn drill_context(&self, nameservers: Vec<std::net::SocketAddr>) -> Option<drill::DrillContext> {
        let failing = self.failing.as_ref()?;
        let outbox = self.outbox.clone()?;
        let own_dns = self.dns_addresses.first().map(|(_, bound)| *bound)?;
        let (_, abort) = watch::channel(None);
        Some(drill::DrillContext {
            outbox,
            nameservers,
            own_dns,
            records: failing.config.records.clone(),
            primary_addresses: failing.config.sites[0].addresses.clone(),
            secondary_addresses: failing.config.sites[1].addresses.clone(),
            secondary: failing.config.sites[1].clone(),
            timeout: failing.drill_config.timeout,
            abort,
        })
    }

    fn spawn_drill(
        &mut self,
        mut ctx: drill::DrillContext,
        request: drill::DrillRequest,
        id: String,
        resume: bool,
    ) {
        let (abort_tx, abort_rx) = watch::channel(None);
        ctx.abort = abort_rx;
        let zones: Vec<(String, hickory_proto::rr::Name)> = self
            .zones
            .iter()
            .map(|z| (z.origin.to_string(), z.origin.clone()))
            .collect();
        if let Some(failing) = &mut self.failing {
            failing.drill_abort = Some(abort_tx);
            let started = failing.drill.as_ref().map_or(now_ms(), |d| d.started);
            failing.drill = Some(DrillProgress {
                id: id.clone(),
                started,
                phase: "starting".into(),
            });
        }
        self.save(now_ms());
        info!(drill = %id, resume, "drill started by {}", request.operator);
        let outbox = ctx.outbox.clone();
        tokio::spawn(async move {
            let report = drill::run(ctx, request, id, resume, zones).await;
            let _ = outbox
                .send(ControlEvent::DrillFinished(Box::new(report)))
                .await;
        });
    }

    fn drill_finished(&mut self, report: drill::DrillReport) {
        let now = now_ms();
        let Some(failing) = &mut self.failing else {
            return;
        };
        failing.drill = None;
        failing.drill_abort = None;
        let saved = drill::save(&failing.state_dir, &report);
        let summary = format!(
            "drill {} {}{} in {:.1} s",
            report.id,
            report.result,
            report
                .reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
            report.timings.total_ms as f64 / 1000.0
        );
        match &saved {
            Ok(path) => info!(report = %path.display(), "{summary}"),
            Err(e) => error!("{summary}; the report could not be kept: {e}"),
        }
        failing.last_drill = Some(report.clone());
        let epoch = failing.engine.persisted().epoch;
        self.journal(NewEntry {
            at: now,
            epoch,
            actor: report.operator.clone(),
            kind: "action",
            event: "drill_finished".into(),
            summary,
            reasons: report
                .steps
                .iter()
                .map(|s| format!("{}: {}", s.name, s.detail))
                .collect(),
            outcome: if report.result == "pass" {
                "ok".into()
            } else {
                format!("failed: {}", report.result)
            },
        });
        self.save(now);
    }

    /// Tells the webhooks once each time the primary becomes ready for
    /// fail-back.
    fn announce_readiness(&mut self, now: u64) {
        let Some(failing) = &mut self.failing else {
            return;
        };
        let ready = failing.engine.ready_for_failback();
        if ready && !failing.ready_announced {
            let epoch = failing.engine.persisted().epoch;
            let summary = format!(
                "{} is healthy again: ready for fail-back",
                failing.config.sites[0].name
            );
            self.notifier.send(Notification::new(
                "ready_for_failback",
                epoch,
                Some(failing.config.sites[1].name.clone()),
                summary,
                now,
            ));
        }
        failing.ready_announced = ready;
    }

    fn save(&mut self, now: u64) {
        let Some(failing) = &self.failing else {
            return;
        };
        let state = self.stored_state(failing);
        let result = failing.store.save(&state);
        let failure = result.err().map(|e| e.to_string());
        let epoch = state.engine.epoch;
        // Told once per failing spell and epoch, not at every retry; a new
        // decision (another epoch) that cannot be stored is told again.
        let announced = failing.unsaved_announced;
        if let Some(failing) = &mut self.failing {
            failing.dirty = failure.is_some();
            failing.unsaved_announced = failure.as_ref().map(|_| epoch);
        }
        match failure {
            Some(why) if announced == Some(epoch) => {
                debug!("still cannot store the state: {why}");
            }
            Some(why) => {
                // Answers still follow the decision; the save is retried
                // at every step until it succeeds.
                error!("{why}");
                self.journal(NewEntry {
                    at: now,
                    epoch,
                    actor: "engine".into(),
                    kind: "action",
                    event: "state_not_saved".into(),
                    summary: "the state could not be stored".into(),
                    reasons: vec![why.clone()],
                    outcome: format!("failed: {why}"),
                });
                self.notifier.send(Notification::new(
                    "action_failed",
                    epoch,
                    None,
                    format!("the state could not be stored: {why}"),
                    now,
                ));
            }
            None if announced.is_some() => {
                info!(epoch, "the state is stored again");
                self.journal(NewEntry {
                    at: now,
                    epoch,
                    actor: "engine".into(),
                    kind: "action",
                    event: "state_saved".into(),
                    summary: "the state is stored again".into(),
                    reasons: Vec::new(),
                    outcome: "ok".into(),
                });
            }
            None => {}
        }
    }

    /// An operator's command; refused outright when there is no failover.
    pub fn command(&mut self, command: Command, actor: String, now: u64) -> Decision {
        match self.step(Input::Command { command, actor }, now) {
            Some(decision) => decision,
            None => Decision {
                at: now,
                epoch: 0,
                event: Event::Refused,
                summary: "refused: the configuration has no failover section".into(),
                reasons: Vec::new(),
                actions: Vec::new(),
                notable: true,
            },
        }
    }

    /// Records a probe's result.
    pub fn probe(&mut self, id: CheckId, ok: bool, detail: String, latency: Duration, now: u64) {
        if let Some(failing) = &mut self.failing
            && let Some(slot) =
                failing.latencies[usize::from(id.site == Role::Secondary)].get_mut(id.index)
        {
            *slot = Some(latency);
        }
        self.step(
            Input::Check {
                id,
                ok,
                detail: Some(detail),
            },
            now,
        );
    }

    pub fn events(&self, since: u64) -> Vec<JournalEntry> {
        self.failing
            .as_ref()
            .map(|f| f.journal.since(since, 1000))
            .unwrap_or_default()
    }

    /// A snapshot of everything the status shows.
    pub fn status(&self, now: u64) -> Status {
        use status::{CheckStatus, DnsStatus, RecordStatus, SiteStatus, kind_and_target, time_of};
        let table = self.table.load();
        let records = match &self.failing {
            Some(f) => {
                let active = f.engine.persisted().active;
                let site = f.config.site(active);
                f.config
                    .records
                    .iter()
                    .zip(&site.addresses)
                    .map(|(r, addresses)| RecordStatus {
                        name: r.name.to_string(),
                        rtype: r.rtype.to_string(),
                        ttl: f.ttl_override.unwrap_or(r.ttl),
                        answer: addresses.iter().map(ToString::to_string).collect(),
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        let dns = DnsStatus {
            serials: table
                .table
                .summary()
                .into_iter()
                .map(|(z, s)| (z.to_string(), s))
                .collect(),
            records,
            responses: self.counters.snapshot(),
        };
        let Some(f) = &self.failing else {
            return Status {
                time: crate::engine::utc(now),
                failover_configured: false,
                active: None,
                active_role: None,
                epoch: 0,
                paused: false,
                auto_failover: false,
                cooldown_until: None,
                last_decision: None,
                active_because: None,
                ready_for_failback: false,
                failback_prechecks: Vec::new(),
                pending_failover: None,
                drill: None,
                last_drill: None,
                replication: None,
                flag_clears: Vec::new(),
                failovers_total: 0,
                sites: Vec::new(),
                dns,
                recent_events: Vec::new(),
            };
        };
        let persisted = f.engine.persisted();
        let sites = Role::BOTH
            .iter()
            .enumerate()
            .map(|(i, &role)| {
                let site = f.config.site(role);
                let checks = site
                    .checks
                    .iter()
                    .zip(f.engine.checks(role))
                    .zip(&f.latencies[i])
                    .map(|((check, health), latency)| {
                        let (kind, target) = kind_and_target(&check.kind);
                        CheckStatus {
                            name: check.name.clone(),
                            kind,
                            target,
                            state: health.state,
                            last_ok: health.last_ok,
                            last_detail: health.last_detail.clone(),
                            latency_ms: latency.map(|l| l.as_secs_f64() * 1000.0),
                            since: time_of(health.since),
                            interval_ms: check.interval.as_millis() as u64,
                            fall: check.fall,
                            rise: check.rise,
                        }
                    })
                    .collect();
                SiteStatus {
                    name: site.name.clone(),
                    role,
                    active: persisted.active == role,
                    health: f.engine.site_health(role),
                    down_when: site.down_rule.describe(),
                    checks,
                }
            })
            .collect();
        Status {
            time: crate::engine::utc(now),
            failover_configured: true,
            active: Some(f.config.site(persisted.active).name.clone()),
            active_role: Some(persisted.active),
            epoch: persisted.epoch,
            paused: persisted.paused,
            auto_failover: f.config.auto,
            cooldown_until: f.engine.in_cooldown(now).map(crate::engine::utc),
            last_decision: persisted.last_decision.clone(),
            active_because: persisted.last_change.clone(),
            ready_for_failback: f.engine.ready_for_failback(),
            failback_prechecks: f.engine.failback_prechecks(now),
            pending_failover: f
                .engine
                .pending()
                .map(|p| format!("epoch {}: {}", p.epoch, p.summary)),
            drill: f
                .drill
                .as_ref()
                .map(|d| format!("drill {} ({})", d.id, d.phase)),
            last_drill: f.last_drill.as_ref().map(status::DrillSummary::from),
            replication: f
                .observed
                .as_ref()
                .map(|(at, seen)| status::ReplicationStatus::from_observed(*at, seen)),
            flag_clears: f
                .scheduled_clears
                .iter()
                .map(|c| crate::engine::utc(c.not_before))
                .collect(),
            failovers_total: f.failovers_total,
            sites,
            dns,
            recent_events: f.journal.latest(20),
        }
    }

    /// Takes new zones (and the zone part of a new config) after a reload.
    pub fn reload(&mut self, config: &Config, zones: Vec<Zone>) {
        let changed = match (&self.failing, &config.failover) {
            (Some(f), Some(new)) => f.config != *new,
            (None, None) => false,
            _ => true,
        };
        if changed {
            warn!("failover settings changed: they take effect at the next restart");
        }
        self.zones = zones;
        let stored = self.serials.clone();
        self.serials = answers::serials(&self.zones, &stored);
        self.publish();
        if self.failing.is_some() {
            self.save(now_ms());
        }
    }
}

/// The engine's view of one replication observation.
pub(crate) fn view_of(observed: &Observed) -> ReplicationView {
    let replica = observed.replica.as_ref();
    ReplicationView {
        primary_error: observed.primary_error.clone(),
        secondary_error: observed.secondary_error.clone(),
        io_running: replica.map(|r| r.io_running),
        sql_running: replica.map(|r| r.sql_running),
        lag_s: replica.and_then(|r| r.lag),
        last_io_error: replica.map(|r| r.last_io_error.clone()).unwrap_or_default(),
        last_sql_error: replica
            .map(|r| r.last_sql_error.clone())
            .unwrap_or_default(),
        missing: observed.missing,
        errant: observed.errant.clone(),
    }
}

/// Watches replication between the two sites' databases, when both have
/// one, sending what it sees to the controller every interval.
fn spawn_replication_watch(failover: &Failover, outbox: mpsc::Sender<ControlEvent>) {
    let (Some(primary), Some(secondary)) =
        (&failover.sites[0].database, &failover.sites[1].database)
    else {
        return;
    };
    let (primary, secondary) = (primary.target.clone(), secondary.target.clone());
    let settings = failover.replication.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(settings.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let seen = db::observe(&primary, &secondary, settings.timeout).await;
            if outbox
                .send(ControlEvent::Replication(Box::new(seen)))
                .await
                .is_err()
            {
                return;
            }
        }
    });
}

/// The controller loop: probe results, commands, status requests, reloads,
/// background work and the clock, until `Shutdown`. `outbox`
/// is a sender to `events`, for the controller's own background work.
pub async fn run(
    mut controller: Controller,
    outbox: mpsc::Sender<ControlEvent>,
    mut events: mpsc::Receiver<ControlEvent>,
) {
    controller.outbox = Some(outbox.clone());
    if let Some(failing) = &controller.failing {
        spawn_replication_watch(&failing.config, outbox);
        for clear in failing.scheduled_clears.clone() {
            controller.arm(clear);
        }
    }
    // A drill a restart interrupted: finish its fail-back.
    let interrupted = controller.failing.as_ref().and_then(|f| f.drill.clone());
    if let Some(progress) = interrupted {
        let nameservers = controller
            .failing
            .as_ref()
            .map(|f| controller.drill_nameservers(f))
            .unwrap_or_default();
        if let Some(ctx) = controller.drill_context(nameservers) {
            let hold = controller
                .failing
                .as_ref()
                .map(|f| f.drill_config.hold)
                .unwrap_or_default();
            let request = drill::DrillRequest {
                hold,
                lower_ttl: None,
                operator: "engine".into(),
            };
            warn!(drill = %progress.id, phase = %progress.phase, "a drill was under way when the controller stopped: finishing its fail-back");
            controller.spawn_drill(ctx, request, progress.id, true);
        }
    }

    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(ControlEvent::Probe { id, ok, detail, latency }) => {
                    controller.probe(id, ok, detail, latency, now_ms());
                }
                Some(ControlEvent::Command { command, actor, reply }) => {
                    let _ = reply.send(controller.command(command, actor, now_ms()));
                }
                Some(ControlEvent::Status { reply }) => {
                    let _ = reply.send(Box::new(controller.status(now_ms())));
                }
                Some(ControlEvent::Events { since, reply }) => {
                    let _ = reply.send(controller.events(since));
                }
                Some(ControlEvent::Reload { config, zones, done }) => {
                    controller.reload(&config, zones);
                    let _ = done.send(());
                }
                Some(ControlEvent::Replication(seen)) => controller.replication(*seen),
                Some(ControlEvent::ReadOnlyDone { epoch, result, steps }) => {
                    controller.read_only_done(epoch, result, steps);
                }
                Some(ControlEvent::ClearDue { epoch }) => controller.clear_due(epoch),
                Some(ControlEvent::FlagCleared { epoch, result, steps }) => {
                    controller.flag_cleared(epoch, result, steps);
                }
                                Some(ControlEvent::DrillStart { request, dry_run, reply }) => {
                    let _ = reply.send(controller.drill_start(request, dry_run, now_ms()));
                }
                Some(ControlEvent::DrillAbort { reason, reply }) => {
                    let abort = controller.failing.as_ref().and_then(|f| f.drill_abort.clone());
                    if let Some(abort) = &abort {
                        info!("drill aborted: {reason}");
                        let _ = abort.send(Some(reason));
                    }
                    let _ = reply.send(abort.is_some());
                }
                Some(ControlEvent::DrillPhase { progress, reply }) => {
                    if let Some(failing) = &mut controller.failing {
                        failing.drill = progress.or_else(|| failing.drill.clone());
                    }
                    controller.save(now_ms());
                    let _ = reply.send(());
                }
                Some(ControlEvent::DrillFinished(report)) => controller.drill_finished(*report),
                Some(ControlEvent::LastDrill { reply }) => {
                    let _ = reply.send(controller.failing.as_ref().and_then(|f| f.last_drill.clone()));
                }
                Some(ControlEvent::SetTtl { ttl, reply }) => {
                    if let Some(failing) = &mut controller.failing {
                        failing.ttl_override = ttl;
                    }
                    controller.save(now_ms());
                    controller.publish();
                    let _ = reply.send(());
                }
                Some(ControlEvent::Shutdown) | None => break,

            },
            _ = tick.tick() => {
                controller.step(Input::Tick, now_ms());
            }
        }
    }
}
