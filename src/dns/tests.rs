//! Whole messages through `handler::respond` and `transfer::answer`: TSIG
//! as a client other than ours writes it (the MACs here are made and
//! checked by hand, from RFC 8945 section 4.3.3, not by `tsig`), answers
//! that must fit the client's size, and what `refused` remembers.

use std::{
    collections::VecDeque,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use hickory_proto::{
    op::{Edns, Message, MessageType, OpCode, Query, ResponseCode},
    rr::{DNSClass, LowerName, Name, RData, Record, RecordType, rdata::A},
};
use hickory_server::{net::xfer::Protocol, server::Request};
use ring::hmac;

use super::{
    Served, handler,
    transfer::{self, Transfers, Version, ZoneVersions},
    tsig::{self, Signing},
};
use crate::{
    config::{Allow, Prefix, TsigAlgorithm, TsigKey},
    zone::AnswerTable,
};

const SECRET: [u8; 32] = [7; 32];
const KEY: &str = "transfer-key.";
const ALGORITHM: &str = "hmac-sha256.";

fn key() -> TsigKey {
    TsigKey::new(
        Name::from_ascii(KEY).unwrap(),
        TsigAlgorithm::HmacSha256,
        SECRET.to_vec(),
    )
}

/// The example zones, with example.com transferable under the key from
/// loopback and 2,000 more records in its one version (a transfer of
/// several messages).
fn served() -> Served {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.yaml");
    let config = crate::config::Config::load(&path).unwrap();
    let zones = crate::zone::load_all(&config).unwrap();
    let zone = zones
        .iter()
        .find(|z| z.origin.to_ascii() == "example.com.")
        .unwrap();
    let failover = (0..2000u16)
        .map(|i| {
            Record::from_rdata(
                Name::from_ascii(format!("h{i}.example.com.")).unwrap(),
                300,
                RData::A(A::new(10, 0, (i >> 8) as u8, i as u8)),
            )
        })
        .collect();
    let version = Version {
        serial: 1,
        soa: zone.records.first_of(RecordType::SOA).unwrap(),
        statics: zone.records.clone(),
        failover,
    };
    let transfers = Transfers {
        keys: vec![key()],
        zones: vec![ZoneVersions {
            origin: LowerName::new(&zone.origin),
            allow: vec![Allow {
                from: Prefix {
                    addr: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
                    len: 8,
                },
                key: Some(key().name),
            }],
            current: Some(Arc::new(version)),
            changes: VecDeque::new(),
            withheld: false,
        }],
    };
    Served::new(AnswerTable::build(zones), Arc::new(transfers))
}

fn src() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 5353))
}

fn query(name: &str, rtype: RecordType) -> Vec<u8> {
    let mut message = Message::new(0x1234, MessageType::Query, OpCode::Query);
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    message.to_vec().unwrap()
}

