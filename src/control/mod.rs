//! The shell around the engine. Its files are named after the part they
//! play:
//!
//! - what every controller does: `tasks` (the probes, the replication
//!   watcher and the readiness checks in the background), `answers`
//!   (the answer table DNS serves for the decided state), `status`;
//! - what the deciding controller does: `decide` (feed the engine, journal
//!   its decisions), `act` (carry out its actions: read-only steps from
//!   `steps`, activation, flag clears), `persist` (store the state before
//!   anything is done on it), `announce` (webhooks, each once per
//!   occasion), `readiness`, `reload`, `drill`.
//!
//! `run` is the loop: one event at a time from the controller's inbox,
//! with the clock's ticks in between.

mod act;
mod announce;
pub mod answers;
pub mod clock;
pub mod cluster;
mod decide;
pub mod drill;
mod notify;
mod persist;
mod preparation;
mod probes;
mod promotion;
pub mod readiness;
pub mod reconcile;
mod reload;
mod self_fence;
pub mod serials;
pub mod status;
pub mod steps;
mod tasks;
pub mod timeline;

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn};

use crate::{
    config::{Config, DrillConfig, Failover, ReadOnlyStep},
    db::Observed,
    dns::{ResponseCounters, SharedTable},
    engine::{CheckId, Command, Decision, Engine, Input},
    store::{
        DrillProgress, Journal, JournalEntry, LocalStore, ReadOnlyProgress, ScheduledClear, Store,
        StoreError, journal, shared::Leadership,
    },
    zone::Zone,
};
pub use clock::now_ms;
pub use notify::{Notification, Notifier};
pub use status::Status;
pub use steps::{StepOutcome, StepReport};

/// How often the engine is given the time when nothing else happens.
const TICK: Duration = Duration::from_secs(1);
/// Drill reports the status lists.
const DRILL_HISTORY: usize = 10;

/// What the controller loop reacts to.
pub enum ControlEvent {
    /// A probe finished; `generation` tells which start of the probes it
    /// belongs to (a reload starts new ones).
    Probe {
        generation: u64,
        id: CheckId,
        ok: bool,
        detail: String,
        latency: Duration,
    },
    /// An operator's command; the decision comes back, or why it could
    /// not be carried out (its new state could not be stored).
    Command {
        command: Command,
        actor: String,
        reply: oneshot::Sender<Result<Decision, String>>,
    },
    /// A snapshot for the page, the API or the CLI.
    Status { reply: oneshot::Sender<Box<Status>> },
    /// Journal entries after a sequence number.
    Events {
        since: u64,
        reply: oneshot::Sender<Vec<JournalEntry>>,
    },
    /// New config and zones, fully loaded and checked: applied together,
    /// or refused with the reason and nothing changed.
    Reload {
        config: Box<Config>,
        zones: Vec<Zone>,
        /// Built from `zones` off the control loop (`answers::base`).
        base: Arc<crate::dns::Base>,
        /// What changed in the zone files, found off the control loop.
        changes: crate::dns::transfer::StaticChanges,
        done: oneshot::Sender<Result<Vec<String>, String>>,
    },
    /// The replication watcher looked at both databases, in a round that
    /// began at `at`.
    Replication { seen: Box<Observed>, at: u64 },
    /// A read-only step of the failover of `epoch` is about to run, ran,
    /// or was read back; the reply comes once that is stored, and says
    /// whether to go on (not when the failover was given up meanwhile).
    Plan {
        attempt: u64,
        event: PlanEvent,
        reply: oneshot::Sender<bool>,
    },
    /// Read-only mode for failover `attempt` was prepared, or not; the
    /// last word of its preparation, also when it was told to stop.
    ReadOnlyDone {
        attempt: u64,
        result: Result<String, String>,
    },
    /// The steps a stopped attempt had set were undone, or not.
    Undone {
        attempt: u64,
        outcomes: Vec<(ReadOnlyStep, StepOutcome)>,
    },
    /// A failed undo is due to be tried again.
    UndoRetry { attempt: u64 },
    /// Promotion `attempt`'s steps ended.
    PromotionDone {
        epoch: u64,
        attempt: u64,
        result: Result<String, crate::engine::PromotionFailure>,
        journal: Vec<StepOutcome>,
    },
    /// Switchover `attempt` back to the primary ended.
    SwitchBackDone {
        epoch: u64,
        attempt: u64,
        result: Result<String, crate::engine::PromotionFailure>,
        journal: Vec<StepOutcome>,
    },
    /// The primary's database was fenced by its heartbeat event (at this
    /// time, as the server read it).
    HeartbeatFenced { at: String },
    /// This node's self-fence (or its lifting) ended.
    SelfFence {
        lift: bool,
        result: Result<String, String>,
        journal: Vec<StepOutcome>,
    },
    /// Rejoining the old primary ended.
    RejoinDone {
        epoch: u64,
        attempt: u64,
        outcome: crate::engine::RejoinOutcome,
    },
    /// A scheduled application-flag clear is due.
    ClearDue { epoch: u64 },
    /// The application flag was cleared, or not.
    FlagCleared {
        epoch: u64,
        result: Result<String, String>,
        steps: Vec<StepOutcome>,
    },
    /// The failover readiness checks ran.
    Readiness(Box<readiness::Readiness>),
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
    /// A change in the cluster (several controllers), from this node's
    /// member task.
    Cluster(Box<cluster::member::Event>),
    /// A request forwarded to the leader had no answer in time.
    ForwardTimeout { id: String },
    /// A reconciliation pass is due (the quiet time after a start or a
    /// change of leader has passed).
    Reconcile,
    /// A reconciliation pass, started at `epoch`, compared these.
    Reconciled {
        epoch: u64,
        compared: Vec<reconcile::Compared>,
    },
    /// Stop the loop.
    Shutdown,
}

