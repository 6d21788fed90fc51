//! The shell around the engine: restores state before the first answer,
//! runs the probes, feeds their results and the time to the engine, and
//! carries out the actions it orders (store the new state durably, then
//! swap in the new answer table).

pub mod answers;
mod probes;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use crate::{
    config::{Config, Failover},
    dns::SharedTable,
    engine::{Action, CheckId, Decision, Engine, Input, Role},
    store::{LocalStore, Store, StoreError, StoredState},
    zone::Zone,
};
pub use probes::spawn_probes;

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
    /// New config and zones, fully loaded and checked.
    Reload {
        config: Box<Config>,
        zones: Vec<Zone>,
        done: oneshot::Sender<()>,
    },
}

/// The failover part of the controller: absent when the config has no
/// failover records.
struct Failing {
    config: Failover,
    engine: Engine,
    store: Box<dyn Store>,
    /// The stored state is behind the engine's (a save failed).
    dirty: bool,
}

pub struct Controller {
    failing: Option<Failing>,
    zones: Vec<Zone>,
    serials: BTreeMap<String, u32>,
    table: SharedTable,
}

/// Milliseconds since 1970 by the wall clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Controller {
    /// Restores the stored state and builds the first answer table from it:
    /// nothing is answered before this, and a restart never moves traffic.
    pub fn start(config: &Config, zones: Vec<Zone>) -> Result<Self, StoreError> {
        let failing = match &config.failover {
            Some(failover) => {
                let store: Box<dyn Store> = Box::new(LocalStore::new(&config.state_dir));
                let stored = store.load()?;
                let restored = stored.is_some();
                let stored = stored.unwrap_or_default();
                let engine = Engine::new(failover.engine_spec(), stored.engine.clone());
                info!(
                    active = %engine.persisted().active,
                    epoch = engine.persisted().epoch,
                    state = %config.state_dir.display(),
                    "{}",
                    if restored { "state restored" } else { "no stored state: starting on the primary" }
                );
                Some((
                    Failing {
                        config: failover.clone(),
                        engine,
                        store,
                        dirty: false,
                    },
                    stored.serials,
                ))
            }
            None => None,
        };
        let (failing, stored_serials) = match failing {
            Some((f, s)) => (Some(f), s),
            None => (None, BTreeMap::new()),
        };
        let serials = answers::serials(&zones, &stored_serials);
        let controller = Self {
            failing,
            zones,
            serials,
            table: SharedTable::default(),
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
        }
    }

    /// Builds the table for the current active site and serials, swaps it in.
    fn publish(&self) {
        let records = match &self.failing {
            Some(f) => answers::failover_records(&f.config, f.engine.persisted().active),
            None => Vec::new(),
        };
        let table = answers::build(&self.zones, &records, &self.serials);
        self.table.store(Arc::new(table));
    }

    /// Feeds one input to the engine and carries out what it decides.
    pub fn step(&mut self, input: Input, now: u64) -> Option<Decision> {
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
        }
        for action in &decision.actions {
            match action {
                Action::Activate { site, epoch } => self.activate(*site, *epoch),
            }
        }
        if decision.notable || self.failing.as_ref().is_some_and(|f| f.dirty) {
            self.save();
        }
        Some(decision)
    }

    /// Points the failover records at `site`: the new state is stored
    /// first, then the new table swapped in.
    fn activate(&mut self, site: Role, epoch: u64) {
        let Some(failing) = &self.failing else {
            return;
        };
        self.serials = answers::bump(&self.serials, &self.zones, &failing.config);
        self.save();
        self.publish();
        info!(
            %site,
            epoch,
            serials = ?self.serials,
            "answers switched to the {site} site"
        );
    }

    fn save(&mut self) {
        let Some(failing) = &self.failing else {
            return;
        };
        let state = self.stored_state(failing);
        let result = failing.store.save(&state);
        let dirty = match result {
            Ok(()) => false,
            Err(e) => {
                // Answers still follow the decision; the save is retried
                // at the next step.
                error!("{e}");
                true
            }
        };
        if let Some(failing) = &mut self.failing {
            failing.dirty = dirty;
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
            self.save();
        }
    }
}

/// The controller loop: probe results, reloads and the clock, until the
/// channel closes.
pub async fn run(mut controller: Controller, mut events: mpsc::Receiver<ControlEvent>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(ControlEvent::Probe { id, ok, detail, latency: _ }) => {
                    controller.step(Input::Check { id, ok, detail: Some(detail) }, now_ms());
                }
                Some(ControlEvent::Reload { config, zones, done }) => {
                    controller.reload(&config, zones);
                    let _ = done.send(());
                }
                None => break,
            },
            _ = tick.tick() => {
                controller.step(Input::Tick, now_ms());
            }
        }
    }
}
