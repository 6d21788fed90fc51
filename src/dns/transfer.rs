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
    collections::{HashSet, VecDeque},
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

/// Versions kept per zone for IXFR; an older serial gets the whole zone.
pub const HISTORY: usize = 64;
/// The largest transfer message we write, leaving room for a TSIG.
const MESSAGE_SIZE: u16 = 16 * 1024;
/// Records of a whole zone decoded at a time for a transfer.
const CHUNK: usize = 4096;

/// One version of a zone.
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

/// A zone's versions, oldest first, and who may transfer it.
#[derive(Debug)]
pub struct ZoneVersions {
    pub origin: LowerName,
    pub allow: Vec<Allow>,
    pub versions: VecDeque<Arc<Version>>,
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
    out: &mut Vec<Vec<u8>>,
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
    let Some(current) = zone.versions.back() else {
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
        if let Some(old) = zone.versions.iter().find(|v| v.serial == theirs) {
            let (deleted, added) = difference(old, current);
            let mut records = Vec::with_capacity(deleted.len() + added.len() + 4);
            records.push(current.soa.clone());
            records.push(old.soa.clone());
            records.extend(deleted);
            records.push(current.soa.clone());
            records.extend(added);
            records.push(current.soa.clone());
            if !writer.stream(&records, out) {
                return ResponseCode::ServFail;
            }
            info!(
                zone = %query.name(),
                to = %src,
                "IXFR sent: the difference from serial {theirs} to {}, {} records in {} messages",
                current.serial,
                records.len(),
                out.len()
            );
            return ResponseCode::NoError;
        }
    }
    // AXFR, or an IXFR from a version no longer kept: the whole zone,
    // decoded a slice at a time.
    let mut sent = 0;
    let mut chunk: Vec<Record> = Vec::with_capacity(CHUNK);
    let all = std::iter::once(current.soa.clone())
        .chain(current.records())
        .chain(std::iter::once(current.soa.clone()));
    for record in all {
        chunk.push(record);
        if chunk.len() == CHUNK {
            if !writer.stream(&chunk, out) {
                return ResponseCode::ServFail;
            }
            sent += chunk.len();
            chunk.clear();
        }
    }
    if !writer.stream(&chunk, out) {
        return ResponseCode::ServFail;
    }
    sent += chunk.len();
    info!(
        zone = %query.name(),
        to = %src,
        "{} sent: the whole zone at serial {}, {} records in {} messages",
        if qtype == RecordType::AXFR { "AXFR" } else { "IXFR (as AXFR, from a serial no longer kept)" },
        current.serial,
        sent,
        out.len()
    );
    ResponseCode::NoError
}

/// Serial arithmetic (RFC 1982): `a` is newer than `b`.
fn newer(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 1 << 31
}

/// The records of `old` not in `new`, and those of `new` not in `old`,
/// TTL included (a changed TTL is a deletion and an addition).
fn difference(old: &Version, new: &Version) -> (Vec<Record>, Vec<Record>) {
    let key = |r: &Record| {
        let mut bytes = r.to_bytes().unwrap_or_default();
        bytes.extend_from_slice(&r.ttl.to_be_bytes());
        bytes
    };
    let (old_records, new_records): (Vec<Record>, Vec<Record>) =
        if Arc::ptr_eq(&old.statics, &new.statics) {
            (old.failover.clone(), new.failover.clone())
        } else {
            (old.records().collect(), new.records().collect())
        };
    let old_keys: HashSet<Vec<u8>> = old_records.iter().map(key).collect();
    let new_keys: HashSet<Vec<u8>> = new_records.iter().map(key).collect();
    let deleted = old_records
        .into_iter()
        .filter(|r| !new_keys.contains(&key(r)))
        .collect();
    let added = new_records
        .into_iter()
        .filter(|r| !old_keys.contains(&key(r)))
        .collect();
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
}

impl<'a> Writer<'a> {
    fn new(request: &'a Request, signing: Option<Signing<'a>>, clock: fn() -> u64) -> Self {
        Self {
            request,
            signing,
            prior: None,
            clock,
            edns: super::handler::response_edns(request),
        }
    }

    fn metadata(&self, rcode: ResponseCode) -> Metadata {
        let mut metadata = Metadata::response_from_request(&self.request.metadata);
        metadata.authoritative = rcode == ResponseCode::NoError;
        metadata.response_code = rcode;
        metadata
    }