/// Where one read-only step of a failover is.
pub enum PlanEvent {
    /// About to run: stored as started, so an undo knows to undo it.
    Starting(ReadOnlyStep),
    /// It ran; stored as done when it succeeded.
    Done(ReadOnlyStep, StepReport),
    /// Done before a restart: read back, not run again.
    Verified(ReadOnlyStep, Result<String, String>),
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
    /// What was last told to the webhooks, so each occasion is told once.
    announced: announce::Announced,
    /// The stored state is behind the engine's (a save failed).
    dirty: bool,
    /// Each check's latest probe results, by role then check.
    latencies: [Vec<timeline::Samples>; 2],
    /// The sites' health and the active site over the last hour.
    timeline: timeline::Timeline,
    failovers_total: u64,
    /// The last replication observation, with its time.
    observed: Option<(u64, Observed)>,
    /// The last failover readiness checks.
    readiness: Option<readiness::Readiness>,
    /// Warnings of the current failover's read-only steps.
    warnings: Vec<String>,
    scheduled_clears: Vec<ScheduledClear>,
    ttl_override: Option<u32>,
    /// The read-only steps of the pending or stopped failover attempt.
    read_only: Option<ReadOnlyProgress>,
    /// The attempt whose read-only steps run in the background.
    preparing: Option<u64>,
    /// An undo ordered while those steps ran: done once they stop.
    undo_waiting: Option<u64>,
    /// The attempt whose undo runs in the background.
    undoing: Option<u64>,
    /// A flag clear runs in the background.
    clearing: bool,
    /// Read-only steps waiting for that undo or clear to end.
    waiting: Option<preparation::Waiting>,
    drill: Option<DrillProgress>,
    drill_abort: Option<watch::Sender<Option<String>>>,
    last_drill: Option<drill::DrillReport>,
    /// The newest drill reports, newest first (at most `DRILL_HISTORY`).
    drill_history: Vec<status::DrillSummary>,
    /// Drills on a schedule: what the schedule remembers.
    schedule: drill::schedule::ScheduleState,
    /// A reconciliation pass runs (started at this epoch).
    reconciling: Option<u64>,
    /// No reconciliation and no undo before this (ms): until then a step
    /// of a previous leader (or of this controller before a restart) may
    /// still land.
    quiet_until: u64,
    /// The last reconciliation pass.
    reconcile_status: reconcile::ReconcileStatus,
    /// Promotion work ordered while a reconciliation pass ran: started
    /// once it ends.
    deferred: Vec<crate::engine::Action>,
}

