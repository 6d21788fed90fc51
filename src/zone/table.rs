//! The answer table: every served zone's names (lower case, wire format)
//! with the range of their records in the zone's wire-format `Records`,
//! decoded only for the answer being made, and the authoritative lookup over them (RFC 1034
//! section 4.3.2, wildcards per RFC 4592, minimal ANY per RFC 8482). A table
//! is immutable once built; the server swaps whole tables, so every answer
//! comes from one consistent state.
//!
//! What the zone files hold is built once per load and shared by every
//! table made from it; what changes (the failover records, the apex with
//! the SOA serial served) is an overlay of a few nodes, so a new table
//! after a failover costs the names that changed, not the zone.

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap},
    ops::Range,
    sync::Arc,
};

use rustc_hash::FxHashSet;

use hickory_proto::{
    op::ResponseCode,
    rr::{LowerName, Name, RData, Record, RecordType},
};

use super::{
    Records, Zone,
    records::{lower_wire, wire_key, wire_name, wire_zone_of},
};

/// CNAME chains inside a zone are followed this far, then left as they are.
const MAX_CNAME_CHAIN: usize = 16;

/// The types whose answers the fast path writes from the zone's records
/// (`AnswerTable::direct`): their data holds no names.
pub const DIRECT: [RecordType; 6] = [
    RecordType::A,
    RecordType::AAAA,
    RecordType::TXT,
    RecordType::CAA,
    RecordType::SSHFP,
    RecordType::TLSA,
];

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
    /// The origin in wire format, lower case.
    origin_key: Box<[u8]>,
    /// The zone file's records, grouped by owner, with every name of the
    /// zone (`Records::find`).
    records: Arc<Records>,
    /// Names the zone file does not hold that exist as empty nodes: the
    /// failover records' names and the names between them and the apex,
    /// in wire format, lower case.
    extra: Arc<FxHashSet<Box<[u8]>>>,
    /// Nodes that differ from `nodes`: the apex with the SOA serial
    /// served, and the names of the failover records.
    overlay: HashMap<LowerName, Node>,
    /// The overlay's names, and those of the failover records, in wire
    /// format, lower case: names the fast path leaves alone.
    overlay_keys: Vec<Box<[u8]>>,
    /// Names below the apex that carry NS records (zone cuts), in wire
    /// format, lower case.
    cuts: Arc<FxHashSet<Box<[u8]>>>,
    /// The SOA with the negative-caching TTL, min(SOA TTL, SOA minimum)
    /// (RFC 2308 section 3), for the authority section of negative answers.
    negative_soa: Record,
    serial: u32,
    /// A signed zone's signing state (`dnssec:`).
    signed: Option<Arc<crate::dnssec::Signed>>,
    /// This node's keys are not the agreed ones: DNSSEC answers of the
    /// zone get SERVFAIL.
    dnssec_refused: bool,
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

