//! The UDP fast path: for every name the zones hold and the types worth
//! having ready, the whole response is encoded once, by the general path
//! (`handler::prepare` and `encode`), when the table is built. A plain
//! query (one question, class IN, no EDNS or EDNS version 0 without DO) is
//! then answered by copying those bytes and patching the ID, the RD and CD
//! flags and the question's letter case, in the question and in the first
//! answer's owner name (written out in full there; later names that share
//! it point at it, so they follow the question's case too, as with Knot).
//! Anything else goes the general way.

use std::net::SocketAddr;

use rustc_hash::FxHashMap;

use hickory_proto::{
    op::{Edns, Header, HeaderCounts, Message, MessageType, Metadata, OpCode, Query, ResponseCode},
    rr::RecordType,
    serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder},
};
use hickory_server::{net::xfer::Protocol, server::Request};

use super::handler::{self, MAX_UDP_PAYLOAD};
use crate::zone::AnswerTable;

/// The table and its precomputed answers, swapped together.
pub struct Served {
    pub table: AnswerTable,
    pub fast: FastAnswers,
}

impl Served {
    pub fn new(table: AnswerTable) -> Self {
        let fast = FastAnswers::build(&table);
        Self { table, fast }
    }
}

impl Default for Served {
    fn default() -> Self {
        Self::new(AnswerTable::default())
    }
}

struct Template {
    bytes: Box<[u8]>,
    rcode: ResponseCode,
    /// Where the first answer's owner, the question's name in full, is.
    owner_at: Option<usize>,
}

/// Precomputed responses by (lower-case wire name, type, EDNS). The keys
/// are ours, not an attacker's choice of collisions to exploit beyond
/// what the zone holds, so a fast non-keyed hash serves.
#[derive(Default)]
pub struct FastAnswers {
    map: FxHashMap<Box<[u8]>, Template>,
}

/// The longest wire-format name, plus type and EDNS flag.
const KEY_MAX: usize = 255 + 3;

impl FastAnswers {
    /// Encodes the answers for every name of `table` and, at each, its
    /// own types plus A, AAAA and ANY, with and without EDNS.
    pub fn build(table: &AnswerTable) -> Self {
        let mut map = FxHashMap::default();
        let anywhere: &'static [RecordType] = &[RecordType::A, RecordType::AAAA, RecordType::ANY];
        let mut out = Vec::with_capacity(512);
        for (name, types) in table.names() {
            let name = name.to_lowercase();
            let mut wanted = types;
            for t in anywhere {
                if !wanted.contains(t) {
                    wanted.push(*t);
                }
            }
            for rtype in wanted {
                for edns in [false, true] {
                    let mut query = Message::new(0, MessageType::Query, OpCode::Query);
                    query.add_query(Query::query(name.clone(), rtype));
                    if edns {
                        let mut opt = Edns::new();
                        opt.set_max_payload(MAX_UDP_PAYLOAD);
                        query.set_edns(opt);
                    }
                    let Ok(bytes) = query.to_vec() else { continue };
                    let Ok(request) = Request::from_bytes(
                        bytes.clone(),
                        SocketAddr::from(([0, 0, 0, 0], 0)),
                        Protocol::Udp,
                    ) else {
                        continue;
                    };
                    let prepared = handler::prepare(table, &request);
                    handler::encode(&request, &prepared, &mut out);
                    let Some(key) = parse(&bytes).map(|q| key_of(&bytes, &q)) else {
                        continue;
                    };
                    if out.len() >= 12 {
                        let name = &key[..key.len() - 3];
                        let at = 12 + name.len() + 4;
                        let answers = u16::from_be_bytes([out[6], out[7]]);
                        let owner_at = (answers > 0 && out.get(at..at + name.len()) == Some(name))
                            .then_some(at);
                        map.insert(
                            key.as_slice().into(),
                            Template {
                                bytes: out.as_slice().into(),
                                rcode: prepared.metadata.response_code,
                                owner_at,
                            },
                        );
                    }
                }
            }
        }
        Self { map }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Answers a plain query from the precomputed responses into `out`;
    /// `None` sends it the general way.
    pub fn answer(&self, packet: &[u8], out: &mut Vec<u8>) -> Option<ResponseCode> {
        let query = parse(packet)?;
        let mut key = [0u8; KEY_MAX];
        let len = query.name_end - 12;
        for (k, b) in key.iter_mut().zip(&packet[12..query.name_end]) {
            *k = b.to_ascii_lowercase();
        }
        key[len] = packet[query.name_end];
        key[len + 1] = packet[query.name_end + 1];
        key[len + 2] = u8::from(query.payload.is_some());
        let template = self.map.get(&key[..len + 3])?;
        if let Some(payload) = query.payload {
            let limit = usize::from(payload.clamp(512, MAX_UDP_PAYLOAD));
            if template.bytes.len() > limit {
                return None;
            }
        }
        out.clear();
        out.extend_from_slice(&template.bytes);
        out[0] = packet[0];
        out[1] = packet[1];
        out[2] |= packet[2] & 0x01; // RD
        out[3] |= packet[3] & 0x10; // CD
        let name = &packet[12..query.name_end];
        out[12..query.name_end].copy_from_slice(name);
        if let Some(at) = template.owner_at {
            out[at..at + name.len()].copy_from_slice(name);
        }
        Some(template.rcode)
    }
}

/// A plain query's parts: where its name ends, and its EDNS payload.
struct Plain {
    name_end: usize,
    payload: Option<u16>,
}

fn key_of(packet: &[u8], query: &Plain) -> Vec<u8> {
    let mut key: Vec<u8> = packet[12..query.name_end]
        .iter()
        .map(u8::to_ascii_lowercase)
        .collect();
    key.push(packet[query.name_end]);
    key.push(packet[query.name_end + 1]);
    key.push(u8::from(query.payload.is_some()));
    key
}

/// Recognises a plain query: a QUERY with one IN question whose name is
/// not compressed, nothing in the answer and authority sections, and at
/// most an OPT record of version 0 without the DO bit. Anything else is
/// `None`.
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
    let mut end = name_end + 4;
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
            if ext_rcode != 0 || version != 0 || flags & 0x80 != 0 {
                return None;
            }
            let rdlen = usize::from(u16_at(end + 9)?);
            end += 11 + rdlen;
            Some(payload)
        }
        _ => return None,
    };
    (end == packet.len()).then_some(Plain { name_end, payload })
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
    let header = Header::read(&mut BinDecoder::new(packet)).ok()?;
    if header.metadata.message_type == MessageType::Response {
        return None;
    }
    match Request::from_bytes(packet.to_vec(), src, Protocol::Udp) {
        Ok(request) => {
            let prepared = handler::prepare(&served.table, &request);
            handler::encode(&request, &prepared, out);
            (!out.is_empty()).then_some(prepared.metadata.response_code)
        }
        Err(_) => {
            let mut metadata = Metadata::response_from_request(&header.metadata);
            metadata.response_code = ResponseCode::FormErr;
            out.clear();
            let reply = Header {
                metadata,
                counts: HeaderCounts::default(),
            };
            reply.emit(&mut BinEncoder::new(out)).ok()?;
            Some(ResponseCode::FormErr)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use hickory_proto::rr::Name;

    use super::*;

    fn served() -> Served {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.yaml");
        let config = crate::config::Config::load(&path).unwrap();
        let zones = crate::zone::load_all(&config).unwrap();
        Served::new(AnswerTable::build(zones))
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
}