pub struct Controller {
    failing: Option<Failing>,
    zones: Vec<Zone>,
    /// The zone files' table and lasting answers, shared by every table
    /// served until the next load.
    base: Arc<crate::dns::Base>,
    /// The zones' versions, for IXFR.
    history: std::sync::Mutex<crate::dns::transfer::History>,
    /// The secondaries notified of the zones' changes.
    secondaries: crate::dns::notify::Secondaries,
    serials: BTreeMap<String, u32>,
    /// The content digest each zone's serial stands for: this node's own
    /// when it decides, else the agreed state's.
    digests: BTreeMap<String, String>,
    /// The zones as configured (serial policies, for new serials).
    zone_sources: Vec<crate::config::ZoneSource>,
    /// Zones whose content here differs from the agreed content, as last
    /// told (each change is logged once).
    told_differs: std::collections::BTreeSet<String>,
    /// Signed zones whose keys here differ from the agreed ones, as last
    /// told.
    told_keys_differ: std::collections::BTreeSet<String>,
    /// The highest serial served of each zone since the start: a pick
    /// never goes below it.
    highest: BTreeMap<String, u32>,
    /// The last pick of serials could not be stored: tried again at each
    /// step.
    resettle: bool,
    table: SharedTable,
    counters: Arc<ResponseCounters>,
    notifier: Notifier,
    /// The controller's own inbox, for work done in the background.
    outbox: mpsc::Sender<ControlEvent>,
    /// Each configured DNS address and the address actually bound.
    dns_addresses: Vec<(SocketAddr, SocketAddr)>,
    tasks: tasks::Tasks,
    state_dir: PathBuf,
    drill_config: DrillConfig,
    /// With several controllers: this node's part in the cluster.
    cluster: Option<cluster::Cluster>,
    /// Whether, and for how long, this controller may act on the world.
    leadership: Leadership,
    /// With several nodes, on the primary site's node in `mode: promote`:
    /// since when (ms) it has fenced its own database, cut from the
    /// cluster; kept in the state folder until lifted.
    self_fenced: Option<u64>,
    /// A self-fence or its lifting runs, since then (ms).
    self_fencing: Option<u64>,
    /// On the primary site's node in `mode: promote`: the heartbeat task
    /// (`failover.fence_heartbeat`) and the fence_after it runs with; set
    /// once the setting was first looked at.
    heartbeat: Option<(
        Option<tokio::task::JoinHandle<()>>,
        Option<std::time::Duration>,
    )>,
}

