//! DNSSEC, signed in advance (RFC 4033-4035). A zone with `dnssec:` is
//! signed when it is loaded, off the answering path: every RRset of the
//! zone file, the DNSKEY, CDS and CDNSKEY sets at the apex, and the NSEC
//! chain over its names. The failover records' names never change, only
//! their addresses: each site's variant of every failover RRset is
//! signed at the load too, so a failover picks signatures made before it
//! and signs only the new SOA (`Signed::sign`, cached).
//!
//! Signatures are deterministic (RFC 6979 ECDSA, Ed25519) and their times
//! come from the clock in steps (`times`): the same zone and keys signed
//! by any node in the same step are the same bytes, so the zone's digest,
//! and with it its serial, only moves when the content, the keys or the
//! step does. A new step comes `refresh` before the signatures expire.

pub mod keys;
pub mod parent;
pub mod sign;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use hickory_proto::{
    rr::{LowerName, Name, RData, Record, RecordType, rdata::NULL},
    serialize::binary::{BinEncodable, BinEncoder},
};

use crate::zone::{
    Records, Zone,
    records::Gather,
    records::{lower_wire, wire_key, wire_key_of, wire_zone_of},
};
pub use keys::{Algorithm, Key};
use sign::Validity;

/// The signed-zone settings of one zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub algorithm: Algorithm,
    /// Where the key files are.
    pub keys: PathBuf,
    /// How long a signature is valid from its step's start.
    pub validity: Duration,
    /// How long before expiry the zone is signed again.
    pub refresh: Duration,
    /// Authenticated denial of existence.
    pub denial: Denial,
    /// Keys made, when there are none: one combined signing key (false),
    /// or a KSK and a ZSK (true).
    pub split_keys: bool,
    /// A ZSK is rolled (a successor made, pre-published) after this long.
    pub zsk_lifetime: Option<Duration>,
    /// The parent zone's nameservers, asked for the DS during a KSK or
    /// CSK rollover.
    pub parent_nameservers: Vec<std::net::SocketAddr>,
}

/// How long a change takes to reach every secondary and cache beyond its
/// TTL (Knot's `propagation-delay`).
pub const PROPAGATION: u64 = 3600;

/// How a signed zone proves what it does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Denial {
    /// NSEC (RFC 4034): the names in order, each pointing at the next.
    #[default]
    Nsec,
    /// NSEC3 (RFC 5155) as RFC 9276 asks: SHA-1, no extra iterations, no
    /// salt, no opt-out: the names hashed, so the zone cannot be listed
    /// by walking its chain.
    Nsec3,
}

impl Policy {
    pub const VALIDITY: Duration = Duration::from_secs(14 * 86_400);
    pub const REFRESH: Duration = Duration::from_secs(7 * 86_400);
}

/// Signatures start this long before their step, for clocks behind ours.
const BACKDATE: u32 = 3600;
/// The types signing makes: their answers depend on the keys, so they
/// are never precomputed for the fast path (a node whose keys are not
/// the agreed ones refuses them).
pub fn is_signing_type(rtype: RecordType) -> bool {
    matches!(
        rtype,
        RecordType::RRSIG
            | RecordType::NSEC
            | RecordType::NSEC3
            | RecordType::NSEC3PARAM
            | RecordType::DNSKEY
            | RecordType::CDS
            | RecordType::CDNSKEY
    )
}

/// What separates a signed zone's content digest from its key tags.
const KEYS_MARK: &str = ":keys=";

