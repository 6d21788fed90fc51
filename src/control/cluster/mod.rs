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
    sync::{Arc, Mutex},
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
        shared::{Fence, NodeView},
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
    pub fence: Arc<Mutex<Fence>>,
    pub etcd_up: bool,
    pub etcd_detail: String,
    pub etcd_since: u64,
    pub leader: Option<String>,
    pub leading: bool,
    /// The live nodes' views, by node.
    pub views: BTreeMap<String, NodeView>,
    /// The shared journal, oldest first.
    pub journal: VecDeque<JournalEntry>,
    /// What this node last published of the sites.
    published: Option<VantageView>,
    waiting: HashMap<String, Waiter>,
    next_id: u64,
}

impl Cluster {
    pub fn new(
        config: ClusterConfig,
        member: mpsc::Sender<Request>,
        fence: Arc<Mutex<Fence>>,
    ) -> Self {
        Self {
            config,
            member,
            fence,
            etcd_up: false,
            etcd_detail: "not contacted yet".into(),
            etcd_since: now_ms(),
            leader: None,
            leading: false,
            views: BTreeMap::new(),
            journal: VecDeque::new(),
            published: None,
            waiting: HashMap::new(),
            next_id: 1,
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

    /// The quorum's verdict on both sites from the live views.
    fn agreed(&self, names: [&str; 2]) -> [quorum::Agreed; 2] {
        let views: Vec<VantageView> = self.views.values().map(|v| v.view.clone()).collect();
        quorum::agree(&views, self.config.quorum, names)
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

    /// Whether this node follows (a leader elsewhere decides).
    pub(super) fn follows(&self) -> bool {
        self.cluster.as_ref().is_some_and(|c| !c.leading)
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
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        let view = VantageView {
            node: cluster.config.node.clone(),
            ..view
        };
        if cluster.published.as_ref() == Some(&view) {
            return;
        }
        cluster.published = Some(view.clone());
        let me = cluster.config.me();
        let node_view = NodeView {
            place: me.place,
            since: utc(now_ms()),
            dns: me.dns.clone(),
            view,
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

    /// The quorum's verdict, given to the deciding engine.
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
    }

    /// Takes the agreed state: the engine's, the serials, what the shell
    /// keeps; serves its answers and keeps a copy on disk.
    async fn adopt(&mut self, state: StoredState) {
        let Some(failing) = &mut self.failing else {
            return;
        };
        let changed = failing.engine.persisted().active != state.engine.active
            || self.serials != state.serials
            || failing.ttl_override != state.ttl_override;
        failing.engine.adopt(state.engine.clone());
        failing.scheduled_clears = state.scheduled_clears.clone();
        failing.ttl_override = state.ttl_override;
        failing.read_only = state.read_only.clone();
        failing.drill = state.drill.clone();
        failing.store.keep_copy(&state).await;
        let stored = self.serials.clone();
        self.serials = state.serials.clone();
        for (zone, serial) in stored {
            let entry = self.serials.entry(zone).or_insert(serial);
            *entry = (*entry).max(serial);
        }
        if changed {
            self.publish();
        }
        self.observe_timeline(super::now_ms());
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
                if let Some(state) = state {
                    self.adopt(state).await;
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
                }
            }
            Event::State { state, revision } => {
                let fenced_at = self
                    .cluster
                    .as_ref()
                    .and_then(|c| c.fence.lock().ok().map(|f| f.revision));
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
        // the checks have settled here.
        if let Some(failing) = &mut self.failing {
            failing.schedule = super::drill::schedule::ScheduleState::new(now_ms());
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
            if let Ok(mut fence) = cluster.fence.lock() {
                fence.lease = 0;
            }
        }
        if was {
            warn!("this node stopped deciding: {why}");
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