/// A node found: the zone file's (its records' range, decoded when
/// used) or the overlay's.
#[derive(Clone, Copy)]
enum NodeRef<'a> {
    Zone(&'a Records, usize, usize),
    Overlay(&'a Node),
}

impl<'a> NodeRef<'a> {
    /// The RRset of `rtype` here.
    fn get(self, rtype: RecordType) -> Option<Cow<'a, [Record]>> {
        match self {
            Self::Overlay(node) => node.get(rtype).map(Cow::Borrowed),
            Self::Zone(records, start, end) => {
                let set: Vec<Record> = (start..end)
                    .filter(|&i| records.rtype(i) == rtype)
                    .map(|i| records.get(i))
                    .collect();
                (!set.is_empty()).then_some(Cow::Owned(set))
            }
        }
    }

    /// The RRset with the lowest type code, for ANY; the signatures and
    /// NSEC records of a signed zone only when there is nothing else.
    fn first(self) -> Option<Cow<'a, [Record]>> {
        let types = self.types();
        let rtype = types
            .iter()
            .find(|t| !matches!(t, RecordType::RRSIG | RecordType::NSEC))
            .or(types.first())?;
        self.get(*rtype)
    }

    fn types(self) -> Vec<RecordType> {
        match self {
            Self::Overlay(node) => node.rrsets.iter().map(|(t, _)| *t).collect(),
            Self::Zone(records, start, end) => {
                let mut types: Vec<RecordType> = (start..end).map(|i| records.rtype(i)).collect();
                types.dedup();
                types
            }
        }
    }

    /// A copy of the node, to change in an overlay.
    fn owned(self) -> Node {
        match self {
            Self::Overlay(node) => node.clone(),
            Self::Zone(records, start, end) => {
                let mut node = Node::default();
                for i in start..end {
                    let record = records.get(i);
                    let rtype = record.record_type();
                    match node.rrsets.last_mut() {
                        Some((t, set)) if *t == rtype => set.push(record),
                        _ => node.rrsets.push((rtype, vec![record])),
                    }
                }
                node
            }
        }
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
                let mut apex = zone
                    .static_node(&zone.origin)
                    .map(NodeRef::owned)
                    .unwrap_or_default();
                for (_, set) in &mut apex.rrsets {
                    for record in set {
                        if let RData::SOA(soa) = &mut record.data {
                            soa.serial = serial;
                        }
                    }
                }
                overlay.insert(zone.origin.clone(), apex);
                let mine = self.records_of(zone, records);
                let signatures = zone.signatures(&mine, serial);
                for record in mine.iter().copied().chain(&signatures) {
                    let name = LowerName::new(&record.name);
                    let node = overlay.entry(name.clone()).or_insert_with(|| {
                        zone.static_node(&name)
                            .map(NodeRef::owned)
                            .unwrap_or_default()
                    });
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
                    origin_key: zone.origin_key.clone(),
                    records: zone.records.clone(),
                    extra: zone.extra.clone(),
                    overlay_keys: zone
                        .overlay_keys
                        .iter()
                        .cloned()
                        .chain(overlay.keys().map(|n| wire_key(n).to_vec().into()))
                        .collect(),
                    overlay,
                    cuts: zone.cuts.clone(),
                    negative_soa,
                    serial,
                    signed: zone.signed.clone(),
                    dnssec_refused: false,
                }
            })
            .collect();
        Self { zones }
    }

    /// The records of `records` whose closest zone is `zone`.
    fn records_of<'r>(&self, zone: &ZoneTable, records: &'r [Record]) -> Vec<&'r Record> {
        records
            .iter()
            .filter(|record| {
                let name = LowerName::new(&record.name);
                self.zones
                    .iter()
                    .find(|z| z.origin.zone_of(&name))
                    .is_some_and(|z| z.origin == zone.origin)
            })
            .collect()
    }

    /// What signed zones serve beside the failover records `records`
    /// with the serials `serials`: the SOA's RRSIG, the failover RRsets'
    /// (made ahead at the load) and the NSEC of the failover names with
    /// its RRSIG. Nothing for unsigned zones. Transfers send these with
    /// the failover records.
    pub fn signatures(&self, records: &[Record], serials: &BTreeMap<String, u32>) -> Vec<Record> {
        self.zones
            .iter()
            .filter(|zone| zone.signed.is_some())
            .flat_map(|zone| {
                let serial = serials
                    .get(&Name::from(&zone.origin).to_string())
                    .copied()
                    .unwrap_or(zone.serial);
                zone.signatures(&self.records_of(zone, records), serial)
            })
            .collect()
    }

    /// Refuses the DNSSEC answers (SERVFAIL) of the signed zones named in
    /// `zones` (origins as text): their keys here are not the agreed ones.
    pub fn refuse_dnssec(&mut self, zones: &std::collections::BTreeSet<String>) {
        for zone in &mut self.zones {
            zone.dnssec_refused =
                zone.signed.is_some() && zones.contains(&Name::from(&zone.origin).to_string());
        }
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
        self.names_where(|_| true)
    }

    /// The names whose types `keep` wants, with those types.
    pub fn names_where(
        &self,
        keep: impl Fn(&[RecordType]) -> bool,
    ) -> Vec<(Name, Vec<RecordType>)> {
        let mut names = Vec::new();
        for z in &self.zones {
            for (name, node) in &z.overlay {
                let types = NodeRef::Overlay(node).types();
                if keep(&types) {
                    names.push((Name::from(name), types));
                }
            }
            let extra = z.extra.iter().map(|key| (&key[..], 0..0));
            for (key, range) in z.records.names().chain(extra) {
                let types = NodeRef::Zone(&z.records, range.start, range.end).types();
                if !keep(&types) {
                    continue;
                }
                let name = wire_name(key);
                if !z.overlay.contains_key(&name) {
                    names.push((Name::from(&name), types));
                }
            }
        }
        names
    }

    /// For the fast path: the zone file's records that answer `qtype` at
    /// `key` (a name in wire format, lower case) when they are the whole
    /// answer, with nothing in the other sections: a name of the zone's
    /// own data that no overlay changes (not the apex, not a failover
    /// record's name, not at or below a zone cut), a type whose data
    /// holds no names, and records of that type there. Anything else is
    /// `None`, and goes the general way.
    pub fn direct(
        &self,
        key: &[u8],
        qtype: RecordType,
        dnssec: bool,
    ) -> Option<(&Records, Range<usize>, Vec<usize>)> {
        if !DIRECT.contains(&qtype) {
            return None;
        }
        let zone = self
            .zones
            .iter()
            .find(|z| wire_zone_of(&z.origin_key, key))?;
        if *key == *zone.origin_key || zone.overlay_keys.iter().any(|k| **k == *key) {
            return None;
        }
        if !zone.cuts.is_empty() {
            let mut at = 0;
            while key.len() - at > zone.origin_key.len() {
                if zone.cuts.contains(&key[at..]) {
                    return None;
                }
                at += 1 + usize::from(key[at]);
            }
        }
        let records = &*zone.records;
        let Range { start, end } = records.find(key)?;
        let first = (start..end).find(|&i| records.rtype(i) == qtype)?;
        let last = (first..end)
            .find(|&i| records.rtype(i) != qtype)
            .unwrap_or(end);
        // A signed zone's answer to DO carries the RRSIGs covering it
        // (a zone whose keys are refused here goes the general way).
        let signatures = match (&zone.signed, dnssec) {
            (Some(_), true) if zone.dnssec_refused => return None,
            (Some(_), true) => (start..end)
                .filter(|&i| {
                    records.rtype(i) == RecordType::RRSIG
                        && crate::dnssec::sign::covered(records.rdata(i)) == Some(qtype)
                })
                .collect(),
            _ => Vec::new(),
        };
        Some((records, first..last, signatures))
    }

    /// Answers `qtype` for `qname` (as the client wrote it: its case is kept
    /// in owner names).
    pub fn resolve(&self, qname: &Name, qtype: RecordType) -> Resolution {
        let lower = LowerName::new(qname);
        match self.zones.iter().find(|z| z.origin.zone_of(&lower)) {
            Some(zone) => zone.resolve(qname, lower, qtype, false),
            None => Resolution::new(ResponseCode::Refused, false),
        }
    }

    /// `resolve`, with the RRSIGs and denial proofs of signed zones when
    /// `dnssec` (the query's DO bit).
    pub fn resolve_signed(&self, qname: &Name, qtype: RecordType, dnssec: bool) -> Resolution {
        let lower = LowerName::new(qname);
        match self.zones.iter().find(|z| z.origin.zone_of(&lower)) {
            Some(zone) => zone.resolve(qname, lower, qtype, dnssec),
            None => Resolution::new(ResponseCode::Refused, false),
        }
    }
}

