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

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

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
}

/// The leader's fencing token and the state revision it builds on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fence {
    /// The leader's lease (0: not leading).
    pub lease: i64,
    /// The state's revision as last written or read by the leader.
    pub revision: i64,
}

/// The agreed state in etcd, written only under the fence, with this
/// node's copy of it.
pub struct EtcdStore {
    etcd: Arc<Etcd>,
    keys: Keys,
    fence: Arc<Mutex<Fence>>,
    copy: LocalStore,
}

impl EtcdStore {
    pub fn new(etcd: Arc<Etcd>, keys: Keys, fence: Arc<Mutex<Fence>>, copy: LocalStore) -> Self {
        Self {
            etcd,
            keys,
            fence,
            copy,
        }
    }

    fn fence(&self) -> Fence {
        self.fence.lock().map(|f| *f).unwrap_or_default()
    }
}

fn unavailable(e: EtcdError) -> StoreError {
    match e {
        EtcdError::Unavailable(e) | EtcdError::Refused(e) => StoreError::Unavailable(e),
    }
}

/// Reads the agreed state out of its key's value.
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
        let fence = self.fence();
        if fence.lease == 0 {
            return Err(StoreError::Fenced("it holds no leadership".into()));
        }
        let value = serde_json::to_vec(state)
            .map_err(|e| StoreError::Unavailable(format!("cannot encode the state: {e}")))?;
        let result = self
            .etcd
            .txn(
                &[
                    Compare::Lease(self.keys.leader(), fence.lease),
                    Compare::ModRevision(self.keys.state(), fence.revision),
                ],
                &[Op::Put {
                    key: self.keys.state(),
                    value,
                    lease: None,
                }],
                &[Op::Get(self.keys.leader()), Op::Get(self.keys.state())],
            )
            .await
            .map_err(unavailable)?;
        if result.succeeded {
            if let Ok(mut f) = self.fence.lock()
                && f.lease == fence.lease
            {
                f.revision = result.revision;
            }
            self.keep_copy(state).await;
            return Ok(());
        }
        let leader = result
            .read
            .first()
            .cloned()
            .flatten()
            .map(|kv| String::from_utf8_lossy(&kv.value).into_owned());
        let revision = result
            .read
            .get(1)
            .cloned()
            .flatten()
            .map_or(0, |kv| kv.mod_revision);
        Err(StoreError::Fenced(format!(
            "the leader is now {}, and the state is at revision {revision} (this node built on {})",
            leader.as_deref().unwrap_or("nobody"),
            fence.revision
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
