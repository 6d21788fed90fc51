//! Where the controller's state survives restarts. One trait, so a shared
//! store for several controllers can stand beside the local one; the local
//! one keeps a JSON file in the state directory, replaced atomically
//! (write a temporary file, fsync, rename, fsync the directory).

use std::{
    collections::BTreeMap,
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::{config::ReadOnlyStep, engine::Persisted};

pub mod etcd;
pub mod journal;
pub mod shared;
pub use journal::{Journal, JournalEntry, NewEntry};

/// Everything that must survive a restart. Unknown fields are read past,
/// not refused: in a cluster under a rolling upgrade, a newer node may
/// write fields an older one does not know, and the older must still
/// follow it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredState {
    /// The engine's state: active site, epoch, pause, cooldown, last decision.
    pub engine: Persisted,
    /// The last SOA serial served for each zone (by origin), so a restart
    /// never serves a lower one.
    pub serials: BTreeMap<String, u32>,
    /// The content digest (`Records::digest`) each zone's serial stands
    /// for: one serial, one content, on every node.
    #[serde(default)]
    pub digests: BTreeMap<String, String>,
    /// Application-flag clears still to do after a fail-back; a restart
    /// carries them out.
    #[serde(default)]
    pub scheduled_clears: Vec<ScheduledClear>,
    /// The failover records' TTL while a drill has lowered it.
    #[serde(default)]
    pub ttl_override: Option<u32>,
    /// A drill under way: a restart finishes its fail-back.
    #[serde(default)]
    pub drill: Option<DrillProgress>,
    /// The read-only steps of the pending (or stopped) failover that were
    /// started and finished: a restart verifies the finished ones instead
    /// of running them again, and an undo knows what to undo.
    #[serde(default)]
    pub read_only: Option<ReadOnlyProgress>,
    /// The last journal sequence number handed out: numbering goes on
    /// from here even if the journal files were lost.
    #[serde(default)]
    pub journal_seq: u64,
}

/// Which read-only steps of failover `attempt` (leading to `epoch`) have
/// started and finished, each stored before the next begins; after the
/// attempt stopped, the steps still to undo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadOnlyProgress {
    pub attempt: u64,
    pub epoch: u64,
    pub started: Vec<ReadOnlyStep>,
    pub done: Vec<ReadOnlyStep>,
}

/// Where a running drill is, stored at each phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillProgress {
    pub id: String,
    pub started: u64,
    /// `preparing`, `switched`, `failing_back`.
    pub phase: String,
}

/// Clear the secondary's application flag at `not_before` (ms), unless the
/// active site changed again after `epoch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledClear {
    pub epoch: u64,
    pub not_before: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read the state file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the state file {path} is corrupt ({reason}); it is not reset automatically: \
         inspect it, then move it aside to start again from the primary"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot write the state file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The shared store cannot be reached.
    #[error("the shared store is unavailable: {0}")]
    Unavailable(String),
    /// A write of a controller that is no longer the leader: refused.
    #[error("the write was refused: this node is no longer the leader ({0})")]
    Fenced(String),
}

/// A place the state is kept: the local state directory, or etcd shared
/// by several controllers (`cluster::EtcdStore`).
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// The stored state, or `None` when nothing was ever stored.
    async fn load(&self) -> Result<Option<StoredState>, StoreError>;
    /// Stores `state` durably before returning.
    async fn save(&self, state: &StoredState) -> Result<(), StoreError>;
    /// A state another node stored, kept where this store keeps a copy.
    async fn keep_copy(&self, _state: &StoredState) {}
}

/// The state as a file in a local directory.
pub struct LocalStore {
    dir: PathBuf,
}

impl LocalStore {
    pub const FILE: &'static str = "state.json";

    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(Self::FILE)
    }
}

impl LocalStore {
    /// The stored state, read now.
    pub fn load_now(&self) -> Result<Option<StoredState>, StoreError> {
        let path = self.path();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StoreError::Read { path, source }),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                path,
                reason: e.to_string(),
            })
    }

    /// Stores `state` now, on the calling thread.
    pub fn save_now(&self, state: &StoredState) -> Result<(), StoreError> {
        let path = self.path();
        let fail = |source| StoreError::Write {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(&self.dir).map_err(fail)?;
        let text =
            serde_json::to_string_pretty(state).map_err(|e| fail(std::io::Error::other(e)))?;
        write_atomically(&path, text.as_bytes()).map_err(fail)
    }
}

#[async_trait::async_trait]
impl Store for LocalStore {
    async fn load(&self) -> Result<Option<StoredState>, StoreError> {
        self.load_now()
    }

    /// The write and its fsyncs run on a blocking thread, so a slow disk
    /// holds up only the decision waiting for it.
    async fn save(&self, state: &StoredState) -> Result<(), StoreError> {
        let store = LocalStore::new(&self.dir);
        let state = state.clone();
        tokio::task::spawn_blocking(move || store.save_now(&state))
            .await
            .map_err(|e| StoreError::Write {
                path: self.path(),
                source: std::io::Error::other(e),
            })?
    }
}

/// Replaces `path` with `bytes` so that a crash leaves either the old file
/// or the new one, never a mix.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("no file name"))?;
    let temp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    {
        let mut file = fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&temp, path)?;
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Role;

    #[test]
    fn saved_state_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(&dir.path().join("nested"));
        assert_eq!(store.load_now().unwrap(), None);
        let mut state = StoredState::default();
        state.engine.active = Role::Secondary;
        state.engine.epoch = 7;
        state.serials.insert("example.com.".into(), 2026112105);
        store.save_now(&state).unwrap();
        assert_eq!(store.load_now().unwrap(), Some(state));
    }

    #[test]
    fn corrupt_state_is_an_error_not_a_reset() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        fs::write(store.path(), "{\"engine\": {\"active\": \"tertiary\"").unwrap();
        let err = store.load_now().unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("move it aside"), "{err}");
        fs::write(store.path(), "").unwrap();
        assert!(matches!(store.load_now(), Err(StoreError::Corrupt { .. })));
    }
}