impl ZoneTable {
    fn build(zone: Zone, dynamic: &[Name]) -> Option<Self> {
        let origin = LowerName::new(&zone.origin);
        let origin_key: Box<[u8]> = wire_key(&origin).to_vec().into();
        let records = zone.records;
        let soa = records.first_of(RecordType::SOA)?;
        let (serial, minimum) = match &soa.data {
            RData::SOA(s) => (s.serial, s.minimum),
            _ => return None,
        };
        let mut negative_soa = soa;
        negative_soa.ttl = negative_soa.ttl.min(minimum);

        // A failover record's name exists even where the zone file has
        // nothing, and so do the names between it and the apex.
        let mut extra = FxHashSet::default();
        let mut overlay_keys: Vec<Box<[u8]>> = Vec::new();
        for name in dynamic {
            let key = wire_key(&LowerName::new(name));
            if !wire_zone_of(&origin_key, &key) {
                continue;
            }
            overlay_keys.push(key.to_vec().into());
            let mut at = 0;
            loop {
                let name = &key[at..];
                if records.find(name).is_some() || extra.contains(name) {
                    break;
                }
                extra.insert(Box::<[u8]>::from(name));
                if name.len() <= origin_key.len() || name[0] == 0 {
                    break;
                }
                at += 1 + usize::from(name[0]);
            }
        }
        let cuts: FxHashSet<Box<[u8]>> = records
            .names()
            .filter(|(key, range)| {
                !key.eq_ignore_ascii_case(&origin_key)
                    && range.clone().any(|i| records.rtype(i) == RecordType::NS)
            })
            .map(|(key, _)| lower_wire(key))
            .collect();
        Some(Self {
            origin,
            origin_key,
            records,
            extra: Arc::new(extra),
            overlay: HashMap::new(),
            overlay_keys,
            cuts: Arc::new(cuts),
            negative_soa,
            serial,
            signed: zone.signed,
            dnssec_refused: false,
        })
    }

