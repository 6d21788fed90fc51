//! Zone transfers out: AXFR (RFC 5936) over TCP, split over as many
//! messages as the zone needs, and IXFR (RFC 1995) from a bounded history
//! of the zone's versions, each message TSIG-signed when the request was.
//! Over UDP an IXFR gets the current SOA alone, which RFC 1995 allows and
//! which sends the secondary to TCP when it is behind.
//!
//! A version is the zone as answered at one serial: its SOA, its static
//! records (shared between versions while the zone file stays the same)
//! and the failover records for the active site. The difference between
//! two versions with the same static records is found among the failover
//! records alone, so an IXFR after a failover costs what changed.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::Arc,
};

use hickory_proto::{
    op::{Edns, Metadata, ResponseCode},
    rr::{DNSClass, LowerName, RData, Record, RecordType},
    serialize::binary::{BinEncodable, BinEncoder},
};
use hickory_server::{net::xfer::Protocol, server::Request, zone_handler::MessageResponseBuilder};
use tracing::{info, warn};

use super::tsig::Signing;
use crate::{
    config::{Allow, TsigKey},
    zone::Records,
};

/// Changes kept per zone for IXFR; an older serial gets the whole zone.
pub const HISTORY: usize = 64;
/// The records all kept changes of a zone may hold together at least
/// (else an eighth of the zone's): a reload that rewrote a large zone is
/// not kept at all (an IXFR from before it gets the whole zone).
const HISTORY_RECORDS: usize = 10_000;
/// The transfer message we fill, leaving room for a TSIG.
const MESSAGE_SIZE: u16 = 16 * 1024;
/// The message a record too large for `MESSAGE_SIZE` is sent in, alone,
/// leaving room for a TSIG.
const LARGEST_MESSAGE: u16 = u16::MAX - 1024;
/// The most records an IXFR condenses; a larger difference is sent as
/// the whole zone.
const IXFR_RECORDS: usize = 16_384;
/// Records of a whole zone decoded at a time for a transfer.
const CHUNK: usize = 1024;

/// A zone as served at one serial: its SOA, its static records (the zone
/// file's, shared while the file's content stays the same) and the
/// failover records for the active site.
#[derive(Debug)]
pub struct Version {
    pub serial: u32,
    pub soa: Record,
    /// The zone file's records (its SOA is skipped: `soa` stands for it).
    pub statics: Arc<Records>,
    /// The failover records for the active site in this zone.
    pub failover: Vec<Record>,
}

impl Version {
    fn records(&self) -> impl Iterator<Item = Record> + '_ {
        (0..self.statics.len())
            .filter(|&i| self.statics.rtype(i) != RecordType::SOA)
            .map(|i| self.statics.get(i))
            .chain(self.failover.iter().cloned())
    }
}

/// What changed from one serial to the next, found once when the change
/// was recorded: what an IXFR sends.
#[derive(Debug)]
pub struct Change {
    /// The SOA before and after.
    pub from: Record,
    pub to: Record,
    pub deleted: Vec<Record>,
    pub added: Vec<Record>,
}

impl Change {
    fn serials(&self) -> (u32, u32) {
        (soa_serial(&self.from), soa_serial(&self.to))
    }

    fn size(&self) -> usize {
        self.deleted.len() + self.added.len()
    }
}

fn soa_serial(soa: &Record) -> u32 {
    match &soa.data {
        RData::SOA(data) => data.serial,
        _ => 0,
    }
}

/// A zone as served now, its recent changes (oldest first, each one's
/// serial following the one before) and who may transfer it.
#[derive(Debug)]
pub struct ZoneVersions {
    pub origin: LowerName,
    pub allow: Vec<Allow>,
    pub current: Option<Arc<Version>>,
    pub changes: VecDeque<Arc<Change>>,
    /// This node's content is not the one its serial stands for: no
    /// transfer of it from here.
    pub withheld: bool,
}

/// What the transfer side answers from, swapped with the table.
#[derive(Debug, Default)]
pub struct Transfers {
    pub keys: Vec<TsigKey>,
    pub zones: Vec<ZoneVersions>,
}

impl Transfers {
    fn zone(&self, origin: &LowerName) -> Option<&ZoneVersions> {
        self.zones.iter().find(|z| &z.origin == origin)
    }
}