/// Key tags as a digest carries them: sorted, comma-separated.
fn key_list(tags: &[u16]) -> String {
    let mut tags = tags.to_vec();
    tags.sort_unstable();
    tags.iter()
        .map(|t| format!("{t:05}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The key tags a zone's content digest names: `None` for an unsigned
/// zone's.
pub fn digest_keys(digest: &str) -> Option<&str> {
    digest.split_once(KEYS_MARK).map(|(_, keys)| keys)
}

/// The NSEC3 hash of a name (wire format, lower case): SHA-1, no salt,
/// no extra iteration (RFC 9276).
pub fn nsec3_hash(name: &[u8]) -> [u8; 20] {
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, name);
    let mut hash = [0u8; 20];
    hash.copy_from_slice(digest.as_ref());
    hash
}

/// A hash in Base32hex (RFC 4648 section 7), lower case, no padding: the
/// label of its NSEC3 record's owner.
pub fn base32hex(hash: &[u8; 20]) -> [u8; 32] {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
    let mut out = [0u8; 32];
    let mut bits: u64 = 0;
    let mut held = 0;
    let mut at = 0;
    for byte in hash {
        bits = bits << 8 | u64::from(*byte);
        held += 8;
        while held >= 5 {
            held -= 5;
            out[at] = ALPHABET[((bits >> held) & 31) as usize];
            at += 1;
        }
    }
    out
}

/// NSEC3PARAM's RDATA, and the head of every NSEC3's: SHA-1, no flags,
/// no extra iterations, no salt.
const NSEC3_PARAMS: [u8; 5] = [1, 0, 0, 0, 0];

/// Nodes signed at a time, spread over the cores.
const SIGNING_BATCH: usize = 8192;

/// A record signing adds: type, TTL, RDATA.
type Generated = (RecordType, u32, Vec<u8>);

/// Signatures made at a failover (a new SOA, a TTL a drill lowered) kept
/// for the next; past it the cache starts again.
const RECENT: usize = 1024;

/// The inception and expiration of the signatures made at `now_s`
/// (seconds) for `origin`: steps of `validity - refresh`, offset per zone
/// (a fixed jitter, so many zones are not all signed again at once).
pub fn times(origin: &Name, policy: &Policy, now_s: u64) -> Validity {
    let step = policy
        .validity
        .saturating_sub(policy.refresh)
        .as_secs()
        .max(3600);
    let hash = ring::digest::digest(&ring::digest::SHA256, &wire_key_of(&origin.to_lowercase()));
    let mut eight = [0u8; 8];
    eight.copy_from_slice(&hash.as_ref()[..8]);
    let offset = u64::from_le_bytes(eight) % step;
    let start = now_s.saturating_sub(offset) / step * step + offset;
    Validity {
        inception: (start as u32).wrapping_sub(BACKDATE),
        expiration: (start + policy.validity.as_secs()) as u32,
    }
}

/// When signatures made with `validity` under `policy` are due to be
/// made again (seconds since 1970): the end of their step, `refresh`
/// before they expire.
pub fn due(policy: &Policy, validity: Validity) -> u64 {
    let step = policy
        .validity
        .saturating_sub(policy.refresh)
        .as_secs()
        .max(3600);
    u64::from(validity.inception) + u64::from(BACKDATE) + step
}

/// When the first of the signed zones `zones` of `config` is due to be
/// signed again (seconds since 1970); `None` when none is signed.
pub fn next_due(config: &crate::config::Config, zones: &[Zone]) -> Option<u64> {
    zones
        .iter()
        .filter_map(|zone| {
            let signed = zone.signed.as_ref()?;
            config
                .zones
                .iter()
                .find(|s| s.origin == zone.origin)?
                .dnssec
                .as_ref()?;
            Some(signed.resign_at)
        })
        .min()
}

/// What answers and transfers need of a signed zone after its load: the
/// keys, the times, the NSEC chain's names, and the signatures made
/// ahead for the failover records.
pub struct Signed {
    /// The keys that sign now.
    keys: Vec<Key>,
    /// Keys published (their DNSKEY in the zone) that do not sign now:
    /// a successor before it signs, a predecessor after.
    standby: Vec<Key>,
    pub validity: Validity,
    /// When the zone is due to be signed again (seconds since 1970).
    pub resign_at: u64,
    /// The apex, wire format, lower case.
    apex: Box<[u8]>,
    /// Every name of the NSEC chain, wire format, lower case, in
    /// canonical order (the apex first). With NSEC, never empty: the apex,
    /// owner of the SOA, is always in it (`covering` and `next` index it).
    chain: Vec<Box<[u8]>>,
    /// The TTL of NSEC records (RFC 9077: the SOA's minimum or TTL).
    pub nsec_ttl: u32,
    /// With NSEC3: every name's hash (the empty non-terminals' too), in
    /// order; `chain` is then unused. Never empty with NSEC3: the apex's
    /// hash is always in it (`nsec3_rdata` indexes it).
    hashes: Vec<[u8; 20]>,
    pub denial: Denial,
    /// The failover records' names in the zone, wire format, lower case:
    /// their NSEC follows the types served there (`nsec_at`).
    dynamic: Vec<Box<[u8]>>,
    presigned: HashMap<[u8; 32], Arc<[Record]>>,
    recent: Mutex<HashMap<[u8; 32], Arc<[Record]>>>,
}

impl std::fmt::Debug for Signed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signed")
            .field("keys", &self.keys)
            .field("validity", &self.validity)
            .field("names", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// A signed zone as status shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ZoneSigned {
    pub algorithm: u8,
    pub keys: Vec<SignedKey>,
    /// The signatures' inception and expiration (RFC 3339, UTC).
    pub valid_from: String,
    pub expires: String,
    /// The expiration, in seconds since 1970 (for alerts).
    pub expires_at: u64,
    /// When the zone is signed again.
    pub resign_at: String,
}

/// A key in use.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SignedKey {
    pub tag: u16,
    /// CSK (signs everything), KSK or ZSK.
    pub role: String,
    /// `signing`, or `published` (in the DNSKEY set, not signing: a
    /// successor before its time, a predecessor after).
    #[serde(default)]
    pub state: String,
}

/// A record's RDATA in wire format, names written in full.
pub fn rdata_bytes(record: &Record) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    let mut encoder = BinEncoder::new(&mut out);
    encoder.set_canonical_form(true);
    let _ = record.data.emit(&mut encoder);
    out
}

/// An RRset as signing reads it: its owner (wire format), type, and its
/// records' RDATA in canonical form and order, duplicates left out.
fn canonical_set(
    set: &[Record],
    first: &Record,
) -> (crate::zone::records::WireKey, RecordType, Vec<Vec<u8>>) {
    let rtype = first.record_type();
    let mut rdatas: Vec<Vec<u8>> = set
        .iter()
        .map(|r| sign::canonical_rdata(rtype, &rdata_bytes(r)))
        .collect();
    rdatas.sort();
    rdatas.dedup();
    (wire_key_of(&first.name), rtype, rdatas)
}

/// A record of a type hickory does not model here, from its RDATA.
pub fn raw_record(owner: Name, ttl: u32, rtype: RecordType, rdata: Vec<u8>) -> Record {
    Record::from_rdata(
        owner,
        ttl,
        RData::Unknown {
            code: rtype,
            rdata: NULL::with(rdata),
        },
    )
}

/// A key's role among `keys`: a KSK beside ZSKs, a CSK alone, or a ZSK.
fn role(key: &Key, keys: &[Key]) -> &'static str {
    let zsks = keys.iter().any(|k| k.flags & 1 == 0);
    match (key.flags & 1 == 1, zsks) {
        (true, true) => "KSK",
        (true, false) => "CSK",
        (false, _) => "ZSK",
    }
}

