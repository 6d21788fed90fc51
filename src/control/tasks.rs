//! The controller's background work, started together and stopped (or
//! restarted on a reload) together: every check's probe, the replication
//! watcher when both sites have a database, and the readiness checks.

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::{sync::mpsc, task::JoinHandle};

use super::{ControlEvent, probes::spawn_probes, readiness};
use crate::{config::Failover, db};

#[derive(Default)]
pub(super) struct Tasks {
    running: Vec<JoinHandle<()>>,
    /// Grows at every start: probe results carry it.
    generation: u64,
    /// After a promotion: the replication watcher reads the secondary as
    /// the source and the primary as its replica.
    swapped: Arc<AtomicBool>,
}

impl Tasks {
    /// Starts everything `failover` asks for, after stopping what ran. An
    /// error (a check that cannot run) starts nothing.
    pub fn start(
        &mut self,
        failover: &Failover,
        state_dir: &Path,
        outbox: &mpsc::Sender<ControlEvent>,
    ) -> Result<(), String> {
        let probes = spawn_probes(failover, self.generation + 1, outbox.clone())?;
        self.stop();
        self.generation += 1;
        self.running = probes;
        self.running.extend(replication_watch(
            failover,
            self.swapped.clone(),
            outbox.clone(),
        ));
        self.running
            .push(readiness_checks(failover, state_dir, outbox.clone()));
        Ok(())
    }

    /// Whether the secondary is the source of replication (after a
    /// promotion), for the watcher's next round.
    pub fn set_swapped(&self, swapped: bool) {
        self.swapped.store(swapped, Ordering::Relaxed);
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn stop(&mut self) {
        for task in self.running.drain(..) {
            task.abort();
        }
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Watches replication between the two sites' databases, when both have
/// one, sending what it sees to the controller every interval.
fn replication_watch(
    failover: &Failover,
    swapped: Arc<AtomicBool>,
    outbox: mpsc::Sender<ControlEvent>,
) -> Option<JoinHandle<()>> {
    let (Some(primary), Some(secondary)) =
        (&failover.sites[0].database, &failover.sites[1].database)
    else {
        return None;
    };
    let (primary, secondary) = (primary.target.clone(), secondary.target.clone());
    let settings = failover.replication.clone();
    Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(settings.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let at = super::now_ms();
            let seen = if swapped.load(Ordering::Relaxed) {
                db::Observed {
                    swapped: true,
                    ..db::observe(&secondary, &primary, settings.timeout).await
                }
            } else {
                db::observe(&primary, &secondary, settings.timeout).await
            };
            if outbox
                .send(ControlEvent::Replication {
                    seen: Box::new(seen),
                    at,
                })
                .await
                .is_err()
            {
                return;
            }
        }
    }))
}

/// Runs the readiness checks at once and then every interval.
fn readiness_checks(
    failover: &Failover,
    state_dir: &Path,
    outbox: mpsc::Sender<ControlEvent>,
) -> JoinHandle<()> {
    let failover = failover.clone();
    let state_dir = state_dir.to_path_buf();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(failover.readiness_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let found = readiness::check(&failover, &state_dir).await;
            if outbox
                .send(ControlEvent::Readiness(Box::new(found)))
                .await
                .is_err()
            {
                return;
            }
        }
    })
}