/// Writes the response messages in order into `out`; the rcode of the
/// first. `clock` tells the time each message is signed at.
pub fn answer(
    transfers: &Transfers,
    request: &Request,
    qtype: RecordType,
    signing: Option<Signing<'_>>,
    clock: fn() -> u64,
    out: &mut impl Out,
) -> ResponseCode {
    let query = &request.queries.queries()[0];
    let src = request.src();
    let origin = LowerName::new(query.name());
    let key = signing.as_ref().map(|s| &s.key.name);
    let zone = transfers.zone(&origin);
    let allowed = zone.is_some_and(|z| {
        z.allow
            .iter()
            .any(|a| a.from.contains(src.ip()) && a.key.as_ref().is_none_or(|k| Some(k) == key))
    });
    let mut writer = Writer::new(request, signing, clock);
    if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
        // RFC 6891 section 6.1.3, before anything else, as NSD does.
        writer.message(ResponseCode::BADVERS, &[], out);
        return ResponseCode::BADVERS;
    }
    if query.query_class() != DNSClass::IN {
        // Only class IN is served: REFUSED, as NSD answers a CH transfer.
        writer.message(ResponseCode::Refused, &[], out);
        return ResponseCode::Refused;
    }
    let (Some(zone), true) = (zone, allowed) else {
        let why = match (zone, key) {
            (None, _) => format!("a transfer of {}, which is not served here", query.name()),
            (Some(_), Some(key)) => format!(
                "a transfer of {} with key {key}, which is not allowed from {}",
                query.name(),
                src.ip()
            ),
            (Some(_), None) => format!(
                "a transfer of {}, which is not allowed from {} without a key",
                query.name(),
                src.ip()
            ),
        };
        super::refused(src.ip(), &why);
        writer.message(ResponseCode::Refused, &[], out);
        return ResponseCode::Refused;
    };
    if zone.withheld {
        super::refused(
            src.ip(),
            &format!(
                "a transfer of {}, whose content here differs from the agreed content",
                query.name()
            ),
        );
        writer.message(ResponseCode::Refused, &[], out);
        return ResponseCode::Refused;
    }
    let Some(current) = &zone.current else {
        writer.message(ResponseCode::ServFail, &[], out);
        return ResponseCode::ServFail;
    };
    if qtype == RecordType::AXFR && request.protocol() == Protocol::Udp {
        // RFC 5936 section 4.2: AXFR is for TCP.
        writer.message(ResponseCode::FormErr, &[], out);
        return ResponseCode::FormErr;
    }
    if qtype == RecordType::IXFR {
        let Some(theirs) = request.authorities.iter().find_map(|r| match &r.data {
            RData::SOA(soa) => Some(soa.serial),
            _ => None,
        }) else {
            // RFC 1995 section 3: the request carries the client's SOA.
            writer.message(ResponseCode::FormErr, &[], out);
            return ResponseCode::FormErr;
        };
        if request.protocol() == Protocol::Udp || !newer(current.serial, theirs) {
            writer.message(
                ResponseCode::NoError,
                std::slice::from_ref(&current.soa),
                out,
            );
            return ResponseCode::NoError;
        }
        let first = zone.changes.iter().position(|c| c.serials().0 == theirs);
        // A difference larger than IXFR_RECORDS goes as the whole zone,
        // streamed (as BIND's max-ixfr-ratio does): an IXFR is put
        // together in memory.
        let small = |first: &usize| {
            zone.changes
                .range(*first..)
                .map(|c| c.size())
                .sum::<usize>()
                <= IXFR_RECORDS
        };
        if let Some(first) = first.filter(small) {
            let (deleted, added) = condensed(zone.changes.range(first..));
            let old = &zone.changes[first].from;
            let mut records = Vec::with_capacity(deleted.len() + added.len() + 4);
            records.push(current.soa.clone());
            records.push(old.clone());
            records.extend(deleted);
            records.push(current.soa.clone());
            records.extend(added);
            records.push(current.soa.clone());
            if writer.stream(&records, true, out).is_none() {
                return ResponseCode::ServFail;
            }
            info!(
                zone = %query.name(),
                to = %src,
                "IXFR sent: the difference from serial {theirs} to {}, {} records in {} messages",
                current.serial,
                records.len(),
                writer.sent
            );
            return ResponseCode::NoError;
        }
    }
    // AXFR, or an IXFR from a version no longer kept: the whole zone,
    // decoded a slice at a time and sent on message by message; the
    // records of a last message not yet full wait for the next slice.
    let mut sent = 0;
    let mut pending: Vec<Record> = Vec::with_capacity(CHUNK);
    let all = std::iter::once(current.soa.clone())
        .chain(current.records())
        .chain(std::iter::once(current.soa.clone()));
    for record in all {
        pending.push(record);
        if pending.len() >= CHUNK {
            let Some(n) = writer.stream(&pending, false, out) else {
                return ResponseCode::ServFail;
            };
            pending.drain(..n);
            sent += n;
        }
    }
    let Some(n) = writer.stream(&pending, true, out) else {
        return ResponseCode::ServFail;
    };
    sent += n;
    info!(
        zone = %query.name(),
        to = %src,
        "{} sent: the whole zone at serial {}, {} records in {} messages",
        if qtype == RecordType::AXFR { "AXFR" } else { "IXFR (as AXFR, from a serial no longer kept)" },
        current.serial,
        sent,
        writer.sent
    );
    ResponseCode::NoError
}