impl Signed {
    /// The keys that sign RRsets of `rtype`: the key sets at the apex
    /// (DNSKEY, CDS, CDNSKEY) by the keys with the SEP flag, the rest by
    /// the others; when one kind is missing, every key signs (a CSK).
    fn signers(&self, rtype: RecordType) -> impl Iterator<Item = &Key> + '_ {
        let key_set = matches!(
            rtype,
            RecordType::DNSKEY | RecordType::CDS | RecordType::CDNSKEY
        );
        let sep = |k: &Key| k.flags & 1 == 1;
        let both = self.keys.iter().any(sep) && self.keys.iter().any(|k| !sep(k));
        self.keys.iter().filter(move |k| !both || sep(k) == key_set)
    }

    /// The tags of the keys in the zone's DNSKEY set.
    pub fn tags(&self) -> Vec<u16> {
        self.keys
            .iter()
            .chain(&self.standby)
            .map(|k| k.tag)
            .collect()
    }

    /// What status shows of the zone's signing.
    pub fn status(&self) -> ZoneSigned {
        let utc = |s: u64| crate::engine::utc(s * 1000);
        ZoneSigned {
            algorithm: self.keys.first().map_or(0, |k| k.algorithm.number()),
            keys: self
                .keys
                .iter()
                .map(|k| (k, "signing"))
                .chain(self.standby.iter().map(|k| (k, "published")))
                .map(|(k, state)| SignedKey {
                    tag: k.tag,
                    role: role(k, &self.keys).into(),
                    state: state.into(),
                })
                .collect(),
            valid_from: utc(u64::from(self.validity.inception)),
            expires: utc(u64::from(self.validity.expiration)),
            expires_at: u64::from(self.validity.expiration),
            resign_at: utc(self.resign_at),
        }
    }

    fn cache_key(owner: &[u8], rtype: RecordType, ttl: u32, rdatas: &[Vec<u8>]) -> [u8; 32] {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        let mut owner = owner.to_vec();
        owner.make_ascii_lowercase();
        context.update(&owner);
        context.update(&u16::from(rtype).to_be_bytes());
        context.update(&ttl.to_be_bytes());
        for r in rdatas {
            context.update(&(r.len() as u32).to_be_bytes());
            context.update(r);
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(context.finish().as_ref());
        key
    }

    /// The RRSIGs (one per key) of one RRset; from those made ahead when
    /// there are, else made now and kept for the next time.
    pub fn sign(&self, set: &[Record]) -> Arc<[Record]> {
        let Some(first) = set.first() else {
            return Arc::from(Vec::new());
        };
        let (owner, rtype, rdatas) = canonical_set(set, first);
        let key = Self::cache_key(&owner, rtype, first.ttl, &rdatas);
        if let Some(found) = self.presigned.get(&key) {
            return found.clone();
        }
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = recent.get(&key) {
            return found.clone();
        }
        let made: Arc<[Record]> = self
            .make(&first.name, &owner, rtype, first.ttl, &rdatas)
            .into();
        if recent.len() >= RECENT {
            recent.clear();
        }
        recent.insert(key, made.clone());
        made
    }

    fn make(
        &self,
        name: &Name,
        owner: &[u8],
        rtype: RecordType,
        ttl: u32,
        rdatas: &[Vec<u8>],
    ) -> Vec<Record> {
        let refs: Vec<&[u8]> = rdatas.iter().map(Vec::as_slice).collect();
        self.signers(rtype)
            .map(|key| {
                let rdata = sign::rrsig(key, owner, rtype, ttl, &refs, self.validity, &self.apex);
                raw_record(name.clone(), ttl, RecordType::RRSIG, rdata)
            })
            .collect()
    }

    /// What signing adds at one node of the zone file (`key`, its records
    /// `range` of `records`): an RRSIG per RRset (at a zone cut, only
    /// the DS's; never the SOA's, made as it is served) and, but at a
    /// failover record's name, the NSEC with its RRSIG.
    fn sign_node(
        &self,
        records: &Records,
        key: &[u8],
        range: std::ops::Range<usize>,
        cut: bool,
    ) -> Vec<Generated> {
        let lower = lower_wire(key);
        let mut out = Vec::new();
        let mut types: Vec<RecordType> = Vec::new();
        let mut at = range.start;
        while at < range.end {
            let rtype = records.rtype(at);
            let end = (at..range.end)
                .find(|&i| records.rtype(i) != rtype)
                .unwrap_or(range.end);
            types.push(rtype);
            if rtype != RecordType::SOA && (!cut || rtype == RecordType::DS) {
                let rdatas: Vec<Vec<u8>> = (at..end)
                    .map(|i| sign::canonical_rdata(rtype, records.rdata(i)))
                    .collect();
                let refs: Vec<&[u8]> = rdatas.iter().map(Vec::as_slice).collect();
                let ttl = records.ttl(at);
                for k in self.signers(rtype) {
                    let rrsig = sign::rrsig(k, key, rtype, ttl, &refs, self.validity, &self.apex);
                    out.push((RecordType::RRSIG, ttl, rrsig));
                }
            }
            at = end;
        }
        if self.is_dynamic(&lower) || self.denial != Denial::Nsec {
            return out;
        }
        if *lower == *self.apex {
            types.extend([RecordType::DNSKEY, RecordType::CDS, RecordType::CDNSKEY]);
        }
        types.extend([RecordType::NSEC, RecordType::RRSIG]);
        let mut nsec = self.next(&lower).to_vec();
        nsec.extend_from_slice(&sign::type_bitmap(&types));
        let canonical = [nsec.as_slice()];
        for k in self.signers(RecordType::NSEC) {
            let rrsig = sign::rrsig(
                k,
                key,
                RecordType::NSEC,
                self.nsec_ttl,
                &canonical,
                self.validity,
                &self.apex,
            );
            out.push((RecordType::RRSIG, self.nsec_ttl, rrsig));
        }
        out.push((RecordType::NSEC, self.nsec_ttl, nsec));
        out
    }

    /// The NSEC3 record (with its RRSIGs) of the name `key` (wire format,
    /// lower case), at its hashed owner: the types the zone file holds
    /// there (at a zone cut only NS and DS; none at an empty
    /// non-terminal), RRSIG when any of them is signed.
    fn sign_nsec3(&self, records: &Records, key: &[u8], cut: bool) -> (Vec<u8>, Vec<Generated>) {
        let mut types: Vec<RecordType> = records
            .find(key)
            .map(|range| range.map(|i| records.rtype(i)).collect())
            .unwrap_or_default();
        types.dedup();
        if cut {
            types.retain(|t| matches!(t, RecordType::NS | RecordType::DS));
        }
        let signed_here = types.iter().any(|t| !cut || *t == RecordType::DS);
        if *key == *self.apex {
            types.extend([
                RecordType::DNSKEY,
                RecordType::CDS,
                RecordType::CDNSKEY,
                RecordType::NSEC3PARAM,
            ]);
        }
        if signed_here || *key == *self.apex {
            types.push(RecordType::RRSIG);
        }
        let hash = nsec3_hash(key);
        let owner = self.hashed_owner(&hash);
        let rdata = self.nsec3_rdata(&hash, &types);
        let mut out = Vec::with_capacity(1 + self.keys.len());
        for k in self.signers(RecordType::NSEC3) {
            let rrsig = sign::rrsig(
                k,
                &owner,
                RecordType::NSEC3,
                self.nsec_ttl,
                &[rdata.as_slice()],
                self.validity,
                &self.apex,
            );
            out.push((RecordType::RRSIG, self.nsec_ttl, rrsig));
        }
        out.push((RecordType::NSEC3, self.nsec_ttl, rdata));
        (owner, out)
    }

    /// The chain's name at or before `key` (wire format) in canonical
    /// order: the owner of the NSEC that matches or covers it.
    pub fn covering(&self, key: &[u8]) -> Option<&[u8]> {
        let after = self
            .chain
            .partition_point(|n| sign::canonical_cmp(n, key) != std::cmp::Ordering::Greater);
        self.chain.get(after.saturating_sub(1)).map(|n| &n[..])
    }

    /// The name after `key` in the chain (the apex after the last).
    fn next(&self, key: &[u8]) -> &[u8] {
        let after = self
            .chain
            .partition_point(|n| sign::canonical_cmp(n, key) != std::cmp::Ordering::Greater);
        self.chain.get(after).unwrap_or(&self.chain[0])
    }

    /// The owner of the NSEC3 record of `hash`: its label under the apex
    /// (wire format, lower case).
    pub fn hashed_owner(&self, hash: &[u8; 20]) -> Vec<u8> {
        let mut owner = Vec::with_capacity(33 + self.apex.len());
        owner.push(32);
        owner.extend_from_slice(&base32hex(hash));
        owner.extend_from_slice(&self.apex);
        owner
    }

    /// With NSEC3: the owner of the NSEC3 record that matches `key`
    /// (wire format), if the name is in the chain.
    pub fn nsec3_matching(&self, key: &[u8]) -> Option<Vec<u8>> {
        let mut lower = key.to_vec();
        lower.make_ascii_lowercase();
        let hash = nsec3_hash(&lower);
        self.hashes
            .binary_search(&hash)
            .ok()
            .map(|_| self.hashed_owner(&hash))
    }

    /// With NSEC3: the owner of the NSEC3 record whose span covers the
    /// hash of `key` (wire format): the last hash before it, or the last
    /// of all when it comes before the first.
    pub fn nsec3_covering(&self, key: &[u8]) -> Option<Vec<u8>> {
        let mut lower = key.to_vec();
        lower.make_ascii_lowercase();
        let hash = nsec3_hash(&lower);
        let before = self.hashes.partition_point(|h| *h < hash);
        let at = before.checked_sub(1).or(self.hashes.len().checked_sub(1))?;
        Some(self.hashed_owner(&self.hashes[at]))
    }

    /// The NSEC3 RDATA for a name whose hash is `hash` holding `types`.
    fn nsec3_rdata(&self, hash: &[u8; 20], types: &[RecordType]) -> Vec<u8> {
        let at = self.hashes.partition_point(|h| h <= hash);
        let next = self.hashes.get(at).unwrap_or(&self.hashes[0]);
        let mut rdata = NSEC3_PARAMS.to_vec();
        rdata.push(20);
        rdata.extend_from_slice(next);
        rdata.extend_from_slice(&sign::type_bitmap(types));
        rdata
    }

    /// Whether `key` (wire format, lower case) is a failover record's name.
    pub fn is_dynamic(&self, key: &[u8]) -> bool {
        self.dynamic.iter().any(|d| **d == *key)
    }

    /// The failover names' NSEC records (and their RRSIGs) for the types
    /// each holds now (`types_at`): a failover changes addresses, not
    /// names, but a site without an address of one family leaves that
    /// type out.
    pub fn dynamic_nsecs(&self, types_at: impl Fn(&[u8]) -> Vec<RecordType>) -> Vec<Record> {
        let mut out = Vec::new();
        for key in &self.dynamic {
            let mut types = types_at(key);
            types.retain(|t| !is_signing_type(*t));
            types.push(RecordType::RRSIG);
            if *key == self.apex {
                types.extend([RecordType::DNSKEY, RecordType::CDS, RecordType::CDNSKEY]);
            }
            let nsec = match self.denial {
                Denial::Nsec => {
                    types.push(RecordType::NSEC);
                    let mut rdata = self.next(key).to_vec();
                    rdata.extend_from_slice(&sign::type_bitmap(&types));
                    let name = Name::from(&crate::zone::records::wire_name(key));
                    raw_record(name, self.nsec_ttl, RecordType::NSEC, rdata)
                }
                Denial::Nsec3 => {
                    if *key == self.apex {
                        types.push(RecordType::NSEC3PARAM);
                    }
                    let hash = nsec3_hash(key);
                    let owner = self.hashed_owner(&hash);
                    let name = Name::from(&crate::zone::records::wire_name(&owner));
                    let rdata = self.nsec3_rdata(&hash, &types);
                    raw_record(name, self.nsec_ttl, RecordType::NSEC3, rdata)
                }
            };
            let sigs = self.sign(std::slice::from_ref(&nsec));
            out.push(nsec);
            out.extend(sigs.iter().cloned());
        }
        out
    }
}

