//! Which serial each zone is served under, and what content it stands
//! for. A node that decides (a single controller, or the cluster's
//! leader) picks the serials (`answers::serials`: the content changed,
//! the serial moves) and stores them with the content digests in the
//! state; a follower serves the agreed serials, and a zone whose content
//! here differs from the agreed digest is said so and withheld: no
//! transfer of it from this node and no NOTIFY, so no secondary takes
//! other content under the agreed serial. Without a failover section
//! the serials and digests are kept in the state file alone.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

use super::{Controller, answers};
use crate::dns::transfer::newer;

/// Why a node that follows stores no serial of its own.
const NOT_DECIDING: &str = "this node does not decide the serials";
use crate::store::{LocalStore, StoreError, StoredState};

/// A zone as this node serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneServed {
    pub zone: String,
    pub serial: u32,
    /// The content digest of this node's zone file.
    pub digest: String,
    /// The digest the served serial stands for (the agreed state's).
    pub agreed_digest: Option<String>,
    /// This node's content is the one its serial stands for: it may be
    /// transferred and notified.
    pub agreed: bool,
    /// A signed zone's keys and signatures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dnssec: Option<crate::dnssec::ZoneSigned>,
    /// For a signed zone: its keys here are the agreed ones (else its
    /// DNSSEC answers are refused here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys_agreed: Option<bool>,
}

/// Each zone's serial, and the content digest it stands for.
pub type Served = (BTreeMap<String, u32>, BTreeMap<String, String>);

/// The serials and digests stored without a failover section.
pub fn load(dir: &Path) -> Result<Served, StoreError> {
    let stored = LocalStore::new(dir).load_now()?.unwrap_or_default();
    Ok((stored.serials, stored.digests))
}

/// Stores the serials and digests without a failover section.
pub fn save(
    dir: &Path,
    serials: &BTreeMap<String, u32>,
    digests: &BTreeMap<String, String>,
) -> Result<(), StoreError> {
    let state = StoredState {
        serials: serials.clone(),
        digests: digests.clone(),
        ..StoredState::default()
    };
    LocalStore::new(dir).save_now(&state)
}

impl Controller {
    /// Sets the serials and digests served from `serials` and `digests`
    /// (stored, or agreed): picked anew from the zones when this node
    /// decides, taken as they are when it follows. Whether they changed.
    pub(super) fn settle_serials(
        &mut self,
        serials: &BTreeMap<String, u32>,
        digests: &BTreeMap<String, String>,
    ) -> bool {
        let before = (self.serials.clone(), self.digests.clone());
        if self.follows() {
            let own =
                answers::serials(&self.zones, &self.zone_sources, &BTreeMap::new(), digests).0;
            self.serials = own
                .into_iter()
                .map(|(zone, file)| {
                    let serial = serials.get(&zone).copied().unwrap_or(file);
                    (zone, serial)
                })
                .collect();
            self.digests = digests.clone();
        } else {
            // Never below a serial this node has served (an agreed state
            // restored from an older copy must not bring one back).
            let mut served = serials.clone();
            for (zone, highest) in &self.highest {
                let entry = served.entry(zone.clone()).or_insert(*highest);
                if newer(*highest, *entry) {
                    *entry = *highest;
                }
            }
            let (picked, notes) =
                answers::serials(&self.zones, &self.zone_sources, &served, digests);
            for note in notes {
                if note.warning {
                    warn!(zone = %note.zone, "{}", note.text);
                } else {
                    info!(zone = %note.zone, "{}", note.text);
                }
            }
            self.serials = picked;
            self.digests = answers::digests(&self.zones, digests);
        }
        self.tell_differences();
        before != (self.serials.clone(), self.digests.clone())
    }

    /// Serials this node picked are stored before they are served. When
    /// they cannot be (or the node no longer decides), `before` stays:
    /// its own new content then shows as differing and is withheld, and
    /// the pick is tried again at the next step.
    pub(super) async fn store_serials(&mut self, before: Served) {
        let stored = if self.follows() {
            Err(NOT_DECIDING.to_string())
        } else if self.failing.is_some() {
            self.store_state(super::now_ms()).await
        } else {
            save(&self.state_dir, &self.serials, &self.digests).map_err(|e| {
                error!("{e}");
                e.to_string()
            })
        };
        self.resettle = stored.is_err();
        if stored.is_err() {
            (self.serials, self.digests) = before;
            self.tell_differences();
        }
    }