/// Serial arithmetic (RFC 1982): `a` is newer than `b`.
pub fn newer(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 1 << 31
}

/// A record as changes compare it: its wire form, TTL included (a
/// changed TTL is a deletion and an addition).
fn key(record: &Record) -> Vec<u8> {
    let mut bytes = record.to_bytes().unwrap_or_default();
    bytes.extend_from_slice(&record.ttl.to_be_bytes());
    bytes
}

/// The changes in order, made one: a record added by one and deleted by
/// a later one (a failover and its fail-back) is in neither list.
fn condensed<'a>(changes: impl Iterator<Item = &'a Arc<Change>>) -> (Vec<Record>, Vec<Record>) {
    let mut deleted: HashMap<Vec<u8>, Record> = HashMap::new();
    let mut added: HashMap<Vec<u8>, Record> = HashMap::new();
    for change in changes {
        for record in &change.deleted {
            let k = key(record);
            if added.remove(&k).is_none() {
                deleted.insert(k, record.clone());
            }
        }
        for record in &change.added {
            let k = key(record);
            if deleted.remove(&k).is_none() {
                added.insert(k, record.clone());
            }
        }
    }
    let sorted = |map: HashMap<Vec<u8>, Record>| {
        let mut records: Vec<(Vec<u8>, Record)> = map.into_iter().collect();
        records.sort_by(|a, b| a.0.cmp(&b.0));
        records.into_iter().map(|(_, r)| r).collect()
    };
    (sorted(deleted), sorted(added))
}

/// The failover records of `old` not in `new`, and those of `new` not
/// in `old`.
fn failover_difference(old: &[Record], new: &[Record]) -> (Vec<Record>, Vec<Record>) {
    let old_keys: HashSet<Vec<u8>> = old.iter().map(key).collect();
    let new_keys: HashSet<Vec<u8>> = new.iter().map(key).collect();
    let deleted = old
        .iter()
        .filter(|r| !new_keys.contains(&key(r)))
        .cloned()
        .collect();
    let added = new
        .iter()
        .filter(|r| !old_keys.contains(&key(r)))
        .cloned()
        .collect();
    (deleted, added)
}

/// The zone file records of `old` not in `new` and those of `new` not in
/// `old` (the SOA aside: a change's SOAs stand for it), compared name by
/// name in wire form: only what differs is decoded.
pub fn static_difference(old: &Records, new: &Records) -> (Vec<Record>, Vec<Record>) {
    let mut deleted = Vec::new();
    let mut added = Vec::new();
    let soa = |records: &Records, i: usize| records.rtype(i) == RecordType::SOA;
    for (owner, range) in new.nodes() {
        let before = old.find(owner).unwrap_or(0..0);
        for i in range.clone() {
            if !soa(new, i) && !before.clone().any(|j| old.wire(j) == new.wire(i)) {
                added.push(new.get(i));
            }
        }
        for j in before {
            if !soa(old, j) && !range.clone().any(|i| new.wire(i) == old.wire(j)) {
                deleted.push(old.get(j));
            }
        }
    }
    for (owner, range) in old.nodes() {
        if new.find(owner).is_none_or(|r| r.is_empty()) {
            deleted.extend(range.filter(|&j| !soa(old, j)).map(|j| old.get(j)));
        }
    }
    (deleted, added)
}

