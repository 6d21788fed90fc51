//! Several controllers, one decision. What every node does: probe both
//! sites and publish its view (`member` keeps it under the node's lease),
//! follow the agreed state (the leader's decisions) and serve its
//! answers, cache it, and forward operators' requests to the leader. What
//! only the leader does: judge the sites by the quorum of live views,
//! decide, act, and write the agreed state, every write fenced by its
//! lease. A node that loses etcd keeps serving the last agreed answer and
//! decides nothing.

pub mod member;

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use super::{ControlEvent, Controller, DrillStartReply, Notification, now_ms};
use crate::{
    config::{ClusterConfig, Place},
    engine::{
        Decision, Engine, Role, SiteHealth,
        quorum::{self, VantageView},
        utc,
    },
    store::{
        JournalEntry, NewEntry, StoredState,
        shared::{Leadership, NodeView, ServedContent},
    },
};
use member::{Event, Forwarded, ForwardedReply, Request};

/// How long a request given at a follower waits for the leader.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);
/// The shared journal entries kept in memory for the status.
const JOURNAL_SHOWN: usize = 1000;

/// A request waiting for the leader's reply.
pub(super) enum Waiter {
    Command(oneshot::Sender<Result<Decision, String>>),
    DrillStart(oneshot::Sender<DrillStartReply>),
    DrillAbort(oneshot::Sender<bool>),
}

/// This node's part in the cluster.
pub(super) struct Cluster {
    pub config: ClusterConfig,
    pub member: mpsc::Sender<Request>,
    pub leadership: Leadership,
    pub etcd_up: bool,
    pub etcd_detail: String,
    pub etcd_since: u64,
    pub leader: Option<String>,
    pub leading: bool,
    /// The live nodes' views, by node.
    pub views: BTreeMap<String, NodeView>,
    /// The shared journal, oldest first.
    pub journal: VecDeque<JournalEntry>,
    /// What this node last published of the sites and of its zones.
    published: Option<(VantageView, BTreeMap<String, ServedContent>, bool)>,
    /// The epoch of an agreed state not taken because it was older than
    /// this node's (told once).
    refused_epoch: Option<u64>,
    waiting: HashMap<String, Waiter>,
    next_id: u64,
    /// When (ms) a view of a node at the primary site was last seen (at
    /// first: when this node started).
    primary_seen: u64,
}

impl Cluster {
    pub fn new(
        config: ClusterConfig,
        member: mpsc::Sender<Request>,
        leadership: Leadership,
    ) -> Self {
        Self {
            config,
            member,
            leadership,
            etcd_up: false,
            etcd_detail: "not contacted yet".into(),
            etcd_since: now_ms(),
            leader: None,
            leading: false,
            views: BTreeMap::new(),
            journal: VecDeque::new(),
            published: None,
            refused_epoch: None,
            waiting: HashMap::new(),
            next_id: 1,
            primary_seen: now_ms(),
        }
    }

    fn remember(&mut self, entry: JournalEntry) {
        if self.journal.iter().any(|e| e.seq == entry.seq) {
            return;
        }
        let at = self.journal.partition_point(|e| e.seq < entry.seq);
        self.journal.insert(at, entry);
        while self.journal.len() > JOURNAL_SHOWN {
            self.journal.pop_front();
        }
    }

    /// The quorum's verdict on both sites from the live views of the
    /// configured nodes.
    fn agreed(&self, names: [&str; 2]) -> [quorum::Agreed; 2] {
        quorum::agree(
            &counted(&self.views, &self.config),
            self.config.quorum,
            names,
        )
    }
}

