//! Answers DNS messages from the current answer table. The table sits
//! behind an atomic pointer: a query loads it once and answers from that one
//! table, while a reload or a failover swaps in a new one without a lock.
//!
//! `respond` answers one message, for the UDP loop's general way and for
//! TCP: TSIG checked, transfers handed to `transfer`, everything else
//! decided by `prepare` and written by `encode` (which the precomputed
//! answers of `fast` use too), so every path sends the same bytes.

use std::{net::SocketAddr, sync::Arc};

use hickory_proto::{
    op::{Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode},
    rr::{DNSClass, Record, RecordType},
    serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder},
};
use hickory_server::{net::xfer::Protocol, server::Request, zone_handler::MessageResponseBuilder};
use tracing::warn;

use super::{
    Served, transfer,
    tsig::{self, Signing, Verified},
};
use crate::zone::{AnswerTable, table::Resolution};

/// The largest UDP payload we send, whatever the client offers: the DNS
/// flag day 2020 value, which avoids IP fragmentation.
pub const MAX_UDP_PAYLOAD: u16 = 1232;

/// What the query path reads; swapped whole on reload and failover.
pub type SharedTable = Arc<arc_swap::ArcSwap<Served>>;

/// A decided response, before encoding.
pub struct Prepared {
    pub metadata: Metadata,
    pub edns: Option<Edns>,
    /// `None`: header, question and OPT only.
    pub resolution: Option<Resolution>,
}

/// The OPT record of a response to `request`: one when the request had
/// one (RFC 6891 section 7), offering our payload, version 0.
pub fn response_edns(request: &Request) -> Option<Edns> {
    request.edns.as_ref().map(|asked| {
        let mut edns = Edns::new();
        edns.set_max_payload(MAX_UDP_PAYLOAD);
        edns.set_version(0);
        // RFC 3225 section 3: the DO bit is copied into the response.
        edns.set_dnssec_ok(asked.flags().dnssec_ok);
        edns
    })
}

/// Decides the response to `request` from `table`.
pub fn prepare(table: &AnswerTable, request: &Request) -> Prepared {
    prepare_with_room(table, request, 0)
}

/// The room a UDP answer has for `request`: the client's payload, at
/// most ours, less `reserve` bytes kept for a TSIG.
fn udp_limit(request: &Request, reserve: usize) -> usize {
    usize::from(request.max_payload().min(MAX_UDP_PAYLOAD)).saturating_sub(reserve)
}

/// `prepare`, keeping `reserve` bytes of a UDP answer free (for the TSIG
/// a signed answer gets).
fn prepare_with_room(table: &AnswerTable, request: &Request, reserve: usize) -> Prepared {
    let edns = response_edns(request);
    let mut metadata = Metadata::response_from_request(&request.metadata);
    let queries = request.queries.queries();
    let question = if request.metadata.op_code != OpCode::Query {
        Err(ResponseCode::NotImp)
    } else if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
        // RFC 6891 section 6.1.3.
        Err(ResponseCode::BADVERS)
    } else {
        match queries {
            [query] => match (query.query_class(), query.query_type()) {
                (DNSClass::IN, RecordType::AXFR | RecordType::IXFR) => Err(ResponseCode::Refused),
                (DNSClass::IN, RecordType::OPT) => Err(ResponseCode::FormErr),
                (DNSClass::IN, _) => Ok(query.original()),
                _ => Err(ResponseCode::Refused),
            },
            _ => Err(ResponseCode::FormErr),
        }
    };
    let query = match question {
        Err(rcode) => {
            metadata.response_code = rcode;
            return Prepared {
                metadata,
                edns,
                resolution: None,
            };
        }
        Ok(query) => query,
    };
    let dnssec_ok = request.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
    let mut res = table.resolve_signed(query.name(), query.query_type(), dnssec_ok);
    metadata.response_code = res.rcode;
    metadata.authoritative = res.authoritative;
    // Over TCP the whole message limit is the encoder's (64 KiB); only a UDP
    // answer is measured against the client's payload before it is sent.
    let fits_udp = match request.protocol() {
        Protocol::Udp => fit(
            request,
            edns.as_ref(),
            metadata,
            &mut res,
            udp_limit(request, reserve),
        ),
        _ => true,
    };
    if fits_udp {
        Prepared {
            metadata,
            edns,
            resolution: Some(res),
        }
    } else {
        // RFC 2181 section 9: no partial RRsets; the client retries over TCP.
        metadata.truncation = true;
        Prepared {
            metadata,
            edns,
            resolution: None,
        }
    }
}

