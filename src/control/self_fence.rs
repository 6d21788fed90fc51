//! The self-fence, with several nodes in `mode: promote`: the primary
//! site's node, cut from the cluster (etcd out of reach) for
//! `fence_after`, fences its own site's database (read-only verified,
//! the application's connections killed, the site's flag set) and keeps
//! it so while it stays cut off. The leader may then promote the
//! secondary once that node has been gone longer than its lease plus
//! `fence_after`, without reaching the old primary itself.
//!
//! This is the only thing a node does without leadership: a fence only
//! takes writes away. Its view says it is fenced; once it is back and
//! the agreed state holds no promotion, the leader lifts the fence in its
//! reconciliation pass (which no promotion step runs beside), and the node
//! drops its mark when it reads its database writable again. With a
//! promotion, the fence stays and the leader rejoins the old primary.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{ControlEvent, Controller, now_ms, promotion};
use crate::{
    config::{Place, Site},
    db::Db,
    engine::{Role, utc},
    store::{NewEntry, shared::Leadership},
};

/// How often the fence is set again while the node stays cut off.
const AGAIN_MS: u64 = 5_000;

fn file(state_dir: &Path) -> PathBuf {
    state_dir.join("self-fenced")
}

/// Since when this node has fenced its database, as kept on disk.
pub(super) fn load(state_dir: &Path) -> Option<u64> {
    std::fs::read_to_string(file(state_dir))
        .ok()
        .and_then(|t| t.trim().parse().ok())
}

/// `failover.fence_heartbeat`: beats into this site's database while this
/// node is surely a member of the cluster (each beat only if it lands
/// before its lease's deadline), installing the table and the fencing
/// event on each new connection; tells the controller when the event has
/// fenced the database. Each statement is bounded by a fifth of the lease
/// (at most 1 s), so no beat lands late.
async fn heartbeat(
    site: Site,
    after: Duration,
    lease: Duration,
    leadership: Leadership,
    outbox: mpsc::Sender<ControlEvent>,
) {
    let Some(database) = site.database.clone() else {
        return;
    };
    let every = (after / 3).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let bound = (lease / 5).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let mut conn: Option<Db> = None;
    let mut failing: Option<String> = None;
    let mut told: Option<String> = None;
    loop {
        let until = leadership.fence().member_until;
        if until.is_some_and(|u| Instant::now() + bound < u) {
            if conn.is_none() {
                let installed = async {
                    let mut db = Db::connect(&database.target, bound).await?;
                    match db.install_fence_heartbeat(after).await {
                        Ok(()) => Ok(db),
                        Err(e) => {
                            db.close().await;
                            Err(e)
                        }
                    }
                }
                .await;
                match installed {
                    Ok(db) => conn = Some(db),
                    Err(e) => {
                        if failing.as_ref() != Some(&e) {
                            warn!(
                                "the fence heartbeat cannot be installed at {}: {e}",
                                site.name
                            );
                            failing = Some(e);
                        }
                    }
                }
            }
            if let Some(db) = conn.as_mut() {
                match db.beat(leadership.fence().member_until).await {
                    Ok(fenced) => {
                        if failing.take().is_some() {
                            info!("the fence heartbeat at {} beats again", site.name);
                        }
                        if let Some(at) = &fenced
                            && told.as_ref() != Some(at)
                        {
                            let _ = outbox
                                .send(ControlEvent::HeartbeatFenced { at: at.clone() })
                                .await;
                        }
                        told = fenced;
                    }
                    Err(e) => {
                        if failing.as_ref() != Some(&e) {
                            warn!("the fence heartbeat at {} missed a beat: {e}", site.name);
                            failing = Some(e);
                        }
                        if let Some(db) = conn.take() {
                            db.close().await;
                        }
                    }
                }
            }
        }
        tokio::time::sleep(every).await;
        if outbox.is_closed() {
            return;
        }
    }
}

/// `fence_heartbeat` off: the event a former setting installed is
/// dropped, so it fences nothing (best effort: an error is logged).
async fn remove_heartbeat(site: Site, timeout: Duration) {
    let Some(database) = site.database.clone() else {
        return;
    };
    let removed = async {
        let mut db = Db::connect(&database.target, timeout).await?;
        let done = db.run_unlogged(&[crate::db::heartbeat::remove_sql()]).await;
        db.close().await;
        done
    }
    .await;
    if let Err(e) = removed
        && !e.contains("1049")
        && !e.contains("Unknown database")
    {
        warn!(
            "the fence heartbeat's event could not be dropped at {}: {e}",
            site.name
        );
    }
}

impl Controller {
    /// Keeps the self-fence's mark before anything is set: whatever part
    /// of a fence lands is lifted later.
    fn mark_self_fenced(&self, now: u64) {
        let path = file(&self.state_dir);
        if let Err(e) = crate::store::write_atomically(&path, now.to_string().as_bytes()) {
            warn!(
                "the self-fence could not be kept in {}: {e}",
                path.display()
            );
        }
    }

    /// The heartbeat event fenced this site's database while this node was
    /// gone, hung or cut off: taken as this node's own self-fence, which
    /// the leader lifts once the node is back and no promotion was agreed.
    pub(super) async fn heartbeat_fenced(&mut self, at: String) {
        let now = now_ms();
        if self.self_fenced.is_some() {
            return;
        }
        self.mark_self_fenced(now);
        self.self_fenced = Some(now);
        if self.cluster.is_some() {
            self.publish_view().await;
        }
        let summary = format!(
            "this site's database was fenced by its heartbeat event at {at}: this node had not beaten for fence_after (gone, hung or cut off)"
        );
        self.journal_self_fence(now, "self_fenced", summary, format!("at {at}"), true);
    }