fn wire(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.trim_end_matches('.').split('.') {
        out.push(label.len() as u8);
        out.extend(label.to_ascii_lowercase().bytes());
    }
    out.push(0);
    out
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

/// A TSIG's fields, read by hand from the end of a message.
#[derive(Debug)]
struct Fields {
    /// Where the record starts.
    start: usize,
    time: u64,
    fudge: u16,
    mac: Vec<u8>,
    original_id: u16,
    error: u16,
    other: Vec<u8>,
}

fn fields(message: &[u8]) -> Fields {
    let owner = wire(KEY);
    let start = (12..message.len())
        .find(|&s| {
            message[s..].starts_with(&owner)
                && message.len() > s + owner.len() + 10
                && usize::from(u16_at(message, s + owner.len() + 8))
                    == message.len() - s - owner.len() - 10
        })
        .expect("a TSIG record at the end");
    let r = start + owner.len() + 10 + wire(ALGORITHM).len();
    let time = (u64::from(u16_at(message, r)) << 32)
        | u64::from(u32::from_be_bytes(
            message[r + 2..r + 6].try_into().unwrap(),
        ));
    let mac_len = usize::from(u16_at(message, r + 8));
    let at = r + 10 + mac_len;
    let other_len = usize::from(u16_at(message, at + 4));
    Fields {
        start,
        time,
        fudge: u16_at(message, r + 6),
        mac: message[r + 10..at].to_vec(),
        original_id: u16_at(message, at),
        error: u16_at(message, at + 2),
        other: message[at + 6..at + 6 + other_len].to_vec(),
    }
}

/// The MAC over `unsigned` (the message as before its TSIG) following
/// `prior`, RFC 8945 section 4.3.3; only the timers when `timers_only`.
fn mac(
    prior: Option<&[u8]>,
    unsigned: &[u8],
    time: u64,
    fudge: u16,
    error: u16,
    other: &[u8],
    timers_only: bool,
) -> Vec<u8> {
    let mut input = Vec::new();
    if let Some(prior) = prior {
        input.extend((prior.len() as u16).to_be_bytes());
        input.extend(prior);
    }
    input.extend(unsigned);
    if !timers_only {
        input.extend(wire(KEY));
        input.extend(255u16.to_be_bytes());
        input.extend(0u32.to_be_bytes());
        input.extend(wire(ALGORITHM));
    }
    input.extend(((time >> 32) as u16).to_be_bytes());
    input.extend((time as u32).to_be_bytes());
    input.extend(fudge.to_be_bytes());
    if !timers_only {
        input.extend(error.to_be_bytes());
        input.extend((other.len() as u16).to_be_bytes());
        input.extend(other);
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, &SECRET);
    hmac::sign(&key, &input).as_ref().to_vec()
}

/// `message` signed by hand at `time` with `fudge`; its MAC.
fn sign_by_hand(message: &mut Vec<u8>, time: u64, fudge: u16) -> Vec<u8> {
    let mac = mac(None, message, time, fudge, 0, &[], false);
    let mut rdata = wire(ALGORITHM);
    rdata.extend(((time >> 32) as u16).to_be_bytes());
    rdata.extend((time as u32).to_be_bytes());
    rdata.extend(fudge.to_be_bytes());
    rdata.extend((mac.len() as u16).to_be_bytes());
    rdata.extend(&mac);
    rdata.extend(message[0..2].to_vec());
    rdata.extend([0, 0, 0, 0]);
    message.extend(wire(KEY));
    message.extend([0, 250, 0, 255, 0, 0, 0, 0]);
    message.extend((rdata.len() as u16).to_be_bytes());
    message.extend(rdata);
    message[11] += 1;
    mac
}

/// Checks by hand the TSIG of one answer message following `prior`.
fn verify_by_hand(message: &[u8], prior: &[u8], timers_only: bool) -> Fields {
    let f = fields(message);
    let mut unsigned = message[..f.start].to_vec();
    unsigned[0..2].copy_from_slice(&f.original_id.to_be_bytes());
    unsigned[11] -= 1;
    let expected = mac(
        Some(prior),
        &unsigned,
        f.time,
        f.fudge,
        f.error,
        &f.other,
        timers_only,
    );
    assert_eq!(f.mac, expected, "the MAC does not verify: {f:?}");
    f
}

fn respond(served: &Served, packet: &[u8], protocol: Protocol) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    handler::respond(served, packet, src(), protocol, &mut out).expect("an answer");
    out
}

#[test]
fn a_request_signed_with_a_fudge_of_600_is_answered_signed_with_it() {
    let served = served();
    let mut packet = query("example.com.", RecordType::SOA);
    let request_mac = sign_by_hand(&mut packet, tsig::now(), 600);
    let reply = respond(&served, &packet, Protocol::Udp).remove(0);
    let message = Message::from_vec(&reply).unwrap();
    assert_eq!(
        message.metadata.response_code,
        ResponseCode::NoError,
        "{message:?}"
    );
    let f = verify_by_hand(&reply, &request_mac, false);
    assert_eq!((f.fudge, f.error), (600, 0));
    // 500 s off is within its fudge of 600, though past our 300.
    let mut packet = query("example.com.", RecordType::SOA);
    let request_mac = sign_by_hand(&mut packet, tsig::now() - 500, 600);
    let reply = respond(&served, &packet, Protocol::Udp).remove(0);
    assert_eq!(verify_by_hand(&reply, &request_mac, false).error, 0);
}

#[test]
fn badtime_carries_the_requests_time_and_ours_as_other_data() {
    let served = served();
    let mut packet = query("example.com.", RecordType::SOA);
    let signed_at = tsig::now() - 10_000;
    let request_mac = sign_by_hand(&mut packet, signed_at, 600);
    let before = tsig::now();
    let reply = respond(&served, &packet, Protocol::Udp).remove(0);
    let after = tsig::now();
    assert_eq!(reply[3] & 0x0F, 9, "NOTAUTH");
    let f = verify_by_hand(&reply, &request_mac, false);
    assert_eq!((f.error, f.time, f.fudge), (18, signed_at, 600));
    assert_eq!(f.other.len(), 6);
    let ours = (u64::from(u16_at(&f.other, 0)) << 32)
        | u64::from(u32::from_be_bytes(f.other[2..6].try_into().unwrap()));
    assert!((before..=after).contains(&ours), "{ours}");
}

