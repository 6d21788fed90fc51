//! The controller's side of drills: the pre-checks and plan, starting one
//! (or finishing the fail-back of one a restart interrupted), aborting
//! it, and keeping its report.

use tokio::sync::watch;
use tracing::{error, info, warn};

use super::{DrillContext, DrillReport, DrillRequest};
use crate::{
    control::{ControlEvent, Controller, DrillStartReply, Failing, now_ms},
    engine::Role,
    store::{DrillProgress, NewEntry},
};

impl Controller {
    /// The nameservers a drill verifies: geofailover's own (below) and
    /// every secondary it notifies.
    fn drill_nameservers(&self, failing: &Failing) -> Vec<std::net::SocketAddr> {
        let mut servers = self.own_nameservers(failing);
        for secondary in self.secondaries.addresses() {
            if !servers.contains(&secondary) {
                servers.push(secondary);
            }
        }
        servers
    }

    /// The configured list (a listen address stands for where it is
    /// actually bound); with several nodes, every node's DNS addresses;
    /// else the zones' NS records at port 53.
    fn own_nameservers(&self, failing: &Failing) -> Vec<std::net::SocketAddr> {
        use hickory_proto::rr::{LowerName, RData, RecordType};
        let actual = |addr: std::net::SocketAddr| {
            self.dns_addresses
                .iter()
                .find(|(configured, _)| *configured == addr)
                .map_or(addr, |(_, bound)| *bound)
        };
        if !self.drill_config.nameservers.is_empty() {
            return self
                .drill_config
                .nameservers
                .iter()
                .map(|a| actual(*a))
                .collect();
        }
        if let Some(cluster) = &self.cluster {
            return cluster
                .config
                .nodes
                .iter()
                .flat_map(|n| n.dns.iter().map(|a| actual(*a)))
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
            for record in zone.records.at(&zone.origin) {
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
    pub(in crate::control) async fn drill_start(
        &mut self,
        request: DrillRequest,
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
        let plan = super::plan(&ctx, &request);
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
        self.spawn_drill(ctx, request, id.clone(), false).await;
        DrillStartReply {
            id: Some(id),
            refused: None,
            prechecks,
            plan,
        }
    }

    fn drill_context(&self, nameservers: Vec<std::net::SocketAddr>) -> Option<DrillContext> {
        let failing = self.failing.as_ref()?;
        let outbox = self.outbox.clone();
        // A node without DNS of its own (a witness) watches the first
        // nameserver instead.
        let own_dns = self
            .dns_addresses
            .first()
            .map(|(_, bound)| *bound)
            .or_else(|| nameservers.first().copied())?;
        let (_, abort) = watch::channel(None);
        Some(DrillContext {
            outbox,
            nameservers,
            own_dns,
            records: failing.config.records.clone(),
            primary_addresses: failing.config.sites[0].addresses.clone(),
            secondary_addresses: failing.config.sites[1].addresses.clone(),
            primary: failing.config.sites[0].clone(),
            secondary: failing.config.sites[1].clone(),
            timeout: self.drill_config.timeout,
            abort,
            promote: failing.config.promotion.is_some(),
            writer: self.drill_writer(failing),
        })
    }

    /// The drill writer's account at each site's database (its address
    /// and TLS), when `drill.writer` is set.
    fn drill_writer(&self, failing: &Failing) -> Option<[crate::db::DbTarget; 2]> {
        let writer = self.drill_config.writer.as_ref()?;
        let at = |site: usize| {
            let db = failing.config.sites[site].database.as_ref()?;
            Some(crate::db::DbTarget {
                user: writer.user.clone(),
                password: writer.password.clone(),
                ..db.target.clone()
            })
        };
        Some([at(0)?, at(1)?])
    }

    async fn spawn_drill(
        &mut self,
        mut ctx: DrillContext,
        request: DrillRequest,
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
        self.save(now_ms()).await;
        info!(drill = %id, resume, "drill started by {}", request.operator);
        let outbox = ctx.outbox.clone();
        tokio::spawn(async move {
            let report = super::run(ctx, request, id, resume, zones).await;
            let _ = outbox
                .send(ControlEvent::DrillFinished(Box::new(report)))
                .await;
        });
    }

    pub(in crate::control) async fn drill_finished(&mut self, report: DrillReport) {
        let now = now_ms();
        let Some(failing) = &mut self.failing else {
            return;
        };
        failing.drill = None;
        failing.drill_abort = None;
        let saved = super::save(&self.state_dir, &report);
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
        failing
            .drill_history
            .insert(0, crate::control::status::DrillSummary::from(&report));
        failing.drill_history.truncate(super::super::DRILL_HISTORY);
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
        self.save(now).await;
    }

    /// Aborts the running drill (it fails back at once); whether one ran.
    pub(in crate::control) fn drill_abort(&mut self, reason: String) -> bool {
        let abort = self.failing.as_ref().and_then(|f| f.drill_abort.clone());
        if let Some(abort) = &abort {
            info!("drill aborted: {reason}");
            let _ = abort.send(Some(reason));
        }
        abort.is_some()
    }

    /// A drill a restart interrupted: its fail-back is finished.
    pub(in crate::control) async fn resume_drill(&mut self) {
        let interrupted = self.failing.as_ref().and_then(|f| f.drill.clone());
        let Some(progress) = interrupted else {
            return;
        };
        let nameservers = self
            .failing
            .as_ref()
            .map(|f| self.drill_nameservers(f))
            .unwrap_or_default();
        if let Some(ctx) = self.drill_context(nameservers) {
            let request = DrillRequest {
                hold: self.drill_config.hold,
                lower_ttl: None,
                operator: "engine".into(),
                read_only: false,
            };
            warn!(drill = %progress.id, phase = %progress.phase, "a drill was under way when the controller stopped: finishing its fail-back");
            self.spawn_drill(ctx, request, progress.id, true).await;
        }
    }
}
