//! The answer table: every served zone compiled into nodes keyed by
//! lower-cased name, and the authoritative lookup over them (RFC 1034
//! section 4.3.2, wildcards per RFC 4592, minimal ANY per RFC 8482). A table
//! is immutable once built; the server swaps whole tables, so every answer
//! comes from one consistent state.
//!
//! What the zone files hold is built once per load and shared by every
//! table made from it; what changes (the failover records, the apex with
//! the SOA serial served) is an overlay of a few nodes, so a new table
//! after a failover costs the names that changed, not the zone.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
};

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
    /// The zone file's nodes, shared by every table built from one load.
    nodes: Arc<HashMap<LowerName, Node>>,
    /// Nodes that differ from `nodes`: the apex with the SOA serial
    /// served, and the names of the failover records.
    overlay: HashMap<LowerName, Node>,
    /// Names below the apex that carry NS records: zone cuts.
    cuts: Arc<HashSet<LowerName>>,
    /// The SOA with the negative-caching TTL, min(SOA TTL, SOA minimum)
    /// (RFC 2308 section 3), for the authority section of negative answers.
    negative_soa: Record,
    serial: u32,
}

/// The records at one name; empty for an empty non-terminal.
#[derive(Debug, Default, Clone)]
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
        Self::build_for(zones, &[])
    }

    /// Compiles checked zones into a table whose `dynamic` names (the
    /// failover records') exist, if only as empty nodes, to be filled by
    /// `with_overlay`.
    pub fn build_for(zones: Vec<Zone>, dynamic: &[Name]) -> Self {
        let mut tables: Vec<ZoneTable> = zones
            .into_iter()
            .filter_map(|zone| ZoneTable::build(zone, dynamic))
            .collect();
        tables.sort_by_key(|z| std::cmp::Reverse(z.origin.num_labels()));
        Self { zones: tables }
    }

    /// This table's zone data with `records` added (each to the closest
    /// zone that holds its name) and the SOA serials in `serials` (zone
    /// origin as text to serial); the zone data is shared, not copied.
    pub fn with_overlay(&self, records: &[Record], serials: &BTreeMap<String, u32>) -> Self {
        let zones = self
            .zones
            .iter()
            .map(|zone| {
                let serial = serials
                    .get(&Name::from(&zone.origin).to_string())
                    .copied()
                    .unwrap_or(zone.serial);
                let mut overlay: HashMap<LowerName, Node> = HashMap::new();
                let mut apex = zone.nodes.get(&zone.origin).cloned().unwrap_or_default();
                for (_, set) in &mut apex.rrsets {
                    for record in set {
                        if let RData::SOA(soa) = &mut record.data {
                            soa.serial = serial;
                        }
                    }
                }
                overlay.insert(zone.origin.clone(), apex);
                for record in records {
                    let name = LowerName::new(&record.name);
                    let closest = self
                        .zones
                        .iter()
                        .find(|z| z.origin.zone_of(&name))
                        .map(|z| &z.origin);
                    if closest != Some(&zone.origin) {
                        continue;
                    }
                    let node = overlay
                        .entry(name.clone())
                        .or_insert_with(|| zone.nodes.get(&name).cloned().unwrap_or_default());
                    let rtype = record.record_type();
                    match node.rrsets.iter_mut().find(|(t, _)| *t == rtype) {
                        Some((_, set)) => set.push(record.clone()),
                        None => node.rrsets.push((rtype, vec![record.clone()])),
                    }
                }
                for node in overlay.values_mut() {
                    node.rrsets.sort_by_key(|(t, _)| u16::from(*t));
                }
                let mut negative_soa = zone.negative_soa.clone();
                if let RData::SOA(soa) = &mut negative_soa.data {
                    soa.serial = serial;
                }
                ZoneTable {
                    origin: zone.origin.clone(),
                    nodes: zone.nodes.clone(),
                    overlay,
                    cuts: zone.cuts.clone(),
                    negative_soa,
                    serial,
                }
            })
            .collect();
        Self { zones }
    }

    /// Whether `name` is the apex of a served zone.
    pub fn is_apex(&self, name: &LowerName) -> bool {
        self.zones.iter().any(|z| &z.origin == name)
    }

    /// The overlay's names, with the types of the records at each.
    pub fn overlay_names(&self) -> Vec<(Name, Vec<RecordType>)> {
        self.zones
            .iter()
            .flat_map(|z| {
                z.overlay.iter().map(|(name, node)| {
                    (
                        Name::from(name),
                        node.rrsets.iter().map(|(t, _)| *t).collect(),
                    )
                })
            })
            .collect()
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
                let overlay = z.overlay.iter();
                let rest = z
                    .nodes
                    .iter()
                    .filter(|(name, _)| !z.overlay.contains_key(*name));
                overlay.chain(rest).map(|(name, node)| {
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
    fn build(zone: Zone, dynamic: &[Name]) -> Option<Self> {
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
        // Every name between an owner and the apex exists, if only as an
        // empty non-terminal (RFC 4592 section 2.2.2).
        let exist = |nodes: &mut HashMap<LowerName, Node>, owner: &LowerName| {
            let mut parent = owner.base_name();
            while origin.zone_of(&parent) && &parent != owner {
                nodes.entry(parent.clone()).or_default();
                if parent == origin {
                    break;
                }
                parent = parent.base_name();
            }
        };
        for name in dynamic {
            let owner = LowerName::new(name);
            if origin.zone_of(&owner) {
                exist(&mut nodes, &owner);
                nodes.entry(owner).or_default();
            }
        }
        for record in zone.records.iter().cloned() {
            let owner = LowerName::new(&record.name);
            exist(&mut nodes, &owner);
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
            nodes: Arc::new(nodes),
            overlay: HashMap::new(),
            cuts: Arc::new(cuts),
            negative_soa,
            serial,
        })
    }

    /// The node at `name`: the overlay's, else the zone file's.
    fn node(&self, name: &LowerName) -> Option<&Node> {
        self.overlay.get(name).or_else(|| self.nodes.get(name))
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
            let (node, owner) = match self.node(&lower) {
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
        while self.node(&encloser).is_none() {
            if encloser == self.origin || encloser.is_root() {
                return None;
            }
            encloser = encloser.base_name();
        }
        let wildcard = Name::from(&encloser).prepend_label("*").ok()?;
        self.node(&LowerName::new(&wildcard))
    }

    fn referral(&self, cut: &LowerName, res: &mut Resolution) {
        if let Some(ns) = self.node(cut).and_then(|n| n.get(RecordType::NS)) {
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
            if let Some(node) = self.node(&target) {
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