/// Signs `zone` under `policy` at `now_s`: the records of the file with
/// the DNSKEY, CDS and CDNSKEY sets, the NSEC chain and every RRSIG but
/// those of the SOA and the failover names' NSEC (made as they are
/// served). `dynamic` are the failover records' names; `variants` each
/// site's failover records, signed ahead. Keys are made when there are
/// none.
pub fn sign_zone(
    zone: &Zone,
    policy: &Policy,
    dynamic: &[Name],
    variants: &[Vec<Record>],
    now_s: u64,
) -> Result<Zone, String> {
    let origin = &zone.origin;
    let records = &zone.records;
    let soa = records
        .first_of(RecordType::SOA)
        .ok_or_else(|| format!("zone {origin} has no SOA"))?;
    let minimum = match &soa.data {
        RData::SOA(s) => s.minimum,
        _ => soa.ttl,
    };
    for i in 0..records.len() {
        let rtype = records.rtype(i);
        if is_signing_type(rtype) {
            let owner = Name::from(&crate::zone::records::wire_name(records.owner(i)));
            return Err(format!(
                "zone {origin} is signed by geofailover (dnssec:), but its file holds a {rtype} record at {owner}: remove it (keys go in the key folder, {})",
                policy.keys.display()
            ));
        }
    }
    let (all_keys, created) = keys::load_or_create(
        &policy.keys,
        origin,
        policy.algorithm,
        soa.ttl,
        policy.split_keys,
    )?;
    let mut all_keys = all_keys;
    if let Some(lifetime) = policy.zsk_lifetime {
        // The new DNSKEY set must reach every cache before the successor
        // signs; the old signatures must leave them before its DNSKEY does.
        let largest_ttl = (0..records.len())
            .map(|i| records.ttl(i))
            .max()
            .unwrap_or(soa.ttl);
        if let Some(done) = keys::roll_zsk(
            &policy.keys,
            origin,
            policy.algorithm,
            soa.ttl,
            now_s,
            lifetime.as_secs(),
            u64::from(soa.ttl) + PROPAGATION,
            u64::from(largest_ttl) + PROPAGATION,
        )? {
            tracing::info!(zone = %origin, "{done}");
            all_keys = keys::load(&policy.keys, origin, policy.algorithm)?;
        }
    }
    if created {
        let made: Vec<String> = all_keys
            .iter()
            .map(|k| format!("{} {:05}", role(k, &all_keys), k.tag))
            .collect();
        tracing::info!(zone = %origin, folder = %policy.keys.display(), "made signing keys for the zone: {}", made.join(", "));
    }
    // The keys' timing (BIND's Publish, Activate, Inactive, Delete) at
    // the signing time: which are in the DNSKEY set, which sign, and when
    // that next changes.
    let next_event = all_keys
        .iter()
        .filter_map(|k| k.timing.next_after(now_s))
        .min();
    let (keys, rest): (Vec<Key>, Vec<Key>) =
        all_keys.into_iter().partition(|k| k.timing.signs(now_s));
    let standby: Vec<Key> = rest
        .into_iter()
        .filter(|k| k.timing.published(now_s))
        .collect();
    if keys.is_empty() {
        return Err(format!(
            "none of the zone's keys in {} signs now (their Activate, Inactive or Delete times): make one active, or move them out of the folder to have a new key made",
            policy.keys.display()
        ));
    }
    let apex: Box<[u8]> = lower_wire(&wire_key(&LowerName::new(origin)));
    let cuts: rustc_hash::FxHashSet<Box<[u8]>> = records
        .nodes()
        .filter(|(key, range)| {
            !key.eq_ignore_ascii_case(&apex)
                && range.clone().any(|i| records.rtype(i) == RecordType::NS)
        })
        .map(|(key, _)| lower_wire(key))
        .collect();
    // Strictly below a cut: glue, not the zone's own data.
    let below_cut = |key: &[u8]| {
        let mut at = 0;
        let mut first = true;
        while key.len() - at > apex.len() {
            if !first && cuts.contains(&key[at..]) {
                return true;
            }
            first = false;
            at += 1 + usize::from(key[at]);
        }
        false
    };
    let at_cut = |key: &[u8]| cuts.contains(key);
    let mut dynamic: Vec<Box<[u8]>> = dynamic
        .iter()
        .map(|n| lower_wire(&wire_key(&LowerName::new(n))))
        .filter(|k| wire_zone_of(&apex, k))
        .collect();
    // A name with an A and an AAAA failover record is listed twice.
    dynamic.sort();
    dynamic.dedup();

    let (chain, hashes) = match policy.denial {
        Denial::Nsec => {
            let mut chain: Vec<Box<[u8]>> = records
                .nodes()
                .map(|(key, _)| lower_wire(key))
                .filter(|k| !below_cut(k))
                .chain(dynamic.iter().cloned())
                .collect();
            chain.sort_by(|a, b| sign::canonical_cmp(a, b));
            chain.dedup();
            (chain, Vec::new())
        }
        Denial::Nsec3 => {
            // Every name, the empty non-terminals too (RFC 5155 section
            // 7.1), those of the failover names included.
            let names = nsec3_names(records, &apex, &dynamic, &below_cut);
            let mut hashes: Vec<[u8; 20]> = names.iter().map(|n| nsec3_hash(n)).collect();
            hashes.sort_unstable();
            hashes.dedup();
            (Vec::new(), hashes)
        }
    };

    let validity = times(origin, policy, now_s);
    let mut signed = Signed {
        keys,
        standby,
        validity,
        resign_at: next_event.map_or(due(policy, validity), |at| at.min(due(policy, validity))),
        apex: apex.clone(),
        chain,
        nsec_ttl: soa.ttl.min(minimum),
        hashes,
        denial: policy.denial,
        dynamic,
        presigned: HashMap::new(),
        recent: Mutex::new(HashMap::new()),
    };

    // The signed zone is gathered node by node: the file's records as
    // they are stored, then what signing adds there; nodes are signed in
    // batches on every core.
    let mut gather = Gather::with_capacity(
        2 * records.len() + 2 * signed.chain.len() + 16,
        records.len() * 48 + signed.chain.len() * 160,
    );
    // The apex's key sets.
    let dnskeys: Vec<Record> = signed
        .keys
        .iter()
        .chain(&signed.standby)
        .map(|k| {
            raw_record(
                origin.clone(),
                soa.ttl,
                RecordType::DNSKEY,
                k.dnskey_rdata(),
            )
        })
        .collect();
    let sep: Vec<&Key> = signed
        .keys
        .iter()
        .chain(&signed.standby)
        .filter(|k| k.flags & 1 == 1 && k.timing.inactive.is_none_or(|t| now_s < t))
        .collect();
    let cds: Vec<Record> = sep
        .iter()
        .map(|k| raw_record(origin.clone(), soa.ttl, RecordType::CDS, k.ds_rdata(&apex)))
        .collect();
    let cdnskeys: Vec<Record> = sep
        .iter()
        .map(|k| {
            raw_record(
                origin.clone(),
                soa.ttl,
                RecordType::CDNSKEY,
                k.dnskey_rdata(),
            )
        })
        .collect();
    let nsec3param: Vec<Record> = match policy.denial {
        Denial::Nsec => Vec::new(),
        Denial::Nsec3 => vec![raw_record(
            origin.clone(),
            0,
            RecordType::NSEC3PARAM,
            NSEC3_PARAMS.to_vec(),
        )],
    };
    let (apex_node, _) = gather.node(origin);
    for set in [&dnskeys, &cds, &cdnskeys, &nsec3param] {
        if set.is_empty() {
            continue;
        }
        for record in set.iter().chain(signed.sign(set).iter()) {
            gather
                .push(apex_node, record)
                .map_err(|e| format!("cannot write a {} record: {e}", record.record_type()))?;
        }
    }
    let nodes: Vec<(&[u8], std::ops::Range<usize>)> = records.nodes().collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for batch in nodes.chunks(SIGNING_BATCH) {
        let per_thread = batch.len().div_ceil(threads);
        let made: Vec<Vec<Generated>> = std::thread::scope(|scope| {
            let workers: Vec<_> = batch
                .chunks(per_thread.max(1))
                .map(|part| {
                    let signed = &signed;
                    let (below_cut, at_cut) = (&below_cut, &at_cut);
                    scope.spawn(move || {
                        part.iter()
                            .map(|(key, range)| {
                                let lower = lower_wire(key);
                                if below_cut(&lower) {
                                    return Vec::new();
                                }
                                signed.sign_node(records, key, range.clone(), at_cut(&lower))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap_or_default())
                .collect()
        });
        for ((key, range), generated) in batch.iter().zip(made) {
            let owner = Name::from(&crate::zone::records::wire_name(key));
            let (node, _) = gather.node(&owner);
            for i in range.clone() {
                gather.push_wire(node, records.wire(i));
            }
            for (rtype, ttl, rdata) in generated {
                let mut wire = Vec::with_capacity(10 + rdata.len());
                wire.extend_from_slice(&u16::from(rtype).to_be_bytes());
                wire.extend_from_slice(&1u16.to_be_bytes());
                wire.extend_from_slice(&ttl.to_be_bytes());
                wire.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
                wire.extend_from_slice(&rdata);
                gather.push_wire(node, &wire);
            }
        }
    }
    if policy.denial == Denial::Nsec3 {
        let names = nsec3_names(records, &apex, &signed.dynamic, &below_cut);
        for batch in names.chunks(SIGNING_BATCH) {
            let per_thread = batch.len().div_ceil(threads);
            let made: Vec<(Vec<u8>, Vec<Generated>)> = std::thread::scope(|scope| {
                let workers: Vec<_> = batch
                    .chunks(per_thread.max(1))
                    .map(|part| {
                        let signed = &signed;
                        let at_cut = &at_cut;
                        scope.spawn(move || {
                            part.iter()
                                .filter(|key| !signed.is_dynamic(key))
                                .map(|key| signed.sign_nsec3(records, key, at_cut(key)))
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                workers
                    .into_iter()
                    .flat_map(|w| w.join().unwrap_or_default())
                    .collect()
            });
            for (owner, generated) in made {
                let owner = Name::from(&crate::zone::records::wire_name(&owner));
                let (node, _) = gather.node(&owner);
                for (rtype, ttl, rdata) in generated {
                    let mut wire = Vec::with_capacity(10 + rdata.len());
                    wire.extend_from_slice(&u16::from(rtype).to_be_bytes());
                    wire.extend_from_slice(&1u16.to_be_bytes());
                    wire.extend_from_slice(&ttl.to_be_bytes());
                    wire.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
                    wire.extend_from_slice(&rdata);
                    gather.push_wire(node, &wire);
                }
            }
        }
    }
    // Each site's failover RRsets, signed ahead.
    let mut presigned = HashMap::new();
    for variant in variants {
        let mut sets: Vec<Vec<Record>> = Vec::new();
        for record in variant {
            let key = wire_key_of(&record.name);
            if !wire_zone_of(&apex, &lower_wire(&key)) {
                continue;
            }
            match sets
                .iter_mut()
                .find(|s| s[0].name == record.name && s[0].record_type() == record.record_type())
            {
                Some(set) => set.push(record.clone()),
                None => sets.push(vec![record.clone()]),
            }
        }
        for set in sets {
            let first = &set[0];
            let (owner, rtype, rdatas) = canonical_set(&set, first);
            let cache = Signed::cache_key(&owner, rtype, first.ttl, &rdatas);
            let made: Arc<[Record]> = signed
                .make(&first.name, &owner, rtype, first.ttl, &rdatas)
                .into();
            presigned.insert(cache, made);
        }
    }
    signed.presigned = presigned;

    let records = Arc::new(gather.finish(&apex));
    // The key set is part of what the digest names, readable: nodes that
    // agree on a digest agree on the DNSKEY set (`digest_keys`).
    let digest = format!(
        "{}{KEYS_MARK}{}",
        records.digest(),
        key_list(&signed.tags())
    );
    Ok(Zone {
        origin: origin.clone(),
        file_digest: digest.clone(),
        digest,
        records,
        signed: Some(Arc::new(signed)),
    })
}

/// The names an NSEC3 chain covers (wire format, lower case): every name
/// of the zone file (the empty non-terminals too) not below a zone cut,
/// and the failover names with the names between them and the apex.
fn nsec3_names(
    records: &Records,
    apex: &[u8],
    dynamic: &[Box<[u8]>],
    below_cut: &dyn Fn(&[u8]) -> bool,
) -> Vec<Box<[u8]>> {
    let mut names: Vec<Box<[u8]>> = records
        .names()
        .map(|(key, _)| lower_wire(key))
        .filter(|k| !below_cut(k))
        .collect();
    for key in dynamic {
        let mut at = 0;
        while key.len() - at >= apex.len() {
            names.push(key[at..].into());
            if key.len() - at == apex.len() || key[at] == 0 {
                break;
            }
            at += 1 + usize::from(key[at]);
        }
    }
    names.sort_unstable();
    names.dedup();
    names
}

/// The DS records of `zone`'s keys with a secure-entry-point flag, in
/// zone-file form, for the parent (the registrar).
pub fn ds_lines(origin: &Name, keys: &[Key], ttl: u32) -> Vec<String> {
    let apex = lower_wire(&wire_key(&LowerName::new(origin)));
    keys.iter()
        .filter(|k| k.flags & 1 == 1)
        .map(|k| {
            let rdata = k.ds_rdata(&apex);
            let hex: String = rdata[4..].iter().map(|b| format!("{b:02X}")).collect();
            format!(
                "{} {ttl} IN DS {} {} 2 {hex}",
                origin.to_lowercase(),
                k.tag,
                k.algorithm.number()
            )
        })
        .collect()
}

/// Signs every zone the config serves signed (`dnssec:`), at `now_s`;
/// the others are returned as they are. With `manage_keys`, keys are
/// rolled as the policy says (`serve`); without, the key folders are only
/// read (`check`). Slow for a large zone: run it off the async runtime.
pub fn sign_all(
    config: &crate::config::Config,
    zones: Vec<Zone>,
    now_s: u64,
    manage_keys: bool,
) -> Result<Vec<Zone>, String> {
    let dynamic: Vec<Name> = config
        .failover
        .iter()
        .flat_map(|f| f.records.iter().map(|r| r.name.clone()))
        .collect();
    let variants: Vec<Vec<Record>> = config
        .failover
        .iter()
        .flat_map(|f| {
            crate::engine::Role::BOTH
                .iter()
                .map(|role| crate::control::answers::failover_records(f, *role, None))
        })
        .collect();
    zones
        .into_iter()
        .map(|zone| {
            let policy = config
                .zones
                .iter()
                .find(|s| s.origin == zone.origin)
                .and_then(|s| s.dnssec.as_ref());
            match policy {
                Some(policy) => {
                    let mut policy = policy.clone();
                    if !manage_keys {
                        policy.zsk_lifetime = None;
                    }
                    sign_zone(&zone, &policy, &dynamic, &variants, now_s)
                }
                .map_err(|e| format!("zone {}: {e}", zone.origin)),
                None => Ok(zone),
            }
        })
        .collect::<Result<Vec<Zone>, String>>()
        .map(|mut zones| {
            // Signing made the zone files' digests anew.
            crate::zone::with_failover(config, &mut zones);
            zones
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::AnswerTable;
    use hickory_proto::op::ResponseCode;

    fn policy(dir: &std::path::Path) -> Policy {
        Policy {
            algorithm: Algorithm::EcdsaP256,
            keys: dir.to_path_buf(),
            validity: Policy::VALIDITY,
            refresh: Policy::REFRESH,
            denial: Denial::Nsec,
            split_keys: false,
            zsk_lifetime: None,
            parent_nameservers: Vec::new(),
        }
    }

    fn zone() -> Zone {
        let text = "$ORIGIN example.com.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 900 1209600 60\n  IN NS ns1\nns1 IN A 192.0.2.1\n*.wild IN TXT \"w\"\na.b IN TXT \"ent above\"\nsub IN NS ns.sub\n    IN DS 12345 13 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\nns.sub IN A 192.0.2.9\nopen IN NS ns.open.example.net.\n";
        let origin = Name::from_ascii("example.com.").unwrap();
        crate::zone::from_text(std::path::Path::new("t.zone"), text, &origin).unwrap()
    }

    fn types(records: &[Record]) -> Vec<(String, RecordType)> {
        records
            .iter()
            .map(|r| (r.name.to_ascii().to_lowercase(), r.record_type()))
            .collect()
    }

    #[test]
    fn signatures_hold_through_their_step_and_renew_before_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let p = policy(dir.path());
        let origin = Name::from_ascii("example.com.").unwrap();
        let now = 1_796_083_200;
        let t = times(&origin, &p, now);
        assert!(u64::from(t.inception) <= now);
        assert!(u64::from(t.expiration) >= now + p.refresh.as_secs());
        let next = due(&p, t);
        assert!(next > now);
        // The same step: the same times (so the same bytes); the next
        // step: new ones, still valid `refresh` ahead.
        assert_eq!(times(&origin, &p, next - 1).expiration, t.expiration);
        let later = times(&origin, &p, next);
        assert!(later.expiration > t.expiration);
        assert!(u64::from(later.expiration) >= next + p.refresh.as_secs());
        // Another zone steps at another offset.
        let other = Name::from_ascii("example.net.").unwrap();
        assert_ne!(times(&other, &p, now).expiration, t.expiration);
    }

    #[test]
    fn signing_is_deterministic_and_answers_carry_their_proofs() {
        let dir = tempfile::tempdir().unwrap();
        let p = policy(dir.path());
        let now = crate::control::clock::now_ms() / 1000 + 86_400;
        let www = Name::from_ascii("www.example.com.").unwrap();
        let one = sign_zone(&zone(), &p, std::slice::from_ref(&www), &[], now).unwrap();
        let two = sign_zone(&zone(), &p, std::slice::from_ref(&www), &[], now).unwrap();
        assert_eq!(
            one.digest, two.digest,
            "the same zone, keys and step sign alike"
        );
        assert_ne!(one.digest, zone().digest);

        let table = AnswerTable::build_for(vec![one], std::slice::from_ref(&www));
        let a = Record::from_rdata(
            www.clone(),
            30,
            RData::A(hickory_proto::rr::rdata::A([192, 0, 2, 10].into())),
        );
        let serials = std::collections::BTreeMap::from([("example.com.".to_string(), 7)]);
        let table = table.with_overlay(std::slice::from_ref(&a), &serials);
        let ask = |name: &str, rtype: RecordType| {
            table.resolve_signed(&Name::from_ascii(name).unwrap(), rtype, true)
        };

        // A failover record: its RRSIG.
        let res = ask("www.example.com.", RecordType::A);
        assert_eq!(
            types(&res.answer),
            [
                ("www.example.com.".into(), RecordType::A),
                ("www.example.com.".into(), RecordType::RRSIG)
            ]
        );
        // Without DO: nothing of DNSSEC.
        let plain = table.resolve(&www, RecordType::A);
        assert_eq!(plain.answer.len(), 1);

        // NXDOMAIN: the SOA and its RRSIG, the NSEC covering the name
        // and the one covering the wildcard at the apex.
        let res = ask("nothere.example.com.", RecordType::A);
        assert_eq!(res.rcode, ResponseCode::NXDomain);
        let auth = types(&res.authority);
        assert_eq!(auth[0].1, RecordType::SOA);
        assert_eq!(auth[1].1, RecordType::RRSIG);
        let nsecs = auth.iter().filter(|t| t.1 == RecordType::NSEC).count();
        assert!((1..=2).contains(&nsecs), "{auth:?}");

        // NODATA at a name: its own NSEC.
        let res = ask("ns1.example.com.", RecordType::TXT);
        assert!(res.answer.is_empty());
        assert!(types(&res.authority).contains(&("ns1.example.com.".into(), RecordType::NSEC)));
        // NODATA at an empty non-terminal: the NSEC that covers it.
        let res = ask("b.example.com.", RecordType::A);
        assert_eq!(res.rcode, ResponseCode::NoError);
        assert!(
            types(&res.authority)
                .iter()
                .any(|t| t.1 == RecordType::NSEC)
        );

        // A wildcard: the answer under the name asked, its RRSIG with the
        // wildcard's labels, and the NSEC proving the name is not there.
        let res = ask("x.wild.example.com.", RecordType::TXT);
        assert_eq!(
            types(&res.answer)[0],
            ("x.wild.example.com.".into(), RecordType::TXT)
        );
        let sig = res
            .answer
            .iter()
            .find(|r| r.record_type() == RecordType::RRSIG)
            .unwrap();
        match &sig.data {
            RData::Unknown { rdata, .. } => {
                assert_eq!(rdata.anything[3], 3, "labels of *.wild.example.com.")
            }
            other => panic!("{other:?}"),
        }
        assert!(
            types(&res.authority)
                .iter()
                .any(|t| t.1 == RecordType::NSEC)
        );

        // Referrals: the DS and its RRSIG; without DS, the NSEC at the cut.
        let res = ask("host.sub.example.com.", RecordType::A);
        let auth = types(&res.authority);
        assert!(
            auth.contains(&("sub.example.com.".into(), RecordType::DS)),
            "{auth:?}"
        );
        assert!(
            auth.contains(&("sub.example.com.".into(), RecordType::RRSIG)),
            "{auth:?}"
        );
        let res = ask("host.open.example.com.", RecordType::A);
        let auth = types(&res.authority);
        assert!(
            auth.contains(&("open.example.com.".into(), RecordType::NSEC)),
            "{auth:?}"
        );
        // Glue is not signed.
        assert!(
            res.additional
                .iter()
                .all(|r| r.record_type() != RecordType::RRSIG)
        );
        // The zone's own addresses in the additional section are, with
        // their RRSIGs (RFC 4035 section 3.1.1).
        let res = ask("example.com.", RecordType::NS);
        let extra = types(&res.additional);
        assert!(
            extra.contains(&("ns1.example.com.".into(), RecordType::A)),
            "{extra:?}"
        );
        assert!(
            extra.contains(&("ns1.example.com.".into(), RecordType::RRSIG)),
            "{extra:?}"
        );
        // The apex's keys.
        let res = ask("example.com.", RecordType::DNSKEY);
        assert_eq!(
            types(&res.answer)
                .iter()
                .filter(|t| t.1 == RecordType::DNSKEY)
                .count(),
            1
        );
        assert_eq!(
            types(&res.answer)
                .iter()
                .filter(|t| t.1 == RecordType::RRSIG)
                .count(),
            1
        );
    }

    #[test]
    fn a_zone_file_with_dnssec_records_of_its_own_is_refused_at_its_line() {
        let text = "$ORIGIN example.com.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 900 1209600 60\n  IN NS ns1\nns1 IN A 192.0.2.1\n  IN NSEC example.com. A RRSIG NSEC\n";
        let origin = Name::from_ascii("example.com.").unwrap();
        let errors =
            crate::zone::from_text(std::path::Path::new("t.zone"), text, &origin).unwrap_err();
        assert_eq!(errors[0].location.line, Some(6));
        assert!(
            errors[0]
                .message
                .contains("NSEC record at ns1.example.com."),
            "{errors:?}"
        );
    }

    #[test]
    fn keys_are_published_and_sign_as_their_timing_says() {
        let dir = tempfile::tempdir().unwrap();
        let p = policy(dir.path());
        // After the keys' own Publish and Activate times.
        let now = crate::control::clock::now_ms() / 1000 + 86_400;
        let origin = Name::from_ascii("example.com.").unwrap();
        let (made, _) = keys::load_or_create(dir.path(), &origin, p.algorithm, 300, false).unwrap();
        let first = made[0].file.clone();
        // A successor made by hand: published now, signing in an hour.
        let (_, _) = keys::load_or_create(
            dir.path(),
            &Name::from_ascii("example.net.").unwrap(),
            p.algorithm,
            300,
            false,
        )
        .unwrap();
        let stamp = |s: u64| {
            crate::engine::utc(s * 1000)
                .chars()
                .filter(char::is_ascii_digit)
                .collect::<String>()
        };
        let successor = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.to_str().unwrap().contains("Kexample.net.") && p.extension().unwrap() == "private"
            })
            .unwrap();
        let text = std::fs::read_to_string(&successor).unwrap();
        let kept: String = text
            .lines()
            .filter(|l| !l.starts_with("Publish") && !l.starts_with("Activate"))
            .map(|l| format!("{l}\n"))
            .collect();
        let name = successor
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .replace("example.net.", "example.com.");
        let key_file = successor.with_extension("key");
        let key_text = std::fs::read_to_string(&key_file)
            .unwrap()
            .replace("example.net.", "example.com.");
        std::fs::remove_file(&successor).unwrap();
        std::fs::remove_file(&key_file).unwrap();
        let moved = dir.path().join(&name);
        crate::web::auth::write_private(
            &moved,
            &format!(
                "{kept}Publish: {}\nActivate: {}\n",
                stamp(now),
                stamp(now + 3600)
            ),
        )
        .unwrap();
        std::fs::write(moved.with_extension("key"), key_text).unwrap();

        let zone = sign_zone(&zone(), &p, &[], &[], now).unwrap();
        let signed = zone.signed.as_ref().unwrap();
        let status = signed.status();
        let states: Vec<&str> = status.keys.iter().map(|k| k.state.as_str()).collect();
        assert_eq!(states, ["signing", "published"], "{status:?}");
        assert_eq!(signed.tags().len(), 2, "both keys are in the DNSKEY set");
        assert_eq!(
            signed.resign_at,
            now + 3600,
            "signed again when the successor activates"
        );
        // An hour on, both sign; a key whose Delete has passed is gone.
        let later = sign_zone(&zone_of(&zone), &p, &[], &[], now + 3600).unwrap();
        let states: Vec<String> = later
            .signed
            .unwrap()
            .status()
            .keys
            .iter()
            .map(|k| k.state.clone())
            .collect();
        assert_eq!(states, ["signing", "signing"]);
        let text = std::fs::read_to_string(&first).unwrap();
        std::fs::remove_file(&first).unwrap();
        crate::web::auth::write_private(
            &first,
            &format!(
                "{text}Inactive: {}\nDelete: {}\n",
                stamp(now + 3600),
                stamp(now + 7200)
            ),
        )
        .unwrap();
        let retired = sign_zone(&zone_of(&zone), &p, &[], &[], now + 7200).unwrap();
        assert_eq!(retired.signed.unwrap().tags().len(), 1);
    }

    #[test]
    fn a_zsk_is_rolled_by_pre_publication_when_its_lifetime_ends() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = policy(dir.path());
        p.split_keys = true;
        p.zsk_lifetime = Some(Duration::from_secs(30 * 86_400));
        let start = crate::control::clock::now_ms() / 1000 + 60;
        let zone_now = |now: u64| sign_zone(&zone(), &p, &[], &[], now).unwrap();
        let states = |z: &Zone| -> Vec<(String, String)> {
            z.signed
                .as_ref()
                .unwrap()
                .status()
                .keys
                .iter()
                .map(|k| (k.role.clone(), k.state.clone()))
                .collect()
        };
        let first = zone_now(start);
        assert_eq!(states(&first).len(), 2, "a KSK and a ZSK");
        // Well before the end of its lifetime: nothing made.
        assert_eq!(states(&zone_now(start + 86_400)).len(), 2);
        // Within the publication interval of its end: a successor,
        // published, not signing yet; signed again when it activates.
        let near = start + 30 * 86_400 - 1800;
        let rolled = zone_now(near);
        let mut got = states(&rolled);
        got.sort();
        assert_eq!(
            got,
            [
                ("KSK".to_string(), "signing".to_string()),
                ("ZSK".into(), "published".into()),
                ("ZSK".into(), "signing".into())
            ]
        );
        let activate = rolled.signed.as_ref().unwrap().resign_at;
        assert!(
            activate > near && activate <= near + 300 + PROPAGATION,
            "{activate} {near}"
        );
        // Once it activates: the successor signs, the old one is only
        // published; no third ZSK.
        let mut got = states(&zone_now(activate));
        got.sort();
        assert_eq!(got.len(), 3, "{got:?}");
        let tags_signing: usize = got.iter().filter(|(_, s)| s == "signing").count();
        assert_eq!(tags_signing, 2, "the KSK and the new ZSK: {got:?}");
        // After the retirement interval: the old ZSK is gone.
        assert_eq!(states(&zone_now(activate + 300 + PROPAGATION + 1)).len(), 2);
    }

    /// The unsigned zone a signed one was made from, for signing again.
    fn zone_of(_signed: &Zone) -> Zone {
        zone()
    }
}
