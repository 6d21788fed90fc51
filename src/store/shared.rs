//! The state several controllers share in etcd, below the configured
//! prefix:
//!
//! | key | what | held by |
//! |---|---|---|
//! | `leader` | the leading node's name | its lease |
//! | `state` | the agreed state (JSON `StoredState`) | written by the leader only |
//! | `views/<node>` | what that node sees of the sites | its lease |
//! | `journal/<seq>` | the shared journal, newest 1,000 entries | written by the leader only |
//! | `commands/<id>` | an operator's command given at a follower | the follower's lease |
//! | `replies/<id>` | the leader's answer to it | the leader's lease |
//!
//! Every write of the leader is a transaction that holds only while the
//! `leader` key is held by the leader's lease (its fencing token) and, for
//! the state, while the state is still at the revision the leader last
//! wrote or read: a deposed or partitioned leader's write fails.
//!
//! Each node keeps a copy of the last agreed state it wrote or read in its
//! state directory, served when etcd cannot be reached at start.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{error, warn};

use super::{
    LocalStore, Store, StoreError, StoredState,
    etcd::{Compare, Etcd, EtcdError, Op},
};
use crate::{config::Place, engine::quorum::VantageView};

/// The keys of one cluster.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.trim_end_matches('/').to_string(),
        }
    }

    /// Everything of this cluster.
    pub fn all(&self) -> String {
        format!("{}/", self.prefix)
    }
    pub fn leader(&self) -> String {
        format!("{}/leader", self.prefix)
    }
    pub fn state(&self) -> String {
        format!("{}/state", self.prefix)
    }
    pub fn views(&self) -> String {
        format!("{}/views/", self.prefix)
    }
    pub fn view(&self, node: &str) -> String {
        format!("{}{node}", self.views())
    }
    pub fn journals(&self) -> String {
        format!("{}/journal/", self.prefix)
    }
    pub fn journal(&self, seq: u64) -> String {
        format!("{}{seq:020}", self.journals())
    }
    pub fn commands(&self) -> String {
        format!("{}/commands/", self.prefix)
    }
    pub fn command(&self, id: &str) -> String {
        format!("{}{id}", self.commands())
    }
    pub fn replies(&self) -> String {
        format!("{}/replies/", self.prefix)
    }
    pub fn reply(&self, id: &str) -> String {
        format!("{}{id}", self.replies())
    }

    /// What a key of this cluster is.
    pub fn kind<'a>(&self, key: &'a str) -> KeyKind<'a> {
        let Some(rest) = key
            .strip_prefix(&self.prefix)
            .and_then(|r| r.strip_prefix('/'))
        else {
            return KeyKind::Other;
        };
        match rest.split_once('/') {
            None if rest == "leader" => KeyKind::Leader,
            None if rest == "state" => KeyKind::State,
            Some(("views", node)) => KeyKind::View(node),
            Some(("journal", seq)) => seq.parse().map_or(KeyKind::Other, KeyKind::Journal),
            Some(("commands", id)) => KeyKind::Command(id),
            Some(("replies", id)) => KeyKind::Reply(id),
            _ => KeyKind::Other,
        }
    }
}

/// A key of the cluster, by what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind<'a> {
    Leader,
    State,
    View(&'a str),
    Journal(u64),
    Command(&'a str),
    Reply(&'a str),
    Other,
}

/// What a node publishes under `views/<node>`: where it stands and what
/// it sees of the sites.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    pub place: Place,
    /// RFC 3339: when it last changed.
    pub since: String,
    /// Its DNS addresses (none for a witness).
    pub dns: Vec<std::net::SocketAddr>,
    #[serde(flatten)]
    pub view: VantageView,
    /// Each zone it serves: the serial and its zone file's content digest.
    #[serde(default)]
    pub zones: BTreeMap<String, ServedContent>,
    /// `mode: promote`, the primary site's node: it fenced its database
    /// while cut off, and the leader has not lifted that fence yet.
    #[serde(default)]
    pub self_fenced: bool,
}

/// A zone as a node serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedContent {
    pub serial: u32,
    pub digest: String,
}