impl Controller {
    /// Restores the stored state and builds the first answer table from it:
    /// nothing is answered before this, and a restart never moves traffic.
    /// `outbox` is the sender of the inbox `run` reads.
    pub async fn start(
        config: &Config,
        zones: Vec<Zone>,
        outbox: mpsc::Sender<ControlEvent>,
    ) -> Result<Self, StoreError> {
        let mut stored_serials = BTreeMap::new();
        let mut stored_digests = BTreeMap::new();
        let (store, cluster) = shared_store(config, &outbox)?;
        let failing = match &config.failover {
            Some(failover) => {
                // Without etcd at start, the store serves its copy of the
                // last agreed state until etcd answers.
                let stored = store.load().await?;
                let restored = stored.is_some();
                let stored = stored.unwrap_or_default();
                let mut engine = Engine::new(failover.engine_spec(), stored.engine.clone());
                // With several nodes, deciding waits for the leadership.
                engine.set_deciding(cluster.is_none());
                let journal = Journal::open(
                    &config.state_dir,
                    journal::DEFAULT_LIMIT,
                    stored.journal_seq,
                )?;
                info!(
                    active = %engine.persisted().active,
                    epoch = engine.persisted().epoch,
                    state = %config.state_dir.display(),
                    "{}",
                    if restored { "state restored" } else { "no stored state: starting on the primary" }
                );
                if let Some(pending) = engine.pending() {
                    warn!(
                        epoch = pending.epoch,
                        "a failover was under way when the controller stopped ({}): it is resumed once the checks confirm it, or rolled back",
                        pending.summary
                    );
                }
                stored_serials = stored.serials;
                stored_digests = stored.digests;
                let latencies = [
                    vec![timeline::Samples::default(); failover.sites[0].checks.len()],
                    vec![timeline::Samples::default(); failover.sites[1].checks.len()],
                ];
                Some(Failing {
                    config: failover.clone(),
                    engine,
                    store,
                    journal,
                    announced: announce::Announced::default(),
                    dirty: false,
                    latencies,
                    timeline: timeline::Timeline::new(now_ms()),
                    failovers_total: 0,
                    observed: None,
                    readiness: None,
                    warnings: Vec::new(),
                    scheduled_clears: stored.scheduled_clears,
                    ttl_override: stored.ttl_override,
                    read_only: stored.read_only,
                    preparing: None,
                    undo_waiting: None,
                    undoing: None,
                    clearing: false,
                    waiting: None,
                    drill: stored.drill,
                    drill_abort: None,
                    last_drill: drill::last(&config.state_dir),
                    drill_history: drill::history(&config.state_dir, DRILL_HISTORY)
                        .iter()
                        .map(status::DrillSummary::from)
                        .collect(),
                    schedule: drill::schedule::ScheduleState::new(now_ms()),
                    reconciling: None,
                    // A single controller starts without one (what a
                    // killed process had sent has landed by now); a new
                    // leader waits out the previous one's step timeout.
                    quiet_until: 0,
                    reconcile_status: reconcile::ReconcileStatus::default(),
                    deferred: Vec::new(),
                })
            }
            None => None,
        };
        if failing.is_none() {
            (stored_serials, stored_digests) = serials::load(&config.state_dir)?;
        }
        let mut history = crate::dns::transfer::History::default();
        history.load(&zones, config, &Default::default());
        let mut secondaries = crate::dns::notify::Secondaries::default();
        // A node that serves no DNS (a witness) is nobody's primary.
        if !config.dns.listen.is_empty() {
            secondaries.configure(config);
        }
        // Nothing is answered before this table: built here, at start.
        let base = Arc::new(answers::base(config, &zones));
        let mut controller = Self {
            failing,
            base,
            secondaries,
            history: std::sync::Mutex::new(history),
            zones,
            serials: BTreeMap::new(),
            digests: BTreeMap::new(),
            zone_sources: config.zones.clone(),
            told_differs: Default::default(),
            told_keys_differ: Default::default(),
            highest: BTreeMap::new(),
            resettle: false,
            table: SharedTable::default(),
            counters: Arc::default(),
            notifier: Notifier::new(config.webhooks.clone()),
            outbox,
            dns_addresses: Vec::new(),
            tasks: tasks::Tasks::default(),
            state_dir: config.state_dir.clone(),
            drill_config: config.drill.clone(),
            leadership: cluster
                .as_ref()
                .map_or_else(Leadership::sole, |c| c.leadership.clone()),
            cluster,
            self_fenced: self_fence::load(&config.state_dir),
            self_fencing: None,
            heartbeat: None,
        };
        controller.notifier.mute(controller.cluster.is_some());
        controller.settle_serials(&stored_serials, &stored_digests);
        controller.publish();
        // Store at once: a state directory that cannot be written is found
        // now, not at the first failover. (With several nodes only the
        // leader writes, once it leads.)
        if let Some(failing) = &controller.failing
            && controller.cluster.is_none()
        {
            failing
                .store
                .save(&controller.stored_state(failing))
                .await?;
        }
        if controller.failing.is_none() {
            serials::save(
                &controller.state_dir,
                &controller.serials,
                &controller.digests,
            )?;
        }
        Ok(controller)
    }

