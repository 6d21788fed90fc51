//! Answers DNS messages from the current answer table. The table sits
//! behind an atomic pointer: a query loads it once and answers from that one
//! table, while a reload or a failover swaps in a new one without a lock.
//!
//! `prepare` decides the whole response; it is then either handed to
//! hickory-server (TCP) or encoded here (`encode`: our UDP loop and the
//! precomputed answers of `fast`), so every path sends the same bytes.

use std::sync::Arc;

use hickory_proto::{
    op::{Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode},
    rr::{DNSClass, RecordType},
    serialize::binary::BinEncoder,
};
use hickory_server::{
    net::{runtime::Time, xfer::Protocol},
    server::{Request, RequestHandler, ResponseHandler, ResponseInfo},
    zone_handler::MessageResponseBuilder,
};
use tracing::warn;

use super::{ResponseCounters, Served};
use crate::zone::{AnswerTable, table::Resolution};

/// The largest UDP payload we send, whatever the client offers: the DNS
/// flag day 2020 value, which avoids IP fragmentation.
pub const MAX_UDP_PAYLOAD: u16 = 1232;

/// What the query path reads; swapped whole on reload and failover.
pub type SharedTable = Arc<arc_swap::ArcSwap<Served>>;

/// hickory-server's request handler over our answer table.
#[derive(Clone)]
pub struct Handler {
    table: SharedTable,
    counters: Arc<ResponseCounters>,
}

impl Handler {
    pub fn new(table: SharedTable, counters: Arc<ResponseCounters>) -> Self {
        Self { table, counters }
    }
}

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
    // Over TCP the whole message limit is hickory's to enforce; only a UDP
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

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        // One table for the whole answer; the guard is gone before the
        // first await.
        let prepared = prepare(&self.table.load().table, request);
        let builder = MessageResponseBuilder::new(&request.queries, prepared.edns.as_ref());
        let result = match &prepared.resolution {
            Some(res) => {
                let response = builder.build(
                    prepared.metadata,
                    res.answer.iter(),
                    res.authority.iter(),
                    [],
                    res.additional.iter(),
                );
                response_handle.send_response(response).await
            }
            None => {
                response_handle
                    .send_response(builder.build_no_records(prepared.metadata))
                    .await
            }
        };
        match result {
            Ok(info) => {
                self.counters.count(info.response_code);
                info
            }
            Err(error) => {
                warn!(%error, "could not send a DNS response");
                let mut metadata = Metadata::new(
                    request.metadata.id,
                    MessageType::Response,
                    request.metadata.op_code,
                );
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            }
        }
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
