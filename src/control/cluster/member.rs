//! This node's membership in the cluster, in the background: it holds a
//! lease (kept alive every third of its TTL), publishes the node's view
//! under it, campaigns for the `leader` key when nobody holds it, watches
//! everything below the prefix and tells the controller what changed. It
//! also carries out the controller's writes that are not the agreed state
//! (which `EtcdStore` writes): the shared journal, forwarded commands and
//! their replies. A leader that cannot renew its lease steps down before
//! the lease can have expired at etcd, so two nodes never act at once.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::super::{ControlEvent, DrillStartReply, drill::DrillRequest};
use crate::{
    config::ClusterConfig,
    engine::{Command, Decision},
    store::{
        JournalEntry, StoredState,
        etcd::{Compare, Etcd, EtcdError, Kv, Op, Watch, WatchEvent},
        shared::{Fence, KeyKind, Keys, Leadership, NodeView, parse_state},
    },
};

/// The shared journal keeps this many entries.
const JOURNAL_KEPT: u64 = 1000;

/// An operator's request given at a follower, for the leader to carry out.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Forwarded {
    Command {
        command: Command,
        actor: String,
    },
    DrillStart {
        request: DrillRequest,
        dry_run: bool,
    },
    DrillAbort {
        reason: String,
    },
}

/// The leader's answer to a forwarded request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForwardedReply {
    Command(Result<Decision, String>),
    DrillStart(Box<DrillStartReply>),
    DrillAbort(bool),
}

/// What the controller asks of the member task.
#[derive(Debug)]
pub enum Request {
    /// Publish this node's view under its lease.
    View(Box<NodeView>),
    /// Append to the shared journal, as the leader.
    Journal(Box<JournalEntry>),
    /// Leave a request for the leader.
    Forward { id: String, request: Forwarded },
    /// Give up on a forwarded request: its key goes, and its reply's.
    Forget { id: String },
    /// The leader's answer to a forwarded request.
    Reply { id: String, reply: ForwardedReply },
    /// Answer once every journal entry asked for before is in the shared
    /// journal, or why one is not.
    Flush(tokio::sync::oneshot::Sender<Result<(), String>>),
    /// Give up leadership and the lease, at a clean stop.
    Resign,
}

/// What the member task tells the controller.
#[derive(Debug)]
pub enum Event {
    /// etcd answers again, or stopped answering (why).
    Etcd {
        up: bool,
        detail: String,
    },
    /// Everything below the prefix, read afresh (at start and after a lost
    /// watch).
    Snapshot {
        leader: Option<String>,
        views: Vec<(String, NodeView)>,
        state: Option<(StoredState, i64)>,
        journal: Vec<JournalEntry>,
    },
    /// This node leads now, from the agreed state at `revision`.
    Leading {
        state: Option<StoredState>,
        revision: i64,
    },
    /// This node no longer leads (why).
    Deposed(String),
    /// Who leads, by the `leader` key.
    Leader(Option<String>),
    View {
        node: String,
        view: Option<NodeView>,
    },
    State {
        state: StoredState,
        revision: i64,
    },
    Journal(Box<JournalEntry>),
    /// A request given at a follower, for the leader.
    Forwarded {
        id: String,
        request: Forwarded,
    },
    Reply {
        id: String,
        reply: ForwardedReply,
    },
}

fn text(kv: &Kv) -> String {
    String::from_utf8_lossy(&kv.value).into_owned()
}

struct Member {
    etcd: Arc<Etcd>,
    keys: Keys,
    node: String,
    ttl: Duration,
    timeout: Duration,
    leadership: Leadership,
    outbox: mpsc::Sender<ControlEvent>,
    lease: Option<i64>,
    /// The TTL etcd granted the lease (at least `ttl`).
    granted: Duration,
    /// When the lease was last granted or renewed (when the request that
    /// did it was sent: etcd counts the TTL from no earlier than that).
    renewed: Instant,
    /// The newest revision below the prefix, read at the last tick: the
    /// watch must have delivered it by the next.
    watch_target: Option<i64>,
    /// Who holds the `leader` key, as last seen.
    leader: Option<String>,
    view: Option<NodeView>,
    /// `view` is published under the current lease.
    view_published: bool,
    etcd_up: Option<bool>,
    next_journal: u64,
    /// Forwarded requests this node left, waiting for their replies.
    forwarded: Vec<String>,
    /// Why the last journal entry was not shared, until a flush tells it.
    unshared: Option<String>,
}