/// The leader's fencing token, the state revision it builds on, and how
/// long it may act.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fence {
    /// The leader's lease (0: not leading).
    pub lease: i64,
    /// The state's revision as last written or read by the leader.
    pub revision: i64,
    /// Until when the lease surely holds at etcd: the send time of the
    /// last keep-alive that etcd answered, plus the TTL it granted, less
    /// a margin. Past it, the node does not act.
    pub deadline: Option<Instant>,
    /// The same for this node's own lease, whether or not it leads: until
    /// when it is surely still a member of the cluster.
    pub member_until: Option<Instant>,
}

impl Fence {
    /// The time left to act (zero when not leading).
    pub fn left(&self, now: Instant) -> Duration {
        match (self.lease, self.deadline) {
            (0, _) | (_, None) => Duration::ZERO,
            (_, Some(deadline)) => deadline.saturating_duration_since(now),
        }
    }
}

/// Who may act on the world. Every side effect (a read-only step, a flag
/// call, SQL, a change of this node's answers, a timer's effect) runs
/// through `run` (or checks `hold`): a node that does not lead, or whose
/// deadline has passed, cannot start one, and one under way is dropped
/// the moment the leadership ends. A single controller (`store: local`)
/// always leads.
#[derive(Clone)]
pub struct Leadership {
    fence: Option<Arc<watch::Sender<Fence>>>,
    /// The least time left for a step to start.
    room: Duration,
}

impl Leadership {
    /// A single controller's: it always leads.
    pub fn sole() -> Self {
        Self {
            fence: None,
            room: Duration::ZERO,
        }
    }

    /// A cluster node's, not leading yet; a step starts only with `room`
    /// of leadership left.
    pub fn shared(room: Duration) -> Self {
        Self {
            fence: Some(Arc::new(watch::channel(Fence::default()).0)),
            room,
        }
    }

    pub fn fence(&self) -> Fence {
        self.fence.as_ref().map(|f| *f.borrow()).unwrap_or_default()
    }

    /// Changes the fence; tasks holding the leadership see it at once.
    pub fn update(&self, change: impl FnOnce(&mut Fence)) {
        if let Some(fence) = &self.fence {
            fence.send_modify(change);
        }
    }

    /// Ends the leadership now: every task holding it stops.
    pub fn end(&self) {
        self.update(|f| {
            f.lease = 0;
            f.deadline = None;
        });
    }

    /// Whether this node leads now (its deadline is ahead).
    pub fn leads(&self) -> bool {
        self.fence.is_none() || !self.fence().left(Instant::now()).is_zero()
    }

    /// A proof of leadership with at least the configured room left; why
    /// not, otherwise.
    pub fn hold(&self) -> Result<Held, String> {
        let Some(sender) = &self.fence else {
            return Ok(Held {
                lease: 0,
                fence: None,
            });
        };
        let fence = *sender.borrow();
        if fence.lease == 0 {
            return Err("this node does not lead the cluster".into());
        }
        let left = fence.left(Instant::now());
        if left.is_zero() || left < self.room {
            return Err(format!(
                "this node's leadership has {} ms left, less than the {} ms a step needs",
                left.as_millis(),
                self.room.as_millis()
            ));
        }
        Ok(Held {
            lease: fence.lease,
            fence: Some(sender.subscribe()),
        })
    }

    /// Runs `work` while this node leads: not started without the room
    /// for it, dropped the moment the leadership ends. A request already
    /// sent may still land; the next leader's reconciliation repairs it.
    pub async fn run<T>(&self, work: impl std::future::Future<Output = T>) -> Result<T, String> {
        let mut held = self.hold()?;
        tokio::select! {
            biased;
            why = held.lost() => Err(why),
            done = work => Ok(done),
        }
    }
}

/// Leadership held by one task: `lost` ends when it does.
pub struct Held {
    lease: i64,
    fence: Option<watch::Receiver<Fence>>,
}

