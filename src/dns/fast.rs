//! The UDP fast path, for a plain query (one question, class IN, no EDNS
//! or EDNS version 0, with or without DO):
//!
//! - an answer that is the zone's own records of a type with no names in
//!   its data (`AnswerTable::direct`) is written straight from their
//!   stored wire form (`direct`);
//! - other answers no change can touch (MX, NS, CNAME and the like) are
//!   encoded once at a load, up to a budget, by the general path
//!   (`handler::prepare` and `encode`), and those of the names a change
//!   touches at each change; a query is answered by copying those bytes
//!   and patching the ID, the RD and CD flags and the question's letter
//!   case, in the question and in the first answer's owner name (written
//!   out in full there; later names that share it point at it, so they
//!   follow the question's case too, as with Knot);
//! - anything else (a missing name, NODATA, ANY, a wildcard match, a name
//!   outside our zones) is answered the general way until it is seen a
//!   second time, then kept, per UDP loop, as if precomputed (`Recent`).
//!
//! Queries that are not plain always go the general way.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    net::SocketAddr,
    sync::{Arc, Weak},
};

use rustc_hash::FxHashMap;

use hickory_proto::{
    op::{Edns, Message, MessageType, OpCode, Query, ResponseCode},
    rr::{LowerName, Name, Record, RecordType},
    serialize::binary::{BinDecodable, BinDecoder},
};
use hickory_server::{net::xfer::Protocol, server::Request};

use super::{
    handler::{self, MAX_UDP_PAYLOAD},
    transfer::Transfers,
};
use crate::zone::{AnswerTable, Zone, table::Resolution};

/// How much the answers precomputed at a load may take, in bytes: past
/// it, answers are learned on demand (`Recent`). Answers the zone's
/// records make whole (`direct`) are never precomputed, so this is
/// for the rest: MX, NS, CNAME, ANY and the like.
pub const PRECOMPUTED_BUDGET: usize = 8 << 20;

/// The table and its precomputed answers, swapped together.
pub struct Served {
    pub table: AnswerTable,
    pub fast: FastAnswers,
    /// The zones' versions and who may transfer them.
    pub transfers: Arc<Transfers>,
}

impl Served {
    /// A table with every answer precomputed (no budget): for tests and
    /// small tables.
    pub fn new(table: AnswerTable, transfers: Arc<Transfers>) -> Self {
        let fast = FastAnswers::build(&table);
        Self {
            table,
            fast,
            transfers,
        }
    }
}

/// What one load of the zones builds, once: the zone files' table and
/// the answers precomputed from it that no failover or serial change
/// touches. Each table served after a change shares both and adds only
/// what changed.
pub struct Base {
    pub table: AnswerTable,
    shared: Arc<FxHashMap<Box<[u8]>, Template>>,
}

impl Base {
    /// Builds the table for `zones` with the failover records' names
    /// `dynamic`, and precomputes up to `budget` bytes of answers.
    pub fn build(zones: Vec<Zone>, dynamic: &[Name], budget: usize) -> Self {
        let table = AnswerTable::build_for(zones, dynamic);
        let dynamic: std::collections::HashSet<LowerName> =
            dynamic.iter().map(LowerName::new).collect();
        let mut map = FxHashMap::default();
        let mut used = 0;
        let mut out = Vec::with_capacity(512);
        // Names with data beyond what the fast path writes from the
        // zone's records (MX, NS, CNAME, SRV and the like).
        let beyond = |types: &[RecordType]| {
            types.iter().any(|t| {
                !crate::zone::table::DIRECT.contains(t) && !crate::dnssec::is_signing_type(*t)
            })
        };
        'names: for (name, types) in table.names_where(beyond) {
            let lower = LowerName::new(&name);
            if dynamic.contains(&lower) {
                continue;
            }
            let name = name.to_lowercase();
            let wire = crate::zone::records::wire_key(&lower);
            let has = |t: RecordType| types.contains(&t);
            // A negative answer holds the SOA, whose serial changes: never
            // lasting, so not worth making. ANY is learned when asked.
            let worth = |t: RecordType| t != RecordType::ANY && (has(t) || has(RecordType::CNAME));
            let answerable: Vec<RecordType> = wanted(types.clone())
                .into_iter()
                .filter(|&t| worth(t) && table.direct(&wire, t, false).is_none())
                .collect();
            for rtype in answerable {
                for mode in [PLAIN, EDNS] {
                    let Some((key, template, res)) =
                        Template::make(&table, &name, rtype, mode, &mut out)
                    else {
                        continue;
                    };
                    if !res.as_ref().is_some_and(|r| lasting(r, &table, &dynamic)) {
                        continue;
                    }
                    used += key.len + template.bytes.len() + 64;
                    if used > budget {
                        break 'names;
                    }
                    map.insert(key.as_slice().into(), template);
                }
            }
        }
        Self {
            table,
            shared: Arc::new(map),
        }
    }

    /// The table to serve with the failover records `records` and the
    /// serials `serials`: the overlay's answers precomputed, the rest
    /// shared with this base.
    pub fn serve(
        &self,
        records: &[Record],
        serials: &std::collections::BTreeMap<String, u32>,
        transfers: Arc<Transfers>,
    ) -> Served {
        self.serve_refusing(records, serials, transfers, &Default::default())
    }

    /// `serve`, with the DNSSEC answers of the signed zones in `refused`
    /// (origins as text) refused before any answer is made from them.
    pub fn serve_refusing(
        &self,
        records: &[Record],
        serials: &std::collections::BTreeMap<String, u32>,
        transfers: Arc<Transfers>,
        refused: &std::collections::BTreeSet<String>,
    ) -> Served {
        let mut table = self.table.with_overlay(records, serials);
        table.refuse_dnssec(refused);
        let mut own = FxHashMap::default();
        let mut out = Vec::with_capacity(512);
        for (name, types) in table.overlay_names() {
            let name = name.to_lowercase();
            for rtype in wanted(types) {
                // The failover records' answers, signed ones too: what a
                // failover changes is ready before it is served.
                for mode in [PLAIN, EDNS, EDNS_DO] {
                    if let Some((key, template, _)) =
                        Template::make(&table, &name, rtype, mode, &mut out)
                    {
                        own.insert(key.as_slice().into(), template);
                    }
                }
            }
        }
        Served {
            table,
            fast: FastAnswers {
                own,
                shared: self.shared.clone(),
            },
            transfers,
        }
    }
}

