//! Storing the state: the engine's, with what the shell keeps beside it
//! (serials, read-only progress, flag clears, a drill under way, the
//! journal's numbering). A save that fails is told once per decision
//! (journal, webhook, error log) and retried at every step until it works.

use tracing::{debug, error, info};

use super::{Controller, Failing, Notification};
use crate::store::{NewEntry, StoreError, StoredState};

/// Why a follower stores nothing (and so starts nothing).
const NOT_LEADING: &str = "this node does not lead the cluster";

impl Controller {
    pub(super) fn stored_state(&self, failing: &Failing) -> StoredState {
        StoredState {
            engine: failing.engine.persisted().clone(),
            serials: self.serials.clone(),
            digests: self.digests.clone(),
            scheduled_clears: failing.scheduled_clears.clone(),
            ttl_override: failing.ttl_override,
            drill: failing.drill.clone(),
            read_only: failing.read_only.clone(),
            journal_seq: failing.journal.last_seq(),
        }
    }

    /// Stores the state now; the error says why it could not be. A write
    /// refused because this node no longer leads ends its deciding at once.
    pub(super) async fn try_save(&mut self) -> Result<(), String> {
        let Some(failing) = &self.failing else {
            return Ok(());
        };
        // With several nodes only the leader writes the agreed state: a
        // follower's "store before acting" fails, so it never acts.
        if self.follows() {
            return Err(NOT_LEADING.into());
        }
        let state = self.stored_state(failing);
        match failing.store.save(&state).await {
            Ok(()) => Ok(()),
            Err(e @ StoreError::Fenced(_)) => {
                let text = e.to_string();
                self.depose(&text).await;
                Err(text)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Stores the state; a failure is told once per decision (epoch) and
    /// the state kept dirty, so the next step tries again.
    pub(super) async fn save(&mut self, now: u64) {
        let _ = self.store_state(now).await;
    }

    /// As `save`, for a step that must not go on unless the state is
    /// stored: the error says why it could not be.
    pub(super) async fn store_state(&mut self, now: u64) -> Result<(), String> {
        let Some(failing) = &self.failing else {
            return Ok(());
        };
        // A follower has nothing of its own to store, and nothing to tell.
        if self.follows() {
            return Err(NOT_LEADING.into());
        }
        let epoch = failing.engine.persisted().epoch;
        let failure = self.try_save().await.err();
        let Some(failing) = &mut self.failing else {
            return Ok(());
        };
        // Told once per failing spell and epoch, not at every retry; a new
        // decision (another epoch) that cannot be stored is told again.
        let announced = failing.announced.unsaved;
        failing.dirty = failure.is_some();
        failing.announced.unsaved = failure.as_ref().map(|_| epoch);
        match failure.clone() {
            Some(why) if announced == Some(epoch) => {
                debug!("still cannot store the state: {why}");
            }
            Some(why) => {
                // Answers still follow the decision; the save is retried
                // at every step until it succeeds.
                error!("{why}");
                self.journal(NewEntry {
                    at: now,
                    epoch,
                    actor: "engine".into(),
                    kind: "action",
                    event: "state_not_saved".into(),
                    summary: "the state could not be stored".into(),
                    reasons: vec![why.clone()],
                    outcome: format!("failed: {why}"),
                });
                self.notifier.send(Notification::new(
                    "action_failed",
                    epoch,
                    None,
                    format!("the state could not be stored: {why}"),
                    now,
                ));
            }
            None if announced.is_some() => {
                info!(epoch, "the state is stored again");
                self.journal(NewEntry {
                    at: now,
                    epoch,
                    actor: "engine".into(),
                    kind: "action",
                    event: "state_saved".into(),
                    summary: "the state is stored again".into(),
                    reasons: Vec::new(),
                    outcome: "ok".into(),
                });
            }
            None => {}
        }
        failure.map_or(Ok(()), Err)
    }
}
