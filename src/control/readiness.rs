//! Failover readiness, known before the disaster: at start and then every
//! `failover.readiness_interval`, each read-only step of the secondary is
//! checked for whether it could run, changing nothing (the controller's
//! privileges there, the flag file's folder, the flag SQL's tables, the
//! flag URLs), and so is the state directory. `geofailover check --live`
//! runs the same checks once.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::{Controller, Notification, now_ms, steps};
use crate::{
    config::Failover,
    engine::{Precheck, Role, utc},
    store::NewEntry,
};

/// Whether a failover could run now, and each condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readiness {
    pub ready: bool,
    /// RFC 3339.
    pub checked: String,
    pub items: Vec<Precheck>,
}

impl Readiness {
    /// "yes", or "no, because …" naming each failed condition.
    pub fn sentence(&self) -> String {
        if self.ready {
            return "yes".into();
        }
        let failed: Vec<String> = self
            .items
            .iter()
            .filter(|i| !i.ok)
            .map(|i| format!("{}: {}", i.name, i.detail))
            .collect();
        format!("no, because {}", failed.join("; "))
    }
}

/// The state directory takes a new file (one is created and removed);
/// one not made yet needs its nearest existing parent to take it.
fn state_dir_writable(dir: &Path) -> Precheck {
    let existing = dir
        .ancestors()
        .find(|d| d.is_dir())
        .unwrap_or(Path::new("."));
    let probe = existing.join(".geofailover-ready-check");
    let result = std::fs::write(&probe, b"").and_then(|()| std::fs::remove_file(&probe));
    let made = if existing == dir {
        String::new()
    } else {
        format!(" (to be made in {})", existing.display())
    };
    Precheck {
        name: "state directory".into(),
        ok: result.is_ok(),
        detail: match result {
            Ok(()) => format!("{} is writable{made}", dir.display()),
            Err(e) => format!("{} cannot be written{made}: {e}", dir.display()),
        },
    }
}

/// Runs every readiness check once.
pub async fn check(failover: &Failover, state_dir: &Path) -> Readiness {
    let site = failover.site(Role::Secondary);
    let mut items = Vec::new();
    let steps_of_site = site.read_only_steps();
    if steps_of_site.is_empty() {
        items.push(Precheck {
            name: "read-only mode".into(),
            ok: true,
            detail: format!(
                "nothing to prepare: {} has no database and no application flag",
                site.name
            ),
        });
    }
    for step in steps_of_site {
        items.push(steps::ready(step, site, failover.step_timeout).await);
    }
    items.push(state_dir_writable(state_dir));
    if failover.promotion.is_some() {
        items.extend(promotion_ready(failover).await);
    }
    Readiness {
        ready: items.iter().all(|i| i.ok),
        checked: utc(now_ms()),
        items,
    }
}

/// `failover.fence_heartbeat` at the primary's database: the event
/// scheduler on, the fencing event there, the last beat recent.
fn fence_heartbeat_item(
    (scheduler, event, age): (bool, bool, Option<u64>),
    after: std::time::Duration,
) -> (String, bool, String) {
    let after_ms = after.as_millis() as u64;
    let (ok, detail) = match (scheduler, event, age) {
        (false, _, _) => (
            false,
            "event_scheduler is OFF: the event that fences this database when its node stops beating never runs (event_scheduler=ON in my.cnf)".to_string(),
        ),
        (true, false, _) => (
            false,
            "the fencing event is not installed, or has not run in the last 5 s (the primary site's node installs it, MariaDB only; it needs EVENT, CREATE, DROP, INSERT, UPDATE and SELECT on geofailover_fence.*; a dropped definer stops it)".to_string(),
        ),
        (true, true, Some(age)) if age < after_ms => (
            true,
            format!("the event fences this database {after_ms} ms after the last beat; last beat {age} ms ago"),
        ),
        (true, true, age) => (
            false,
            format!(
                "the last beat is {} old (the event fences at {after_ms} ms): is the primary site's node running?",
                age.map_or("of unknown age".to_string(), |a| format!("{a} ms"))
            ),
        ),
    };
    ("fence heartbeat".to_string(), ok, detail)
}

/// `mode: promote`: at each site's database, what fencing, promotion and
/// a rejoin need.
async fn promotion_ready(failover: &Failover) -> Vec<Precheck> {
    let mut items = Vec::new();
    for role in Role::BOTH {
        let site = failover.site(role);
        let Some(database) = &site.database else {
            continue;
        };
        let timeout = failover.step_timeout;
        let heartbeat = failover
            .promotion
            .as_ref()
            .filter(|p| p.fence_heartbeat && role == Role::Primary)
            .map(|p| p.fence_after);
        let read = async {
            let mut db = crate::db::Db::connect(&database.target, timeout).await?;
            let mut items = crate::db::promote::promotion_ready(&mut db).await;
            if let (Ok(found), Some(after)) = (&mut items, heartbeat) {
                match db.fence_heartbeat_state().await {
                    Ok(state) => found.push(fence_heartbeat_item(state, after)),
                    Err(e) => items = Err(e),
                }
            }
            db.close().await;
            items
        }
        .await;
        match read {
            Ok(found) => items.extend(found.into_iter().map(|(name, ok, detail)| Precheck {
                name: format!("{name} at {}", site.name),
                ok,
                detail,
            })),
            Err(e) => items.push(Precheck {
                name: format!("promotion at {}", site.name),
                // The old primary may be down: that is what promotion is for.
                ok: role == Role::Primary,
                detail: format!("not read: {e}"),
            }),
        }
    }
    items
}

impl Controller {
    /// Keeps the latest readiness; a change to "not ready" is logged,
    /// journalled and sent to the webhooks, and the way back journalled.
    pub(super) fn readiness(&mut self, readiness: Readiness) {
        let now = now_ms();
        let Some(failing) = &mut self.failing else {
            return;
        };
        let before = failing.announced.ready;
        failing.announced.ready = Some(readiness.ready);
        let epoch = failing.engine.persisted().epoch;
        let sentence = readiness.sentence();
        failing.readiness = Some(readiness.clone());
        match (before, readiness.ready) {
            (Some(true) | None, false) => {
                warn!("failover ready: {sentence}");
                self.journal(NewEntry {
                    at: now,
                    epoch,
                    actor: "engine".into(),
                    kind: "check",
                    event: "failover_not_ready".into(),
                    summary: format!("failover ready: {sentence}"),
                    reasons: Vec::new(),
                    outcome: "failed".into(),
                });
                self.notifier.send(Notification::new(
                    "failover_not_ready",
                    epoch,
                    None,
                    format!("a failover would fail now: {sentence}"),
                    now,
                ));
            }
            (Some(false), true) => {
                info!("failover ready: yes");
                self.journal(NewEntry {
                    at: now,
                    epoch,
                    actor: "engine".into(),
                    kind: "check",
                    event: "failover_ready".into(),
                    summary: "failover ready: yes".into(),
                    reasons: Vec::new(),
                    outcome: "ok".into(),
                });
            }
            (None, true) => info!("failover ready: yes"),
            (Some(true), true) | (Some(false), false) => {}
        }
    }
}