    /// `AnswerTable::signatures` for this zone: `mine` are the failover
    /// records in it.
    fn signatures(&self, mine: &[&Record], serial: u32) -> Vec<Record> {
        let Some(signed) = &self.signed else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if let Some(mut soa) = self
            .static_node(&self.origin)
            .and_then(|n| n.get(RecordType::SOA))
            .map(|set| set.into_owned())
        {
            for record in &mut soa {
                if let RData::SOA(data) = &mut record.data {
                    data.serial = serial;
                }
            }
            out.extend(signed.sign(&soa).iter().cloned());
        }
        let mut sets: Vec<Vec<Record>> = Vec::new();
        for record in mine {
            match sets
                .iter_mut()
                .find(|s| s[0].name == record.name && s[0].record_type() == record.record_type())
            {
                Some(set) => set.push((*record).clone()),
                None => sets.push(vec![(*record).clone()]),
            }
        }
        for set in &sets {
            out.extend(signed.sign(set).iter().cloned());
        }
        out.extend(signed.dynamic_nsecs(|key| {
            let name = wire_name(key);
            let mut types = self
                .static_node(&name)
                .map(NodeRef::types)
                .unwrap_or_default();
            for set in &sets {
                if LowerName::new(&set[0].name) == name {
                    types.push(set[0].record_type());
                }
            }
            types
        }));
        out
    }