    /// Starts the probes, the replication watcher and the readiness
    /// checks; an error names the check that cannot run.
    pub fn start_tasks(&mut self) -> Result<(), String> {
        match &self.failing {
            Some(failing) => self
                .tasks
                .start(&failing.config, &self.state_dir, &self.outbox),
            None => Ok(()),
        }
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

    /// Builds the table for the current active site and serials, swaps it in.
    fn publish(&mut self) {
        let records = match &self.failing {
            Some(f) => {
                answers::failover_records(&f.config, f.engine.persisted().active, f.ttl_override)
            }
            None => Vec::new(),
        };
        self.served();
        let withheld = self.differing();
        let transfers = match self.history.lock() {
            Ok(mut history) => {
                // A signed zone's transfers carry the signatures made for
                // what is served now (the SOA's, the failover records').
                let mut served = records.clone();
                served.extend(self.base.table.signatures(&records, &self.serials));
                history.record(&served, &self.serials, &withheld)
            }
            Err(_) => Arc::default(),
        };
        let served =
            self.base
                .serve_refusing(&records, &self.serials, transfers, &self.keys_differing());
        self.table.store(Arc::new(served));
        // A zone whose content here is not the agreed one is nobody's
        // news: its secondaries hear of it from a node that serves it.
        let mut notified = self.serials.clone();
        notified.retain(|zone, _| !withheld.contains(zone));
        self.secondaries.serve(&notified);
    }

    /// Tells the controller which addresses DNS is bound to, for drills.
    pub fn set_dns_addresses(&mut self, addresses: Vec<(SocketAddr, SocketAddr)>) {
        self.dns_addresses = addresses;
    }

    /// Journal entries after `since`, oldest first: with several nodes
    /// the shared journal's, else this controller's.
    pub fn events(&self, since: u64) -> Vec<JournalEntry> {
        if let Some(cluster) = &self.cluster {
            return cluster
                .journal
                .iter()
                .filter(|e| e.seq > since)
                .take(1000)
                .cloned()
                .collect();
        }
        self.failing
            .as_ref()
            .map(|f| f.journal.since(since, 1000))
            .unwrap_or_default()
    }

    /// The newest `n` journal entries, newest first.
    fn recent_events(&self, n: usize) -> Vec<JournalEntry> {
        if let Some(cluster) = &self.cluster {
            return cluster.journal.iter().rev().take(n).cloned().collect();
        }
        self.failing
            .as_ref()
            .map(|f| f.journal.latest(n))
            .unwrap_or_default()
    }

    /// Work left by a controller that stopped: the undo of a stopped
    /// failover's steps, flag clears, a drill's fail-back.
    async fn resume_background_work(&mut self) {
        let Some(failing) = &mut self.failing else {
            return;
        };
        let persisted = failing.engine.persisted();
        let pending = failing.engine.pending().map(|p| p.attempt);
        if let Some(progress) = failing.read_only.clone()
            && pending != Some(progress.attempt)
        {
            if persisted.active == crate::engine::Role::Secondary
                && progress.epoch == persisted.epoch
            {
                // That failover finished; only its progress was left.
                failing.read_only = None;
            } else {
                warn!(
                    attempt = progress.attempt,
                    "the read-only steps of a stopped failover attempt were not all undone: undoing them"
                );
                self.undo(crate::engine::Role::Secondary, progress.attempt)
                    .await;
            }
        }
        if let Some(failing) = &self.failing {
            for clear in failing.scheduled_clears.clone() {
                self.arm(clear);
            }
        }
        self.resume_drill().await;
    }
}

/// The controller loop: probe results, commands, status requests, reloads,
/// background work and the clock, until `Shutdown`.
impl ControlEvent {
    /// Whether it only reads (status, journal, the last drill): such
    /// requests go on the queue served after everything else.
    pub fn is_read(&self) -> bool {
        matches!(
            self,
            Self::Status { .. } | Self::Events { .. } | Self::LastDrill { .. }
        )
    }
}

/// Runs the controller: `events` (probe results, commands, background
/// work) first, then the clock, then `reads` (the page's and the API's
/// status and journal requests), so a burst of reads never delays a probe
/// result.
pub async fn run(
    mut controller: Controller,
    mut events: mpsc::Receiver<ControlEvent>,
    mut reads: mpsc::Receiver<ControlEvent>,
) {
    // With several nodes, the leader does this once it leads.
    if controller.cluster.is_none() {
        controller.resume_background_work().await;
        if let Some(failing) = &controller.failing {
            controller.reconcile_after(failing.config.step_timeout);
        }
    }
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            event = events.recv() => match event {
                Some(ControlEvent::Shutdown) | None => break,
                Some(event) => controller.handle(event).await,
            },
            _ = tick.tick() => {
                controller.self_fence_tick(now_ms());
                controller.agree_now();
                controller.step(Input::Tick, now_ms()).await;
                controller.scheduled_drill(now_ms()).await;
            }
            Some(read) = reads.recv() => controller.handle(read).await,
        }
    }
    controller.tasks.stop();
    if let Some(cluster) = &controller.cluster {
        let _ = cluster.member.send(cluster::member::Request::Resign).await;
    }
}

