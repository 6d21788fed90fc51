//! What the status page, the JSON API, the CLI and `/metrics` show: one
//! snapshot of the controller, built on request from its current state.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    config::CheckKind,
    db::Observed,
    engine::{CheckState, Precheck, ReplicationView, Role, SiteHealth, utc},
    store::JournalEntry,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub time: String,
    /// False when the config has no failover section: DNS only.
    pub failover_configured: bool,
    /// The active site's name.
    pub active: Option<String>,
    pub active_role: Option<Role>,
    pub epoch: u64,
    pub paused: bool,
    pub auto_failover: bool,
    /// RFC 3339, while a cooldown runs.
    pub cooldown_until: Option<String>,
    pub last_decision: Option<String>,
    /// Why the active site is active: the decision that made it so.
    pub active_because: Option<String>,
    pub ready_for_failback: bool,
    pub failback_prechecks: Vec<Precheck>,
    /// A failover waiting for read-only mode to be verified.
    pub pending_failover: Option<String>,
    /// Why the primary is down and no failover starts, while that lasts.
    pub failover_blocked: Option<String>,
    /// Whether a failover could run now (its read-only steps checked
    /// without changing anything), once the checks have run.
    pub failover_ready: Option<super::readiness::Readiness>,
    /// Warnings of the current failover's read-only steps, such as a
    /// grant audit that could not run.
    pub read_only_warnings: Vec<String>,
    /// The drill under way.
    pub drill: Option<String>,
    pub last_drill: Option<DrillSummary>,
    /// The newest drill reports, newest first.
    #[serde(default)]
    pub drill_history: Vec<DrillSummary>,
    /// Drills on a schedule, when `drill.every` is set.
    #[serde(default)]
    pub drill_schedule: Option<DrillScheduleStatus>,
    /// Replication between the sites' databases, when both have one.
    pub replication: Option<ReplicationStatus>,
    /// When scheduled application-flag clears are due (RFC 3339).
    pub flag_clears: Vec<String>,
    pub failovers_total: u64,
    pub sites: Vec<SiteStatus>,
    pub dns: DnsStatus,
    /// The newest journal entries, newest first (with several nodes, the
    /// shared journal's).
    pub recent_events: Vec<JournalEntry>,
    /// The last hour (or since the start) for the page's picture.
    #[serde(default)]
    pub timeline: Option<super::timeline::TimelineView>,
    /// With several nodes: this node, the leader, every vantage point's
    /// view, the quorum's verdict, etcd.
    #[serde(default)]
    pub cluster: Option<super::cluster::ClusterStatus>,
    /// The last reconciliation of the flags with the agreed state.
    #[serde(default)]
    pub reconcile: Option<super::reconcile::ReconcileStatus>,
    /// `failover.mode: promote`: the promotion stage, the RPO, the fence.
    #[serde(default)]
    pub promotion: Option<PromotionStatus>,
}

/// `mode: promote` as the page, the JSON and `/metrics` show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PromotionStatus {
    /// read_only (traffic on the primary, or the secondary read-only),
    /// promoting, promoted, rejoined or diverged.
    pub stage: String,
    /// "RPO 0: semi-sync AFTER_SYNC, acknowledged" or why writes could
    /// be lost, as last seen of the primary.
    pub rpo: Option<String>,
    pub rpo_zero: bool,
    /// Why no automatic promotion starts, while that lasts.
    pub blocked: Option<String>,
    /// Whether the old primary was verified fenced or taken as down.
    pub fence: Option<String>,
    /// The new primary's GTID position when it became writable.
    pub position: Option<String>,
    /// Diverged: the old primary's GTIDs the new one lacks.
    pub errant: Vec<String>,
    pub detail: Option<String>,
    pub promote_after_s: u64,
    pub allow_data_loss: bool,
    /// With several nodes, on the primary site's node: since when it has
    /// fenced its own database, cut from the cluster (RFC 3339).
    #[serde(default)]
    pub self_fenced: Option<String>,
    /// An operator holds the old primary's rejoin: by whom, since when.
    #[serde(default)]
    pub rejoin_held: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrillSummary {
    pub id: String,
    #[serde(default)]
    pub operator: String,
    #[serde(default)]
    pub started: String,
    pub result: String,
    pub reason: Option<String>,
    pub finished: String,
    pub total_ms: u64,
    pub decision_to_answer_ms: Option<u64>,
    pub answer_to_consistent_ms: Option<u64>,
    /// Each step from the drill's start: the page's drill timeline.
    #[serde(default)]
    pub steps: Vec<super::drill::StepSpan>,
}