/// The types worth having ready at a name: its own (but those signing
/// makes), and A, AAAA and ANY.
fn wanted(mut types: Vec<RecordType>) -> Vec<RecordType> {
    types.retain(|t| !crate::dnssec::is_signing_type(*t));
    for t in [RecordType::A, RecordType::AAAA, RecordType::ANY] {
        if !types.contains(&t) {
            types.push(t);
        }
    }
    types
}

/// Whether an answer holds for as long as the zone files do: a positive
/// answer with no SOA (whose serial changes) that names no record the
/// overlay changes (a failover record, the apex).
fn lasting(
    res: &Resolution,
    table: &AnswerTable,
    dynamic: &std::collections::HashSet<LowerName>,
) -> bool {
    use hickory_proto::rr::RData;
    let changing = |name: &Name| {
        let lower = LowerName::new(name);
        dynamic.contains(&lower) || table.is_apex(&lower)
    };
    !res.answer.is_empty()
        && res
            .answer
            .iter()
            .chain(&res.authority)
            .chain(&res.additional)
            .all(|r| {
                r.record_type() != RecordType::SOA
                    && !changing(&r.name)
                    && match &r.data {
                        RData::CNAME(t) => !changing(&t.0),
                        RData::NS(t) => !changing(&t.0),
                        RData::MX(mx) => !changing(&mx.exchange),
                        RData::SRV(srv) => !changing(&srv.target),
                        _ => true,
                    }
            })
}

impl Default for Served {
    fn default() -> Self {
        Self::new(AnswerTable::default(), Arc::default())
    }
}

struct Template {
    bytes: Box<[u8]>,
    rcode: ResponseCode,
    /// Where the first answer's owner, the question's name in full, is.
    owner_at: Option<usize>,
    /// The general way answers the query over TCP with these same bytes
    /// (nothing was left out for UDP's size).
    tcp: bool,
}

/// Precomputed responses by (lower-case wire name, type, EDNS). The keys
/// are ours, not an attacker's choice of collisions to exploit beyond
/// what the zone holds, so a fast non-keyed hash serves.
#[derive(Default)]
pub struct FastAnswers {
    /// This table's own: the overlay's names.
    own: FxHashMap<Box<[u8]>, Template>,
    /// Those of the load this table was built from.
    shared: Arc<FxHashMap<Box<[u8]>, Template>>,
}

/// The longest wire-format name, plus type and EDNS mode.
const KEY_MAX: usize = 255 + 3;

/// A query's EDNS, as the last byte of its key: none, EDNS, EDNS with
/// the DO bit.
const PLAIN: u8 = 0;
const EDNS: u8 = 1;
const EDNS_DO: u8 = 3;

/// A plain query's lookup key, on the stack.
struct Key {
    bytes: [u8; KEY_MAX],
    len: usize,
}