/// Writes the messages of one response, signing each when the request
/// was signed: the first after the request's MAC, each later one after
/// the one before it (RFC 8945 section 5.3.1).
/// Each message carries the time it was signed at (RFC 8945 section
/// 5.3.1), and an OPT record when the request had one (RFC 6891 section 7).
struct Writer<'a> {
    request: &'a Request,
    signing: Option<Signing<'a>>,
    prior: Option<Vec<u8>>,
    clock: fn() -> u64,
    edns: Option<Edns>,
    /// Messages handed on so far.
    sent: usize,
}

/// Where a response's messages go, in order: collected, or sent on as
/// each is made (a transfer streamed to its connection, so a zone is
/// never held encoded whole).
pub trait Out {
    /// Takes the next message; `false` when no more can be taken (the
    /// connection is gone): the response stops there.
    fn put(&mut self, message: Vec<u8>) -> bool;
}

impl Out for Vec<Vec<u8>> {
    fn put(&mut self, message: Vec<u8>) -> bool {
        self.push(message);
        true
    }
}

impl<'a> Writer<'a> {
    fn new(request: &'a Request, signing: Option<Signing<'a>>, clock: fn() -> u64) -> Self {
        Self {
            request,
            signing,
            prior: None,
            clock,
            edns: super::handler::response_edns(request),
            sent: 0,
        }
    }

    fn metadata(&self, rcode: ResponseCode) -> Metadata {
        let mut metadata = Metadata::response_from_request(&self.request.metadata);
        metadata.authoritative = rcode == ResponseCode::NoError;
        metadata.response_code = rcode;
        metadata
    }

    /// Signs `bytes` (at this moment's time: a transfer delivered over
    /// minutes carries each message's own) and hands it on.
    fn finish(&mut self, mut bytes: Vec<u8>, out: &mut impl Out) -> bool {
        if let Some(signing) = &self.signing {
            let time = (self.clock)();
            self.prior = Some(signing.sign(&mut bytes, self.prior.as_deref(), time));
        }
        self.sent += 1;
        out.put(bytes)
    }

    /// One message with `records` as its answers.
    fn message(&mut self, rcode: ResponseCode, records: &[Record], out: &mut impl Out) {
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        let emitted = MessageResponseBuilder::new(&self.request.queries, self.edns.as_ref())
            .build(self.metadata(rcode), records.iter(), [], [], [])
            .destructive_emit(&mut encoder);
        if emitted.is_err() {
            bytes.clear();
        }
        self.finish(bytes, out);
    }

    /// `records` over as many messages as they need, each handed on as it
    /// is made; how many records were sent. Unless `last`, the records of
    /// a final message that is not full are left for the next call (when
    /// an earlier message took some). A record too large for a message of
    /// `MESSAGE_SIZE` goes alone in one of up to 64 KiB, as NSD and Knot
    /// send it. `None` when the rest cannot be sent (a SERVFAIL is sent
    /// instead when nothing was yet; else the connection must close).
    fn stream(&mut self, records: &[Record], last: bool, out: &mut impl Out) -> Option<usize> {
        let mut at = 0;
        // The records the next message may take: all that fit, or one
        // fewer when the OPT record did not fit after them.
        let mut most = records.len();
        let mut size = MESSAGE_SIZE;
        while at < records.len() {
            let mut bytes = Vec::with_capacity(usize::from(size));
            let mut encoder = BinEncoder::new(&mut bytes);
            encoder.set_max_size(size);
            let written = MessageResponseBuilder::new(&self.request.queries, self.edns.as_ref())
                .build(
                    self.metadata(ResponseCode::NoError),
                    records[at..most].iter(),
                    [],
                    [],
                    [],
                )
                .destructive_emit(&mut encoder)
                .map(|info| {
                    (
                        usize::from(info.counts().answers),
                        info.counts().additionals,
                    )
                });
            // A record that did not fit was rolled back, but its bytes may
            // still be in the buffer past the message's end.
            let end = encoder.offset();
            bytes.truncate(end);
            match written {
                Ok((n, 0)) if n > 1 && self.edns.is_some() => most = at + n - 1,
                Ok((n, _)) if n > 0 => {
                    if !last && at > 0 && at + n == records.len() {
                        // Room left in this message: it waits for more.
                        return Some(at);
                    }
                    // Not a truncated answer: the rest follows.
                    bytes[2] &= !0x02;
                    at += n;
                    most = records.len();
                    size = MESSAGE_SIZE;
                    if !self.finish(bytes, out) {
                        return None;
                    }
                }
                _ if size < LARGEST_MESSAGE => {
                    size = LARGEST_MESSAGE;
                    most = at + 1;
                }
                _ => {
                    warn!("a zone transfer could not be encoded: a record does not fit in 64 KiB");
                    if self.sent == 0 {
                        self.prior = None;
                        self.message(ResponseCode::ServFail, &[], out);
                    }
                    return None;
                }
            }
        }
        Some(at)
    }
}