    /// Picks the serials again after a pick that could not be stored.
    pub(super) async fn resettle(&mut self) {
        if !self.resettle || self.follows() {
            return;
        }
        let before = (self.serials.clone(), self.digests.clone());
        if self.settle_serials(&before.0, &before.1) {
            self.store_serials(before).await;
            self.publish();
        } else {
            self.resettle = false;
        }
    }

    /// Remembers the serials served, the highest of each zone.
    pub(super) fn served(&mut self) {
        for (zone, serial) in &self.serials {
            let entry = self.highest.entry(zone.clone()).or_insert(*serial);
            if newer(*serial, *entry) {
                *entry = *serial;
            }
        }
    }

    /// The zones whose content here is not the one their serial stands
    /// for.
    pub(super) fn differing(&self) -> BTreeSet<String> {
        self.zones
            .iter()
            .map(|z| (z.origin.to_string(), &z.digest))
            .filter(|(origin, digest)| self.digests.get(origin) != Some(*digest))
            .map(|(origin, _)| origin)
            .collect()
    }

    /// The signed zones whose keys here are not the agreed ones (the key
    /// tags the agreed digest names): their DNSSEC answers are refused
    /// (SERVFAIL) here, so no resolver sees two DNSKEY sets under one
    /// name. Content that differs with the same keys still validates.
    pub(super) fn keys_differing(&self) -> BTreeSet<String> {
        self.zones
            .iter()
            .filter(|z| z.signed.is_some())
            .map(|z| (z.origin.to_string(), &z.digest))
            .filter(|(origin, digest)| {
                self.digests.get(origin).is_some_and(|agreed| {
                    crate::dnssec::digest_keys(agreed) != crate::dnssec::digest_keys(digest)
                })
            })
            .map(|(origin, _)| origin)
            .collect()
    }

    /// Each zone as served here.
    pub(super) fn zones_served(&self) -> Vec<ZoneServed> {
        self.zones
            .iter()
            .map(|z| {
                let zone = z.origin.to_string();
                let agreed_digest = self.digests.get(&zone).cloned();
                let keys_agreed = z.signed.as_ref().map(|_| {
                    agreed_digest.as_deref().is_none_or(|agreed| {
                        crate::dnssec::digest_keys(agreed) == crate::dnssec::digest_keys(&z.digest)
                    })
                });
                ZoneServed {
                    serial: self.serials.get(&zone).copied().unwrap_or_default(),
                    agreed: agreed_digest.as_deref() == Some(z.digest.as_str()),
                    digest: z.digest.clone(),
                    agreed_digest,
                    zone,
                    keys_agreed,
                    dnssec: z.signed.as_ref().map(|s| s.status()),
                }
            })
            .collect()
    }

    /// Logs each zone that starts or stops differing from the agreed
    /// content, once.
    fn tell_differences(&mut self) {
        let now = self.differing();
        for zone in now.difference(&self.told_differs) {
            let agreed = self.digests.get(zone).map_or("none yet", String::as_str);
            let mine = self
                .zones
                .iter()
                .find(|z| z.origin.to_string() == *zone)
                .map_or("", |z| z.digest.as_str());
            error!(
                %zone,
                "zone {zone}: this node's zone file (content {}) differs from the content the agreed serial stands for ({}): it answers from its file but transfers nothing of the zone and notifies no secondary until they agree; deploy the same zone file on every node and reload",
                short(mine),
                short(agreed)
            );
        }
        for zone in self.told_differs.difference(&now) {
            info!(%zone, "zone {zone}: this node's content is the agreed one again");
        }
        self.told_differs = now;
        let keys = self.keys_differing();
        for zone in keys.difference(&self.told_keys_differ) {
            let agreed = self
                .digests
                .get(zone)
                .and_then(|d| crate::dnssec::digest_keys(d))
                .unwrap_or("none");
            let mine = self
                .zones
                .iter()
                .find(|z| z.origin.to_string() == *zone)
                .and_then(|z| crate::dnssec::digest_keys(&z.digest))
                .unwrap_or("none");
            error!(
                %zone,
                "zone {zone}: this node signs with keys {mine}, the agreed content with keys {agreed}: its DNSSEC answers for the zone are refused (SERVFAIL) so that no resolver sees two key sets; give every node the same key folder and reload"
            );
        }
        for zone in self.told_keys_differ.difference(&keys) {
            info!(%zone, "zone {zone}: this node's keys are the agreed ones again");
        }
        self.told_keys_differ = keys;
    }
}

/// The first 12 hex digits of a digest, as shown to people.
pub fn short(digest: &str) -> &str {
    &digest[..digest.len().min(12)]
}