impl From<&super::drill::DrillReport> for DrillSummary {
    fn from(r: &super::drill::DrillReport) -> Self {
        Self {
            id: r.id.clone(),
            operator: r.operator.clone(),
            started: r.started.clone(),
            result: r.result.clone(),
            reason: r.reason.clone(),
            finished: r.finished.clone(),
            total_ms: r.timings.total_ms,
            decision_to_answer_ms: r.timings.decision_to_answer_ms,
            answer_to_consistent_ms: r.timings.answer_to_consistent_ms,
            steps: r.spans(),
        }
    }
}

/// Drills on a schedule, as the page shows them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrillScheduleStatus {
    pub every: String,
    pub window: String,
    /// RFC 3339: a period after the last drill began.
    pub due: String,
    /// RFC 3339: the first moment, from now on, a scheduled drill may
    /// start (due, in the window, not waiting after a skip); none when the
    /// window never opens.
    pub next_start: Option<String>,
    /// RFC 3339: when no drill for a period past its due time made it
    /// overdue, while it is.
    pub overdue_since: Option<String>,
}

/// What the replication watcher last saw: the view the engine decides on,
/// plus when, the flavour and the GTID positions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplicationStatus {
    pub observed: String,
    pub flavor: Option<String>,
    pub primary_position: Option<String>,
    pub secondary_position: Option<String>,
    #[serde(flatten)]
    pub view: ReplicationView,
}