/// Whether a message's one question asks for AXFR or IXFR, from its
/// bytes (without parsing the rest).
pub fn asks_transfer(packet: &[u8]) -> bool {
    if packet.len() < 12 || packet[4..6] != [0, 1] {
        return false;
    }
    let mut at = 12;
    while let Some(&len) = packet.get(at) {
        if len == 0 {
            let qtype = packet
                .get(at + 1..at + 3)
                .map(|t| u16::from_be_bytes([t[0], t[1]]));
            return matches!(qtype, Some(251 | 252));
        }
        if len & 0xC0 != 0 {
            return false;
        }
        at += 1 + usize::from(len);
    }
    false
}

/// Whether a parsed request asks for a transfer, and which.
pub fn asked(request: &Request) -> Option<RecordType> {
    match request.queries.queries() {
        [query] => match query.query_type() {
            t @ (RecordType::AXFR | RecordType::IXFR) => Some(t),
            _ => None,
        },
        _ => None,
    }
}

/// One zone as the controller keeps it for transfers.
#[derive(Debug)]
struct ZoneHistory {
    origin: LowerName,
    name: String,
    allow: Vec<Allow>,
    /// The zone file's SOA, whose serial each version replaces.
    soa: Option<Record>,
    statics: Arc<Records>,
    /// The digest of `statics` (the zone's `file_digest`): a reload of
    /// the same zone file keeps them.
    digest: String,
    current: Option<Arc<Version>>,
    changes: VecDeque<Arc<Change>>,
    /// The zone file records deleted and added by the load that brought
    /// `statics`, found off the control loop (`static_difference`); taken
    /// by the next change recorded.
    pending: Option<Arc<StaticChange>>,
}

/// The zone file records a load deleted and added.
pub type StaticChange = (Vec<Record>, Vec<Record>);

/// The zone files' changes a reload brings, by origin (for zones whose
/// content changed).
pub type StaticChanges = std::collections::BTreeMap<String, Arc<StaticChange>>;

/// What changed between the zones served (`old`) and those just loaded:
/// found name by name, on the calling thread (slow for a large zone: the
/// reload calls it off the control loop). A change larger than a zone
/// keeps (`budget`) is left out, and dropped here too: IXFR from before
/// it gets the whole zone.
pub fn static_changes(old: &[crate::zone::Zone], new: &[crate::zone::Zone]) -> StaticChanges {
    new.iter()
        .filter_map(|zone| {
            let before = old.iter().find(|o| o.origin == zone.origin)?;
            if before.file_digest == zone.file_digest {
                return None;
            }
            let change = static_difference(&before.records, &zone.records);
            (change.0.len() + change.1.len() <= budget(zone.records.len()))
                .then(|| (zone.origin.to_string(), Arc::new(change)))
        })
        .collect()
}

/// The records the kept changes of a zone of `records` may hold.
fn budget(records: usize) -> usize {
    (records / 8).max(HISTORY_RECORDS)
}

/// Every zone as served and its recent changes, kept across failovers and
/// reloads; each change of answers is recorded as the difference from the
/// version before (found once, then kept), and published as `Transfers`.
/// Only the current version's records are held whole.
#[derive(Debug, Default)]
pub struct History {
    keys: Vec<TsigKey>,
    zones: Vec<ZoneHistory>,
}