impl Controller {
    async fn handle(&mut self, event: ControlEvent) {
        match event {
            ControlEvent::Probe {
                generation,
                id,
                ok,
                detail,
                latency,
            } => {
                // A result from before a reload may name a check that is
                // now another.
                if generation == self.tasks.generation() {
                    self.probe(id, ok, detail, latency, now_ms()).await;
                }
            }
            ControlEvent::Command {
                command,
                actor,
                reply,
            } => {
                if self.follows() {
                    let request = cluster::member::Forwarded::Command { command, actor };
                    self.forward(request, cluster::Waiter::Command(reply)).await;
                } else {
                    let _ = reply.send(self.command(command, actor, now_ms()).await);
                }
            }
            ControlEvent::Status { reply } => {
                let _ = reply.send(Box::new(self.status(now_ms())));
            }
            ControlEvent::Events { since, reply } => {
                let _ = reply.send(self.events(since));
            }
            ControlEvent::Reload {
                config,
                zones,
                base,
                changes,
                done,
            } => {
                let _ = done.send(self.reload(&config, zones, base, &changes).await);
            }
            ControlEvent::Replication { seen, at } => self.replication(*seen, at).await,
            ControlEvent::Plan {
                attempt,
                event,
                reply,
            } => {
                let _ = reply.send(self.plan_event(attempt, event).await);
            }
            ControlEvent::ReadOnlyDone { attempt, result } => {
                self.read_only_done(attempt, result).await
            }
            ControlEvent::Undone { attempt, outcomes } => self.undone(attempt, outcomes).await,
            ControlEvent::UndoRetry { attempt } => self.undo_retry(attempt).await,
            ControlEvent::PromotionDone {
                epoch,
                attempt,
                result,
                journal,
            } => self.promotion_done(epoch, attempt, result, journal).await,
            ControlEvent::SwitchBackDone {
                epoch,
                attempt,
                result,
                journal,
            } => self.switch_back_done(epoch, attempt, result, journal).await,
            ControlEvent::SelfFence {
                lift,
                result,
                journal,
            } => self.self_fence_done(lift, result, journal).await,
            ControlEvent::HeartbeatFenced { at } => self.heartbeat_fenced(at).await,
            ControlEvent::RejoinDone {
                epoch,
                attempt,
                outcome,
            } => self.rejoin_done(epoch, attempt, outcome).await,
            ControlEvent::ClearDue { epoch } => self.clear_due(epoch).await,
            ControlEvent::FlagCleared {
                epoch,
                result,
                steps,
            } => self.flag_cleared(epoch, result, steps).await,
            ControlEvent::Readiness(readiness) => {
                self.readiness(*readiness);
                self.reconcile(now_ms());
            }
            ControlEvent::Reconcile => self.reconcile(now_ms()),
            ControlEvent::Reconciled { epoch, compared } => self.reconciled(epoch, compared).await,
            ControlEvent::DrillStart {
                request,
                dry_run,
                reply,
            } => {
                if self.follows() {
                    let request = cluster::member::Forwarded::DrillStart { request, dry_run };
                    self.forward(request, cluster::Waiter::DrillStart(reply))
                        .await;
                } else {
                    let _ = reply.send(self.drill_start(request, dry_run, now_ms()).await);
                }
            }
            ControlEvent::DrillAbort { reason, reply } => {
                if self.follows() {
                    let request = cluster::member::Forwarded::DrillAbort { reason };
                    self.forward(request, cluster::Waiter::DrillAbort(reply))
                        .await;
                } else {
                    let _ = reply.send(self.drill_abort(reason));
                }
            }
            ControlEvent::Cluster(event) => self.cluster_event(*event).await,
            ControlEvent::ForwardTimeout { id } => self.forward_timeout(id).await,
            ControlEvent::DrillPhase { progress, reply } => {
                let leads = !self.follows();
                if let Some(failing) = &mut self.failing
                    && leads
                {
                    failing.drill = progress.or_else(|| failing.drill.clone());
                }
                self.save(now_ms()).await;
                let _ = reply.send(());
            }
            ControlEvent::DrillFinished(report) => self.drill_finished(*report).await,
            ControlEvent::LastDrill { reply } => {
                let _ = reply.send(self.failing.as_ref().and_then(|f| f.last_drill.clone()));
            }
            ControlEvent::SetTtl { ttl, reply } => {
                self.set_ttl(ttl).await;
                let _ = reply.send(());
            }
            ControlEvent::Shutdown => {}
        }
    }
}