/// Answers one message: the response's messages go into `out` (a
/// transfer over TCP takes many), each signed when the request was. A
/// message too short for a header, or a response, gets nothing; one that
/// does not parse gets FORMERR; a TSIG that does not verify gets NOTAUTH
/// with its TSIG error (RFC 8945 section 5.2).
pub fn respond<O: transfer::Out>(
    served: &Served,
    packet: &[u8],
    src: SocketAddr,
    protocol: Protocol,
    out: &mut O,
) -> Option<ResponseCode> {
    let header = Header::read(&mut BinDecoder::new(packet)).ok()?;
    if header.metadata.message_type == MessageType::Response {
        return None;
    }
    let formerr = |out: &mut O| {
        let mut metadata = Metadata::response_from_request(&header.metadata);
        metadata.response_code = ResponseCode::FormErr;
        let mut bytes = Vec::with_capacity(12);
        Header {
            metadata,
            counts: HeaderCounts::default(),
        }
        .emit(&mut BinEncoder::new(&mut bytes))
        .ok()?;
        out.put(bytes);
        Some(ResponseCode::FormErr)
    };
    // The response repeats the questions as they were written: a
    // compression pointer in one may point into the header, which is ours
    // in the response (only the header comes before the first question,
    // so there it is malformed). A request whose question names hold a
    // pointer gets FORMERR with no question.
    if question_names_compressed(packet, header.counts.queries) {
        return formerr(out);
    }
    let Ok(request) = Request::from_bytes(packet.to_vec(), src, protocol) else {
        return formerr(out);
    };
    // A TSIG is the last record of the additional section.
    let verified = match header.counts.additionals {
        0 => Verified::Unsigned,
        _ => tsig::verify_request(packet, &served.transfers.keys, tsig::now()),
    };
    let signing = match &verified {
        Verified::Unsigned => None,
        Verified::Signed { key, record } => Some(Signing {
            key,
            request_mac: &record.mac,
            fudge: record.fudge,
        }),
        Verified::Malformed => return formerr(out),
        Verified::Failed { error, record, key } => {
            super::refused(
                src.ip(),
                &format!("a request signed with key {}: {}", record.key, error.text()),
            );
            let mut metadata = Metadata::response_from_request(&request.metadata);
            metadata.response_code = ResponseCode::NotAuth;
            let mut bytes = Vec::with_capacity(128);
            let edns = response_edns(&request);
            MessageResponseBuilder::new(&request.queries, edns.as_ref())
                .build_no_records(metadata)
                .destructive_emit(&mut BinEncoder::new(&mut bytes))
                .ok()?;
            // BADTIME tells the signer our time, and is signed.
            tsig::sign_failure(&mut bytes, *error, record, key.as_ref(), tsig::now());
            out.put(bytes);
            return Some(ResponseCode::NotAuth);
        }
    };
    if request.metadata.op_code == OpCode::Query
        && let Some(qtype) = transfer::asked(&request)
    {
        return Some(transfer::answer(
            &served.transfers,
            &request,
            qtype,
            signing,
            tsig::now,
            out,
        ));
    }
    // A signed UDP answer keeps room for its TSIG (RFC 8945 section 5.3).
    let reserve = signing.as_ref().map_or(0, Signing::size);
    let prepared = prepare_with_room(&served.table, &request, reserve);
    let mut bytes = Vec::with_capacity(512);
    encode(&request, &prepared, &mut bytes);
    if bytes.is_empty() {
        return None;
    }
    // An error answer repeats every question asked: over UDP, one too
    // long for the client goes as the first question with TC set.
    if protocol == Protocol::Udp && bytes.len() > udp_limit(&request, reserve) {
        super::rrl::truncate(&mut bytes);
    }
    if let Some(signing) = signing {
        signing.sign(&mut bytes, None, tsig::now());
    }
    out.put(bytes);
    Some(prepared.metadata.response_code)
}

/// `response`, the answer to `packet`, as response rate limiting slips
/// it: cut to its header and question with TC set and, when the request
/// was signed, signed again (or given its TSIG error again), so the
/// client can tell it from a forgery and retry over TCP.
pub fn slip(served: &Served, packet: &[u8], response: &mut Vec<u8>) {
    super::rrl::truncate(response);
    if packet.get(10..12).is_none_or(|count| count == [0, 0]) {
        return;
    }
    let now = tsig::now();
    match tsig::verify_request(packet, &served.transfers.keys, now) {
        Verified::Signed { key, record } => {
            Signing {
                key: &key,
                request_mac: &record.mac,
                fudge: record.fudge,
            }
            .sign(response, None, now);
        }
        Verified::Failed { error, record, key } => {
            tsig::sign_failure(response, error, &record, key.as_ref(), now);
        }
        Verified::Unsigned | Verified::Malformed => {}
    }
}

