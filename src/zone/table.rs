//! The answer table: every served zone compiled into nodes keyed by
//! lower-cased name, and the authoritative lookup over them (RFC 1034
//! section 4.3.2, wildcards per RFC 4592, minimal ANY per RFC 8482). A table
//! is immutable once built; the server swaps whole tables, so every answer
//! comes from one consistent state.

use std::collections::{HashMap, HashSet};

use hickory_proto::{
    op::ResponseCode,
    rr::{LowerName, Name, RData, Record, RecordType},
};

use super::Zone;

/// CNAME chains inside a zone are followed this far, then left as they are.
const MAX_CNAME_CHAIN: usize = 16;

/// All served zones, ready for lookups.
#[derive(Debug, Default)]
pub struct AnswerTable {
    /// Longest origin first, so the first zone that contains a name is the
    /// closest one.
    zones: Vec<ZoneTable>,
}

#[derive(Debug)]
struct ZoneTable {
    origin: LowerName,
    nodes: HashMap<LowerName, Node>,
    /// Names below the apex that carry NS records: zone cuts.
    cuts: HashSet<LowerName>,
    /// The SOA with the negative-caching TTL, min(SOA TTL, SOA minimum)
    /// (RFC 2308 section 3), for the authority section of negative answers.
    negative_soa: Record,
    serial: u32,
}

/// The records at one name; empty for an empty non-terminal.
#[derive(Debug, Default)]
struct Node {
    /// Sorted by type code.
    rrsets: Vec<(RecordType, Vec<Record>)>,
}

impl Node {
    fn get(&self, rtype: RecordType) -> Option<&[Record]> {
        self.rrsets
            .iter()
            .find(|(t, _)| *t == rtype)
            .map(|(_, r)| r.as_slice())
    }
}

/// What a query resolves to, before it is put on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub rcode: ResponseCode,
    pub authoritative: bool,
    pub answer: Vec<Record>,
    pub authority: Vec<Record>,
    pub additional: Vec<Record>,
}

impl Resolution {
    fn new(rcode: ResponseCode, authoritative: bool) -> Self {
        Self {
            rcode,
            authoritative,
            answer: Vec::new(),
            authority: Vec::new(),
            additional: Vec::new(),
        }
    }
}

impl AnswerTable {
    /// Compiles checked zones into a table.
    pub fn build(zones: Vec<Zone>) -> Self {
        let mut tables: Vec<ZoneTable> = zones.into_iter().filter_map(ZoneTable::build).collect();
        tables.sort_by_key(|z| std::cmp::Reverse(z.origin.num_labels()));
        Self { zones: tables }
    }

    /// The zones served, with their SOA serials, for logs.
    pub fn summary(&self) -> Vec<(Name, u32)> {
        self.zones
            .iter()
            .map(|z| (Name::from(&z.origin), z.serial))
            .collect()
    }

    /// Every name the zones hold (empty non-terminals too), with the types
    /// of the records at it.
    pub fn names(&self) -> Vec<(Name, Vec<RecordType>)> {
        self.zones
            .iter()
            .flat_map(|z| {
                z.nodes.iter().map(|(name, node)| {
                    (
                        Name::from(name),
                        node.rrsets.iter().map(|(t, _)| *t).collect(),
                    )
                })
            })
            .collect()
    }

    /// Answers `qtype` for `qname` (as the client wrote it: its case is kept
    /// in owner names).
    pub fn resolve(&self, qname: &Name, qtype: RecordType) -> Resolution {
        let lower = LowerName::new(qname);
        match self.zones.iter().find(|z| z.origin.zone_of(&lower)) {
            Some(zone) => zone.resolve(qname, lower, qtype),
            None => Resolution::new(ResponseCode::Refused, false),
        }
    }
}

impl ZoneTable {
    fn build(zone: Zone) -> Option<Self> {
        let origin = LowerName::new(&zone.origin);
        let (soa, serial) = zone.records.iter().find_map(|r| match &r.data {
            RData::SOA(soa) => Some((r.clone(), soa.serial)),
            _ => None,
        })?;
        let minimum = match &soa.data {
            RData::SOA(s) => s.minimum,
            _ => soa.ttl,
        };
        let mut negative_soa = soa;
        negative_soa.ttl = negative_soa.ttl.min(minimum);

        let mut nodes: HashMap<LowerName, Node> = HashMap::new();
        let mut cuts = HashSet::new();
        for record in zone.records {
            let owner = LowerName::new(&record.name);
            // Every name between the owner and the apex exists, if only as
            // an empty non-terminal (RFC 4592 section 2.2.2).
            let mut parent = owner.base_name();
            while origin.zone_of(&parent) && parent != owner {
                nodes.entry(parent.clone()).or_default();
                if parent == origin {
                    break;
                }
                parent = parent.base_name();
            }
            let rtype = record.record_type();
            if rtype == RecordType::NS && owner != origin {
                cuts.insert(owner.clone());
            }
            let node = nodes.entry(owner).or_default();
            match node.rrsets.iter_mut().find(|(t, _)| *t == rtype) {
                Some((_, set)) => set.push(record),
                None => node.rrsets.push((rtype, vec![record])),
            }
        }
        for node in nodes.values_mut() {
            node.rrsets.sort_by_key(|(t, _)| u16::from(*t));
        }
        Some(Self {
            origin,
            nodes,
            cuts,
            negative_soa,
            serial,
        })
    }

