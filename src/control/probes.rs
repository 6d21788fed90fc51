//! Runs every check of both sites on its interval, each in its own task,
//! started at a jittered offset so checks do not fire in step, with a bound
//! on how many run at once. Results go to the controller loop.

use std::{sync::Arc, time::Duration};

use tokio::{sync::Semaphore, task::JoinHandle};

use super::ControlEvent;
use crate::{
    config::Failover,
    engine::{CheckId, Role},
    probe::Prober,
};

/// At most this many probes run at the same moment.
const MAX_CONCURRENT_PROBES: usize = 512;

/// Builds every check's prober (an error names the check) and starts them.
pub fn spawn_probes(
    failover: &Failover,
    generation: u64,
    events: tokio::sync::mpsc::Sender<ControlEvent>,
) -> Result<Vec<JoinHandle<()>>, String> {
    let limit = Arc::new(Semaphore::new(MAX_CONCURRENT_PROBES));
    let mut probers = Vec::new();
    let mut clients = crate::probe::Clients::default();
    for role in Role::BOTH {
        let site = failover.site(role);
        for (index, check) in site.checks.iter().enumerate() {
            let prober = Prober::with_clients(check, &mut clients)
                .map_err(|e| format!("site {}: {e}", site.name))?;
            probers.push((CheckId { site: role, index }, check.interval, prober));
        }
    }
    let seed = super::now_ms();
    // One base instant: checks given the same slot share their deadlines.
    let base = tokio::time::Instant::now();
    Ok(probers
        .into_iter()
        .enumerate()
        .map(|(n, (id, interval, prober))| {
            let limit = limit.clone();
            let events = events.clone();
            let offset = jitter(seed, n as u64, interval);
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval_at(base + offset, interval);
                // After a late tick (a probe that ran long), the next ones return
                // to the check's slot.
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    ticks.tick().await;
                    let result = {
                        let Ok(_permit) = limit.acquire().await else {
                            return;
                        };
                        prober.run().await
                    };
                    let event = ControlEvent::Probe {
                        generation,
                        id,
                        ok: result.ok,
                        detail: result.detail,
                        latency: result.latency,
                    };
                    if events.send(event).await.is_err() {
                        return;
                    }
                }
            })
        })
        .collect())
}

/// Start offsets are whole multiples of this: checks spread over the
/// interval, but those falling in one slot fire on one timer wake-up.
const SLOT_MS: u64 = 10;

/// A start offset in [0, interval), spread by check number, on a
/// `SLOT_MS` grid.
fn jitter(seed: u64, n: u64, interval: Duration) -> Duration {
    let mut x = seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    let slots = (interval.as_millis() as u64 / SLOT_MS).max(1);
    Duration::from_millis(x % slots * SLOT_MS)
}