impl ReplicationStatus {
    pub fn from_observed(at: u64, seen: &crate::db::Observed) -> Self {
        Self {
            observed: utc(at),
            flavor: seen.flavor.clone(),
            primary_position: seen.primary_position.clone(),
            secondary_position: seen.secondary_position.clone(),
            view: view_of(seen),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SiteStatus {
    pub name: String,
    pub role: Role,
    pub active: bool,
    pub health: SiteHealth,
    pub down_when: String,
    pub checks: Vec<CheckStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckStatus {
    pub name: String,
    /// `http`, `tcp` or `mysql`.
    pub kind: String,
    /// Where it probes (no credentials).
    pub target: String,
    pub state: CheckState,
    pub last_ok: Option<bool>,
    pub last_detail: Option<String>,
    pub latency_ms: Option<f64>,
    /// The latest probe results, oldest first: the page's sparkline.
    #[serde(default)]
    pub samples: Vec<super::timeline::Sample>,
    /// RFC 3339: when the state last changed.
    pub since: Option<String>,
    pub interval_ms: u64,
    pub fall: u32,
    pub rise: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DnsStatus {
    /// Zone origin to the SOA serial served.
    pub serials: BTreeMap<String, u32>,
    pub records: Vec<RecordStatus>,
    /// Responses sent, by rcode name.
    pub responses: BTreeMap<String, u64>,
    /// The secondaries notified of each zone's changes.
    #[serde(default)]
    pub secondaries: Vec<crate::dns::notify::SecondaryStatus>,
    /// Response rate limiting: responses limited, dropped, slipped.
    #[serde(default)]
    pub rrl: BTreeMap<String, u64>,
    /// Each zone's serial, this node's content digest and whether it is
    /// the content the serial stands for.
    #[serde(default)]
    pub zones: Vec<super::serials::ZoneServed>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordStatus {
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: String,
    pub ttl: u32,
    pub answer: Vec<String>,
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
        semi_sync: observed.semi_sync.clone(),
        swapped: observed.swapped,
    }
}

impl super::Controller {
    /// A snapshot of everything the status shows.
    pub fn status(&self, now: u64) -> Status {
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
            secondaries: self.secondaries.status(),
            rrl: self.counters.rrl_snapshot(),
            zones: self.zones_served(),
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
                failover_blocked: None,
                failover_ready: None,
                read_only_warnings: Vec::new(),
                drill: None,
                last_drill: None,
                drill_history: Vec::new(),
                drill_schedule: None,
                replication: None,
                flag_clears: Vec::new(),
                failovers_total: 0,
                sites: Vec::new(),
                dns,
                recent_events: Vec::new(),
                timeline: None,
                cluster: self.cluster_status(),
                reconcile: None,
                promotion: None,
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
                            latency_ms: latency.last().map(|s| s.ms),
                            samples: latency.to_vec(),
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
            failover_blocked: f.engine.failover_blocked().map(str::to_string),
            failover_ready: f.readiness.clone(),
            read_only_warnings: f.warnings.clone(),
            drill: f
                .drill
                .as_ref()
                .map(|d| format!("drill {} ({})", d.id, d.phase)),
            last_drill: f.last_drill.as_ref().map(DrillSummary::from),
            drill_history: f.drill_history.clone(),
            drill_schedule: self.drill_config.schedule.as_ref().map(|s| {
                let due = super::drill::schedule::due(&f.schedule, s.every, self.last_drill_at());
                let overdue_at = due.saturating_add(s.every.as_millis() as u64);
                let next = s
                    .window
                    .next_open(due.max(f.schedule.skipped_until).max(now));
                DrillScheduleStatus {
                    every: crate::config::duration::show(s.every),
                    window: s.window.describe(),
                    due: crate::engine::utc(due),
                    next_start: next.map(crate::engine::utc),
                    overdue_since: (now > overdue_at).then(|| crate::engine::utc(overdue_at)),
                }
            }),
            replication: f
                .observed
                .as_ref()
                .map(|(at, seen)| ReplicationStatus::from_observed(*at, seen)),
            flag_clears: f
                .scheduled_clears
                .iter()
                .map(|c| crate::engine::utc(c.not_before))
                .collect(),
            failovers_total: f.failovers_total,
            sites,
            dns,
            recent_events: self.recent_events(20),
            timeline: Some({
                let names = Role::BOTH.map(|role| f.config.site(role).name.as_str());
                match &self.cluster {
                    Some(cluster) => f.timeline.view(now, names, cluster.journal.iter()),
                    None => f.timeline.view(now, names, f.journal.entries()),
                }
            }),
            cluster: self.cluster_status(),
            reconcile: Some(f.reconcile_status.clone()).filter(|r| r.checked.is_some()),
            promotion: f.config.promotion.as_ref().map(|settings| {
                let current = f.engine.promotion();
                let rpo = f.engine.rpo();
                PromotionStatus {
                    stage: current.map_or("read_only", |p| p.stage.word()).to_string(),
                    rpo: current
                        .map(|p| p.rpo.clone())
                        .or_else(|| rpo.map(crate::engine::Rpo::describe)),
                    rpo_zero: rpo.is_some_and(|r| r.zero),
                    blocked: f.engine.promotion_blocked().map(str::to_string),
                    fence: current.map(|p| {
                        let detail = p.detail.clone().unwrap_or_default();
                        match &p.fence_basis {
                            _ if detail.contains("old primary fenced") => {
                                "the old primary was verified fenced".to_string()
                            }
                            Some(basis) => format!("the old primary taken as fenced: {basis}"),
                            None => "the old primary is fenced before the secondary is changed"
                                .to_string(),
                        }
                    }),
                    self_fenced: self.self_fenced.map(crate::engine::utc),
                    position: current.and_then(|p| p.position.clone()),
                    errant: current.map(|p| p.errant.clone()).unwrap_or_default(),
                    detail: current.and_then(|p| p.detail.clone()),
                    promote_after_s: settings.after.as_secs(),
                    allow_data_loss: settings.allow_data_loss,
                    rejoin_held: current.and_then(|p| p.rejoin_held.clone()),
                }
            }),
        }
    }
}

pub fn kind_and_target(kind: &CheckKind) -> (String, String) {
    match kind {
        CheckKind::Http(http) => (
            if http.url.starts_with("https") {
                "https"
            } else {
                "http"
            }
            .into(),
            format!("{} {}", http.method, crate::probe::shown_url(&http.url)),
        ),
        CheckKind::Tcp { address } => ("tcp".into(), address.to_string()),
        CheckKind::Mysql(m) => ("mysql".into(), m.describe()),
    }
}

pub fn time_of(ms: Option<u64>) -> Option<String> {
    ms.map(utc)
}

impl Status {
    /// Prometheus text format (version 0.0.4).
    pub fn metrics(&self) -> String {
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, f64)>| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for (labels, value) in samples {
                out.push_str(&format!("{name}{labels} {value}\n"));
            }
        };
        let label = |pairs: &[(&str, &str)]| {
            let inner: Vec<String> = pairs
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{k}=\"{}\"",
                        v.replace('\\', "\\\\")
                            .replace('"', "\\\"")
                            .replace('\n', "\\n")
                    )
                })
                .collect();
            format!("{{{}}}", inner.join(","))
        };
        let checks: Vec<(&SiteStatus, &CheckStatus)> = self
            .sites
            .iter()
            .flat_map(|s| s.checks.iter().map(move |c| (s, c)))
            .collect();
        family(
            "geofailover_check_up",
            "gauge",
            "Whether the check counts as up (1), down (0) or unknown (-1).",
            checks
                .iter()
                .map(|(s, c)| {
                    let value = match c.state {
                        CheckState::Up => 1.0,
                        CheckState::Down => 0.0,
                        CheckState::Unknown => -1.0,
                    };
                    (label(&[("site", &s.name), ("check", &c.name)]), value)
                })
                .collect(),
        );
        family(
            "geofailover_check_latency_seconds",
            "gauge",
            "How long the check's last probe took.",
            checks
                .iter()
                .filter_map(|(s, c)| {
                    c.latency_ms
                        .map(|ms| (label(&[("site", &s.name), ("check", &c.name)]), ms / 1000.0))
                })
                .collect(),
        );
        family(
            "geofailover_site_healthy",
            "gauge",
            "Whether the site is healthy (1), down (0) or degraded (0.5).",
            self.sites
                .iter()
                .map(|s| {
                    let value = match s.health {
                        SiteHealth::Healthy => 1.0,
                        SiteHealth::Down => 0.0,
                        SiteHealth::Degraded => 0.5,
                    };
                    (label(&[("site", &s.name)]), value)
                })
                .collect(),
        );
        family(
            "geofailover_active_site",
            "gauge",
            "1 for the site the failover records point at.",
            self.sites
                .iter()
                .map(|s| {
                    (
                        label(&[("site", &s.name), ("role", &s.role.to_string())]),
                        if s.active { 1.0 } else { 0.0 },
                    )
                })
                .collect(),
        );
        family(
            "geofailover_failovers_total",
            "counter",
            "Changes of active site to the secondary since the controller started.",
            vec![(String::new(), self.failovers_total as f64)],
        );
        if let Some(r) = &self.reconcile {
            family(
                "geofailover_flag_drift_total",
                "counter",
                "Flags the leader found apart from the agreed state (and repaired) since it started.",
                vec![(String::new(), r.drift_total as f64)],
            );
            family(
                "geofailover_flags_in_agreement",
                "gauge",
                "1 when every flag read at the last reconciliation matched the agreed state or was repaired.",
                vec![(String::new(), if r.in_agreement { 1.0 } else { 0.0 })],
            );
        }
        family(
            "geofailover_epoch",
            "gauge",
            "Grows by one at every change of active site.",
            vec![(String::new(), self.epoch as f64)],
        );
        family(
            "geofailover_failover_ready",
            "gauge",
            "1 when every read-only step of a failover could run now, 0 when one could not (absent before the first check).",
            self.failover_ready
                .iter()
                .map(|r| (String::new(), if r.ready { 1.0 } else { 0.0 }))
                .collect(),
        );
        family(
            "geofailover_failover_blocked",
            "gauge",
            "1 while the primary is down and no failover can start.",
            vec![(
                String::new(),
                if self.failover_blocked.is_some() {
                    1.0
                } else {
                    0.0
                },
            )],
        );
        if let Some(p) = &self.promotion {
            family(
                "geofailover_promotion_stage",
                "gauge",
                "1 for the promotion stage now (failover.mode: promote).",
                ["read_only", "promoting", "promoted", "rejoined", "diverged"]
                    .iter()
                    .map(|stage| {
                        let value = if p.stage == *stage { 1.0 } else { 0.0 };
                        (label(&[("stage", stage)]), value)
                    })
                    .collect(),
            );
            family(
                "geofailover_rpo_zero",
                "gauge",
                "1 when, as last seen of the primary, every acknowledged write was at the secondary (semi-sync AFTER_SYNC, acknowledged).",
                vec![(String::new(), if p.rpo_zero { 1.0 } else { 0.0 })],
            );
        }
        family(
            "geofailover_paused",
            "gauge",
            "1 while automatic failover is paused.",
            vec![(String::new(), if self.paused { 1.0 } else { 0.0 })],
        );
        // Without databases the replication families are there, empty.
        let replication = self.replication.as_ref().map(|r| &r.view);
        let flag = |b: Option<bool>| if b == Some(true) { 1.0 } else { 0.0 };
        family(
            "geofailover_replication_running",
            "gauge",
            "1 while the secondary's replication thread runs.",
            replication
                .map(|v| {
                    vec![
                        (label(&[("thread", "io")]), flag(v.io_running)),
                        (label(&[("thread", "sql")]), flag(v.sql_running)),
                    ]
                })
                .unwrap_or_default(),
        );
        family(
            "geofailover_replication_lag_seconds",
            "gauge",
            "Seconds the secondary lags behind the primary (Seconds_Behind_Master).",
            replication
                .and_then(|v| v.lag_s)
                .map(|l| (String::new(), l as f64))
                .into_iter()
                .collect(),
        );
        family(
            "geofailover_replication_missing_transactions",
            "gauge",
            "Transactions the primary has that the secondary has not applied (by GTID).",
            replication
                .and_then(|v| v.missing)
                .map(|m| (String::new(), m as f64))
                .into_iter()
                .collect(),
        );
        family(
            "geofailover_replication_errant_transactions",
            "gauge",
            "GTIDs at the secondary that did not come from the primary.",
            replication
                .map(|v| (String::new(), v.errant.len() as f64))
                .into_iter()
                .collect(),
        );
        let mut errors = Vec::new();
        if let Some(v) = replication {
            for (thread, text) in [("io", &v.last_io_error), ("sql", &v.last_sql_error)] {
                if !text.is_empty() {
                    errors.push((label(&[("thread", thread), ("error", text)]), 1.0));
                }
            }
            for (side, text) in [
                ("primary", &v.primary_error),
                ("secondary", &v.secondary_error),
            ] {
                if let Some(text) = text {
                    errors.push((label(&[("thread", side), ("error", text)]), 1.0));
                }
            }
        }
        family(
            "geofailover_replication_error",
            "gauge",
            "1 for each replication or database error, with the server's text.",
            errors,
        );
        if let Some(c) = &self.cluster {
            let health = |h: SiteHealth| match h {
                SiteHealth::Healthy => 1.0,
                SiteHealth::Down => 0.0,
                SiteHealth::Degraded => 0.5,
            };
            family(
                "geofailover_etcd_up",
                "gauge",
                "1 while this node reaches etcd; 0: it serves the last agreed answer and decides nothing.",
                vec![(String::new(), if c.etcd.up { 1.0 } else { 0.0 })],
            );
            family(
                "geofailover_leader",
                "gauge",
                "1 while this node leads the cluster.",
                vec![(String::new(), if c.leading { 1.0 } else { 0.0 })],
            );
            family(
                "geofailover_cluster_node_live",
                "gauge",
                "1 for each node whose view is in etcd (its lease lives).",
                c.nodes
                    .iter()
                    .map(|n| {
                        (
                            label(&[("node", &n.name), ("place", &n.place.to_string())]),
                            if n.live { 1.0 } else { 0.0 },
                        )
                    })
                    .collect(),
            );
            let site_names: Vec<String> = self.sites.iter().map(|s| s.name.clone()).collect();
            family(
                "geofailover_vantage_site_healthy",
                "gauge",
                "What each live node sees of each site: healthy (1), down (0), degraded (0.5).",
                c.nodes
                    .iter()
                    .flat_map(|n| {
                        n.view.iter().flatten().zip(&site_names).map(|(v, site)| {
                            (
                                label(&[("node", &n.name), ("site", site)]),
                                health(v.health),
                            )
                        })
                    })
                    .collect(),
            );
            family(
                "geofailover_agreed_site_healthy",
                "gauge",
                "The quorum's verdict on each site: healthy (1), down (0), degraded (0.5).",
                c.agreed
                    .iter()
                    .zip(&site_names)
                    .map(|(a, site)| (label(&[("site", site)]), health(a.health)))
                    .collect(),
            );
        }
        family(
            "geofailover_dns_responses_total",
            "counter",
            "DNS responses sent by the query handler, by rcode.",
            self.dns
                .responses
                .iter()
                .map(|(rcode, n)| (label(&[("rcode", rcode)]), *n as f64))
                .collect(),
        );
        family(
            "geofailover_soa_serial",
            "gauge",
            "The SOA serial served, by zone.",
            self.dns
                .serials
                .iter()
                .map(|(zone, serial)| (label(&[("zone", zone)]), f64::from(*serial)))
                .collect(),
        );
        family(
            "geofailover_zone_content_agreed",
            "gauge",
            "1 when this node's zone file is the content its served serial stands for; 0 when it differs (nothing of the zone is transferred from this node).",
            self.dns
                .zones
                .iter()
                .map(|z| {
                    (
                        label(&[
                            ("zone", &z.zone),
                            ("digest", super::serials::short(&z.digest)),
                        ]),
                        if z.agreed { 1.0 } else { 0.0 },
                    )
                })
                .collect(),
        );
        family(
            "geofailover_dnssec_signatures_expire_timestamp_seconds",
            "gauge",
            "When the signatures of a signed zone expire (seconds since 1970); the zone is signed again `refresh` before. Alert well before: a zone whose signatures expire goes bogus at every validating resolver.",
            self.dns
                .zones
                .iter()
                .filter_map(|z| {
                    let signed = z.dnssec.as_ref()?;
                    Some((label(&[("zone", &z.zone)]), signed.expires_at as f64))
                })
                .collect(),
        );
        family(
            "geofailover_dnssec_keys_agreed",
            "gauge",
            "For a signed zone: 1 when this node signs with the keys of the agreed content; 0 when its keys differ (its DNSSEC answers for the zone are refused).",
            self.dns
                .zones
                .iter()
                .filter_map(|z| {
                    let agreed = z.keys_agreed?;
                    Some((label(&[("zone", &z.zone)]), if agreed { 1.0 } else { 0.0 }))
                })
                .collect(),
        );
        family(
            "geofailover_dnssec_key",
            "gauge",
            "1 for each key a signed zone is signed with, by its tag and role.",
            self.dns
                .zones
                .iter()
                .flat_map(|z| {
                    z.dnssec.iter().flat_map(move |signed| {
                        signed.keys.iter().map(move |k| {
                            (
                                label(&[
                                    ("zone", &z.zone),
                                    ("tag", &k.tag.to_string()),
                                    ("role", &k.role),
                                ]),
                                1.0,
                            )
                        })
                    })
                })
                .collect(),
        );
        for (what, help) in [
            (
                "limited",
                "UDP responses over the rate limit (in a dry run, those that would have been).",
            ),
            (
                "dropped",
                "UDP responses dropped by response rate limiting.",
            ),
            (
                "slipped",
                "UDP responses sent truncated (TC) by response rate limiting.",
            ),
        ] {
            family(
                &format!("geofailover_rrl_{what}_total"),
                "counter",
                help,
                vec![(
                    String::new(),
                    self.dns.rrl.get(what).copied().unwrap_or(0) as f64,
                )],
            );
        }
        let secondary = |s: &crate::dns::notify::SecondaryStatus| {
            label(&[("zone", &s.zone), ("secondary", &s.address)])
        };
        family(
            "geofailover_secondary_notified_serial",
            "gauge",
            "The last serial a secondary acknowledged a NOTIFY for (-1: none yet).",
            self.dns
                .secondaries
                .iter()
                .map(|s| (secondary(s), s.notified_serial.map_or(-1.0, f64::from)))
                .collect(),
        );
        family(
            "geofailover_secondary_serial",
            "gauge",
            "The serial a secondary's SOA answered with (-1: no answer yet).",
            self.dns
                .secondaries
                .iter()
                .map(|s| (secondary(s), s.answered_serial.map_or(-1.0, f64::from)))
                .collect(),
        );
        family(
            "geofailover_secondary_caught_up",
            "gauge",
            "Whether a secondary answers the serial served here (1) or not (0).",
            self.dns
                .secondaries
                .iter()
                .map(|s| (secondary(s), if s.caught_up { 1.0 } else { 0.0 }))
                .collect(),
        );
        out
    }
}
