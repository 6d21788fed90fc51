//! A reload applies the new zones and the new failover section together,
//! or neither: the zones were checked against the new failover records,
//! so serving them with the old ones could mix a failover record's
//! answers with static records of the same name. Refused (nothing
//! changes) while a failover or a drill is under way, when a check cannot
//! run, or when the failover section appears or goes (a restart).

use tracing::info;

use super::{Controller, answers, now_ms};
use crate::{
    config::{Config, Failover},
    engine::{Engine, Role},
    store::NewEntry,
    zone::Zone,
};

/// Each check of `new` that is the same (role, name and settings) in
/// `old`: its index there.
fn same_check(old: &Failover, new: &Failover, role: Role, index: usize) -> Option<usize> {
    let check = new.site(role).checks.get(index)?;
    old.site(role).checks.iter().position(|c| c == check)
}

impl Controller {
    /// Applies `config` and `zones`; says what changed, or why nothing did.
    pub(super) async fn reload(
        &mut self,
        config: &Config,
        zones: Vec<Zone>,
        base: std::sync::Arc<crate::dns::Base>,
        static_changes: &crate::dns::transfer::StaticChanges,
    ) -> Result<Vec<String>, String> {
        let mut changes = Vec::new();
        // What is stored now: anything new is stored before it is served.
        let stored = (self.serials.clone(), self.digests.clone());
        let follows = self.follows();
        match (&mut self.failing, &config.failover) {
            (None, None) => {}
            (Some(_), None) | (None, Some(_)) => {
                return Err("adding or removing the failover section needs a restart".into());
            }
            (Some(failing), Some(new)) if failing.config != *new => {
                if let Some(pending) = failing.engine.pending() {
                    return Err(format!(
                        "the failover settings cannot change while the failover of epoch {} is under way; reload again once it has finished",
                        pending.epoch
                    ));
                }
                let unsettled = failing.read_only.is_some()
                    || failing.preparing.is_some()
                    || failing.undoing.is_some()
                    || failing.clearing
                    || !failing.scheduled_clears.is_empty();
                if unsettled {
                    return Err(
                        "the failover settings cannot change while read-only steps are being set, undone or cleared (the flags they touch are those of the old settings); reload again once they have finished"
                            .into(),
                    );
                }
                if let Some(drill) = &failing.drill {
                    return Err(format!(
                        "the failover settings cannot change while drill {} runs; reload again once it has finished",
                        drill.id
                    ));
                }
                self.tasks.start(new, &self.state_dir, &self.outbox)?;
                let old = std::mem::replace(&mut failing.config, new.clone());
                let mut engine = Engine::new(new.engine_spec(), failing.engine.persisted().clone());
                engine.carry_over(&failing.engine, |role, index| {
                    same_check(&old, new, role, index)
                });
                failing.engine = engine;
                failing.latencies = [Role::Primary, Role::Secondary].map(|role| {
                    (0..new.site(role).checks.len())
                        .map(|i| {
                            same_check(&old, new, role, i)
                                .map(|j| {
                                    failing.latencies[usize::from(role == Role::Secondary)][j]
                                        .clone()
                                })
                                .unwrap_or_default()
                        })
                        .collect()
                });
                let active = failing.engine.persisted().active;
                let ttl = failing.ttl_override;
                let answers_changed = answers::failover_records(&old, active, ttl)
                    != answers::failover_records(new, active, ttl);
                changes.push("failover settings".to_string());
                if answers_changed {
                    changes.push("the failover records' answers".to_string());
                }
            }
            (Some(_), Some(_)) => {}
        }
        // A zone whose failover records changed (their digest is part of
        // the zone's) and nothing else: one serial more, whatever its
        // serial policy (the failover section's changes are not the zone
        // file's serial to manage), standing for the new content. A
        // follower's serials are the agreed state's: the leader's reload
        // moves them.
        let (mut serials, mut digests) = (self.serials.clone(), self.digests.clone());
        if !follows {
            for zone in &zones {
                let origin = zone.origin.to_string();
                let refreshed = self.zones.iter().any(|old| {
                    old.origin == zone.origin
                        && old.file_digest == zone.file_digest
                        && old.digest != zone.digest
                        && digests.get(&origin) == Some(&old.digest)
                });
                if refreshed && let Some(serial) = serials.get_mut(&origin) {
                    *serial = serial.wrapping_add(1);
                    digests.insert(origin, zone.digest.clone());
                }
            }
        }
        if let Ok(mut history) = self.history.lock() {
            history.load(&zones, config, static_changes);
        }
        if !config.dns.listen.is_empty() {
            self.secondaries.configure(config);
        }
        self.zones = zones;
        self.zone_sources = config.zones.clone();
        self.base = base;
        self.settle_serials(&serials, &digests);
        if (&self.serials, &self.digests) != (&stored.0, &stored.1) {
            self.store_serials(stored.clone()).await;
        }
        for (zone, serial) in &self.serials {
            match stored.0.get(zone) {
                Some(old) if old != serial => {
                    changes.push(format!("zone {zone}: serial {old} -> {serial}"))
                }
                None => changes.push(format!("zone {zone}: served at serial {serial}")),
                _ => {}
            }
        }
        self.notifier = super::Notifier::new(config.webhooks.clone());
        // With several nodes, only the leader notifies.
        self.notifier.mute(self.follows());
        self.drill_config = config.drill.clone();
        self.publish();
        self.publish_view().await;
        if self.failing.is_some() {
            let now = now_ms();
            self.save(now).await;
            let summary = format!(
                "reloaded: zones{}",
                changes.iter().map(|c| format!(", {c}")).collect::<String>()
            );
            info!("{summary}");
            let epoch = self.engine().map_or(0, |e| e.persisted().epoch);
            self.journal(NewEntry {
                at: now,
                epoch,
                actor: "operator".into(),
                kind: "command",
                event: "reloaded".into(),
                summary,
                reasons: Vec::new(),
                outcome: "ok".into(),
            });
        }
        Ok(changes)
    }
}