impl Held {
    /// Waits until the leadership this was taken under ends: the lease
    /// given up, or its deadline passed without a renewal. Never, for a
    /// single controller.
    pub async fn lost(&mut self) -> String {
        let Some(fence) = &mut self.fence else {
            return std::future::pending().await;
        };
        loop {
            let now = *fence.borrow_and_update();
            if now.lease != self.lease {
                return "the leadership ended".into();
            }
            let Some(deadline) = now.deadline.filter(|d| *d > Instant::now()) else {
                return "the leadership's deadline passed without a renewal".into();
            };
            tokio::select! {
                changed = fence.changed() => if changed.is_err() {
                    return "the leadership ended".into();
                },
                _ = tokio::time::sleep_until(deadline.into()) => {}
            }
        }
    }
}

/// The agreed state in etcd, written only under the fence, with this
/// node's copy of it.
pub struct EtcdStore {
    etcd: Arc<Etcd>,
    keys: Keys,
    leadership: Leadership,
    copy: LocalStore,
}

impl EtcdStore {
    pub fn new(etcd: Arc<Etcd>, keys: Keys, leadership: Leadership, copy: LocalStore) -> Self {
        Self {
            etcd,
            keys,
            leadership,
            copy,
        }
    }

    /// After a write whose answer was lost (the member stalled, or the
    /// answer timed out and another member was asked): whether it
    /// committed, read back under the same fence; the state's revision
    /// if so.
    async fn committed(&self, lease: i64, value: &[u8]) -> Option<i64> {
        let read = self
            .etcd
            .txn(
                &[Compare::Lease(self.keys.leader(), lease)],
                &[Op::Get(self.keys.state())],
                &[],
            )
            .await
            .ok()?;
        let kv = read.read.first().cloned().flatten()?;
        (read.succeeded && kv.value == value).then_some(kv.mod_revision)
    }

    async fn stored(&self, lease: i64, revision: i64, state: &StoredState) {
        self.leadership.update(|f| {
            if f.lease == lease {
                f.revision = revision;
            }
        });
        self.keep_copy(state).await;
    }
}

fn unavailable(e: EtcdError) -> StoreError {
    match e {
        EtcdError::Unavailable(e) | EtcdError::Refused(e) => StoreError::Unavailable(e),
    }
}