/// Starts the member task; requests go in through the returned sender.
pub fn spawn(
    etcd: Arc<Etcd>,
    config: &ClusterConfig,
    leadership: Leadership,
    outbox: mpsc::Sender<ControlEvent>,
) -> mpsc::Sender<Request> {
    let (requests, inbox) = mpsc::channel(1024);
    let member = Member {
        etcd,
        keys: Keys::new(&config.etcd.prefix),
        node: config.node.clone(),
        ttl: config.etcd.lease_ttl,
        timeout: config.etcd.timeout,
        leadership,
        outbox,
        lease: None,
        granted: config.etcd.lease_ttl,
        renewed: Instant::now(),
        watch_target: None,
        leader: None,
        view: None,
        view_published: false,
        etcd_up: None,
        next_journal: 1,
        forwarded: Vec::new(),
        unshared: None,
    };
    tokio::spawn(member.run(inbox));
    requests
}

impl Member {
    /// This node leads while its fence holds a lease: the controller
    /// clears it when a write of its own is refused, and the member when
    /// the lease is lost.
    fn leading(&self) -> bool {
        self.leadership.fence().lease != 0
    }

    /// Until when the lease surely holds at etcd, renewed by a request
    /// sent at `sent`: its granted TTL less a fifth as margin (clocks
    /// drift, etcd counts from when it got the request).
    fn deadline(&self, sent: Instant) -> Instant {
        sent + self.granted - self.granted / 5
    }

    async fn tell(&self, event: Event) {
        let _ = self
            .outbox
            .send(ControlEvent::Cluster(Box::new(event)))
            .await;
    }

    async fn contact(&mut self, result: &Result<(), EtcdError>) {
        let up = result.is_ok();
        if self.etcd_up != Some(up) {
            self.etcd_up = Some(up);
            let detail = match result {
                Ok(()) => "etcd answers".to_string(),
                Err(e) => e.to_string(),
            };
            self.tell(Event::Etcd { up, detail }).await;
        }
    }