impl History {
    /// Takes the zones as loaded (again, on reload: the changes of a zone
    /// still served are kept).
    pub fn load(
        &mut self,
        zones: &[crate::zone::Zone],
        config: &crate::config::Config,
        changes: &StaticChanges,
    ) {
        let mut old = std::mem::take(&mut self.zones);
        self.keys = config.tsig_keys.clone();
        for zone in zones {
            let origin = LowerName::new(&zone.origin);
            let allow = config
                .zones
                .iter()
                .find(|z| LowerName::new(&z.origin) == origin)
                .map(|z| z.transfer.allow.clone())
                .unwrap_or_default();
            let before = old
                .iter()
                .position(|z| z.origin == origin)
                .map(|i| old.swap_remove(i));
            let (soa, statics) = match &before {
                // The same content: the records already held are kept,
                // so the next version shares them and no difference is
                // looked for.
                Some(b) if b.digest == zone.file_digest => (b.soa.clone(), b.statics.clone()),
                _ => (zone.records.first_of(RecordType::SOA), zone.records.clone()),
            };
            let name = zone.origin.to_string();
            let same = before
                .as_ref()
                .is_some_and(|b| b.digest == zone.file_digest);
            let (current, kept, pending) = before
                .map(|b| (b.current, b.changes, b.pending))
                .unwrap_or_default();
            let pending = if same {
                pending
            } else {
                changes.get(&name).cloned()
            };
            self.zones.push(ZoneHistory {
                origin,
                name,
                allow,
                soa,
                statics,
                digest: zone.file_digest.clone(),
                current,
                changes: kept,
                pending,
            });
        }
    }

    /// Records the zones as now answered (the failover records for the
    /// active site, the serials to serve) and returns what transfers
    /// answer from. A zone in `withheld` (its content here is not the
    /// agreed one) records nothing and transfers nothing. Content changed
    /// under the same serial (`serial_policy: keep`) or a serial that is
    /// not newer drops the changes kept: an IXFR from before gets the
    /// whole zone, never a difference that does not lead to what is
    /// served.
    pub fn record(
        &mut self,
        failover: &[Record],
        serials: &std::collections::BTreeMap<String, u32>,
        withheld: &std::collections::BTreeSet<String>,
    ) -> Arc<Transfers> {
        let mut zones = Vec::with_capacity(self.zones.len());
        for i in 0..self.zones.len() {
            let origin = self.zones[i].origin.clone();
            let mine: Vec<Record> = failover
                .iter()
                .filter(|r| {
                    let name = LowerName::new(&r.name);
                    origin.zone_of(&name)
                        && !self.zones.iter().any(|z| {
                            z.origin != origin
                                && z.origin.zone_of(&name)
                                && z.origin.num_labels() > origin.num_labels()
                        })
                })
                .cloned()
                .collect();
            let zone = &mut self.zones[i];
            let withheld = withheld.contains(&zone.name);
            if let (false, Some(soa), Some(serial)) = (withheld, &zone.soa, serials.get(&zone.name))
            {
                let mut soa = soa.clone();
                if let RData::SOA(data) = &mut soa.data {
                    data.serial = *serial;
                }
                let version = Version {
                    serial: *serial,
                    soa,
                    statics: zone.statics.clone(),
                    failover: mine,
                };
                zone.advance(version);
            }
            zones.push(ZoneVersions {
                origin: zone.origin.clone(),
                allow: zone.allow.clone(),
                current: zone.current.clone(),
                changes: zone.changes.clone(),
                withheld,
            });
        }
        Arc::new(Transfers {
            keys: self.keys.clone(),
            zones,
        })
    }
}

