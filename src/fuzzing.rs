//! The fuzz targets' bodies: the DNS request path, the zone file parser and
//! the config loader, each taking any bytes. `tests/fuzz` (libFuzzer,
//! through cargo fuzz or bench/fuzz.sh) runs them, and
//! `tests/fuzz_corpus.rs` replays the kept inputs in `cargo test`. They
//! panic only on a bug: a panic in the code they call, or an answer that
//! breaks a rule checked here.

use std::{
    net::SocketAddr,
    path::Path,
    sync::{Arc, OnceLock},
};

use hickory_proto::{
    op::Message,
    rr::{Name, RecordType},
    serialize::binary::BinDecodable,
};
use hickory_server::net::xfer::Protocol;

use crate::{
    config::Config,
    control::answers,
    dns::{Served, fast, handler, rrl, transfer::History},
    engine::Role,
    zone::{self, table::AnswerTable},
};

/// What the DNS target answers from: config/example-secondaries.yaml (so
/// transfers, TSIG and IXFR are reachable) with two versions of each zone
/// recorded, the primary's and then the secondary's answers.
fn served() -> &'static Arc<Served> {
    static SERVED: OnceLock<Arc<Served>> = OnceLock::new();
    SERVED.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example-secondaries.yaml");
        let config = Config::load(&path).expect("config/example-secondaries.yaml loads");
        let zones = zone::load_all(&config).expect("the example zones load");
        let failover = config.failover.as_ref().expect("a failover section");
        let base = answers::base(&config, &zones);
        let mut serials = answers::serials(&zones, &[], &Default::default(), &Default::default()).0;
        let mut history = History::default();
        history.load(&zones, &config, &Default::default());
        let primary = answers::failover_records(failover, Role::Primary, None);
        history.record(&primary, &serials, &Default::default());
        for serial in serials.values_mut() {
            *serial += 1;
        }
        let secondary = answers::failover_records(failover, Role::Secondary, None);
        let transfers = history.record(&secondary, &serials, &Default::default());
        Arc::new(base.serve(&secondary, &serials, transfers))
    })
}

/// A response we would send: it parses, answers the request's ID and fits
/// a DNS message.
fn check_response(request: &[u8], response: &[u8], protocol: Protocol) {
    assert!(
        response.len() <= 65535,
        "a response of {} bytes",
        response.len()
    );
    let parsed = Message::from_bytes(response)
        .unwrap_or_else(|e| panic!("a response that does not parse ({e}): {response:02x?}"));
    assert_eq!(
        &response[..2],
        &request[..2],
        "the response's ID is not the request's"
    );
    if protocol == Protocol::Udp
        && let Ok(asked) = Message::from_bytes(request)
    {
        let limit = asked
            .edns
            .as_ref()
            .map_or(512, |e| usize::from(e.max_payload().max(512)));
        assert!(
            response.len() <= limit,
            "a UDP response of {} bytes to a request allowing {limit}",
            response.len()
        );
    }
    // What RRL would send in its place parses too.
    let mut slipped = response.to_vec();
    rrl::truncate(&mut slipped);
    if slipped.len() >= 12 {
        Message::from_bytes(&slipped)
            .unwrap_or_else(|e| panic!("a slipped response that does not parse ({e})"));
    }
    let _ = parsed;
}

/// One UDP datagram, and the same bytes as a TCP stream of
/// length-prefixed messages, from an address allowed to transfer.
pub fn dns_request(data: &[u8]) {
    let served = served();
    let src = SocketAddr::from(([127, 0, 0, 1], 53000));

    // UDP: the general way, and the fast path on a first, second (where it
    // learns) and third sight, which must send what the general way does.
    let mut general = Vec::new();
    let rcode = fast::general(served, data, src, &mut general);
    if rcode.is_some() && !general.is_empty() {
        check_response(data, &general, Protocol::Udp);
    }
    let mut recent = fast::Recent::default();
    let mut out = Vec::new();
    for _ in 0..3 {
        out.clear();
        if recent.answer(served, data, &mut out).is_some() && out != general {
            // The fast path may compress a name in the data against the
            // question as asked, in the asker's case: the same names
            // (RFC 4343), compared as hickory's Name compares them.
            let parse = |bytes: &[u8]| Message::from_bytes(bytes).ok();
            assert_eq!(
                parse(&out),
                parse(&general),
                "the fast path and the general way answer differently:\n{out:02x?}\n{general:02x?}"
            );
            assert!(
                parse(&out).is_some(),
                "the fast path's answer does not parse"
            );
        }
    }

    // TCP: each message as the connection loop takes it.
    let mut rest = data;
    while rest.len() >= 2 {
        let length = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let message = &rest[2..(2 + length).min(rest.len())];
        rest = &rest[(2 + length).min(rest.len())..];
        let mut messages = Vec::new();
        handler::respond(served, message, src, Protocol::Tcp, &mut messages);
        for response in &messages {
            check_response(message, response, Protocol::Tcp);
        }
    }
}

/// A zone file's text for example.com: parsed and checked; when it loads,
/// its table built with every answer precomputed, and each name asked
/// for each of its types. `$INCLUDE` lines are not followed (they read
/// other files).
pub fn zone_file(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if text.to_ascii_lowercase().contains("$include") {
        return;
    }
    let origin = Name::from_ascii("example.com.").expect("a name");
    let file = Path::new("/nonexistent/example.com.zone");
    let [direct, hickory] = zone::both_ways(file, &text, &origin);
    assert_eq!(
        direct, hickory,
        "the common types read directly differ from hickory's reading"
    );
    let Ok(zone) = zone::from_text(file, &text, &origin) else {
        return;
    };
    let served = Served::new(AnswerTable::build(vec![zone]), Arc::default());
    let src = SocketAddr::from(([127, 0, 0, 1], 53000));
    let mut out = Vec::new();
    for (name, types) in served.table.names().into_iter().take(64) {
        for rtype in types.into_iter().chain([RecordType::ANY, RecordType::TXT]) {
            let mut query = Message::query();
            query.add_query(hickory_proto::op::Query::query(name.clone(), rtype));
            let Ok(bytes) = query.to_vec() else {
                continue;
            };
            out.clear();
            if fast::general(&served, &bytes, src, &mut out).is_some() && !out.is_empty() {
                check_response(&bytes, &out, Protocol::Udp);
            }
        }
    }
}

/// A config file's text, read as if from a folder that does not exist (so
/// the files it names are not there).
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = Config::parse(Path::new("/nonexistent/config.yaml"), &text);
}
