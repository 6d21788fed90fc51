//! The compatibility corpus: every name of the shipped zones (and names
//! that probe the lookup rules) with every common type, with and without
//! EDNS, some over TCP; and each answer reduced to what two servers must
//! agree on.

use std::{collections::BTreeSet, fmt, path::Path};

use geofailover::{config::Config, zone};
use hickory_proto::{
    op::Message,
    rr::{Name, Record, RecordType},
};

use super::{query_message, tcp, udp};

#[derive(Clone, Debug)]
pub struct Case {
    pub name: Name,
    pub rtype: RecordType,
    pub edns: bool,
    pub tcp: bool,
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}{}{}",
            self.name,
            self.rtype,
            if self.edns { " +edns" } else { "" },
            if self.tcp { " +tcp" } else { "" }
        )
    }
}

const TYPES: &[RecordType] = &[
    RecordType::A,
    RecordType::AAAA,
    RecordType::NS,
    RecordType::SOA,
    RecordType::CNAME,
    RecordType::MX,
    RecordType::TXT,
    RecordType::SRV,
    RecordType::CAA,
    RecordType::PTR,
    RecordType::DS,
    RecordType::ANY,
];

/// Names that are in no zone file but probe the lookup rules.
const EXTRA_NAMES: &[&str] = &[
    // missing names
    "nope.example.com.",
    "deep.nope.example.com.",
    "99.2.0.192.in-addr.arpa.",
    // empty non-terminals
    "ent.example.com.",
    "b.ent.example.com.",
    "wild.example.com.",
    "_tcp.example.com.",
    // wildcard matches, also deeper than one label and with a CNAME
    "x.wild.example.com.",
    "a.b.wild.example.com.",
    "x.alias.example.com.",
    "deep.x.alias.example.com.",
    // below a delegation
    "y.sub.example.com.",
    "a.b.sub.example.com.",
    // mixed case
    "WwW.ExAmPlE.CoM.",
    "MAIL.example.COM.",
    "Foo.WILD.example.com.",
    "Y.SUB.example.com.",
    "ExAmPlE.cOm.",
    "BLOG.Example.com.",
    // out of every served zone
    "example.org.",
    "xexample.com.",
    "com.",
    ".",
    "0.192.in-addr.arpa.",
];

pub fn corpus() -> Vec<Case> {
    let config = Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.yaml"))
        .expect("example config");
    let zones = zone::load_all(&config).expect("example zones");
    let mut names: Vec<Name> = Vec::new();
    for zone in &zones {
        for record in zone.records.iter() {
            if !names.contains(&record.name) {
                names.push(record.name.clone());
            }
        }
    }
    names.extend(
        EXTRA_NAMES
            .iter()
            .map(|n| Name::from_ascii(n).expect("name")),
    );

    let mut cases = Vec::new();
    for name in &names {
        for &rtype in TYPES {
            for edns in [false, true] {
                cases.push(Case {
                    name: name.clone(),
                    rtype,
                    edns,
                    tcp: false,
                });
            }
        }
        for rtype in [RecordType::A, RecordType::TXT, RecordType::NS] {
            cases.push(Case {
                name: name.clone(),
                rtype,
                edns: false,
                tcp: true,
            });
        }
    }
    cases
}

/// A response reduced to what must match: sections as sets of records in
/// presentation form, lower-cased. Case is compared where it matters: an
/// answer owned by the question's name must carry the question's case
/// exactly (`qname_case_kept`). Elsewhere Knot copies the question's case
/// into any name its compression points into the question (so the SOA
/// owner of a mixed-case query comes back mixed-case) while we keep the
/// zone file's case; names are case-insensitive (RFC 4343), so both are
/// right and that case is not compared.
#[derive(Debug, PartialEq, Eq)]
pub struct Normal {
    pub qname_case_kept: bool,
    pub rcode: String,
    pub aa: bool,
    pub tc: bool,
    pub edns: bool,
    pub answer: BTreeSet<String>,
    pub authority: BTreeSet<String>,
    pub additional: BTreeSet<String>,
}

fn set(records: &[Record]) -> BTreeSet<String> {
    records
        .iter()
        .filter(|r| r.record_type() != RecordType::OPT)
        .map(|r| format!("{} {} {} {}", r.name, r.ttl, r.record_type(), r.data).to_lowercase())
        .collect()
}

pub fn normal(m: &Message, case: &Case) -> Normal {
    let qname = case.name.to_string();
    Normal {
        qname_case_kept: m.queries.iter().all(|q| q.name().to_string() == qname)
            && m.answers
                .iter()
                .filter(|r| r.name.to_string().eq_ignore_ascii_case(&qname))
                .all(|r| r.name.to_string() == qname),
        rcode: m.metadata.response_code.to_string(),
        aa: m.metadata.authoritative,
        tc: m.metadata.truncation,
        edns: m.edns.is_some(),
        answer: set(&m.answers),
        authority: set(&m.authorities),
        additional: set(&m.additionals),
    }
}

pub fn ask(addr: std::net::SocketAddr, case: &Case) -> Message {
    let message = query_message(&case.name, case.rtype, case.edns);
    let reply = if case.tcp {
        tcp(addr, &message)
    } else {
        udp(addr, &message)
    };
    reply.unwrap_or_else(|| panic!("no reply from {addr} to {case}"))
}