/// What the status shows of the cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub node: String,
    pub place: Place,
    pub leader: Option<String>,
    pub leading: bool,
    pub quorum: usize,
    pub etcd: EtcdStatus,
    pub nodes: Vec<NodeStatus>,
    /// The quorum's verdict on each site, primary first.
    pub agreed: Vec<AgreedStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EtcdStatus {
    pub up: bool,
    pub detail: String,
    /// RFC 3339: since when it is so.
    pub since: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    pub name: String,
    pub place: Place,
    /// Its view is in etcd: its lease lives.
    pub live: bool,
    pub leader: bool,
    /// What it sees of each site, primary first, while live.
    pub view: Option<Vec<SiteView>>,
    pub since: Option<String>,
    /// Each zone it serves: serial and content digest, while live.
    #[serde(default)]
    pub zones: BTreeMap<String, ServedContent>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SiteView {
    pub health: SiteHealth,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgreedStatus {
    pub health: SiteHealth,
    pub detail: String,
}

impl Controller {
    fn cluster_mut(&mut self) -> Option<&mut Cluster> {
        self.cluster.as_mut()
    }

    /// Whether this node follows: a leader elsewhere decides, or its own
    /// leadership's deadline has passed (until a renewal or a new
    /// campaign says otherwise).
    pub(super) fn follows(&self) -> bool {
        self.cluster
            .as_ref()
            .is_some_and(|c| !c.leading || !c.leadership.leads())
    }

    /// Publishes this node's view of the sites when it changed.
    pub(super) async fn publish_view(&mut self) {
        let Some(failing) = &self.failing else {
            return;
        };
        let engine = &failing.engine;
        let view = VantageView {
            node: String::new(),
            health: [
                engine.local_health(Role::Primary),
                engine.local_health(Role::Secondary),
            ],
            detail: [
                engine.local_description(Role::Primary),
                engine.local_description(Role::Secondary),
            ],
        };
        let zones: BTreeMap<String, ServedContent> = self
            .zones_served()
            .into_iter()
            .map(|z| {
                (
                    z.zone,
                    ServedContent {
                        serial: z.serial,
                        digest: z.digest,
                    },
                )
            })
            .collect();
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        let view = VantageView {
            node: cluster.config.node.clone(),
            ..view
        };
        let published = (view, zones, self.self_fenced.is_some());
        if cluster.published.as_ref() == Some(&published) {
            return;
        }
        cluster.published = Some(published.clone());
        let (view, zones, self_fenced) = published;
        let me = cluster.config.me();
        let node_view = NodeView {
            place: me.place,
            since: utc(now_ms()),
            dns: me.dns.clone(),
            view,
            zones,
            self_fenced,
        };
        let _ = cluster
            .member
            .send(Request::View(Box::new(node_view)))
            .await;
    }

    /// Mirrors a journal entry into the shared journal, when leading.
    pub(super) fn share(&self, entry: &JournalEntry) {
        if let Some(cluster) = &self.cluster
            && cluster.leading
        {
            let _ = cluster
                .member
                .try_send(Request::Journal(Box::new(entry.clone())));
        }
    }

    /// Waits until the journal entries shared so far are in etcd; why
    /// not, when one is not. Nothing to wait for with a single controller.
    pub(super) async fn flush_journal(&mut self) -> Result<(), String> {
        let Some(cluster) = &self.cluster else {
            return Ok(());
        };
        let member = cluster.member.clone();
        let patience =
            cluster.config.etcd.timeout * (cluster.config.etcd.endpoints.len() as u32 + 1);
        let (reply, flushed) = oneshot::channel();
        let _ = member.send(Request::Flush(reply)).await;
        match tokio::time::timeout(patience, flushed).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err("the cluster member task stopped".into()),
            Err(_) => Err(format!(
                "etcd did not confirm within {} ms",
                patience.as_millis()
            )),
        }
    }

    /// The quorum's verdict, given to the deciding engine.
    /// Whether a node of the primary site says it fenced its database
    /// while cut off (and the fence is not lifted yet).
    pub(super) fn primary_self_fenced(&self) -> bool {
        self.cluster.as_ref().is_some_and(|c| {
            c.views
                .values()
                .any(|v| v.place == crate::config::Place::Primary && v.self_fenced)
        })
    }

    /// The quorum's verdict and the primary site's node's absence, as
    /// they stand now (at each tick: absence grows without events).
    pub(super) fn agree_now(&mut self) {
        self.agree();
    }

    fn agree(&mut self) {
        let (Some(failing), Some(cluster)) = (&mut self.failing, &self.cluster) else {
            return;
        };
        let names = [
            failing.config.sites[0].name.clone(),
            failing.config.sites[1].name.clone(),
        ];
        let agreed = cluster.agreed([&names[0], &names[1]]);
        failing.engine.set_agreed(Some(agreed));
        // `mode: promote`: the primary site's node gone longer than its
        // lease plus `fence_after` has fenced its own database.
        let now = now_ms();
        let primary_nodes = cluster
            .config
            .nodes
            .iter()
            .filter(|n| n.place == crate::config::Place::Primary)
            .count();
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        if primary_nodes == 0
            || cluster
                .views
                .values()
                .any(|v| v.place == crate::config::Place::Primary)
        {
            cluster.primary_seen = now;
        }
        let fenced = failing.config.promotion.as_ref().and_then(|p| {
            // From its view's expiry: its lease, then what the node needs
            // to notice etcd is gone (every endpoint timing out), then
            // fence_after, then the fence itself (at most two steps).
            let etcd = &cluster.config.etcd;
            let endpoints = etcd.endpoints.len().max(1) as u32;
            let wait = etcd.lease_ttl
                + etcd.timeout * endpoints
                + p.fence_after
                + failing.config.step_timeout * 2;
            let gone = now.saturating_sub(cluster.primary_seen);
            (gone >= wait.as_millis() as u64).then(|| {
                format!(
                    "the primary site's node has been gone for {} s, longer than its lease ({}), the time to notice etcd is gone ({}), fence_after ({}) and the fence itself ({}): cut off, it has fenced its database itself",
                    gone / 1000,
                    crate::config::duration::show(etcd.lease_ttl),
                    crate::config::duration::show(etcd.timeout * endpoints),
                    crate::config::duration::show(p.fence_after),
                    crate::config::duration::show(failing.config.step_timeout * 2)
                )
            })
        });
        failing.engine.set_primary_node_fenced(fenced);
    }

    /// Takes the agreed state: the engine's, the serials, what the shell
    /// keeps; serves its answers and keeps a copy on disk. Whether it was
    /// taken (not when older than this node's).
    async fn adopt(&mut self, state: StoredState) -> bool {
        let Some(failing) = &mut self.failing else {
            return true;
        };
        if let Err(why) = takes(failing.engine.persisted(), &state.engine) {
            let told = self.cluster.as_ref().and_then(|c| c.refused_epoch);
            if told != Some(state.engine.epoch) {
                error!("{why}");
            }
            if let Some(cluster) = self.cluster_mut() {
                cluster.refused_epoch = Some(state.engine.epoch);
            }
            return false;
        }
        let changed = failing.engine.persisted().active != state.engine.active
            || failing.ttl_override != state.ttl_override;
        failing.engine.adopt(state.engine.clone());
        failing.scheduled_clears = state.scheduled_clears.clone();
        failing.ttl_override = state.ttl_override;
        failing.read_only = state.read_only.clone();
        failing.drill = state.drill.clone();
        failing.store.keep_copy(&state).await;
        let served = self.settle_serials(&state.serials, &state.digests);
        if served {
            self.publish_view().await;
        }
        if changed || served {
            self.publish();
        }
        self.observe_timeline(super::now_ms());
        true
    }

    /// A change in the cluster, from the member task.
    pub(super) async fn cluster_event(&mut self, event: Event) {
        let now = now_ms();
        match event {
            Event::Etcd { up, detail } => {
                if let Some(cluster) = self.cluster_mut() {
                    cluster.etcd_up = up;
                    cluster.etcd_detail = detail.clone();
                    cluster.etcd_since = now;
                }
                if up {
                    info!("etcd answers: this node takes part in the cluster's decisions again");
                } else {
                    error!(
                        "etcd does not answer ({detail}): this node keeps serving the last agreed answer and decides nothing"
                    );
                }
            }
            Event::Snapshot {
                leader,
                views,
                state,
                journal,
            } => {
                if let Some(cluster) = self.cluster_mut() {
                    cluster.leader = leader;
                    cluster.views = views.into_iter().collect();
                    cluster.journal.clear();
                    for entry in journal {
                        cluster.remember(entry);
                    }
                }
                if let Some((state, _)) = state
                    && self.follows()
                {
                    self.adopt(state).await;
                }
                self.agree();
            }
            Event::Leading { state, revision } => {
                // A state older than this node's is written over with its
                // own at the first step.
                let taken = match state {
                    Some(state) => self.adopt(state).await,
                    None => true,
                };
                if let Some(failing) = &mut self.failing {
                    failing.dirty |= !taken;
                }
                self.lead(revision).await;
            }
            Event::Deposed(why) => self.depose(&why).await,
            Event::Leader(leader) => {
                if let Some(cluster) = self.cluster_mut() {
                    if cluster.leader != leader {
                        info!(
                            "the leader is now {}",
                            leader.as_deref().unwrap_or("nobody (an election follows)")
                        );
                    }
                    cluster.leader = leader;
                }
            }
            Event::View { node, view } => {
                let leading = self.cluster.as_ref().is_some_and(|c| c.leading);
                let fenced = view.as_ref().is_some_and(|v| v.self_fenced);
                let lost = match (self.cluster_mut(), view) {
                    (Some(cluster), Some(view)) => {
                        cluster.views.insert(node.clone(), view);
                        false
                    }
                    (Some(cluster), None) => cluster.views.remove(&node).is_some(),
                    (None, _) => false,
                };
                if lost && leading {
                    let epoch = self.engine().map_or(0, |e| e.persisted().epoch);
                    let summary = format!(
                        "node {node}'s view is gone: it stopped, or lost etcd (it keeps serving the last agreed answer)"
                    );
                    warn!("{summary}");
                    self.notifier
                        .send(Notification::new("node_lost", epoch, None, summary, now));
                }
                self.agree();
                if leading {
                    self.step(crate::engine::Input::Tick, now).await;
                    if fenced {
                        // Its fence is lifted by this leader's next pass.
                        self.reconcile(now);
                    }
                }
            }
            Event::State { state, revision } => {
                let fenced_at = self.cluster.as_ref().map(|c| c.leadership.fence().revision);
                if self.follows() {
                    self.adopt(state).await;
                } else if fenced_at.is_some_and(|r| revision > r) {
                    // Somebody else wrote the state after this node's
                    // last write (the echoes of its own are older or
                    // equal): it cannot build on what it last wrote.
                    self.depose("the agreed state changed under this node")
                        .await;
                    self.adopt(state).await;
                }
            }
            Event::Journal(entry) => {
                if let Some(cluster) = self.cluster_mut() {
                    cluster.remember(*entry);
                }
            }
            Event::Forwarded { id, request } => {
                // Only a node that leads carries out a request; the
                // requester's own timeout answers it otherwise.
                if self.follows() {
                    return;
                }
                let reply = match request {
                    Forwarded::Command { command, actor } => {
                        ForwardedReply::Command(self.command(command, actor, now).await)
                    }
                    Forwarded::DrillStart { request, dry_run } => ForwardedReply::DrillStart(
                        Box::new(self.drill_start(request, dry_run, now).await),
                    ),
                    Forwarded::DrillAbort { reason } => {
                        ForwardedReply::DrillAbort(self.drill_abort(reason))
                    }
                };
                if let Some(cluster) = &self.cluster {
                    let _ = cluster.member.send(Request::Reply { id, reply }).await;
                }
            }
            Event::Reply { id, reply } => {
                let waiter = self.cluster_mut().and_then(|c| c.waiting.remove(&id));
                match (waiter, reply) {
                    (Some(Waiter::Command(tx)), ForwardedReply::Command(r)) => {
                        let _ = tx.send(r);
                    }
                    (Some(Waiter::DrillStart(tx)), ForwardedReply::DrillStart(r)) => {
                        let _ = tx.send(*r);
                    }
                    (Some(Waiter::DrillAbort(tx)), ForwardedReply::DrillAbort(r)) => {
                        let _ = tx.send(r);
                    }
                    _ => {}
                }
            }
        }
    }

    /// This node leads: its engine decides, from the agreed state and the
    /// quorum's verdict, and picks up what a former leader left half-done.
    async fn lead(&mut self, revision: i64) {
        let now = now_ms();
        if let Some(failing) = &mut self.failing {
            let mut engine = Engine::new(
                failing.config.engine_spec(),
                failing.engine.persisted().clone(),
            );
            engine.carry_over(&failing.engine, |_, index| Some(index));
            failing.engine = engine;
            failing.engine.set_deciding(true);
        }
        self.notifier.mute(false);
        if let Some(cluster) = self.cluster_mut() {
            cluster.leading = true;
            cluster.leader = Some(cluster.config.node.clone());
        }
        // The schedule starts afresh with each new leader: no drill before
        // the checks have settled here. The previous leader's steps may
        // land until its step timeout has passed: no undo and no
        // reconciliation before then.
        if let Some(failing) = &mut self.failing {
            failing.schedule = super::drill::schedule::ScheduleState::new(now_ms());
            let quiet = failing.config.step_timeout;
            failing.quiet_until = now + quiet.as_millis() as u64;
            self.reconcile_after(quiet);
        }
        // The serials are this node's to pick now: content of its own
        // that the agreed state does not hold gets a new one, stored
        // before it is served.
        let before = (self.serials.clone(), self.digests.clone());
        if self.settle_serials(&before.0, &before.1) {
            self.store_serials(before).await;
            self.publish();
            self.publish_view().await;
        }
        info!(
            revision,
            "leading from the agreed state at revision {revision}"
        );
        self.agree();
        let node = self
            .cluster
            .as_ref()
            .map(|c| c.config.node.clone())
            .unwrap_or_default();
        let epoch = self.engine().map_or(0, |e| e.persisted().epoch);
        self.journal(NewEntry {
            at: now,
            epoch,
            actor: node.clone(),
            kind: "decision",
            event: "leader".into(),
            summary: format!("{node} leads the cluster"),
            reasons: Vec::new(),
            outcome: "ok".into(),
        });
        self.resume_background_work().await;
        self.step(crate::engine::Input::Tick, now).await;
    }

    /// This node no longer leads: it stops deciding at once.
    pub(super) async fn depose(&mut self, why: &str) {
        if let Some(failing) = &mut self.failing {
            failing.engine.set_deciding(false);
        }
        self.notifier.mute(true);
        let was = self.cluster.as_ref().is_some_and(|c| c.leading);
        if let Some(cluster) = self.cluster_mut() {
            cluster.leading = false;
            cluster.leadership.end();
        }
        if was {
            warn!("this node stopped deciding: {why}");
            // Its tasks stop with the leadership; a drill fails back under
            // the next leader.
            self.drill_abort(format!("this node no longer leads: {why}"));
        }
    }

    /// Hands an operator's request to the leader; the answer comes later.
    pub(super) async fn forward(&mut self, request: Forwarded, waiter: Waiter) {
        let outbox = self.outbox.clone();
        let Some(cluster) = self.cluster_mut() else {
            return;
        };
        if !cluster.etcd_up {
            let why = format!(
                "etcd does not answer ({}): no leader can be reached",
                cluster.etcd_detail
            );
            refuse(waiter, why);
            return;
        }
        let id = format!("{}-{}-{}", cluster.config.node, now_ms(), cluster.next_id);
        cluster.next_id += 1;
        cluster.waiting.insert(id.clone(), waiter);
        let _ = cluster
            .member
            .send(Request::Forward {
                id: id.clone(),
                request,
            })
            .await;
        tokio::spawn(async move {
            tokio::time::sleep(FORWARD_TIMEOUT).await;
            let _ = outbox.send(ControlEvent::ForwardTimeout { id }).await;
        });
    }

    /// A forwarded request's time is up: the operator hears so.
    pub(super) async fn forward_timeout(&mut self, id: String) {
        let Some(cluster) = self.cluster_mut() else {
            return;
        };
        let Some(waiter) = cluster.waiting.remove(&id) else {
            return;
        };
        let _ = cluster.member.send(Request::Forget { id }).await;
        let leader = cluster.leader.clone().unwrap_or_else(|| "no node".into());
        refuse(
            waiter,
            format!(
                "the leader ({leader}) did not answer within {} s; check the status before asking again",
                FORWARD_TIMEOUT.as_secs()
            ),
        );
    }

    pub(super) fn cluster_status(&self) -> Option<ClusterStatus> {
        let cluster = self.cluster.as_ref()?;
        let names = self
            .failing
            .as_ref()
            .map(|f| {
                [
                    f.config.sites[0].name.clone(),
                    f.config.sites[1].name.clone(),
                ]
            })
            .unwrap_or_else(|| ["primary".into(), "secondary".into()]);
        let agreed = cluster.agreed([&names[0], &names[1]]);
        Some(ClusterStatus {
            node: cluster.config.node.clone(),
            place: cluster.config.me().place,
            leader: cluster.leader.clone(),
            leading: cluster.leading,
            quorum: cluster.config.quorum,
            etcd: EtcdStatus {
                up: cluster.etcd_up,
                detail: cluster.etcd_detail.clone(),
                since: utc(cluster.etcd_since),
            },
            nodes: cluster
                .config
                .nodes
                .iter()
                .map(|node| {
                    let view = cluster.views.get(&node.name);
                    NodeStatus {
                        name: node.name.clone(),
                        place: node.place,
                        live: view.is_some(),
                        leader: cluster.leader.as_deref() == Some(node.name.as_str()),
                        view: view.map(|v| {
                            (0..2)
                                .map(|i| SiteView {
                                    health: v.view.health[i],
                                    detail: v.view.detail[i].clone(),
                                })
                                .collect()
                        }),
                        zones: view.map(|v| v.zones.clone()).unwrap_or_default(),
                        since: view.map(|v| v.since.clone()),
                    }
                })
                .collect(),
            agreed: agreed
                .into_iter()
                .map(|a| AgreedStatus {
                    health: a.health,
                    detail: a.text,
                })
                .collect(),
        })
    }
}

/// The views that count toward the quorum: those of the configured
/// nodes. A node not in `nodes:` (a leftover, a misconfigured one) is
/// shown nowhere and counts for nothing.
fn counted(views: &BTreeMap<String, NodeView>, config: &ClusterConfig) -> Vec<VantageView> {
    views
        .iter()
        .filter(|(node, _)| config.nodes.iter().any(|n| n.name == **node))
        .map(|(_, v)| v.view.clone())
        .collect()
}

/// Whether a node holding `held` takes the agreed state `offered`: not
/// one from an older epoch (an etcd restored from an older backup would
/// otherwise move traffic back).
fn takes(
    held: &crate::engine::Persisted,
    offered: &crate::engine::Persisted,
) -> Result<(), String> {
    if offered.epoch < held.epoch {
        return Err(format!(
            "the agreed state in etcd is at epoch {} ({} active), older than epoch {} this node holds ({} active): not taken (was etcd restored from an older backup?); the leader writes the newer state back",
            offered.epoch, offered.active, held.epoch, held.active
        ));
    }
    Ok(())
}

/// Answers a waiting request with an error.
fn refuse(waiter: Waiter, why: String) {
    match waiter {
        Waiter::Command(tx) => {
            let _ = tx.send(Err(why));
        }
        Waiter::DrillStart(tx) => {
            let _ = tx.send(DrillStartReply {
                id: None,
                refused: Some(format!("drill refused: {why}")),
                prechecks: Vec::new(),
                plan: Vec::new(),
            });
        }
        Waiter::DrillAbort(tx) => {
            let _ = tx.send(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EtcdConfig, cluster::Node};

    fn config(names: &[&str]) -> ClusterConfig {
        ClusterConfig {
            node: names[0].into(),
            nodes: names
                .iter()
                .map(|name| Node {
                    name: (*name).into(),
                    place: Place::Witness,
                    dns: Vec::new(),
                    http: None,
                    state_dir: std::path::PathBuf::new(),
                    notify_source: Vec::new(),
                })
                .collect(),
            quorum: 2,
            etcd: EtcdConfig {
                endpoints: Vec::new(),
                prefix: "/p".into(),
                lease_ttl: Duration::from_secs(5),
                timeout: Duration::from_secs(2),
                tls: None,
                auth: None,
            },
        }
    }

    fn down(node: &str) -> NodeView {
        NodeView {
            place: Place::Witness,
            since: String::new(),
            dns: Vec::new(),
            self_fenced: false,
            view: VantageView {
                node: node.into(),
                health: [SiteHealth::Down, SiteHealth::Healthy],
                detail: ["primary down".into(), "secondary healthy".into()],
            },
            zones: BTreeMap::new(),
        }
    }

    #[test]
    fn views_of_nodes_not_configured_count_for_nothing() {
        let config = config(&["ns1", "ns2", "witness"]);
        let views: BTreeMap<String, NodeView> = [
            ("ns1".to_string(), down("ns1")),
            ("stranger".to_string(), down("stranger")),
            ("old-ns3".to_string(), down("old-ns3")),
        ]
        .into_iter()
        .collect();
        let counted = counted(&views, &config);
        assert_eq!(counted.len(), 1);
        let agreed = quorum::agree(&counted, config.quorum, ["primary", "secondary"]);
        assert_ne!(agreed[0].health, SiteHealth::Down, "{}", agreed[0].text);
    }

    #[test]
    fn an_agreed_state_from_an_older_epoch_is_not_taken() {
        let held = crate::engine::Persisted {
            epoch: 5,
            active: Role::Secondary,
            ..Default::default()
        };
        let older = crate::engine::Persisted {
            epoch: 3,
            ..Default::default()
        };
        let why = takes(&held, &older).expect_err("an older epoch");
        assert!(why.contains("epoch 3") && why.contains("epoch 5"), "{why}");
        let same = crate::engine::Persisted {
            epoch: 5,
            paused: true,
            ..held.clone()
        };
        assert!(takes(&held, &same).is_ok());
        let newer = crate::engine::Persisted {
            epoch: 6,
            ..held.clone()
        };
        assert!(takes(&held, &newer).is_ok());
    }
}