#[test]
fn a_slipped_answer_to_a_signed_query_is_signed() {
    let served = served();
    let mut packet = query("mail.example.com.", RecordType::MX);
    let request_mac = sign_by_hand(&mut packet, tsig::now(), 300);
    let mut reply = respond(&served, &packet, Protocol::Udp).remove(0);
    handler::slip(&served, &packet, &mut reply);
    let message = Message::from_vec(&reply).unwrap();
    assert!(message.metadata.truncation);
    assert!(message.answers.is_empty() && message.authorities.is_empty());
    // The TSIG alone.
    assert_eq!(message.additionals.len(), 1);
    assert_eq!(message.additionals[0].record_type(), RecordType::TSIG);
    assert_eq!(message.queries.len(), 1);
    verify_by_hand(&reply, &request_mac, false);
    // Unsigned, it is the question with TC, as before.
    let packet = query("mail.example.com.", RecordType::MX);
    let mut reply = respond(&served, &packet, Protocol::Udp).remove(0);
    handler::slip(&served, &packet, &mut reply);
    assert_eq!(reply.len(), packet.len());
}

/// A clock that moves a second each time it is read.
fn ticking() -> u64 {
    static NOW: AtomicU64 = AtomicU64::new(1_800_000_000);
    NOW.fetch_add(1, Ordering::Relaxed)
}

#[test]
fn each_message_of_a_transfer_carries_the_time_it_was_signed_at() {
    let served = served();
    let mut packet = query("example.com.", RecordType::AXFR);
    let request_mac = sign_by_hand(&mut packet, tsig::now(), 300);
    let request = Request::from_bytes(packet, src(), Protocol::Tcp).unwrap();
    let key = key();
    let signing = Signing {
        key: &key,
        request_mac: &request_mac,
        fudge: 300,
    };
    let mut out = Vec::new();
    transfer::answer(
        &served.transfers,
        &request,
        RecordType::AXFR,
        Some(signing),
        ticking,
        &mut out,
    );
    assert!(out.len() > 2, "{} messages", out.len());
    let mut prior = request_mac;
    let mut times = Vec::new();
    for (i, message) in out.iter().enumerate() {
        let f = verify_by_hand(message, &prior, i > 0);
        times.push(f.time);
        prior = f.mac;
    }
    assert!(times.windows(2).all(|t| t[0] < t[1]), "{times:?}");
}

#[test]
fn refusals_are_remembered_in_a_fixed_table_one_slot_a_call() {
    let told = super::Told::new();
    let a = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    assert!(told.first_in_a_minute(a, 100));
    assert!(!told.first_in_a_minute(a, 159));
    assert!(told.first_in_a_minute(a, 160));
    // An IPv6 source is one with its /64.
    let v6 = |last: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, last));
    assert!(told.first_in_a_minute(v6(1), 100));
    assert!(!told.first_in_a_minute(v6(2), 101));
    assert!(told.first_in_a_minute(
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 1)),
        101
    ));
    // A flood of distinct sources: each call looks at one slot, however
    // many came before, and the table does not grow.
    for round in 0..4u32 {
        let before = told.looked.load(Ordering::Relaxed);
        for i in 0..50_000u32 {
            told.first_in_a_minute(IpAddr::V4(Ipv4Addr::from(round << 24 | i)), 200);
        }
        assert_eq!(told.looked.load(Ordering::Relaxed) - before, 50_000);
        assert_eq!(told.slots.len(), super::TOLD_SLOTS);
    }
    // And it still remembers a source told after the flood.
    let b = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
    assert!(told.first_in_a_minute(b, 300));
    assert!(!told.first_in_a_minute(b, 301));
}