    async fn run(mut self, mut inbox: mpsc::Receiver<Request>) {
        let mut ticks = tokio::time::interval(self.ttl / 3);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut watch: Option<Watch> = None;
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    let result = self.keep_lease().await;
                    self.contact(&result).await;
                    if result.is_err() {
                        // What changed meanwhile is read afresh once etcd
                        // answers again.
                        watch = None;
                        continue;
                    }
                    if !self.view_published
                        && let Some(view) = self.view.clone()
                    {
                        let published = self.publish(&view).await;
                        self.contact(&published).await;
                    }
                    if let Some(open) = &watch
                        && !self.watch_alive(open.seen()).await
                    {
                        watch = None;
                    }
                    if watch.is_none() {
                        self.watch_target = None;
                        match self.snapshot().await {
                            Ok(revision) => watch = Some(self.etcd.watch(&self.keys.all(), revision + 1)),
                            Err(e) => self.contact(&Err(e)).await,
                        }
                    }
                    if !self.leading() {
                        let mine = self.leader.as_deref() == Some(self.node.as_str());
                        if self.leader.is_none() || mine {
                            let campaign = self.campaign().await;
                            self.contact(&campaign).await;
                        }
                    }
                }
                event = async { match &mut watch { Some(w) => w.recv().await, None => std::future::pending().await } } => {
                    match event {
                        Some(WatchEvent::Reset) | None => watch = None,
                        Some(event) => self.watched(event).await,
                    }
                }
                request = inbox.recv() => match request {
                    Some(Request::Resign) | None => {
                        self.resign().await;
                        return;
                    }
                    Some(request) => {
                        let result = self.carry_out(request).await;
                        self.contact(&result).await;
                    }
                },
            }
        }
    }

    /// Whether the watch keeps up: the newest change below the prefix
    /// that another request saw at the last tick must have come through
    /// it by now. A watch on a member that stalled (SIGSTOP, a stuck
    /// disk: its connection stays open and silent while the others keep
    /// quorum) falls behind, and is opened again at a member that answers.
    async fn watch_alive(&mut self, seen: i64) -> bool {
        let behind = self.watch_target.is_some_and(|target| seen < target);
        if behind {
            warn!(
                seen,
                target = self.watch_target,
                "the watch of etcd fell behind (its member stalled?): reading afresh from a member that answers"
            );
            self.watch_target = None;
            return false;
        }
        match self.etcd.newest(&self.keys.all()).await {
            Ok(newest) => self.watch_target = Some(newest),
            Err(e) => debug!("cannot read the newest revision: {e}"),
        }
        true
    }

    /// Keeps the lease alive, or gets a new one; steps down in time when
    /// it cannot.
    async fn keep_lease(&mut self) -> Result<(), EtcdError> {
        if let Some(lease) = self.lease {
            // A leader must hear the answer while its lease surely still
            // holds at etcd (a fifth of the TTL kept as margin): past that
            // it stops acting, and goes on waiting for the answer (the
            // lease may well be alive, and a follower has nothing to stop).
            let sent = Instant::now();
            let deadline = self.deadline(self.renewed).saturating_duration_since(sent);
            let etcd = self.etcd.clone();
            let call = etcd.keep_alive(lease);
            tokio::pin!(call);
            let answer = if self.leading() {
                match tokio::time::timeout(deadline, &mut call).await {
                    Ok(answer) => answer,
                    Err(_) => {
                        self.step_down("etcd did not renew its lease in time").await;
                        call.await
                    }
                }
            } else {
                call.await
            };
            match answer {
                Ok(ttl) if ttl > 0 => {
                    self.renewed = sent;
                    let deadline = self.deadline(sent);
                    self.leadership.update(|f| {
                        f.member_until = Some(deadline);
                        if f.lease == lease {
                            f.deadline = Some(deadline);
                        }
                    });
                    return Ok(());
                }
                Ok(_) => {
                    warn!("this node's lease expired at etcd");
                    self.lease = None;
                    self.step_down("its lease expired").await;
                }
                Err(e) => {
                    // Another try may still come in time; past that, the
                    // lease may be gone at etcd: stop acting now.
                    if self.renewed.elapsed() + self.timeout >= self.granted {
                        self.step_down("etcd could not renew its lease in time")
                            .await;
                    }
                    return Err(e);
                }
            }
        }
        let sent = Instant::now();
        let (lease, granted) = self.etcd.grant(self.ttl).await?;
        self.lease = Some(lease);
        self.granted = granted;
        self.renewed = sent;
        let until = self.deadline(sent);
        self.leadership.update(|f| f.member_until = Some(until));
        self.view_published = false;
        debug!(lease, "lease granted");
        Ok(())
    }

    async fn step_down(&mut self, why: &str) {
        let was = self.leading();
        self.leadership.end();
        if was {
            warn!("this node is no longer the leader: {why}");
            self.tell(Event::Deposed(why.to_string())).await;
        }
    }

    /// Takes the `leader` key if nobody holds it. One transaction takes
    /// the key and reads what leading needs (the agreed state, the newest
    /// journal entry): a node never holds the key without what it needs
    /// to lead.
    async fn campaign(&mut self) -> Result<(), EtcdError> {
        let Some(lease) = self.lease else {
            return Ok(());
        };
        let sent = self.renewed;
        let take = campaign_ops(&self.keys, &self.node, lease);
        let mut result = self
            .etcd
            .txn(
                &[Compare::Absent(self.keys.leader())],
                &take,
                &[Op::Get(self.keys.leader())],
            )
            .await?;
        if !result.succeeded {
            // Still held by this node's own lease (it stepped down while
            // etcd was out of reach, and the lease outlived that): it
            // leads again, from the agreed state as it stands.
            let held = result.read.first().cloned().flatten();
            if held.as_ref().is_some_and(|kv| kv.lease == lease) {
                result = self
                    .etcd
                    .txn(&[Compare::Lease(self.keys.leader(), lease)], &take, &[])
                    .await?;
            } else {
                self.leader = held.map(|kv| text(&kv));
                return Ok(());
            }
            if !result.succeeded {
                return Ok(());
            }
        }
        let read = result.read.first().cloned().flatten();
        let revision = read.as_ref().map_or(0, |kv| kv.mod_revision);
        let state = match read.map(|kv| parse_state(&kv.value)).transpose() {
            Ok(state) => state,
            Err(e) => {
                // Nobody can build on a state it cannot read: give the
                // leadership back rather than overwrite it.
                warn!("the agreed state cannot be read: {e}");
                self.give_back(lease).await;
                return Ok(());
            }
        };
        let last_journal =
            result
                .read
                .get(1)
                .cloned()
                .flatten()
                .and_then(|kv| match self.keys.kind(&kv.key) {
                    KeyKind::Journal(seq) => Some(seq),
                    _ => None,
                });
        self.next_journal = last_journal
            .unwrap_or(0)
            .max(state.as_ref().map_or(0, |s| s.journal_seq))
            + 1;
        let deadline = self.deadline(sent);
        self.leadership.update(|f| {
            *f = Fence {
                lease,
                revision,
                deadline: Some(deadline),
                member_until: f.member_until,
            }
        });
        self.leader = Some(self.node.clone());
        info!(node = %self.node, "this node is the leader");
        self.tell(Event::Leading { state, revision }).await;
        Ok(())
    }

    /// Gives the `leader` key back, if this lease holds it.
    async fn give_back(&mut self, lease: i64) {
        let _ = self
            .etcd
            .txn(
                &[Compare::Lease(self.keys.leader(), lease)],
                &[Op::Delete(self.keys.leader())],
                &[],
            )
            .await;
    }

    /// Reads everything afresh; the revision read at.
    async fn snapshot(&mut self) -> Result<i64, EtcdError> {
        let (kvs, revision) = self.etcd.get_prefix(&self.keys.all()).await?;
        let mut leader = None;
        let mut views = Vec::new();
        let mut state = None;
        let mut journal = Vec::new();
        let mut forwarded = Vec::new();
        for kv in &kvs {
            match self.keys.kind(&kv.key) {
                KeyKind::Leader => leader = Some(text(kv)),
                KeyKind::State => match parse_state(&kv.value) {
                    Ok(parsed) => state = Some((parsed, kv.mod_revision)),
                    Err(e) => warn!("the agreed state cannot be read: {e}"),
                },
                KeyKind::View(node) => {
                    if let Ok(view) = serde_json::from_slice(&kv.value) {
                        views.push((node.to_string(), view));
                    }
                }
                KeyKind::Journal(_) => {
                    if let Ok(entry) = serde_json::from_slice(&kv.value) {
                        journal.push(entry);
                    }
                }
                KeyKind::Command(id) => {
                    if let Ok(request) = serde_json::from_slice(&kv.value) {
                        forwarded.push((id.to_string(), request));
                    }
                }
                KeyKind::Reply(_) | KeyKind::Other => {}
            }
        }
        if self.leading() && leader.as_deref() != Some(self.node.as_str()) {
            self.step_down("the leader key is not this node's").await;
        }
        self.leader = leader.clone();
        self.tell(Event::Snapshot {
            leader,
            views,
            state,
            journal,
        })
        .await;
        if self.leading() {
            for (id, request) in forwarded {
                self.tell(Event::Forwarded { id, request }).await;
            }
        }
        Ok(revision)
    }

    async fn watched(&mut self, event: WatchEvent) {
        let (key, kv) = match event {
            WatchEvent::Put(kv) => (kv.key.clone(), Some(kv)),
            WatchEvent::Delete { key, .. } => (key, None),
            WatchEvent::Reset => return,
        };
        let keys = self.keys.clone();
        match keys.kind(&key) {
            KeyKind::Leader => {
                let leader = kv.as_ref().map(text);
                if self.leading() && leader.as_deref() != Some(self.node.as_str()) {
                    self.step_down("another node holds the leader key").await;
                }
                self.leader = leader.clone();
                self.tell(Event::Leader(leader)).await;
                if self.leader.is_none() {
                    let campaign = self.campaign().await;
                    self.contact(&campaign).await;
                }
            }
            KeyKind::State => {
                if let Some(kv) = kv {
                    match parse_state(&kv.value) {
                        Ok(state) => {
                            self.tell(Event::State {
                                state,
                                revision: kv.mod_revision,
                            })
                            .await
                        }
                        Err(e) => warn!("the agreed state cannot be read: {e}"),
                    }
                }
            }
            KeyKind::View(node) => {
                let view = kv.and_then(|kv| serde_json::from_slice(&kv.value).ok());
                self.tell(Event::View {
                    node: node.to_string(),
                    view,
                })
                .await;
            }
            KeyKind::Journal(_) => {
                if let Some(entry) = kv.and_then(|kv| serde_json::from_slice(&kv.value).ok()) {
                    self.tell(Event::Journal(Box::new(entry))).await;
                }
            }
            KeyKind::Command(id) => {
                if self.leading()
                    && let Some(request) = kv.and_then(|kv| serde_json::from_slice(&kv.value).ok())
                {
                    self.tell(Event::Forwarded {
                        id: id.to_string(),
                        request,
                    })
                    .await;
                }
            }
            KeyKind::Reply(id) => {
                debug!(
                    id,
                    known = self.forwarded.iter().any(|f| f == id),
                    "a reply"
                );
                if self.forwarded.iter().any(|f| f == id)
                    && let Some(reply) = kv.and_then(|kv| serde_json::from_slice(&kv.value).ok())
                {
                    let id = id.to_string();
                    self.forwarded.retain(|f| *f != id);
                    let _ = self
                        .etcd
                        .txn(&[], &[Op::Delete(self.keys.reply(&id))], &[])
                        .await;
                    self.tell(Event::Reply { id, reply }).await;
                }
            }
            KeyKind::Other => {}
        }
    }

    async fn publish(&mut self, view: &NodeView) -> Result<(), EtcdError> {
        let value = serde_json::to_vec(view).unwrap_or_default();
        self.etcd
            .put(&self.keys.view(&self.node), &value, self.lease)
            .await?;
        self.view_published = true;
        Ok(())
    }

    async fn carry_out(&mut self, request: Request) -> Result<(), EtcdError> {
        match request {
            Request::View(view) => {
                self.view = Some(*view);
                self.view_published = false;
                if let Some(view) = self.view.clone()
                    && self.lease.is_some()
                {
                    self.publish(&view).await?;
                }
                Ok(())
            }
            Request::Journal(entry) => {
                let lease = self.leadership.fence().lease;
                if lease == 0 {
                    self.unshared = Some("this node no longer leads".into());
                    return Ok(());
                }
                let seq = self.next_journal;
                let mut entry = *entry;
                entry.seq = seq;
                let mut ops = vec![Op::Put {
                    key: self.keys.journal(seq),
                    value: serde_json::to_vec(&entry).unwrap_or_default(),
                    lease: None,
                }];
                if seq > JOURNAL_KEPT && seq.is_multiple_of(100) {
                    ops.push(Op::DeleteRange(
                        self.keys.journal(0),
                        self.keys.journal(seq - JOURNAL_KEPT),
                    ));
                }
                let result = match self
                    .etcd
                    .txn(&[Compare::Lease(self.keys.leader(), lease)], &ops, &[])
                    .await
                {
                    Ok(result) => result,
                    Err(e) => {
                        self.unshared = Some(e.to_string());
                        return Err(e);
                    }
                };
                if result.succeeded {
                    self.next_journal += 1;
                    self.unshared = None;
                } else {
                    self.unshared = Some("this node no longer leads".into());
                    debug!(
                        seq,
                        "a journal entry was not shared: this node no longer leads"
                    );
                }
                Ok(())
            }
            Request::Forward { id, request } => {
                self.forwarded.push(id.clone());
                let value = serde_json::to_vec(&request).unwrap_or_default();
                self.etcd
                    .put(&self.keys.command(&id), &value, self.lease)
                    .await
                    .map(|_| ())
            }
            Request::Forget { id } => {
                self.forwarded.retain(|f| *f != id);
                self.etcd
                    .txn(
                        &[],
                        &[
                            Op::Delete(self.keys.command(&id)),
                            Op::Delete(self.keys.reply(&id)),
                        ],
                        &[],
                    )
                    .await
                    .map(|_| ())
            }
            Request::Reply { id, reply } => {
                let lease = self.leadership.fence().lease;
                debug!(id, lease, "a reply to send");
                if lease == 0 {
                    return Ok(());
                }
                let value = serde_json::to_vec(&reply).unwrap_or_default();
                self.etcd
                    .txn(
                        &[Compare::Lease(self.keys.leader(), lease)],
                        &[
                            Op::Put {
                                key: self.keys.reply(&id),
                                value,
                                lease: Some(lease),
                            },
                            Op::Delete(self.keys.command(&id)),
                        ],
                        &[],
                    )
                    .await
                    .map(|_| ())
            }
            Request::Flush(reply) => {
                let _ = reply.send(self.unshared.take().map_or(Ok(()), Err));
                Ok(())
            }
            // Handled by `run`, which stops after it.
            Request::Resign => Ok(()),
        }
    }

    /// At a clean stop: the leader key and the view go with the lease.
    async fn resign(&mut self) {
        self.step_down("the controller stops").await;
        if let Some(lease) = self.lease.take() {
            let _ = self.etcd.revoke(lease).await;
        }
    }
}

