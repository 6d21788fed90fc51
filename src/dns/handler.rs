//! Answers DNS messages from the current answer table. The table sits
//! behind an atomic pointer: a query loads it once and answers from that one
//! table, while a reload or a failover swaps in a new one without a lock.

use std::sync::Arc;

use arc_swap::ArcSwap;
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

use super::ResponseCounters;
use crate::zone::{AnswerTable, table::Resolution};

/// The largest UDP payload we send, whatever the client offers: the DNS
/// flag day 2020 value, which avoids IP fragmentation.
pub const MAX_UDP_PAYLOAD: u16 = 1232;

/// The table the query path reads; swapped whole on reload and failover.
pub type SharedTable = Arc<ArcSwap<AnswerTable>>;

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

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let edns = request.edns.as_ref().map(|asked| {
            let mut edns = Edns::new();
            edns.set_max_payload(MAX_UDP_PAYLOAD);
            edns.set_version(0);
            // RFC 3225 section 3: the DO bit is copied into the response.
            edns.set_dnssec_ok(asked.flags().dnssec_ok);
            edns
        });
        let mut metadata = Metadata::response_from_request(&request.metadata);
        let builder = || MessageResponseBuilder::new(&request.queries, edns.as_ref());

        let queries = request.queries.queries();
        let question = if request.metadata.op_code != OpCode::Query {
            Err(ResponseCode::NotImp)
        } else if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            // RFC 6891 section 6.1.3.
            Err(ResponseCode::BADVERS)
        } else {
            match queries {
                [query] => match (query.query_class(), query.query_type()) {
                    (DNSClass::IN, RecordType::AXFR | RecordType::IXFR) => {
                        Err(ResponseCode::Refused)
                    }
                    (DNSClass::IN, RecordType::OPT) => Err(ResponseCode::FormErr),
                    (DNSClass::IN, _) => Ok(query.original()),
                    _ => Err(ResponseCode::Refused),
                },
                _ => Err(ResponseCode::FormErr),
            }
        };
        let result = match question {
            Err(rcode) => {
                metadata.response_code = rcode;
                response_handle
                    .send_response(builder().build_no_records(metadata))
                    .await
            }
            Ok(query) => {
                // One table for the whole answer; the guard is gone before
                // the first await.
                let res = self.table.load().resolve(query.name(), query.query_type());
                metadata.response_code = res.rcode;
                metadata.authoritative = res.authoritative;
                let limit = match request.protocol() {
                    Protocol::Udp => request.max_payload().min(MAX_UDP_PAYLOAD),
                    _ => u16::MAX,
                };
                if fits(request, edns.as_ref(), metadata, &res, limit) {
                    let response = builder().build(
                        metadata,
                        res.answer.iter(),
                        res.authority.iter(),
                        [],
                        res.additional.iter(),
                    );
                    response_handle.send_response(response).await
                } else {
                    // RFC 2181 section 9: no partial RRsets; the client
                    // retries over TCP.
                    metadata.truncation = true;
                    response_handle
                        .send_response(builder().build_no_records(metadata))
                        .await
                }
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