#[test]
fn a_signed_udp_answer_keeps_room_for_its_tsig() {
    let served = served();
    let ask = |payload: u16, signed: bool| {
        let mut message = Message::from_vec(&query("big.example.com.", RecordType::TXT)).unwrap();
        let mut edns = Edns::new();
        edns.set_max_payload(payload);
        message.set_edns(edns);
        let mut packet = message.to_vec().unwrap();
        let mac = signed.then(|| sign_by_hand(&mut packet, tsig::now(), 300));
        (respond(&served, &packet, Protocol::Udp).remove(0), mac)
    };
    // Unsigned, the whole answer takes `size` bytes.
    let (whole, _) = ask(1232, false);
    let size = whole.len();
    assert!(size > 512 && size + 20 < 1232, "{size}");
    assert_eq!(whole[2] & 0x02, 0);
    // Signed, with room for the answer but not for its TSIG as well: cut
    // to fit, TC set, signed.
    let (reply, mac) = ask(size as u16 + 20, true);
    assert!(reply.len() <= size + 20, "{} > {}", reply.len(), size + 20);
    assert_ne!(reply[2] & 0x02, 0, "TC");
    verify_by_hand(&reply, &mac.unwrap(), false);
    // With room for both: whole and signed.
    let (reply, mac) = ask(1232, true);
    assert_eq!(reply[2] & 0x02, 0);
    assert!(reply.len() > size);
    verify_by_hand(&reply, &mac.unwrap(), false);
}

/// A query with an OPT record of `version`, in `class`.
fn query_with_edns(name: &str, rtype: RecordType, class: DNSClass, version: u8) -> Vec<u8> {
    let mut message = Message::new(0x4321, MessageType::Query, OpCode::Query);
    let mut question = Query::query(Name::from_ascii(name).unwrap(), rtype);
    question.set_query_class(class);
    message.add_query(question);
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.set_version(version);
    message.set_edns(edns);
    message.to_vec().unwrap()
}

#[test]
fn transfer_answers_and_refusals_carry_opt_when_the_request_did() {
    let served = served();
    // A signed AXFR: every message has its OPT (before its TSIG).
    let mut packet = query_with_edns("example.com.", RecordType::AXFR, DNSClass::IN, 0);
    let request_mac = sign_by_hand(&mut packet, tsig::now(), 300);
    let out = respond(&served, &packet, Protocol::Tcp);
    assert!(out.len() > 2);
    let mut prior = request_mac;
    for (i, message) in out.iter().enumerate() {
        let parsed = Message::from_vec(message).unwrap();
        let edns = parsed
            .edns
            .as_ref()
            .unwrap_or_else(|| panic!("no OPT: {parsed:?}"));
        assert_eq!((edns.version(), edns.max_payload()), (0, 1232));
        prior = verify_by_hand(message, &prior, i > 0).mac;
    }
    // Unsigned where a key is needed: REFUSED, with OPT.
    let packet = query_with_edns("example.com.", RecordType::AXFR, DNSClass::IN, 0);
    let reply = Message::from_vec(&respond(&served, &packet, Protocol::Tcp)[0]).unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
    assert!(reply.edns.is_some());
    // A wrong signature: NOTAUTH, with OPT.
    let mut packet = query_with_edns("example.com.", RecordType::SOA, DNSClass::IN, 0);
    sign_by_hand(&mut packet, tsig::now(), 300);
    let last = packet.len() - 10;
    packet[last] ^= 1; // in the MAC
    let reply = Message::from_vec(&respond(&served, &packet, Protocol::Udp)[0]).unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::NotAuth);
    assert!(reply.edns.is_some());
}

#[test]
fn transfers_of_another_edns_version_or_class_are_not_served() {
    let served = served();
    for rtype in [RecordType::AXFR, RecordType::IXFR] {
        // EDNS version 1: BADVERS, answered with version 0.
        let mut packet = query_with_edns("example.com.", rtype, DNSClass::IN, 1);
        sign_by_hand(&mut packet, tsig::now(), 300);
        let out = respond(&served, &packet, Protocol::Tcp);
        let reply = Message::from_vec(&out[0]).unwrap();
        assert_eq!(out.len(), 1);
        // BADVERS, 16 (which hickory reads as BADSIG, the same number).
        assert_eq!(u16::from(reply.metadata.response_code), 16, "{rtype}");
        assert_eq!(reply.edns.as_ref().map(|e| e.version()), Some(0));
        assert!(reply.answers.is_empty());
        // Class CH or ANY: REFUSED, as NSD refuses a CH transfer.
        for class in [DNSClass::CH, DNSClass::ANY] {
            let mut packet = query_with_edns("example.com.", rtype, class, 0);
            sign_by_hand(&mut packet, tsig::now(), 300);
            let out = respond(&served, &packet, Protocol::Tcp);
            let reply = Message::from_vec(&out[0]).unwrap();
            assert_eq!(out.len(), 1);
            assert_eq!(
                reply.metadata.response_code,
                ResponseCode::Refused,
                "{rtype} {class}"
            );
            assert!(reply.answers.is_empty());
        }
    }
}