    /// The zone file's node at `name`.
    fn static_node(&self, name: &LowerName) -> Option<NodeRef<'_>> {
        let key = wire_key(name);
        match self.records.find(&key) {
            Some(range) => Some(NodeRef::Zone(&self.records, range.start, range.end)),
            None => self
                .extra
                .contains(&*key)
                .then_some(NodeRef::Zone(&self.records, 0, 0)),
        }
    }

    /// The node at `name`: the overlay's, else the zone file's.
    fn node(&self, name: &LowerName) -> Option<NodeRef<'_>> {
        let node = self.raw_node(name)?;
        // An NSEC3 record's hashed owner is not a name of the zone (as
        // BIND and Knot keep NSEC3 apart): a node holding only NSEC3 and
        // its RRSIG does not exist for lookups.
        if self.nsec3() && name.num_labels() == self.origin.num_labels() + 1 {
            let types = node.types();
            if !types.is_empty()
                && types
                    .iter()
                    .all(|t| matches!(t, RecordType::NSEC3 | RecordType::RRSIG))
            {
                return None;
            }
        }
        Some(node)
    }

    /// The node at `name`, NSEC3 owners included.
    fn raw_node(&self, name: &LowerName) -> Option<NodeRef<'_>> {
        match self.overlay.get(name) {
            Some(node) => Some(NodeRef::Overlay(node)),
            None => self.static_node(name),
        }
    }

    /// Whether the zone denies by NSEC3.
    fn nsec3(&self) -> bool {
        self.signed
            .as_ref()
            .is_some_and(|s| s.denial == crate::dnssec::Denial::Nsec3)
    }

    /// The NSEC3 record (with its RRSIG) at the hashed owner `owner` (wire
    /// format), once.
    fn nsec3_at(&self, owner: &[u8], out: &mut Vec<Record>) {
        let name = wire_name(owner);
        proof(self.raw_node(&name), &name, RecordType::NSEC3, out);
    }

    /// The next closer name of `name` (RFC 5155 section 1.3): one label
    /// longer than its closest encloser `encloser`.
    fn next_closer(name: &LowerName, encloser: &LowerName) -> LowerName {
        let mut next = name.clone();
        while next.num_labels() > encloser.num_labels() + 1 {
            next = next.base_name();
        }
        next
    }

    /// Proof that `name` does not exist and no wildcard answers for it:
    /// with NSEC, the NSEC covering it and the one covering the wildcard
    /// at its closest encloser (RFC 4035 section 3.1.3.2); with NSEC3,
    /// the closest encloser proof (the NSEC3 matching it, the one covering
    /// the next closer name) and the NSEC3 covering the wildcard (RFC 5155
    /// section 7.2.2).
    fn prove_nxdomain(&self, name: &LowerName, out: &mut Vec<Record>) {
        let encloser = self.closest_encloser(name);
        let star = Name::from(&encloser)
            .prepend_label("*")
            .ok()
            .map(|n| LowerName::new(&n));
        match (&self.signed, self.nsec3()) {
            (Some(signed), true) => {
                if let Some(owner) = signed.nsec3_matching(&wire_key(&encloser)) {
                    self.nsec3_at(&owner, out);
                }
                let next = Self::next_closer(name, &encloser);
                if let Some(owner) = signed.nsec3_covering(&wire_key(&next)) {
                    self.nsec3_at(&owner, out);
                }
                if let Some(star) = star
                    && let Some(owner) = signed.nsec3_covering(&wire_key(&star))
                {
                    self.nsec3_at(&owner, out);
                }
            }
            _ => {
                self.deny(name, out);
                if let Some(star) = star {
                    self.deny(&star, out);
                }
            }
        }
    }

    /// Proof that the name a wildcard answered for does not exist: the
    /// NSEC covering it (RFC 4035 section 3.1.3.3), or the NSEC3 covering
    /// its next closer name (RFC 5155 section 7.2.6).
    fn prove_expansion(&self, name: &LowerName, out: &mut Vec<Record>) {
        match (&self.signed, self.nsec3()) {
            (Some(signed), true) => {
                let encloser = self.closest_encloser(name);
                let next = Self::next_closer(name, &encloser);
                if let Some(owner) = signed.nsec3_covering(&wire_key(&next)) {
                    self.nsec3_at(&owner, out);
                }
            }
            _ => self.deny(name, out),
        }
    }

    fn resolve(
        &self,
        qname: &Name,
        lower: LowerName,
        qtype: RecordType,
        dnssec: bool,
    ) -> Resolution {
        // RRSIGs and denial proofs go only to a client that set DO (RFC
        // 4035 section 3.2.1), for a zone that is signed.
        let dnssec = dnssec && self.signed.is_some();
        let keys_asked = crate::dnssec::is_signing_type(qtype);
        if self.dnssec_refused && (dnssec || keys_asked) {
            return Resolution::new(ResponseCode::ServFail, false);
        }
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
                        if dnssec {
                            // The DS, or the NSEC proving there is none
                            // (RFC 4035 section 3.1.4).
                            let node = self.node(&cut);
                            match node.and_then(|n| n.get(RecordType::DS)) {
                                Some(ds) => {
                                    res.authority.extend(ds.iter().cloned());
                                    let owner = Name::from(&cut);
                                    let sigs = signatures(node, RecordType::DS, &owner);
                                    res.authority.extend(sigs);
                                }
                                None => self.nsec_at(&cut, &mut res.authority),
                            }
                        }
                    }
                    return res;
                }
            }
            let (node, owner, wildcard) = match self.node(&lower) {
                Some(node) => (node, name.clone(), None),
                None => match self.wildcard_for(&lower) {
                    // The answer is synthesised with the name asked for.
                    Some((node, wildcard)) => (node, name.clone(), Some(wildcard)),
                    None => {
                        res.rcode = ResponseCode::NXDomain;
                        self.negative(dnssec, &mut res);
                        if dnssec {
                            self.prove_nxdomain(&lower, &mut res.authority);
                        }
                        return res;
                    }
                },
            };
            // A wildcard's answer also proves the name asked for does not
            // exist (RFC 4035 section 3.1.3.3).
            let expanded = |res: &mut Resolution| {
                if dnssec && wildcard.is_some() {
                    self.prove_expansion(&lower, &mut res.authority);
                }
            };
            let positive = |res: &mut Resolution, set: &[Record]| {
                res.answer.extend(renamed(set, &owner));
                if dnssec && let Some(first) = set.first() {
                    res.answer
                        .extend(signatures(Some(node), first.record_type(), &owner));
                }
            };
            if qtype == RecordType::ANY {
                // RFC 8482: one RRset is enough.
                match node.first() {
                    Some(set) => {
                        positive(&mut res, &set);
                        expanded(&mut res);
                        self.additional_for(&set, &mut res, dnssec);
                    }
                    None => self.negative(dnssec, &mut res),
                }
                return res;
            }
            if let Some(set) = node.get(qtype) {
                positive(&mut res, &set);
                expanded(&mut res);
                self.additional_for(&set, &mut res, dnssec);
                return res;
            }
            if let Some(set) = node.get(RecordType::CNAME) {
                positive(&mut res, &set);
                expanded(&mut res);
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
            self.negative(dnssec, &mut res);
            if dnssec {
                // No data: the NSEC at the name (or, for a wildcard, the
                // proof the name does not exist and the wildcard's NSEC;
                // for an empty non-terminal, the NSEC that covers it).
                match &wildcard {
                    Some(star) => {
                        if self.nsec3() {
                            // RFC 5155 section 7.2.5: the closest
                            // encloser's NSEC3 too.
                            let encloser = self.closest_encloser(&lower);
                            self.nsec_at(&encloser, &mut res.authority);
                        }
                        self.prove_expansion(&lower, &mut res.authority);
                        self.nsec_at(star, &mut res.authority);
                    }
                    None => self.nsec_at(&lower, &mut res.authority),
                }
            }
            return res;
        }
    }

    /// The SOA of a negative answer, and its RRSIG for `dnssec`.
    fn negative(&self, dnssec: bool, res: &mut Resolution) {
        res.authority.push(self.negative_soa.clone());
        if dnssec {
            let owner = Name::from(&self.origin);
            let ttl = self.negative_soa.ttl;
            res.authority.extend(
                signatures(self.node(&self.origin), RecordType::SOA, &owner).map(|mut r| {
                    r.ttl = ttl;
                    r
                }),
            );
        }
    }

    /// The NSEC at `name` with its RRSIG; the one that covers it when
    /// `name` has none (an empty non-terminal).
    fn nsec_at(&self, name: &LowerName, out: &mut Vec<Record>) {
        if let (Some(signed), true) = (&self.signed, self.nsec3()) {
            // Every name has its NSEC3, empty non-terminals too.
            match signed.nsec3_matching(&wire_key(name)) {
                Some(owner) => self.nsec3_at(&owner, out),
                None => {
                    if let Some(owner) = signed.nsec3_covering(&wire_key(name)) {
                        self.nsec3_at(&owner, out);
                    }
                }
            }
            return;
        }
        if !proof(self.node(name), name, RecordType::NSEC, out) {
            self.deny(name, out);
        }
    }

    /// The NSEC (with its RRSIG) whose span covers `name`, once.
    fn deny(&self, name: &LowerName, out: &mut Vec<Record>) {
        let Some(signed) = &self.signed else {
            return;
        };
        let Some(covering) = signed.covering(&wire_key(name)) else {
            return;
        };
        let covering = wire_name(covering);
        proof(self.node(&covering), &covering, RecordType::NSEC, out);
    }

    /// The closest existing ancestor of `name` (RFC 4592 section 3.3.1).
    fn closest_encloser(&self, name: &LowerName) -> LowerName {
        let mut encloser = name.base_name();
        while self.node(&encloser).is_none() && encloser != self.origin && !encloser.is_root() {
            encloser = encloser.base_name();
        }
        encloser
    }

    /// The highest zone cut at or above `name`, if any.
    fn cut_above(&self, name: &LowerName) -> Option<LowerName> {
        if self.cuts.is_empty() {
            return None;
        }
        let key = wire_key(name);
        // Where each label starts, from the name's first down to the apex.
        let mut starts = Vec::with_capacity(8);
        let mut at = 0;
        while key.len() - at > self.origin_key.len() {
            starts.push(at);
            at += 1 + usize::from(key[at]);
        }
        starts
            .iter()
            .rev()
            .map(|&at| &key[at..])
            .find(|candidate| self.cuts.contains(*candidate))
            .map(wire_name)
    }

    /// The wildcard node that covers `name`, which does not exist: `*.` and
    /// the closest existing ancestor (RFC 4592 section 3.3.1).
    fn wildcard_for(&self, name: &LowerName) -> Option<(NodeRef<'_>, LowerName)> {
        let encloser = self.closest_encloser(name);
        self.node(&encloser)?;
        let wildcard = LowerName::new(&Name::from(&encloser).prepend_label("*").ok()?);
        self.node(&wildcard).map(|node| (node, wildcard))
    }

    fn referral(&self, cut: &LowerName, res: &mut Resolution) {
        if let Some(ns) = self.node(cut).and_then(|n| n.get(RecordType::NS)) {
            res.authority.extend(ns.iter().cloned());
            // Glue below the cut is not the zone's data: never signed.
            self.add_addresses(&ns, res, false);
        }
    }

    /// Additional-section processing (RFC 1034 section 4.3.2 step 6): the
    /// addresses of the names NS, MX and SRV answers point at, where this
    /// zone has them; with `dnssec`, the RRSIGs of those that are the
    /// zone's own data (RFC 4035 section 3.1.1), not glue below a cut.
    fn additional_for(&self, set: &[Record], res: &mut Resolution, dnssec: bool) {
        if let Some(first) = set.first()
            && matches!(
                first.record_type(),
                RecordType::NS | RecordType::MX | RecordType::SRV
            )
        {
            self.add_addresses(set, res, dnssec);
        }
    }

    fn add_addresses(&self, set: &[Record], res: &mut Resolution, dnssec: bool) {
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
            let signed = dnssec && self.cut_above(&target).is_none();
            if let Some(node) = self.node(&target) {
                for rtype in [RecordType::A, RecordType::AAAA] {
                    if let Some(addresses) = node.get(rtype) {
                        res.additional.extend(addresses.iter().cloned());
                        if signed {
                            let owner = Name::from(&target);
                            res.additional.extend(signatures(Some(node), rtype, &owner));
                        }
                    }
                }
            }
            done.push(target);
        }
    }
}