/// Reads the agreed state out of its key's value. Fields this version
/// does not know are left aside: a newer node of a rolling upgrade may
/// have added some.
pub fn parse_state(value: &[u8]) -> Result<StoredState, StoreError> {
    serde_json::from_slice(value).map_err(|e| StoreError::Corrupt {
        path: "etcd: state".into(),
        reason: e.to_string(),
    })
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    /// The agreed state; without etcd, this node's copy of it.
    async fn load(&self) -> Result<Option<StoredState>, StoreError> {
        match self.etcd.get(&self.keys.state()).await {
            Ok((kv, _)) => kv.map(|kv| parse_state(&kv.value)).transpose(),
            Err(e) => {
                error!(
                    "{}: serving the copy of the last agreed state kept here",
                    unavailable(e)
                );
                self.copy.load().await
            }
        }
    }

    async fn keep_copy(&self, state: &StoredState) {
        if let Err(e) = self.copy.save(state).await {
            warn!("cannot keep a copy of the agreed state: {e}");
        }
    }

    async fn save(&self, state: &StoredState) -> Result<(), StoreError> {
        let fence = self.leadership.fence();
        if !self.leadership.leads() {
            return Err(StoreError::Fenced("it holds no leadership".into()));
        }
        let value = serde_json::to_vec(state)
            .map_err(|e| StoreError::Unavailable(format!("cannot encode the state: {e}")))?;
        let result = match self
            .etcd
            .txn(
                &[
                    Compare::Lease(self.keys.leader(), fence.lease),
                    Compare::ModRevision(self.keys.state(), fence.revision),
                ],
                &[Op::Put {
                    key: self.keys.state(),
                    value: value.clone(),
                    lease: None,
                }],
                &[Op::Get(self.keys.leader()), Op::Get(self.keys.state())],
            )
            .await
        {
            Ok(result) => result,
            Err(e) => {
                // The write may have committed though its answer never
                // came (and a retry at another member would then find
                // the revision moved): read it back before calling it
                // failed.
                if let Some(revision) = self.committed(fence.lease, &value).await {
                    warn!(
                        "etcd's answer to a state write was lost ({e}); read back, the write is in place"
                    );
                    self.stored(fence.lease, revision, state).await;
                    return Ok(());
                }
                return Err(StoreError::Unavailable(format!(
                    "{e} (the write may or may not be in place: the status shows the agreed state)"
                )));
            }
        };
        if result.succeeded {
            self.stored(fence.lease, result.revision, state).await;
            return Ok(());
        }
        let leader = result.read.first().cloned().flatten();
        let current = result.read.get(1).cloned().flatten();
        // Our own earlier write whose answer was lost (it committed, the
        // retry found the revision moved): the state holds our value.
        if leader.as_ref().is_some_and(|kv| kv.lease == fence.lease)
            && let Some(kv) = current.as_ref().filter(|kv| kv.value == value)
        {
            self.stored(fence.lease, kv.mod_revision, state).await;
            return Ok(());
        }
        let revision = current.as_ref().map_or(0, |kv| kv.mod_revision);
        Err(StoreError::Fenced(format!(
            "the leader is now {}, and the state is at revision {revision} (this node built on {})",
            leader
                .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
                .as_deref()
                .unwrap_or("nobody"),
            fence.revision
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_with_fields_this_version_does_not_know_is_read() {
        let mut state = StoredState::default();
        state.engine.epoch = 4;
        let mut value: serde_json::Value = serde_json::to_value(&state).expect("json");
        value["promotion"] = serde_json::json!({"stage": "promoted"});
        value["engine"]["fenced"] = serde_json::json!(true);
        let read = parse_state(value.to_string().as_bytes()).expect("read past new fields");
        assert_eq!(read.engine.epoch, 4);
    }

    #[tokio::test]
    async fn leadership_ends_tasks_at_its_deadline_and_refuses_without_room() {
        let leadership = Leadership::shared(Duration::from_millis(50));
        assert!(leadership.hold().is_err(), "not leading yet");
        leadership.update(|f| {
            *f = Fence {
                lease: 9,
                revision: 1,
                deadline: Some(Instant::now() + Duration::from_millis(30)),
                member_until: None,
            }
        });
        let why = leadership.hold().err().expect("too little room");
        assert!(why.contains("less than"), "{why}");
        leadership.update(|f| f.deadline = Some(Instant::now() + Duration::from_millis(200)));
        let started = Instant::now();
        let ran = leadership
            .run(tokio::time::sleep(Duration::from_secs(10)))
            .await;
        assert!(ran.is_err(), "a task outliving its leadership");
        assert!(started.elapsed() < Duration::from_secs(2));
        // A renewal moves the deadline for the tasks under way.
        leadership.update(|f| f.deadline = Some(Instant::now() + Duration::from_millis(100)));
        let renewer = leadership.clone();
        let renewed = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(60)).await;
            renewer.update(|f| f.deadline = Some(Instant::now() + Duration::from_secs(5)));
        });
        let done = leadership
            .run(tokio::time::sleep(Duration::from_millis(300)))
            .await;
        assert!(done.is_ok(), "{done:?}");
        renewed.await.expect("renewer");
        // Ended: every task stops at once.
        let ender = leadership.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            ender.end();
        });
        assert!(
            leadership
                .run(tokio::time::sleep(Duration::from_secs(10)))
                .await
                .is_err()
        );
        assert!(Leadership::sole().run(async { 1 }).await.is_ok());
    }

    #[test]
    fn keys_are_told_apart() {
        let keys = Keys::new("/geofailover/example.com");
        assert_eq!(keys.kind(&keys.leader()), KeyKind::Leader);
        assert_eq!(keys.kind(&keys.state()), KeyKind::State);
        assert_eq!(keys.kind(&keys.view("ns1")), KeyKind::View("ns1"));
        assert_eq!(keys.kind(&keys.journal(42)), KeyKind::Journal(42));
        assert_eq!(keys.kind(&keys.command("ns2-7")), KeyKind::Command("ns2-7"));
        assert_eq!(keys.kind(&keys.reply("ns2-7")), KeyKind::Reply("ns2-7"));
        assert_eq!(keys.kind("/geofailover/example.org/state"), KeyKind::Other);
        assert_eq!(
            keys.journal(7),
            "/geofailover/example.com/journal/00000000000000000007"
        );
    }
}