/// Whether a name among the first `count` questions holds a compression
/// pointer (or another label type than a plain one).
fn question_names_compressed(packet: &[u8], count: u16) -> bool {
    let mut at = 12;
    for _ in 0..count {
        loop {
            match packet.get(at) {
                None => return false,
                Some(0) => break,
                Some(l) if l & 0xC0 != 0 => return true,
                Some(&l) => at += 1 + usize::from(l),
            }
        }
        // The root label, type and class.
        at += 5;
    }
    false
}

/// Encodes a prepared response to `request` into `out`.
pub fn encode(request: &Request, prepared: &Prepared, out: &mut Vec<u8>) {
    out.clear();
    let mut encoder = BinEncoder::new(out);
    let builder = MessageResponseBuilder::new(&request.queries, prepared.edns.as_ref());
    let emitted = match &prepared.resolution {
        Some(res) => builder
            .build(
                prepared.metadata,
                res.answer.iter(),
                res.authority.iter(),
                [],
                res.additional.iter(),
            )
            .destructive_emit(&mut encoder),
        None => builder
            .build_no_records(prepared.metadata)
            .destructive_emit(&mut encoder),
    };
    if let Err(error) = emitted {
        warn!(%error, "could not encode a DNS response");
        out.clear();
    }
}

/// Whether the response fits in `limit` bytes, once the additional
/// records that do not fit are left out of `res`. RFC 2181 section 9: TC
/// is not set for extra information; the additional section loses whole
/// RRsets from its end until the rest fits. Only a referral's in-domain
/// glue (RFC 9471) and the answer and authority sections are needed: when
/// they do not fit, the answer is truncated.
fn fit(
    request: &Request,
    edns: Option<&Edns>,
    metadata: Metadata,
    res: &mut Resolution,
    limit: usize,
) -> bool {
    let fits = |additional: &[&Record]| {
        let mut buffer = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut buffer);
        encoder.set_max_size(u16::try_from(limit).unwrap_or(u16::MAX));
        let response = MessageResponseBuilder::new(&request.queries, edns).build(
            metadata,
            res.answer.iter(),
            res.authority.iter(),
            [],
            additional.iter().copied(),
        );
        match response.destructive_emit(&mut encoder) {
            Ok(info) => !info.truncation,
            Err(_) => false,
        }
    };
    let all: Vec<&Record> = res.additional.iter().collect();
    if fits(&all) {
        return true;
    }
    // A referral's glue below its cut is needed to follow it.
    let cut = match (
        res.answer.is_empty(),
        res.authoritative,
        res.authority.first(),
    ) {
        (true, false, Some(ns)) if ns.record_type() == RecordType::NS => Some(ns.name.clone()),
        _ => None,
    };
    let needed = |r: &Record| cut.as_ref().is_some_and(|cut| cut.zone_of(&r.name));
    // The optional RRsets, as where each ends in `res.additional`.
    let mut ends = Vec::new();
    for (i, r) in res.additional.iter().enumerate() {
        let next = res.additional.get(i + 1);
        if !needed(r) && next.is_none_or(|n| n.name != r.name || n.record_type() != r.record_type())
        {
            ends.push(i + 1);
        }
    }
    let kept = |optional: usize| -> Vec<&Record> {
        let end = if optional == 0 { 0 } else { ends[optional - 1] };
        res.additional
            .iter()
            .enumerate()
            .filter(|(i, r)| needed(r) || *i < end)
            .map(|(_, r)| r)
            .collect()
    };
    if !fits(&kept(0)) {
        return false;
    }
    // The most optional RRsets that fit, in order: adding one never
    // shrinks the message.
    let (mut low, mut high) = (0, ends.len());
    while low < high {
        let mid = (low + high).div_ceil(2);
        if fits(&kept(mid)) {
            low = mid;
        } else {
            high = mid - 1;
        }
    }
    let end = if low == 0 { 0 } else { ends[low - 1] };
    let mut i = 0;
    res.additional.retain(|r| {
        let keep = needed(r) || i < end;
        i += 1;
        keep
    });
    true
}