impl Controller {
    /// Sends `event` to this controller after `wait`, while it leads: a
    /// timer a leader armed never fires once its leadership has ended.
    fn leader_timer(&self, wait: Duration, event: ControlEvent) {
        let outbox = self.outbox.clone();
        let leadership = self.leadership.clone();
        tokio::spawn(async move {
            let _ = leadership
                .run(async {
                    tokio::time::sleep(wait).await;
                    let _ = outbox.send(event).await;
                })
                .await;
        });
    }

    /// Serves the failover records with `ttl` (a drill lowers it). A new
    /// TTL is a new version of the zones: secondaries follow it by the
    /// serial. With several nodes, only the leader changes it, and its
    /// answers change once the agreed state holds it.
    async fn set_ttl(&mut self, ttl: Option<u32>) {
        if self.follows() {
            return;
        }
        let Some(failing) = &mut self.failing else {
            return;
        };
        if failing.ttl_override == ttl {
            return;
        }
        let kept = (failing.ttl_override, self.serials.clone());
        failing.ttl_override = ttl;
        self.serials = answers::bump(&self.serials, &self.zones, &failing.config);
        if self.store_state(now_ms()).await.is_err()
            && self.cluster.is_some()
            && let Some(failing) = &mut self.failing
        {
            (failing.ttl_override, self.serials) = kept;
            return;
        }
        self.publish();
    }
}

/// The store the state lives in: the state directory, or etcd with this
/// node's member task (which starts here) and its leadership.
fn shared_store(
    config: &Config,
    outbox: &mpsc::Sender<ControlEvent>,
) -> Result<(Box<dyn Store>, Option<cluster::Cluster>), StoreError> {
    let Some(settings) = &config.cluster else {
        return Ok((Box::new(LocalStore::new(&config.state_dir)), None));
    };
    let etcd =
        Arc::new(crate::store::etcd::Etcd::new(&settings.etcd).map_err(StoreError::Unavailable)?);
    // A step starts only with time left to renew the lease once more: an
    // etcd timeout, or a quarter of the lease if that is shorter (right
    // after a renewal a leader has four fifths of it, and a third of it
    // passes between renewals).
    let leadership = Leadership::shared(settings.etcd.timeout.min(settings.etcd.lease_ttl / 4));
    let store = crate::store::shared::EtcdStore::new(
        etcd.clone(),
        crate::store::shared::Keys::new(&settings.etcd.prefix),
        leadership.clone(),
        LocalStore::new(&config.state_dir),
    );
    let member = cluster::member::spawn(etcd, settings, leadership.clone(), outbox.clone());
    let cluster = cluster::Cluster::new(settings.clone(), member, leadership);
    Ok((Box::new(store), Some(cluster)))
}