    fn finish(&mut self, mut bytes: Vec<u8>, out: &mut Vec<Vec<u8>>) {
        if let Some(signing) = &self.signing {
            let time = (self.clock)();
            self.prior = Some(signing.sign(&mut bytes, self.prior.as_deref(), time));
        }
        out.push(bytes);
    }

    /// One message with `records` as its answers.
    fn message(&mut self, rcode: ResponseCode, records: &[Record], out: &mut Vec<Vec<u8>>) {
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

    /// `records` over as many messages as they need; `false` when they
    /// could not be written (`out` then holds a SERVFAIL alone).
    fn stream(&mut self, records: &[Record], out: &mut Vec<Vec<u8>>) -> bool {
        let mut at = 0;
        // The records the next message may take: all that fit, or one
        // fewer when the OPT record did not fit after them.
        let mut most = records.len();
        while at < records.len() {
            let mut bytes = Vec::with_capacity(usize::from(MESSAGE_SIZE));
            let mut encoder = BinEncoder::new(&mut bytes);
            encoder.set_max_size(MESSAGE_SIZE);
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
                    // Not a truncated answer: the rest follows.
                    bytes[2] &= !0x02;
                    at += n;
                    most = records.len();
                    self.finish(bytes, out);
                }
                _ => {
                    warn!("a zone transfer could not be encoded");
                    out.clear();
                    self.prior = None;
                    self.message(ResponseCode::ServFail, &[], out);
                    return false;
                }
            }
        }
        true
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

/// One zone's versions as the controller keeps them.
#[derive(Debug)]
struct ZoneHistory {
    origin: LowerName,
    name: String,
    allow: Vec<Allow>,
    /// The zone file's SOA, whose serial each version replaces.
    soa: Option<Record>,
    statics: Arc<Records>,
    versions: VecDeque<Arc<Version>>,
}

/// The versions of every zone, kept across failovers and reloads; each
/// change of answers is recorded as a version and published as
/// `Transfers`.
#[derive(Debug, Default)]
pub struct History {
    keys: Vec<TsigKey>,
    zones: Vec<ZoneHistory>,
}

impl History {
    /// Takes the zones as loaded (again, on reload: the versions of a zone
    /// still served are kept).
    pub fn load(&mut self, zones: &[crate::zone::Zone], config: &crate::config::Config) {
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
            let soa = zone.records.first_of(RecordType::SOA);
            let statics = zone.records.clone();
            let versions = old
                .iter()
                .position(|z| z.origin == origin)
                .map(|i| old.swap_remove(i).versions)
                .unwrap_or_default();
            self.zones.push(ZoneHistory {
                origin,
                name: zone.origin.to_string(),
                allow,
                soa,
                statics,
                versions,
            });
        }
    }

    /// Records the zones as now answered (the failover records for the
    /// active site, the serials to serve) and returns what transfers
    /// answer from. A serial seen before with other contents (a zone file
    /// changed without raising its serial) replaces that version.
    pub fn record(
        &mut self,
        failover: &[Record],
        serials: &std::collections::BTreeMap<String, u32>,
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
            if let (Some(soa), Some(serial)) = (&zone.soa, serials.get(&zone.name)) {
                let mut soa = soa.clone();
                if let RData::SOA(data) = &mut soa.data {
                    data.serial = *serial;
                }
                let version = Arc::new(Version {
                    serial: *serial,
                    soa,
                    statics: zone.statics.clone(),
                    failover: mine,
                });
                let same = zone.versions.back().is_some_and(|v| {
                    v.serial == version.serial
                        && Arc::ptr_eq(&v.statics, &version.statics)
                        && v.failover == version.failover
                        && v.failover
                            .iter()
                            .zip(&version.failover)
                            .all(|(a, b)| a.ttl == b.ttl)
                });
                if !same {
                    zone.versions.retain(|v| v.serial != version.serial);
                    zone.versions.push_back(version);
                    while zone.versions.len() > HISTORY {
                        zone.versions.pop_front();
                    }
                }
            }
            zones.push(ZoneVersions {
                origin: zone.origin.clone(),
                allow: zone.allow.clone(),
                versions: zone.versions.clone(),
            });
        }
        Arc::new(Transfers {
            keys: self.keys.clone(),
            zones,
        })
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