/// The `rtype` (NSEC or NSEC3) records at `node` (named `name`) with their
/// RRSIGs, each added to `out` once; whether there were any.
fn proof(
    node: Option<NodeRef<'_>>,
    name: &LowerName,
    rtype: RecordType,
    out: &mut Vec<Record>,
) -> bool {
    let Some(set) = node.and_then(|n| n.get(rtype)) else {
        return false;
    };
    let owner = Name::from(name);
    for record in set.iter().cloned().chain(signatures(node, rtype, &owner)) {
        if !out.contains(&record) {
            out.push(record);
        }
    }
    true
}

/// The RRSIGs at `node` that cover `rtype`, with the owner `owner` (a
/// wildcard's keep their labels field: the validator sees the expansion).
fn signatures<'a>(
    node: Option<NodeRef<'a>>,
    rtype: RecordType,
    owner: &Name,
) -> impl Iterator<Item = Record> + 'a {
    let sigs = node
        .and_then(|n| n.get(RecordType::RRSIG))
        .unwrap_or_default();
    let owner = owner.clone();
    sigs.into_owned().into_iter().filter_map(move |mut r| {
        let covers = match &r.data {
            RData::Unknown { rdata, .. } => {
                crate::dnssec::sign::covered(&rdata.anything) == Some(rtype)
            }
            _ => false,
        };
        covers.then(|| {
            r.name = owner.clone();
            r
        })
    })
}

/// `set` with every owner name replaced by `owner`.
fn renamed<'a>(set: &'a [Record], owner: &'a Name) -> impl Iterator<Item = Record> + 'a {
    set.iter().map(move |r| {
        let mut r = r.clone();
        r.name = owner.clone();
        r
    })
}