impl ZoneHistory {
    /// Makes `version` the current one, keeping the change to it.
    fn advance(&mut self, version: Version) {
        let Some(current) = &self.current else {
            self.current = Some(Arc::new(version));
            return;
        };
        let same_statics = Arc::ptr_eq(&current.statics, &version.statics);
        let same_failover = current.failover == version.failover
            && current
                .failover
                .iter()
                .zip(&version.failover)
                .all(|(a, b)| a.ttl == b.ttl);
        if current.serial == version.serial && same_statics && same_failover {
            return;
        }
        if !newer(version.serial, current.serial) {
            if !same_statics || !same_failover {
                self.changes.clear();
            }
            self.current = Some(Arc::new(version));
            return;
        }
        let (mut deleted, mut added) = failover_difference(&current.failover, &version.failover);
        if !same_statics {
            match self.pending.take() {
                Some(change) => {
                    deleted.extend(change.0.iter().cloned());
                    added.extend(change.1.iter().cloned());
                }
                None => {
                    // The zone file's change is not known: no difference
                    // leads to this version.
                    self.changes.clear();
                    self.current = Some(Arc::new(version));
                    return;
                }
            }
        }
        self.changes.push_back(Arc::new(Change {
            from: current.soa.clone(),
            to: version.soa.clone(),
            deleted,
            added,
        }));
        let budget = budget(version.statics.len());
        let mut kept: usize = self.changes.iter().map(|c| c.size()).sum();
        while self.changes.len() > HISTORY || kept > budget {
            if let Some(dropped) = self.changes.pop_front() {
                kept -= dropped.size();
            }
        }
        self.current = Some(Arc::new(version));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::{
        op::{Message, MessageType, OpCode, Query},
        rr::Name,
    };

    fn query(rtype: RecordType) -> Vec<u8> {
        let mut message = Message::new(7, MessageType::Query, OpCode::Query);
        message.add_query(Query::query(
            Name::from_ascii("example.com.").unwrap(),
            rtype,
        ));
        message.to_vec().unwrap()
    }

    #[test]
    fn a_transfer_is_told_from_its_bytes() {
        assert!(asks_transfer(&query(RecordType::AXFR)));
        assert!(asks_transfer(&query(RecordType::IXFR)));
        assert!(!asks_transfer(&query(RecordType::SOA)));
        let axfr = query(RecordType::AXFR);
        for cut in 0..axfr.len() - 1 {
            assert!(!asks_transfer(&axfr[..cut]) || cut >= axfr.len() - 3);
        }
    }

    #[test]
    fn serials_compare_as_rfc_1982_says() {
        assert!(newer(2, 1));
        assert!(!newer(1, 1));
        assert!(newer(0, u32::MAX));
        assert!(!newer(u32::MAX, 0));
    }
}

#[cfg(test)]
mod history_tests {
    use super::*;
    use crate::config::Config;
    use hickory_proto::rr::{Name, rdata::A};
    use std::collections::{BTreeMap, BTreeSet};

    fn zone(extra: &str) -> crate::zone::Zone {
        let text = format!(
            "$ORIGIN example.com.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 900 1209600 300\n  IN NS ns1\nns1 IN A 192.0.2.1\n{extra}"
        );
        let origin = Name::from_ascii("example.com.").unwrap();
        crate::zone::from_text(std::path::Path::new("t.zone"), &text, &origin).unwrap()
    }

    fn config() -> Config {
        Config::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.yaml"))
            .unwrap()
    }

    fn www(ip: [u8; 4]) -> Vec<Record> {
        vec![Record::from_rdata(
            Name::from_ascii("www.example.com.").unwrap(),
            30,
            RData::A(A(ip.into())),
        )]
    }

    fn serials(serial: u32) -> BTreeMap<String, u32> {
        BTreeMap::from([("example.com.".to_string(), serial)])
    }

    fn texts(records: &[Record]) -> Vec<String> {
        let mut texts: Vec<String> = records.iter().map(ToString::to_string).collect();
        texts.sort();
        texts
    }

    #[test]
    fn a_changed_zone_file_is_found_name_by_name() {
        let old = zone("a IN A 192.0.2.2\nb IN A 192.0.2.3\nc 60 IN TXT \"x\"\n");
        let new = zone("a IN A 192.0.2.2\nc 120 IN TXT \"x\"\nd IN A 192.0.2.4\n");
        let (deleted, added) = static_difference(&old.records, &new.records);
        assert_eq!(
            texts(&deleted),
            [
                "b.example.com. 300 IN A 192.0.2.3",
                "c.example.com. 60 IN TXT x"
            ]
        );
        assert_eq!(
            texts(&added),
            [
                "c.example.com. 120 IN TXT x",
                "d.example.com. 300 IN A 192.0.2.4"
            ]
        );
        let (deleted, added) = static_difference(&old.records, &old.records);
        assert!(deleted.is_empty() && added.is_empty());
    }