impl Key {
    fn of(packet: &[u8], query: &Plain) -> Self {
        let mut bytes = [0u8; KEY_MAX];
        let len = query.name_end - 12;
        for (k, b) in bytes.iter_mut().zip(&packet[12..query.name_end]) {
            *k = b.to_ascii_lowercase();
        }
        bytes[len] = packet[query.name_end];
        bytes[len + 1] = packet[query.name_end + 1];
        bytes[len + 2] = match (query.payload.is_some(), query.dnssec_ok) {
            (false, _) => PLAIN,
            (true, false) => EDNS,
            (true, true) => EDNS_DO,
        };
        Self {
            bytes,
            len: len + 3,
        }
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Template {
    /// Encodes, the general way, the response to a plain query for `name`
    /// (lower case), `rtype`, with the EDNS `mode` (`PLAIN`, `EDNS`,
    /// `EDNS_DO`); `out` is scratch.
    fn make(
        table: &AnswerTable,
        name: &Name,
        rtype: RecordType,
        mode: u8,
        out: &mut Vec<u8>,
    ) -> Option<(Key, Self, Option<Resolution>)> {
        let mut query = Message::new(0, MessageType::Query, OpCode::Query);
        query.add_query(Query::query(name.clone(), rtype));
        if mode != PLAIN {
            let mut opt = Edns::new();
            opt.set_max_payload(MAX_UDP_PAYLOAD);
            opt.set_dnssec_ok(mode == EDNS_DO);
            query.set_edns(opt);
        }
        let bytes = query.to_vec().ok()?;
        let key = Key::of(&bytes, &parse(&bytes)?);
        let anywhere = SocketAddr::from(([0, 0, 0, 0], 0));
        let over_tcp = Request::from_bytes(bytes.clone(), anywhere, Protocol::Tcp).ok()?;
        let request = Request::from_bytes(bytes, anywhere, Protocol::Udp).ok()?;
        let tcp_prepared = handler::prepare(table, &over_tcp);
        handler::encode(&over_tcp, &tcp_prepared, out);
        let tcp_bytes = std::mem::take(out);
        let prepared = handler::prepare(table, &request);
        handler::encode(&request, &prepared, out);
        if out.len() < 12 {
            return None;
        }
        let name = &key.as_slice()[..key.len - 3];
        let at = 12 + name.len() + 4;
        let answers = u16::from_be_bytes([out[6], out[7]]);
        let owner_at = (answers > 0 && out.get(at..at + name.len()) == Some(name)).then_some(at);
        let template = Self {
            bytes: out.as_slice().into(),
            rcode: prepared.metadata.response_code,
            owner_at,
            tcp: tcp_bytes == *out,
        };
        Some((key, template, prepared.resolution))
    }

    /// Writes this response to `packet` (a plain query) into `out`, or
    /// `None` when it is larger than the query's EDNS payload allows.
    fn fill(&self, packet: &[u8], query: &Plain, out: &mut Vec<u8>) -> Option<ResponseCode> {
        self.fill_within(packet, query, false, out)
    }

    /// `fill`, over TCP when `tcp`: no payload limit, and only when the
    /// bytes are TCP's answer too.
    fn fill_within(
        &self,
        packet: &[u8],
        query: &Plain,
        tcp: bool,
        out: &mut Vec<u8>,
    ) -> Option<ResponseCode> {
        if tcp && !self.tcp {
            return None;
        }
        if let (false, Some(payload)) = (tcp, query.payload) {
            let limit = usize::from(payload.clamp(512, MAX_UDP_PAYLOAD));
            if self.bytes.len() > limit {
                return None;
            }
        }
        out.clear();
        out.extend_from_slice(&self.bytes);
        out[0] = packet[0];
        out[1] = packet[1];
        out[2] |= packet[2] & 0x01; // RD
        out[3] |= packet[3] & 0x10; // CD
        let name = &packet[12..query.name_end];
        out[12..query.name_end].copy_from_slice(name);
        if let Some(at) = self.owner_at {
            out[at..at + name.len()].copy_from_slice(name);
        }
        Some(self.rcode)
    }
}

impl FastAnswers {
    /// Encodes the answers for every name of `table` and, at each, its
    /// own types plus A, AAAA and ANY, with and without EDNS.
    pub fn build(table: &AnswerTable) -> Self {
        let mut own = FxHashMap::default();
        let mut out = Vec::with_capacity(512);
        for (name, types) in table.names() {
            let name = name.to_lowercase();
            for rtype in wanted(types) {
                for mode in [PLAIN, EDNS, EDNS_DO] {
                    if let Some((key, template, _)) =
                        Template::make(table, &name, rtype, mode, &mut out)
                    {
                        own.insert(key.as_slice().into(), template);
                    }
                }
            }
        }
        Self {
            own,
            shared: Arc::default(),
        }
    }

    fn get(&self, key: &[u8]) -> Option<&Template> {
        self.own.get(key).or_else(|| self.shared.get(key))
    }

    pub fn len(&self) -> usize {
        self.own.len() + self.shared.len()
    }

    pub fn is_empty(&self) -> bool {
        self.own.is_empty() && self.shared.is_empty()
    }

    /// Answers a plain query from the precomputed responses alone into
    /// `out`; `None` sends it the general way. For tests: the UDP loop
    /// asks `Recent`, which looks here first.
    #[cfg(test)]
    pub fn answer(&self, packet: &[u8], out: &mut Vec<u8>) -> Option<ResponseCode> {
        let query = parse(packet)?;
        let key = Key::of(packet, &query);
        self.get(key.as_slice())?.fill(packet, &query, out)
    }
}

/// Answers a plain query over TCP from the precomputed answers or
/// straight from the zone's records, with TCP's room (a precomputed
/// answer that left something out for UDP's size goes the general way);
/// `None` sends it the general way.
pub fn answer_tcp(served: &Served, packet: &[u8], out: &mut Vec<u8>) -> Option<ResponseCode> {
    let query = parse(packet)?;
    let key = Key::of(packet, &query);
    let key = key.as_slice();
    match served.fast.get(key) {
        Some(template) => template.fill_within(packet, &query, true, out),
        None => direct(&served.table, packet, &query, key, true, out),
    }
}

/// How many learned answers a UDP loop keeps before starting afresh.
const RECENT_MAX: usize = 2048;
/// Slots of the "seen once" filter: a name is learned on its second sight.
const SEEN_SLOTS: usize = 4096;

/// The plain queries the precomputed set does not hold (missing names,
/// wildcard matches, names outside our zones): answered the general way
/// on first sight, learned on the second and from then on answered, like
/// the precomputed ones, by copying and patching. A flood of names never
/// asked twice (random subdomains) costs one hash each beyond the general
/// path. The names are the sender's choice, so the hashing is keyed
/// (std's random SipHash). One per UDP loop, so no lock; emptied whenever
/// the served table changes (reload, failover) and when it is full.
pub struct Recent {
    /// The table the learned answers came from. A `Weak` keeps its
    /// allocation, so a new table can never reuse the address, but not
    /// its contents.
    served: Weak<Served>,
    map: HashMap<Box<[u8]>, Template>,
    hasher: RandomState,
    seen: Box<[u64]>,
    scratch: Vec<u8>,
}

impl Default for Recent {
    fn default() -> Self {
        Self {
            served: Weak::new(),
            map: HashMap::default(),
            hasher: RandomState::new(),
            seen: vec![0; SEEN_SLOTS].into_boxed_slice(),
            scratch: Vec::new(),
        }
    }
}

impl Recent {
    /// Answers a plain query from `served`'s precomputed answers or from
    /// those learned here; `None` sends it the general way.
    pub fn answer(
        &mut self,
        served: &Arc<Served>,
        packet: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<ResponseCode> {
        let query = parse(packet)?;
        let key = Key::of(packet, &query);
        let key = key.as_slice();
        if let Some(template) = served.fast.get(key) {
            return template.fill(packet, &query, out);
        }
        if let Some(rcode) = direct(&served.table, packet, &query, key, false, out) {
            return Some(rcode);
        }
        if !std::ptr::eq(self.served.as_ptr(), Arc::as_ptr(served)) {
            self.map.clear();
            self.seen.fill(0);
            self.served = Arc::downgrade(served);
        }
        if let Some(template) = self.map.get(key) {
            return template.fill(packet, &query, out);
        }
        // First sight: remember it and go the general way.
        let hash = self.hasher.hash_one(key);
        let slot = (hash as usize) % SEEN_SLOTS;
        let mark = hash | 1; // never the empty slot's 0
        if self.seen[slot] != mark {
            self.seen[slot] = mark;
            return None;
        }
        // Whatever happens now, this sighting is used up: a name that
        // cannot be learned goes back to costing one hash.
        self.seen[slot] = 0;
        if self.map.len() >= RECENT_MAX {
            self.map.clear();
        }
        let (name, rest) = key.split_at(key.len() - 3);
        let name = Name::read(&mut BinDecoder::new(name)).ok()?;
        let rtype = RecordType::from(u16::from_be_bytes([rest[0], rest[1]]));
        let (learned, template, _) =
            Template::make(&served.table, &name, rtype, rest[2], &mut self.scratch)?;
        if learned.as_slice() != key {
            // Not the query it was asked for (a name that does not come
            // back the same way): never kept.
            return None;
        }
        let answered = template.fill(packet, &query, out);
        self.map.insert(key.into(), template);
        answered
    }
}

/// Writes the response to a plain query straight from the zone's records
/// when they are the whole answer (`AnswerTable::direct`): the header,
/// the question, the records (the first owner written as the question's
/// name, the others pointing at it), the OPT record; the bytes the
/// general way writes. `None` when the table cannot answer so, or the
/// answer does not fit the UDP limit (the general way truncates).
fn direct(
    table: &AnswerTable,
    packet: &[u8],
    query: &Plain,
    key: &[u8],
    tcp: bool,
    out: &mut Vec<u8>,
) -> Option<ResponseCode> {
    let (name, rest) = key.split_at(key.len() - 3);
    let qtype = RecordType::from(u16::from_be_bytes([rest[0], rest[1]]));
    let (records, range, signatures) = table.direct(name, qtype, query.dnssec_ok)?;
    let limit = match (tcp, query.payload) {
        (true, _) => usize::from(u16::MAX),
        (false, payload) => payload.map_or(512, |p| usize::from(p.clamp(512, MAX_UDP_PAYLOAD))),
    };
    let count = u16::try_from(range.len() + signatures.len()).ok()?;
    out.clear();
    out.extend_from_slice(&packet[..2]);
    out.push(0x84 | (packet[2] & 0x01)); // QR, AA; RD as asked
    out.push(packet[3] & 0x10); // CD as asked, NOERROR
    out.extend_from_slice(&[0, 1]);
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, u8::from(query.payload.is_some())]);
    out.extend_from_slice(&packet[12..query.name_end + 4]);
    let owner = u16::try_from(out.len()).ok()? | 0xC000;
    for (n, i) in range.chain(signatures).enumerate() {
        if n == 0 {
            out.extend_from_slice(&packet[12..query.name_end]);
        } else {
            out.extend_from_slice(&owner.to_be_bytes());
        }
        out.extend_from_slice(records.wire(i));
        if out.len() > limit {
            return None;
        }
    }
    if query.payload.is_some() {
        // Root, OPT, our payload, no extended rcode, version 0, the DO
        // bit as asked (RFC 3225 section 3), no options.
        out.extend_from_slice(&[0, 0, 41]);
        out.extend_from_slice(&MAX_UDP_PAYLOAD.to_be_bytes());
        out.extend_from_slice(&[0, 0, if query.dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]);
    }
    (out.len() <= limit).then_some(ResponseCode::NoError)
}

/// A plain query's parts: where its name ends, its EDNS payload, and
/// whether it set DO.
struct Plain {
    name_end: usize,
    payload: Option<u16>,
    dnssec_ok: bool,
}

/// Recognises a plain query: a QUERY with one IN question whose name is
/// not compressed, nothing in the answer and authority sections, and at
/// most an OPT record of version 0 (the DO bit the only flag). Anything
/// else is `None`.
fn parse(packet: &[u8]) -> Option<Plain> {
    let u16_at = |i: usize| -> Option<u16> {
        Some(u16::from_be_bytes([*packet.get(i)?, *packet.get(i + 1)?]))
    };
    if packet.len() < 17
        || packet[2] & 0xf8 != 0
        || u16_at(4)? != 1
        || u16_at(6)? != 0
        || u16_at(8)? != 0
    {
        return None;
    }
    let additional = u16_at(10)?;
    let mut i = 12;
    loop {
        let len = usize::from(*packet.get(i)?);
        if len == 0 {
            i += 1;
            break;
        }
        if len > 63 || i - 12 + len + 1 > 254 {
            return None;
        }
        i += len + 1;
    }
    // The name, with its root label, is packet[12..name_end].
    let name_end = i;
    if u16_at(name_end + 2)? != 1 {
        return None; // class IN only
    }
    if matches!(u16_at(name_end)?, 251 | 252) {
        return None; // IXFR and AXFR: the transfer side's, over any protocol
    }
    let mut end = name_end + 4;
    let mut dnssec_ok = false;
    let payload = match additional {
        0 => None,
        1 => {
            // OPT: root name, type 41, class = payload, ext-rcode, version,
            // flags, rdata.
            if *packet.get(end)? != 0 || u16_at(end + 1)? != 41 {
                return None;
            }
            let payload = u16_at(end + 3)?;
            let (ext_rcode, version, flags) = (
                *packet.get(end + 5)?,
                *packet.get(end + 6)?,
                *packet.get(end + 7)?,
            );
            if ext_rcode != 0 || version != 0 || flags & 0x7f != 0 || *packet.get(end + 8)? != 0 {
                return None;
            }
            dnssec_ok = flags & 0x80 != 0;
            let rdlen = usize::from(u16_at(end + 9)?);
            end += 11;
            let options = packet.get(end..end + rdlen)?;
            if !plain_options(options) {
                return None;
            }
            end += rdlen;
            Some(payload)
        }
        _ => return None,
    };
    (end == packet.len()).then_some(Plain {
        name_end,
        payload,
        dnssec_ok,
    })
}

/// Whether an OPT record's options are ones the answer does not depend on
/// and are well formed, as the general way's parser wants them: NSID
/// asked (empty), a client or full COOKIE (RFC 7873: 8, or 16 to 40
/// bytes), PADDING. Any other option goes the general way.
fn plain_options(mut options: &[u8]) -> bool {
    while !options.is_empty() {
        let [c0, c1, l0, l1, rest @ ..] = options else {
            return false;
        };
        let (code, len) = (
            u16::from_be_bytes([*c0, *c1]),
            usize::from(u16::from_be_bytes([*l0, *l1])),
        );
        if rest.len() < len {
            return false;
        }
        let known = match code {
            3 => len == 0,
            10 => len == 8 || (16..=40).contains(&len),
            12 => true,
            _ => false,
        };
        if !known {
            return false;
        }
        options = &rest[len..];
    }
    true
}

/// The general way for a UDP datagram: hickory-proto parses it, the
/// handler's `prepare` decides, `encode` writes. A message too short for a
/// header, or a response, gets no answer; one that does not parse gets
/// FORMERR.
pub fn general(
    served: &Served,
    packet: &[u8],
    src: SocketAddr,
    out: &mut Vec<u8>,
) -> Option<ResponseCode> {
    let mut messages = Vec::with_capacity(1);
    let rcode = handler::respond(served, packet, src, Protocol::Udp, &mut messages)?;
    out.clear();
    out.extend_from_slice(messages.first()?);
    Some(rcode)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn served() -> Served {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.yaml");
        let config = crate::config::Config::load(&path).unwrap();
        let zones = crate::zone::load_all(&config).unwrap();
        Served::new(AnswerTable::build(zones), Arc::default())
    }

    fn query(name: &str, rtype: RecordType, edns: bool) -> Vec<u8> {
        let mut message = Message::new(0x4242, MessageType::Query, OpCode::Query);
        message.metadata.recursion_desired = true;
        message.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
        if edns {
            let mut opt = Edns::new();
            opt.set_max_payload(4096);
            message.set_edns(opt);
        }
        message.to_vec().unwrap()
    }

    #[test]
    fn every_precomputed_answer_is_what_the_general_path_sends() {
        let served = served();
        assert!(
            served.fast.len() > 100,
            "only {} answers",
            served.fast.len()
        );
        let src = SocketAddr::from(([127, 0, 0, 1], 5353));
        let (mut fast, mut general) = (Vec::new(), Vec::new());
        let mut compared = 0;
        for (name, types) in served.table.names() {
            for rtype in types
                .into_iter()
                .chain([RecordType::A, RecordType::AAAA, RecordType::ANY])
            {
                for edns in [false, true] {
                    let packet = query(&name.to_lowercase().to_ascii(), rtype, edns);
                    let hit = served.fast.answer(&packet, &mut fast);
                    let rcode = super::general(&served, &packet, src, &mut general);
                    if hit.is_some() {
                        assert_eq!(hit, rcode, "{name} {rtype}");
                        assert_eq!(fast, general, "{name} {rtype} edns={edns}");
                        compared += 1;
                    }
                }
            }
        }
        assert!(compared > 100, "only {compared} compared");
    }

    /// Over TCP, every answer from stored bytes is what the general way
    /// sends over TCP, byte for byte; an answer that left additional
    /// records out for UDP's size is not taken from them.
    #[test]
    fn tcp_answers_from_stored_bytes_are_what_the_general_path_sends_over_tcp() {
        let mut text = String::from(
            "$ORIGIN example.com.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 900 1209600 300\n  IN NS ns1\nns1 IN A 192.0.2.1\n",
        );
        for i in 0..20 {
            text.push_str(&format!("@ IN MX 10 mx{i}\nmx{i} IN A 192.0.2.{i}\n"));
        }
        let origin = Name::from_ascii("example.com.").unwrap();
        let zone = crate::zone::from_text(Path::new("t.zone"), &text, &origin).unwrap();
        let examples = served();
        let big = Served::new(AnswerTable::build(vec![zone]), Arc::default());
        let src = SocketAddr::from(([127, 0, 0, 1], 5353));
        let (mut fast, mut compared, mut declined) = (Vec::new(), 0, 0);
        for served in [&examples, &big] {
            for (name, types) in served.table.names() {
                for rtype in
                    types
                        .into_iter()
                        .chain([RecordType::A, RecordType::AAAA, RecordType::ANY])
                {
                    for edns in [false, true] {
                        let packet = query(&name.to_lowercase().to_ascii(), rtype, edns);
                        let mut general = Vec::new();
                        let rcode =
                            handler::respond(served, &packet, src, Protocol::Tcp, &mut general);
                        match answer_tcp(served, &packet, &mut fast) {
                            Some(hit) => {
                                assert_eq!(Some(hit), rcode, "{name} {rtype}");
                                assert_eq!(fast, general[0], "{name} {rtype} edns={edns}");
                                compared += 1;
                            }
                            None => declined += 1,
                        }
                    }
                }
            }
        }
        assert!(compared > 100, "only {compared} compared");
        // The 20 exchangers' addresses do not fit 512 bytes: that MX
        // answer over TCP is the general way's.
        let packet = query("example.com.", RecordType::MX, false);
        assert_eq!(answer_tcp(&big, &packet, &mut fast), None);
        assert!(declined > 0);
    }

    /// Answers written straight from the zone's records are the general
    /// path's, byte for byte, in the asker's letter case, and only where
    /// the records are the whole answer.
    #[test]
    fn direct_answers_are_what_the_general_path_sends() {
        let served = Arc::new(served());
        let src = SocketAddr::from(([127, 0, 0, 1], 5353));
        let (mut direct, mut general) = (Vec::new(), Vec::new());
        let mut compared = 0;
        let mut names: Vec<Name> = served.table.names().into_iter().map(|(n, _)| n).collect();
        names.extend(
            [
                "nope.example.com.",
                "x.wild.example.com.",
                "host.sub.example.com.",
            ]
            .iter()
            .map(|n| Name::from_ascii(n).unwrap()),
        );
        for name in names {
            // Every other letter upper case.
            let asked: String = name
                .to_ascii()
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if i % 2 == 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            for rtype in [
                RecordType::A,
                RecordType::AAAA,
                RecordType::TXT,
                RecordType::CAA,
                RecordType::MX,
                RecordType::NS,
                RecordType::SOA,
            ] {
                for (edns, payload) in [(false, 0), (true, 512), (true, 4096)] {
                    let mut message = Message::from_vec(&query(&asked, rtype, edns)).unwrap();
                    if let Some(opt) = message.edns.as_mut() {
                        opt.set_max_payload(payload);
                    }
                    message.metadata.checking_disabled = compared % 2 == 0;
                    let packet = message.to_vec().unwrap();
                    let plain = parse(&packet).expect("a plain query");
                    let key = Key::of(&packet, &plain);
                    let hit = super::direct(
                        &served.table,
                        &packet,
                        &plain,
                        key.as_slice(),
                        false,
                        &mut direct,
                    );
                    let rcode = super::general(&served, &packet, src, &mut general);
                    if hit.is_some() {
                        assert_eq!(hit, rcode, "{asked} {rtype}");
                        assert_eq!(direct, general, "{asked} {rtype} edns={edns} {payload}");
                        compared += 1;
                    }
                    if matches!(rtype, RecordType::MX | RecordType::NS | RecordType::SOA) {
                        assert!(hit.is_none(), "{asked} {rtype}: names in the data");
                    }
                    if name.to_ascii().starts_with("www.") || name.to_ascii() == "example.com." {
                        assert!(hit.is_none(), "{asked} {rtype}: the overlay's");
                    }
                }
            }
        }
        assert!(compared > 20, "only {compared} compared");
    }

    #[test]
    fn learned_answers_are_what_the_general_path_sends_until_the_table_changes() {
        let served = Arc::new(served());
        let src = SocketAddr::from(([127, 0, 0, 1], 5353));
        let mut recent = Recent::default();
        let (mut learned, mut general) = (Vec::new(), Vec::new());
        let misses = [
            ("nope.example.com.", RecordType::A),
            ("x.wild.example.com.", RecordType::A),
            ("x.wild.example.com.", RecordType::TXT),
            ("y.alias.example.com.", RecordType::A),
            ("mail.example.com.", RecordType::MX),
            ("example.org.", RecordType::A),
        ];
        for (name, rtype) in misses {
            for edns in [false, true] {
                let packet = query(name, rtype, edns);
                assert!(
                    served.fast.answer(&packet, &mut learned).is_none(),
                    "{name}"
                );
                // First sight: the general way.
                assert_eq!(recent.answer(&served, &packet, &mut learned), None);
                // Second (learned now) and third (from the memo).
                for _ in 0..2 {
                    let hit = recent.answer(&served, &packet, &mut learned);
                    let rcode = super::general(&served, &packet, src, &mut general);
                    assert_eq!(hit, rcode, "{name} {rtype}");
                    assert_eq!(learned, general, "{name} {rtype} edns={edns}");
                }
            }
        }
        assert_eq!(recent.map.len(), misses.len() * 2);

        // Mixed case comes back as asked.
        let packet = query("NoPe.ExAmPlE.cOm.", RecordType::A, false);
        assert_eq!(
            recent.answer(&served, &packet, &mut learned),
            Some(ResponseCode::NXDomain)
        );
        let reply = Message::from_vec(&learned).unwrap();
        assert_eq!(reply.queries[0].name().to_ascii(), "NoPe.ExAmPlE.cOm.");

        // Another table: nothing learned from the old one is used.
        let empty = Arc::new(Served::default());
        let packet = query("nope.example.com.", RecordType::A, false);
        assert_eq!(recent.answer(&empty, &packet, &mut learned), None);
        assert_eq!(
            recent.answer(&empty, &packet, &mut learned),
            Some(ResponseCode::Refused)
        );
        assert_eq!(recent.map.len(), 1);

        // Names asked once each are never learned.
        for i in 0..1000 {
            let packet = query(&format!("once{i}.example.com."), RecordType::A, false);
            assert_eq!(recent.answer(&empty, &packet, &mut learned), None);
        }
        assert_eq!(recent.map.len(), 1);
    }

    #[test]
    fn the_question_case_comes_back_and_other_queries_go_the_general_way() {
        let served = served();
        let mut out = Vec::new();
        let packet = query("MaIl.ExAmPlE.CoM.", RecordType::A, false);
        served
            .fast
            .answer(&packet, &mut out)
            .expect("a precomputed answer");
        let reply = Message::from_vec(&out).unwrap();
        assert_eq!(reply.metadata.id, 0x4242);
        assert!(reply.metadata.recursion_desired && reply.metadata.authoritative);
        assert_eq!(reply.queries[0].name().to_ascii(), "MaIl.ExAmPlE.CoM.");
        assert_eq!(reply.answers[0].name.to_ascii(), "MaIl.ExAmPlE.CoM.");

        // Missing names, DO, a small payload for a big answer: not here.
        assert!(
            served
                .fast
                .answer(&query("nope.example.com.", RecordType::A, false), &mut out)
                .is_none()
        );
        let mut dnssec =
            Message::from_vec(&query("www.example.com.", RecordType::A, true)).unwrap();
        if let Some(edns) = dnssec.edns.as_mut() {
            edns.set_dnssec_ok(true);
        }
        assert!(
            served
                .fast
                .answer(&dnssec.to_vec().unwrap(), &mut out)
                .is_none()
        );
        let mut small =
            Message::from_vec(&query("big.example.com.", RecordType::TXT, true)).unwrap();
        if let Some(edns) = small.edns.as_mut() {
            edns.set_max_payload(512);
        }
        assert!(
            served
                .fast
                .answer(&small.to_vec().unwrap(), &mut out)
                .is_none()
        );
        assert!(served.fast.answer(&[0u8; 11], &mut out).is_none());
    }

    /// With a signed zone, DO queries answered from stored bytes
    /// (precomputed, straight from the records with their RRSIGs, or
    /// learned) are what the general way sends, byte for byte.
    #[test]
    fn signed_answers_from_stored_bytes_are_what_the_general_path_sends() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.yaml");
        let config = crate::config::Config::load(&path).unwrap();
        let keys = tempfile::tempdir().unwrap();
        let policy = crate::dnssec::Policy {
            algorithm: crate::dnssec::Algorithm::EcdsaP256,
            keys: keys.path().to_path_buf(),
            validity: crate::dnssec::Policy::VALIDITY,
            refresh: crate::dnssec::Policy::REFRESH,
            denial: crate::dnssec::Denial::Nsec,
            split_keys: false,
            zsk_lifetime: None,
            parent_nameservers: Vec::new(),
        };
        let now = crate::control::clock::now_ms() / 1000;
        let zones: Vec<crate::zone::Zone> = crate::zone::load_all(&config)
            .unwrap()
            .into_iter()
            .map(|z| {
                if z.origin.to_ascii() == "example.com." {
                    crate::dnssec::sign_zone(&z, &policy, &[], &[], now).unwrap()
                } else {
                    z
                }
            })
            .collect();
        let served = Arc::new(Served::new(AnswerTable::build(zones), Arc::default()));
        let src = SocketAddr::from(([127, 0, 0, 1], 5353));
        let mut recent = Recent::default();
        let (mut fast, mut general) = (Vec::new(), Vec::new());
        let (mut precomputed, mut straight, mut learned) = (0, 0, 0);
        let mut names: Vec<Name> = served.table.names().into_iter().map(|(n, _)| n).collect();
        names.push(Name::from_ascii("x.wild.example.com.").unwrap());
        names.push(Name::from_ascii("nope.example.com.").unwrap());
        for name in names {
            for rtype in [
                RecordType::A,
                RecordType::AAAA,
                RecordType::TXT,
                RecordType::CAA,
                RecordType::MX,
                RecordType::NSEC,
                RecordType::DNSKEY,
            ] {
                let mut message =
                    Message::from_vec(&query(&name.to_lowercase().to_ascii(), rtype, true))
                        .unwrap();
                if let Some(opt) = message.edns.as_mut() {
                    opt.set_dnssec_ok(true);
                }
                let packet = message.to_vec().unwrap();
                let rcode = super::general(&served, &packet, src, &mut general);
                let plain = parse(&packet).expect("a plain query with DO");
                let key = Key::of(&packet, &plain);
                if let Some(template) = served.fast.get(key.as_slice()) {
                    assert_eq!(template.fill(&packet, &plain, &mut fast), rcode);
                    assert_eq!(fast, general, "precomputed {name} {rtype}");
                    precomputed += 1;
                }
                let hit = super::direct(
                    &served.table,
                    &packet,
                    &plain,
                    key.as_slice(),
                    false,
                    &mut fast,
                );
                if hit.is_some() {
                    assert_eq!(hit, rcode);
                    assert_eq!(fast, general, "direct {name} {rtype}");
                    let reply = Message::from_vec(&fast).unwrap();
                    assert!(
                        reply
                            .answers
                            .iter()
                            .any(|r| r.record_type() == RecordType::RRSIG),
                        "{name} {rtype}: no RRSIG"
                    );
                    straight += 1;
                }
                // Learned on the second sight.
                let _ = recent.answer(&served, &packet, &mut fast);
                if recent.answer(&served, &packet, &mut fast).is_some() {
                    assert_eq!(fast, general, "learned {name} {rtype}");
                    learned += 1;
                }
            }
        }
        assert!(straight > 10, "only {straight} straight from the records");
        assert!(learned > 50, "only {learned} learned");
        let _ = precomputed;
    }