/// The campaign's transaction when it wins: the `leader` key under the
/// node's lease, then the agreed state and the newest journal entry read
/// in the same transaction.
fn campaign_ops(keys: &Keys, node: &str, lease: i64) -> [Op; 3] {
    [
        Op::Put {
            key: keys.leader(),
            value: node.as_bytes().to_vec(),
            lease: Some(lease),
        },
        Op::Get(keys.state()),
        Op::Last(keys.journals()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Event as EngineEvent;

    #[test]
    fn a_campaign_reads_what_leading_needs_in_the_transaction_that_wins() {
        let keys = Keys::new("/p");
        let ops = campaign_ops(&keys, "ns1", 7);
        assert!(matches!(&ops[0], Op::Put { key, lease: Some(7), .. } if *key == keys.leader()));
        assert!(matches!(&ops[1], Op::Get(key) if *key == keys.state()));
        assert!(matches!(&ops[2], Op::Last(prefix) if *prefix == keys.journals()));
    }

    #[test]
    fn requests_and_replies_read_back_as_written() {
        let request = Forwarded::Command {
            command: Command::Failover {
                reason: "drill".into(),
                force: false,
            },
            actor: "erin".into(),
        };
        let text = serde_json::to_vec(&request).unwrap();
        let back: Forwarded = serde_json::from_slice(&text).unwrap();
        assert!(matches!(back, Forwarded::Command { actor, .. } if actor == "erin"));
        let reply = ForwardedReply::Command(Ok(Decision {
            at: 1,
            epoch: 2,
            event: EngineEvent::Paused,
            summary: "paused".into(),
            reasons: vec![],
            actions: vec![],
            notable: true,
        }));
        let text = serde_json::to_vec(&reply).unwrap();
        let back: ForwardedReply = serde_json::from_slice(&text)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&text)));
        assert!(matches!(back, ForwardedReply::Command(Ok(d)) if d.epoch == 2));
    }
}