    #[test]
    fn changes_are_kept_small_and_condensed_and_content_is_shared() {
        let config = config();
        let none = BTreeSet::new();
        let mut history = History::default();
        let first = zone("a IN A 192.0.2.2\n");
        history.load(std::slice::from_ref(&first), &config, &Default::default());
        history.record(&www([192, 0, 2, 10]), &serials(10), &none);
        history.record(&www([198, 51, 100, 10]), &serials(11), &none);
        let back = history.record(&www([192, 0, 2, 10]), &serials(12), &none);
        let zone_versions = &back.zones[0];
        assert_eq!(zone_versions.changes.len(), 2);
        // A failover's change is its record and nothing of the file.
        assert_eq!(zone_versions.changes[0].size(), 2);
        // A failover and its fail-back cancel out.
        let (deleted, added) = condensed(zone_versions.changes.iter());
        assert!(deleted.is_empty() && added.is_empty());
        let (deleted, added) = condensed(zone_versions.changes.range(1..));
        assert_eq!(texts(&deleted), ["www.example.com. 30 IN A 198.51.100.10"]);
        assert_eq!(texts(&added), ["www.example.com. 30 IN A 192.0.2.10"]);

        // The same content read again: its records are shared, nothing
        // is compared.
        history.load(&[zone("a IN A 192.0.2.2\n")], &config, &Default::default());
        let same = history.record(&www([192, 0, 2, 10]), &serials(12), &none);
        let current = same.zones[0].current.as_ref().unwrap();
        assert!(Arc::ptr_eq(&current.statics, &first.records));
        assert_eq!(same.zones[0].changes.len(), 2);

        // A name added: the change is that name.
        let added = zone("a IN A 192.0.2.2\nadded IN A 192.0.2.9\n");
        let found = static_changes(std::slice::from_ref(&first), std::slice::from_ref(&added));
        history.load(std::slice::from_ref(&added), &config, &found);
        let edited = history.record(&www([192, 0, 2, 10]), &serials(13), &none);
        let change = edited.zones[0].changes.back().unwrap();
        assert_eq!(change.serials(), (12, 13));
        assert!(change.deleted.is_empty());
        assert_eq!(
            texts(&change.added),
            ["added.example.com. 300 IN A 192.0.2.9"]
        );

        // Other content under the same serial: no difference leads to
        // it, so none is kept.
        let other = zone("a IN A 192.0.2.7\n");
        let found = static_changes(std::slice::from_ref(&added), std::slice::from_ref(&other));
        history.load(std::slice::from_ref(&other), &config, &found);
        let kept = history.record(&www([192, 0, 2, 10]), &serials(13), &none);
        assert!(kept.zones[0].changes.is_empty());

        // A withheld zone records nothing and transfers nothing.
        let withheld = BTreeSet::from(["example.com.".to_string()]);
        let held = history.record(&www([198, 51, 100, 10]), &serials(14), &withheld);
        assert!(held.zones[0].withheld);
        assert_eq!(held.zones[0].current.as_ref().unwrap().serial, 13);
    }

    #[test]
    fn the_changes_kept_are_bounded() {
        let config = config();
        let none = BTreeSet::new();
        let mut history = History::default();
        let empty = zone("");
        history.load(std::slice::from_ref(&empty), &config, &Default::default());
        for serial in 0..200u32 {
            let ip = if serial % 2 == 0 {
                [192, 0, 2, 10]
            } else {
                [198, 51, 100, 10]
            };
            history.record(&www(ip), &serials(serial), &none);
        }
        let big: String = (0..30_000)
            .map(|i| format!("n{i} IN A 192.0.2.1\n"))
            .collect();
        let big = zone(&big);
        let found = static_changes(std::slice::from_ref(&empty), std::slice::from_ref(&big));
        history.load(std::slice::from_ref(&big), &config, &found);
        history.record(&www([192, 0, 2, 10]), &serials(200), &none);
        let none_back: String = (0..30_000)
            .map(|i| format!("m{i} IN A 192.0.2.1\n"))
            .collect();
        let none_back = zone(&none_back);
        let found = static_changes(std::slice::from_ref(&big), std::slice::from_ref(&none_back));
        history.load(std::slice::from_ref(&none_back), &config, &found);
        let transfers = history.record(&www([192, 0, 2, 10]), &serials(201), &none);
        let changes = &transfers.zones[0].changes;
        // The last change (60,000 records) is more than an eighth of the
        // zone (or 10,000): nothing is kept, an IXFR gets the whole zone.
        assert!(changes.is_empty(), "{} changes", changes.len());
        history.load(
            std::slice::from_ref(&none_back),
            &config,
            &Default::default(),
        );
        for serial in 202..400u32 {
            let ip = if serial % 2 == 0 {
                [192, 0, 2, 10]
            } else {
                [198, 51, 100, 10]
            };
            let transfers = history.record(&www(ip), &serials(serial), &none);
            assert!(transfers.zones[0].changes.len() <= HISTORY);
        }
    }
}
