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
    rr::{DNSClass, RecordType},
    serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder},
};
use hickory_server::{net::xfer::Protocol, server::Request, zone_handler::MessageResponseBuilder};
use tracing::warn;

use super::{
    Served, transfer,
    tsig::{self, Signing, TsigError, Verified},
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

/// Decides the response to `request` from `table`.
pub fn prepare(table: &AnswerTable, request: &Request) -> Prepared {
    let edns = request.edns.as_ref().map(|asked| {
        let mut edns = Edns::new();
        edns.set_max_payload(MAX_UDP_PAYLOAD);
        edns.set_version(0);
        // RFC 3225 section 3: the DO bit is copied into the response.
        edns.set_dnssec_ok(asked.flags().dnssec_ok);
        edns
    });
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
    let res = table.resolve(query.name(), query.query_type());
    metadata.response_code = res.rcode;
    metadata.authoritative = res.authoritative;
    // Over TCP the whole message limit is the encoder's (64 KiB); only a UDP
    // answer is measured against the client's payload before it is sent.
    let fits_udp = match request.protocol() {
        Protocol::Udp => fits(
            request,
            edns.as_ref(),
            metadata,
            &res,
            request.max_payload().min(MAX_UDP_PAYLOAD),
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
pub fn respond(
    served: &Served,
    packet: &[u8],
    src: SocketAddr,
    protocol: Protocol,
    out: &mut Vec<Vec<u8>>,
) -> Option<ResponseCode> {
    let header = Header::read(&mut BinDecoder::new(packet)).ok()?;
    if header.metadata.message_type == MessageType::Response {
        return None;
    }
    let formerr = |out: &mut Vec<Vec<u8>>| {
        let mut metadata = Metadata::response_from_request(&header.metadata);
        metadata.response_code = ResponseCode::FormErr;
        let mut bytes = Vec::with_capacity(12);
        Header {
            metadata,
            counts: HeaderCounts::default(),
        }
        .emit(&mut BinEncoder::new(&mut bytes))
        .ok()?;
        out.push(bytes);
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
            MessageResponseBuilder::new(&request.queries, None)
                .build_no_records(metadata)
                .destructive_emit(&mut BinEncoder::new(&mut bytes))
                .ok()?;
            let now = tsig::now();
            // BADTIME tells the signer our time, and is signed.
            let other = match error {
                TsigError::BadTime => {
                    let mut t = ((now >> 32) as u16).to_be_bytes().to_vec();
                    t.extend_from_slice(&(now as u32).to_be_bytes());
                    t
                }
                _ => Vec::new(),
            };
            tsig::sign(
                &mut bytes,
                &record.key,
                &record.algorithm,
                key.as_ref(),
                Some(&record.mac),
                false,
                now,
                *error as u16,
                &other,
            );
            out.push(bytes);
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
            out,
        ));
    }
    let prepared = prepare(&served.table, &request);
    let mut bytes = Vec::with_capacity(512);
    encode(&request, &prepared, &mut bytes);
    if bytes.is_empty() {
        return None;
    }
    // An error answer repeats every question asked: over UDP, one too
    // long for the client goes as the first question with TC set.
    if protocol == Protocol::Udp
        && bytes.len() > usize::from(request.max_payload().min(MAX_UDP_PAYLOAD))
    {
        super::rrl::truncate(&mut bytes);
    }
    if let Some(signing) = signing {
        signing.sign(&mut bytes, None, tsig::now());
    }
    out.push(bytes);
    Some(prepared.metadata.response_code)
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

/// Whether the whole response fits in `limit` bytes.
fn fits(
    request: &Request,
    edns: Option<&Edns>,
    metadata: Metadata,
    res: &Resolution,
    limit: u16,
) -> bool {
    let mut buffer = Vec::with_capacity(512);
    let mut encoder = BinEncoder::new(&mut buffer);
    encoder.set_max_size(limit);
    let response = MessageResponseBuilder::new(&request.queries, edns).build(
        metadata,
        res.answer.iter(),
        res.authority.iter(),
        [],
        res.additional.iter(),
    );
    match response.destructive_emit(&mut encoder) {
        Ok(info) => !info.truncation,
        Err(_) => false,
    }
}