    /// The table a base serves after a change answers every name exactly
    /// as a table built whole from the zones with the change written in,
    /// and its precomputed answers are the general path's.
    #[test]
    fn a_base_with_an_overlay_answers_as_a_table_built_whole() {
        use crate::{control::answers, engine::Role};
        use hickory_proto::rr::RData;
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.yaml");
        let config = crate::config::Config::load(&path).unwrap();
        let zones = crate::zone::load_all(&config).unwrap();
        let failover = config.failover.clone().unwrap();
        let base = answers::base(&config, &zones);
        let src = SocketAddr::from(([127, 0, 0, 1], 5353));
        for (active, serial, ttl) in [
            (Role::Primary, 2026112101, None),
            (Role::Secondary, 2026112102, None),
            (Role::Secondary, 2026112103, Some(5)),
        ] {
            let records = answers::failover_records(&failover, active, ttl);
            let serials: std::collections::BTreeMap<String, u32> = zones
                .iter()
                .map(|z| (z.origin.to_string(), serial))
                .collect();
            let served = Arc::new(base.serve(&records, &serials, Arc::default()));
            // The same change, written into the zones and built whole.
            let mut whole = zones.clone();
            for (i, zone) in whole.iter_mut().enumerate() {
                let mut written = zone.records.to_vec();
                for record in &mut written {
                    if let RData::SOA(soa) = &mut record.data {
                        soa.serial = serial;
                    }
                }
                if i == 0 {
                    written.extend(records.iter().cloned());
                }
                zone.records = Arc::new(written.into());
            }
            let whole = Served::new(AnswerTable::build(whole), Arc::default());
            let mut names: Vec<Name> = whole.table.names().into_iter().map(|(n, _)| n).collect();
            names.extend(
                [
                    "nope.example.com.",
                    "x.wild.example.com.",
                    "WwW.example.com.",
                ]
                .iter()
                .map(|n| Name::from_ascii(n).unwrap()),
            );
            let (mut a, mut b, mut fast) = (Vec::new(), Vec::new(), Vec::new());
            let mut compared = 0;
            for name in &names {
                for rtype in [
                    RecordType::A,
                    RecordType::AAAA,
                    RecordType::SOA,
                    RecordType::NS,
                    RecordType::MX,
                    RecordType::TXT,
                    RecordType::CNAME,
                    RecordType::ANY,
                ] {
                    for edns in [false, true] {
                        let packet = query(&name.to_ascii(), rtype, edns);
                        let ours = super::general(&served, &packet, src, &mut a);
                        let theirs = super::general(&whole, &packet, src, &mut b);
                        assert_eq!(ours, theirs, "{name} {rtype}");
                        assert_eq!(a, b, "{name} {rtype} edns={edns} serial {serial}");
                        // Precomputed or written from the records, never
                        // learned: a new memo each time.
                        if Recent::default()
                            .answer(&served, &packet, &mut fast)
                            .is_some()
                        {
                            assert_eq!(fast, a, "fast path {name} {rtype} edns={edns}");
                            compared += 1;
                        }
                    }
                }
            }
            assert!(compared > 50, "only {compared} on the fast path");
        }
    }
}