    /// Logs and journals what happened to this node's self-fence, as this
    /// node.
    fn journal_self_fence(
        &mut self,
        now: u64,
        event: &str,
        summary: String,
        reason: String,
        ok: bool,
    ) {
        if ok {
            info!("{summary}");
        } else {
            warn!("{summary}");
        }
        let epoch = self.engine().map_or(0, |e| e.persisted().epoch);
        self.journal(NewEntry {
            at: now,
            epoch,
            actor: self
                .cluster
                .as_ref()
                .map(|c| c.config.node.clone())
                .unwrap_or_default(),
            kind: "action",
            event: event.into(),
            summary,
            reasons: vec![reason],
            outcome: if ok { "ok".into() } else { "failed".into() },
        });
    }

    /// At each tick: fences, or lifts the fence, when it is time.
    pub(super) fn self_fence_tick(&mut self, now: u64) {
        let (Some(cluster), Some(failing)) = (&self.cluster, &self.failing) else {
            return;
        };
        let Some(settings) = &failing.config.promotion else {
            return;
        };
        if cluster.config.me().place != Place::Primary {
            return;
        }
        // The heartbeat task follows the setting: started, restarted with
        // a new fence_after, or stopped (and its event dropped).
        let wanted = settings.fence_heartbeat.then_some(settings.fence_after);
        if self
            .heartbeat
            .as_ref()
            .is_none_or(|(_, after)| *after != wanted)
        {
            if let Some((Some(task), _)) = self.heartbeat.take() {
                task.abort();
            }
            let site = failing.config.site(Role::Primary).clone();
            let task = match wanted {
                Some(after) => Some(tokio::spawn(heartbeat(
                    site,
                    after,
                    cluster.config.etcd.lease_ttl,
                    self.leadership.clone(),
                    self.outbox.clone(),
                ))),
                None => {
                    tokio::spawn(remove_heartbeat(site, failing.config.step_timeout));
                    None
                }
            };
            self.heartbeat = Some((task, wanted));
            return;
        }
        if self.self_fencing.is_some() {
            return;
        }
        let since = now.saturating_sub(cluster.etcd_since);
        let cut = !cluster.etcd_up && since >= settings.fence_after.as_millis() as u64;
        let back_for = (cluster.etcd_up).then_some(since);
        let lease = cluster.config.etcd.lease_ttl.as_millis() as u64;
        let promoted = failing.engine.promotion().is_some();
        let site = failing.config.site(Role::Primary).clone();
        let timeout = failing.config.step_timeout;
        let outbox = self.outbox.clone();
        if cut {
            if self
                .self_fenced
                .is_some_and(|at| now.saturating_sub(at) < AGAIN_MS)
            {
                return;
            }
            self.self_fencing = Some(now);
            let detail = cluster.etcd_detail.clone();
            if self.self_fenced.is_none() {
                self.mark_self_fenced(now);
            }
            warn!(
                "cut from the cluster for {} s ({detail}): fencing this site's database",
                since / 1000
            );
            tokio::spawn(async move {
                let mut journal = Vec::new();
                let result = promotion::fence(&site, timeout, &mut journal).await;
                let _ = outbox
                    .send(ControlEvent::SelfFence {
                        lift: false,
                        result,
                        journal,
                    })
                    .await;
            });
        } else if self.self_fenced.is_some()
            && back_for.is_some_and(|b| b >= lease + 2_000)
            && !promoted
        {
            // The leader lifts the fence (this node's view says it is
            // fenced); this node only reads whether it has, changing
            // nothing, and then drops its mark.
            self.self_fencing = Some(now);
            tokio::spawn(async move {
                let read = async {
                    let database = site.database.as_ref().ok_or("no database")?;
                    let mut db = crate::db::Db::connect(&database.target, timeout).await?;
                    let state = db.read_only_state().await;
                    db.close().await;
                    match state? {
                        (false, _) => Ok(format!(
                            "the leader lifted the fence: {} is writable again",
                            site.name
                        )),
                        (true, _) => Err("still fenced".to_string()),
                    }
                }
                .await;
                let _ = outbox
                    .send(ControlEvent::SelfFence {
                        lift: true,
                        result: read,
                        journal: Vec::new(),
                    })
                    .await;
            });
        }
    }

    pub(super) async fn self_fence_done(
        &mut self,
        lift: bool,
        result: Result<String, String>,
        journal: Vec<super::StepOutcome>,
    ) {
        let now = now_ms();
        self.self_fencing = None;
        let epoch = self.engine().map_or(0, |e| e.persisted().epoch);
        self.journal_steps(epoch, &journal);
        let path = file(&self.state_dir);
        let (event, summary) = match (&result, lift) {
            (Ok(done), false) => {
                let first = self.self_fenced.is_none();
                self.self_fenced = Some(now);
                if !first {
                    return;
                }
                (
                    "self_fenced",
                    format!("cut from the cluster: this site's database fenced ({done})"),
                )
            }
            (Ok(done), true) => {
                self.self_fenced = None;
                let _ = std::fs::remove_file(&path);
                self.publish_view().await;
                (
                    "self_fence_lifted",
                    format!("back in the cluster, no promotion agreed: {done}"),
                )
            }
            (Err(e), false) => {
                // Part of it may have landed: lifted later like the rest.
                self.self_fenced.get_or_insert(now);
                (
                    "self_fence_failed",
                    format!("cut from the cluster, the fence failed: {e}"),
                )
            }
            // Not lifted yet: read again at a later tick.
            (Err(_), true) => return,
        };
        self.journal_self_fence(
            now,
            event,
            summary,
            format!("at {}", utc(now)),
            result.is_ok(),
        );
    }
}