    fn resolve(&self, qname: &Name, lower: LowerName, qtype: RecordType) -> Resolution {
        let mut res = Resolution::new(ResponseCode::NoError, true);
        let mut name = qname.clone();
        let mut lower = lower;
        let mut visited: Vec<LowerName> = Vec::new();
        loop {
            if let Some(cut) = self.cut_above(&lower) {
                // DS lives on the parent side of a cut (RFC 4035 section 3.1.4.1).
                let ds_at_cut = cut == lower && qtype == RecordType::DS;
                if !ds_at_cut {
                    if res.answer.is_empty() {
                        res.authoritative = false;
                        self.referral(&cut, &mut res);
                    }
                    return res;
                }
            }
            let (node, owner) = match self.nodes.get(&lower) {
                Some(node) => (node, name.clone()),
                None => match self.wildcard_for(&lower) {
                    // The answer is synthesised with the name asked for.
                    Some(node) => (node, name.clone()),
                    None => {
                        res.rcode = ResponseCode::NXDomain;
                        res.authority.push(self.negative_soa.clone());
                        return res;
                    }
                },
            };
            if qtype == RecordType::ANY {
                // RFC 8482: one RRset is enough.
                match node.rrsets.first() {
                    Some((_, set)) => {
                        res.answer.extend(renamed(set, &owner));
                        self.additional_for(set, &mut res);
                    }
                    None => res.authority.push(self.negative_soa.clone()),
                }
                return res;
            }
            if let Some(set) = node.get(qtype) {
                res.answer.extend(renamed(set, &owner));
                self.additional_for(set, &mut res);
                return res;
            }
            if let Some(set) = node.get(RecordType::CNAME) {
                res.answer.extend(renamed(set, &owner));
                let target = match set.first().map(|r| &r.data) {
                    Some(RData::CNAME(target)) => target.0.clone(),
                    _ => return res,
                };
                let target_lower = LowerName::new(&target);
                visited.push(lower);
                if !self.origin.zone_of(&target_lower)
                    || visited.contains(&target_lower)
                    || visited.len() >= MAX_CNAME_CHAIN
                {
                    return res;
                }
                name = target;
                lower = target_lower;
                continue;
            }
            res.authority.push(self.negative_soa.clone());
            return res;
        }
    }

    /// The highest zone cut at or above `name`, if any.
    fn cut_above(&self, name: &LowerName) -> Option<LowerName> {
        if self.cuts.is_empty() {
            return None;
        }
        let apex_labels = self.origin.num_labels();
        let full = Name::from(name);
        (apex_labels + 1..=name.num_labels())
            .map(|n| LowerName::new(&full.trim_to(n as usize)))
            .find(|candidate| self.cuts.contains(candidate))
    }

    /// The wildcard node that covers `name`, which does not exist: `*.` and
    /// the closest existing ancestor (RFC 4592 section 3.3.1).
    fn wildcard_for(&self, name: &LowerName) -> Option<&Node> {
        let mut encloser = name.base_name();
        while !self.nodes.contains_key(&encloser) {
            if encloser == self.origin || encloser.is_root() {
                return None;
            }
            encloser = encloser.base_name();
        }
        let wildcard = Name::from(&encloser).prepend_label("*").ok()?;
        self.nodes.get(&LowerName::new(&wildcard))
    }

    fn referral(&self, cut: &LowerName, res: &mut Resolution) {
        if let Some(ns) = self.nodes.get(cut).and_then(|n| n.get(RecordType::NS)) {
            res.authority.extend(ns.iter().cloned());
            self.add_addresses(ns, res);
        }
    }

    /// Additional-section processing (RFC 1034 section 4.3.2 step 6): the
    /// addresses of the names NS, MX and SRV answers point at, where this
    /// zone has them.
    fn additional_for(&self, set: &[Record], res: &mut Resolution) {
        if let Some(first) = set.first()
            && matches!(
                first.record_type(),
                RecordType::NS | RecordType::MX | RecordType::SRV
            )
        {
            self.add_addresses(set, res);
        }
    }

    fn add_addresses(&self, set: &[Record], res: &mut Resolution) {
        let mut done: Vec<LowerName> = Vec::new();
        for record in set {
            let target = match &record.data {
                RData::NS(ns) => &ns.0,
                RData::MX(mx) => &mx.exchange,
                RData::SRV(srv) => &srv.target,
                _ => continue,
            };
            let target = LowerName::new(target);
            if done.contains(&target) || !self.origin.zone_of(&target) {
                continue;
            }
            if let Some(node) = self.nodes.get(&target) {
                for rtype in [RecordType::A, RecordType::AAAA] {
                    if let Some(addresses) = node.get(rtype) {
                        res.additional.extend(addresses.iter().cloned());
                    }
                }
            }
            done.push(target);
        }
    }
}

/// `set` with every owner name replaced by `owner`.
fn renamed<'a>(set: &'a [Record], owner: &'a Name) -> impl Iterator<Item = Record> + 'a {
    set.iter().map(move |r| {
        let mut r = r.clone();
        r.name = owner.clone();
        r
    })
}
