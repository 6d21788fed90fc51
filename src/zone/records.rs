//! A checked zone's records held compactly, in wire format: what a large
//! zone costs in memory is its data, not hickory's in-memory form of it
//! (a `Record` is 272 bytes before its data). Records are grouped by
//! owner (a node: the owner's records, by type code, each RRset in the
//! zone file's order; the nodes in the order their owners first appear),
//! so the answer table refers to a node by its range of records instead
//! of holding copies. A record is decoded into a hickory `Record` only
//! when an answer or a transfer needs it.
//!
//! Layout: `data` holds each node's owner name (wire format, the zone
//! file's case) followed by its entries; an entry is the owner's offset
//! (u32), type, class, TTL, RDATA length and the RDATA, names in it
//! written in full (never compressed), so RDATA can be copied into any
//! message as it is.

use std::{hash::BuildHasher, ops::Range};

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

use hickory_proto::{
    rr::{DNSClass, LowerName, Name, RData, Record, RecordType},
    serialize::binary::{
        BinDecodable, BinDecoder, BinEncodable, BinEncoder, NameEncoding, Restrict,
    },
};

/// Bytes of an entry before its RDATA: owner offset, type, class, TTL,
/// RDATA length.
const ENTRY_HEADER: usize = 4 + 2 + 2 + 4 + 2;

/// Marks an index value as an empty non-terminal: the rest is the offset
/// of its name in `Records::ents`.
const ENT: u32 = 1 << 31;

/// A zone's records in wire format, grouped by owner.
#[derive(Debug, Default)]
pub struct Records {
    data: Vec<u8>,
    /// Where each record's entry starts in `data`.
    entries: Vec<u32>,
    /// Where each node's records start in `entries`, and one past the last.
    nodes: Vec<u32>,
    /// Where each node's owner name is in `data`.
    owners: Vec<u32>,
    /// Every name of the zone: a node's number, or `ENT` and where its
    /// name is in `ents` for an empty non-terminal (RFC 4592 section
    /// 2.2.2: every name between an owner and the apex exists). Hashed
    /// by the name in lower case; the names are the zone file's, so
    /// lookups cannot add to it and the fast hash needs no key; no name
    /// is held twice.
    index: HashTable<u32>,
    /// The empty non-terminals' names, wire format, lower case.
    ents: Vec<u8>,
}

impl PartialEq for Records {
    fn eq(&self, other: &Self) -> bool {
        self.data == other.data && self.entries == other.entries && self.nodes == other.nodes
    }
}

impl Eq for Records {}

/// The hash of a wire-format name as DNS compares names: in lower case.
fn hash_name(name: &[u8]) -> u64 {
    let mut buf = [0u8; 255];
    let n = name.len().min(255);
    for (to, from) in buf.iter_mut().zip(&name[..n]) {
        *to = from.to_ascii_lowercase();
    }
    FxBuildHasher.hash_one(&buf[..n])
}

impl Records {
    /// Groups `records` (checked: RRsets without duplicates) by owner;
    /// the apex is the SOA's owner.
    pub fn build(records: Vec<Record>) -> Self {
        let mut gather = Gather::default();
        let apex = records
            .iter()
            .find(|r| r.record_type() == RecordType::SOA)
            .map_or_else(|| wire_key_of(&Name::root()), |r| wire_key_of(&r.name));
        for record in &records {
            let (node, _) = gather.node(&record.name);
            // Left out when it cannot be written (the zone check refuses
            // it first).
            let _ = gather.push(node, record);
        }
        gather.finish(&apex)
    }

    /// The name an index value stands for (a node's owner in the zone
    /// file's case, or an empty non-terminal's in lower case).
    fn key_of(&self, value: u32) -> &[u8] {
        let name = if value & ENT != 0 {
            &self.ents[(value & !ENT) as usize..]
        } else {
            &self.data[self.owners[value as usize] as usize..]
        };
        &name[..wire_len(name)]
    }

    /// The node at `key` (wire format): the range of its records, empty
    /// for an empty non-terminal.
    pub fn find(&self, key: &[u8]) -> Option<Range<usize>> {
        self.index
            .find(hash_name(key), |&v| {
                self.key_of(v).eq_ignore_ascii_case(key)
            })
            .map(|&v| self.range(v))
    }

    fn range(&self, value: u32) -> Range<usize> {
        if value & ENT != 0 {
            return 0..0;
        }
        let node = value as usize;
        self.nodes[node] as usize..self.nodes[node + 1] as usize
    }

    /// Every name (wire format, in the zone file's case) with the range
    /// of its records.
    pub fn names(&self) -> impl Iterator<Item = (&[u8], Range<usize>)> + '_ {
        self.index.iter().map(|&v| (self.key_of(v), self.range(v)))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn entry(&self, i: usize) -> &[u8] {
        &self.data[self.entries[i] as usize..]
    }

    /// Record `i`'s owner name in wire format, in the zone file's case.
    pub fn owner(&self, i: usize) -> &[u8] {
        let e = self.entry(i);
        let at = u32::from_le_bytes([e[0], e[1], e[2], e[3]]) as usize;
        let name = &self.data[at..];
        &name[..wire_len(name)]
    }

    pub fn rtype(&self, i: usize) -> RecordType {
        let e = self.entry(i);
        RecordType::from(u16::from_be_bytes([e[4], e[5]]))
    }

    pub fn ttl(&self, i: usize) -> u32 {
        let e = self.entry(i);
        u32::from_be_bytes([e[8], e[9], e[10], e[11]])
    }

    /// Record `i` as it goes on the wire after its owner name: type,
    /// class, TTL, RDATA length and RDATA.
    pub fn wire(&self, i: usize) -> &[u8] {
        let e = self.entry(i);
        let length = usize::from(u16::from_be_bytes([e[12], e[13]]));
        &e[4..ENTRY_HEADER + length]
    }

    pub fn rdata(&self, i: usize) -> &[u8] {
        &self.wire(i)[ENTRY_HEADER - 4..]
    }

    /// Record `i`, decoded.
    pub fn get(&self, i: usize) -> Record {
        let name = Name::read(&mut BinDecoder::new(self.owner(i)))
            .expect("an owner name written by `build`");
        let rtype = self.rtype(i);
        let rdata = self.rdata(i);
        let data = RData::read(
            &mut BinDecoder::new(rdata),
            rtype,
            Restrict::new(rdata.len() as u16),
        )
        .expect("RDATA written by `build` reads back");
        let e = self.entry(i);
        let mut record = Record::from_rdata(name, self.ttl(i), data);
        record.dns_class = DNSClass::from(u16::from_be_bytes([e[6], e[7]]));
        record
    }

    /// Every record, decoded, node by node.
    pub fn iter(&self) -> impl Iterator<Item = Record> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Every record decoded, for tests and small zones.
    pub fn to_vec(&self) -> Vec<Record> {
        self.iter().collect()
    }

    /// The nodes: each owner (wire format, the zone file's case) with the
    /// range of its records.
    pub fn nodes(&self) -> impl Iterator<Item = (&[u8], Range<usize>)> + '_ {
        (0..self.owners.len() as u32).map(|n| (self.key_of(n), self.range(n)))
    }

    /// The records owned by `name`, decoded.
    pub fn at(&self, name: &Name) -> Vec<Record> {
        self.find(&wire_key_of(name))
            .map(|range| range.map(|i| self.get(i)).collect())
            .unwrap_or_default()
    }

    /// A digest of the content as served, the same whatever order the
    /// zone file lists it in: every record's owner (in the file's case),
    /// type, class, TTL and RDATA, the SOA's serial left out (the served
    /// serial stands for it). Each record's SHA-256 is summed lane by
    /// lane, the sum hashed once more; hex.
    pub fn digest(&self) -> String {
        use ring::digest::{Context, SHA256, digest};
        let mut sum = [0u64; 4];
        for i in 0..self.len() {
            let mut context = Context::new(&SHA256);
            context.update(self.owner(i));
            let wire = self.wire(i);
            let header = ENTRY_HEADER - 4;
            if self.rtype(i) == RecordType::SOA {
                let rdata = &wire[header..];
                let mname = wire_len(rdata);
                let names = (mname + wire_len(&rdata[mname..])).min(rdata.len());
                context.update(&wire[..header + names]);
                context.update(rdata.get(names + 4..).unwrap_or_default());
            } else {
                context.update(wire);
            }
            let hashed = context.finish();
            for (lane, bytes) in sum.iter_mut().zip(hashed.as_ref().chunks_exact(8)) {
                let mut word = [0u8; 8];
                word.copy_from_slice(bytes);
                *lane = lane.wrapping_add(u64::from_le_bytes(word));
            }
        }
        let mut folded = Vec::with_capacity(40);
        for lane in sum {
            folded.extend_from_slice(&lane.to_le_bytes());
        }
        folded.extend_from_slice(&(self.len() as u64).to_le_bytes());
        digest(&SHA256, &folded)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The first record of type `rtype`, decoded.
    pub fn first_of(&self, rtype: RecordType) -> Option<Record> {
        (0..self.len())
            .find(|&i| self.rtype(i) == rtype)
            .map(|i| self.get(i))
    }
}

/// A zone's records as they are read, each written in wire format at
/// once (so a large zone is never held in hickory's form), then grouped
/// by `finish`.
#[derive(Debug, Default)]
pub struct Gather {
    /// Owner names, and entries as in `Records` without the owner offset.
    data: Vec<u8>,
    entries: Vec<u32>,
    /// Each entry's node, and the node's entry before it (or `NONE`).
    entry_node: Vec<u32>,
    previous: Vec<u32>,
    /// Per node: its owner's offset in `data`, and its last entry.
    owners: Vec<u32>,
    last: Vec<u32>,
    /// The nodes by owner name, as in `Records`.
    index: HashTable<u32>,
    scratch: Vec<u8>,
}

/// No entry.
const NONE: u32 = u32::MAX;

impl Gather {
    /// Room for about `records` records of `bytes` in all, so a large
    /// zone's arrays are not copied as they grow.
    pub fn with_capacity(records: usize, bytes: usize) -> Self {
        Self {
            data: Vec::with_capacity(bytes),
            entries: Vec::with_capacity(records),
            entry_node: Vec::with_capacity(records),
            previous: Vec::with_capacity(records),
            owners: Vec::with_capacity(records / 2),
            last: Vec::with_capacity(records / 2),
            index: HashTable::with_capacity(records / 2),
            scratch: Vec::new(),
        }
    }

    fn owner(&self, node: u32) -> &[u8] {
        let name = &self.data[self.owners[node as usize] as usize..];
        &name[..wire_len(name)]
    }

    /// The node at `key` (wire format), if there is one yet.
    pub fn find(&self, key: &[u8]) -> Option<usize> {
        self.index
            .find(hash_name(key), |&n| self.owner(n).eq_ignore_ascii_case(key))
            .map(|&n| n as usize)
    }

    /// The node of `owner`, made (with the owner written in the case
    /// given) when it is new; whether it is.
    pub fn node(&mut self, owner: &Name) -> (usize, bool) {
        self.scratch.clear();
        // A name that parsed always writes.
        let _ = owner.emit(&mut BinEncoder::new(&mut self.scratch));
        let hash = hash_name(&self.scratch);
        let Self {
            data,
            owners,
            index,
            scratch,
            ..
        } = self;
        let found = index.find(hash, |&n| {
            let name = &data[owners[n as usize] as usize..];
            name[..wire_len(name)].eq_ignore_ascii_case(scratch)
        });
        if let Some(&node) = found {
            return (node as usize, false);
        }
        let node = self.owners.len() as u32;
        self.owners.push(self.data.len() as u32);
        self.data.extend_from_slice(&self.scratch);
        self.last.push(NONE);
        let Self {
            data,
            owners,
            index,
            ..
        } = self;
        index.insert_unique(hash, node, |&n| {
            let name = &data[owners[n as usize] as usize..];
            hash_name(&name[..wire_len(name)])
        });
        (node as usize, true)
    }

    /// Adds `record` to `node`, or says why its data cannot be written.
    pub fn push(&mut self, node: usize, record: &Record) -> Result<(), String> {
        let mut rdata = std::mem::take(&mut self.scratch);
        rdata.clear();
        let mut encoder = BinEncoder::new(&mut rdata);
        let written = record
            .data
            .emit(&mut encoder.with_name_encoding(NameEncoding::Uncompressed));
        let length = match (written, u16::try_from(rdata.len())) {
            (Ok(()), Ok(length)) => length,
            (Err(e), _) => {
                self.scratch = rdata;
                return Err(e.to_string());
            }
            (_, Err(_)) => {
                let why = format!("{} bytes, over the 65,535 a record can hold", rdata.len());
                self.scratch = rdata;
                return Err(why);
            }
        };
        let entry = self.entries.len() as u32;
        self.entries.push(self.data.len() as u32);
        self.data
            .extend_from_slice(&u16::from(record.record_type()).to_be_bytes());
        self.data
            .extend_from_slice(&u16::from(record.dns_class).to_be_bytes());
        self.data.extend_from_slice(&record.ttl.to_be_bytes());
        self.data.extend_from_slice(&length.to_be_bytes());
        self.data.extend_from_slice(&rdata);
        self.scratch = rdata;
        self.entry_node.push(node as u32);
        self.previous.push(self.last[node]);
        self.last[node] = entry;
        Ok(())
    }

    /// Adds a record to `node` from its wire form after the owner: type,
    /// class, TTL, RDATA length and RDATA (as `Records::wire` gives it),
    /// names in the RDATA written in full.
    pub fn push_wire(&mut self, node: usize, wire: &[u8]) {
        let entry = self.entries.len() as u32;
        self.entries.push(self.data.len() as u32);
        self.data.extend_from_slice(wire);
        self.entry_node.push(node as u32);
        self.previous.push(self.last[node]);
        self.last[node] = entry;
    }

    fn entry(&self, entry: u32) -> &[u8] {
        &self.data[self.entries[entry as usize] as usize..]
    }

    fn rtype(&self, entry: u32) -> u16 {
        let e = self.entry(entry);
        u16::from_be_bytes([e[0], e[1]])
    }

    fn ttl(&self, entry: u32) -> u32 {
        let e = self.entry(entry);
        u32::from_be_bytes([e[4], e[5], e[6], e[7]])
    }

    /// Entry `entry` from its class on: class, TTL, length, RDATA.
    fn rest(&self, entry: u32) -> &[u8] {
        let e = self.entry(entry);
        let length = usize::from(u16::from_be_bytes([e[8], e[9]]));
        &e[2..10 + length]
    }

    /// Whether `node` already holds `record` (its type and data; names
    /// compared as DNS compares them).
    pub fn holds(&self, node: usize, record: &Record) -> bool {
        let rtype = u16::from(record.record_type());
        let mut entry = self.last[node];
        while entry != NONE {
            if self.rtype(entry) == rtype {
                let rdata = &self.rest(entry)[8..];
                let same = RData::read(
                    &mut BinDecoder::new(rdata),
                    record.record_type(),
                    Restrict::new(rdata.len() as u16),
                )
                .is_ok_and(|data| data == record.data);
                if same {
                    return true;
                }
            }
            entry = self.previous[entry as usize];
        }
        false
    }

    /// The records grouped: within a node by type code (each RRset in
    /// the order it came) with the RRset's lowest TTL (RFC 2181 section
    /// 5.2); every name between the owners and `apex` (wire format) made
    /// an empty non-terminal.
    pub fn finish(self, apex: &[u8]) -> Records {
        let count = self.owners.len();
        // Each node's entries, in the order they came: a counting sort.
        let mut starts = vec![0u32; count + 1];
        for &node in &self.entry_node {
            starts[node as usize + 1] += 1;
        }
        for i in 0..count {
            starts[i + 1] += starts[i];
        }
        let mut order = vec![0u32; self.entries.len()];
        let mut fill = starts.clone();
        for (entry, &node) in self.entry_node.iter().enumerate() {
            order[fill[node as usize] as usize] = entry as u32;
            fill[node as usize] += 1;
        }
        drop(fill);
        let mut out = Records {
            data: Vec::with_capacity(self.data.len() + 4 * self.entries.len()),
            entries: Vec::with_capacity(self.entries.len()),
            nodes: Vec::with_capacity(count + 1),
            owners: Vec::with_capacity(count),
            index: HashTable::new(),
            ents: Vec::new(),
        };
        for node in 0..count {
            let group = &mut order[starts[node] as usize..starts[node + 1] as usize];
            // Stable: each RRset keeps its order.
            group.sort_by_key(|&e| self.rtype(e));
            out.nodes.push(out.entries.len() as u32);
            let owner = out.data.len() as u32;
            out.owners.push(owner);
            out.data.extend_from_slice(self.owner(node as u32));
            let mut at = 0;
            while at < group.len() {
                let rtype = self.rtype(group[at]);
                let end = group[at..]
                    .iter()
                    .position(|&e| self.rtype(e) != rtype)
                    .map_or(group.len(), |n| at + n);
                let set = &group[at..end];
                let ttl = set.iter().map(|&e| self.ttl(e)).min().unwrap_or_default();
                // RRSIGs are the exception (RFC 4034 section 3): each
                // keeps the TTL of the RRset it covers.
                let rrsig = rtype == u16::from(RecordType::RRSIG);
                for &e in set {
                    let rest = self.rest(e);
                    out.entries.push(out.data.len() as u32);
                    out.data.extend_from_slice(&owner.to_le_bytes());
                    out.data.extend_from_slice(&rtype.to_be_bytes());
                    out.data.extend_from_slice(&rest[..2]);
                    let ttl = if rrsig { self.ttl(e) } else { ttl };
                    out.data.extend_from_slice(&ttl.to_be_bytes());
                    out.data.extend_from_slice(&rest[6..]);
                }
                at = end;
            }
        }
        out.nodes.push(out.entries.len() as u32);
        // The node numbers hold: the index moves over as it is.
        out.index = self.index;
        drop((self.data, self.entries, self.entry_node, self.previous));
        // Each owner's ancestors up to the apex exist; a walk up stops at
        // the first one already there.
        for node in 0..count {
            let key = lower_wire(out.key_of(node as u32));
            let mut at = 0;
            while key.len() - at > apex.len() && key[at] != 0 {
                at += 1 + usize::from(key[at]);
                let parent = &key[at..];
                if out.find(parent).is_some() {
                    break;
                }
                let value = ENT | out.ents.len() as u32;
                out.ents.extend_from_slice(parent);
                let Records {
                    data,
                    owners,
                    ents,
                    index,
                    ..
                } = &mut out;
                index.insert_unique(hash_name(parent), value, |&v| {
                    let name = if v & ENT != 0 {
                        &ents[(v & !ENT) as usize..]
                    } else {
                        &data[owners[v as usize] as usize..]
                    };
                    hash_name(&name[..wire_len(name)])
                });
            }
        }
        out.data.shrink_to_fit();
        out.entries.shrink_to_fit();
        out.ents.shrink_to_fit();
        out
    }
}

impl From<Vec<Record>> for Records {
    fn from(records: Vec<Record>) -> Self {
        Self::build(records)
    }
}

/// The length of the uncompressed wire name at the start of `name`.
pub fn wire_len(name: &[u8]) -> usize {
    let mut i = 0;
    while let Some(&len) = name.get(i) {
        i += 1 + usize::from(len);
        if len == 0 {
            break;
        }
    }
    i.min(name.len())
}

/// `name` (wire format, uncompressed) in lower case.
pub fn lower_wire(name: &[u8]) -> Box<[u8]> {
    name.iter().map(u8::to_ascii_lowercase).collect()
}

/// A name in wire format, lower case, on the stack: a lookup key.
pub struct WireKey {
    buf: [u8; 255],
    len: usize,
}

impl std::ops::Deref for WireKey {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// `name` in wire format, lower case.
pub fn wire_key(name: &LowerName) -> WireKey {
    wire_key_of(&Name::from(name))
}

/// `name` in wire format, lower case.
pub fn wire_key_of(name: &Name) -> WireKey {
    let mut buf = [0; 255];
    let mut at = 0;
    for label in name.iter() {
        if at + 1 + label.len() >= buf.len() {
            break;
        }
        buf[at] = label.len() as u8;
        for (to, from) in buf[at + 1..at + 1 + label.len()].iter_mut().zip(label) {
            *to = from.to_ascii_lowercase();
        }
        at += 1 + label.len();
    }
    buf[at] = 0;
    WireKey { buf, len: at + 1 }
}

/// Whether `name` is `zone` or below it (both wire format, lower case).
pub fn wire_zone_of(zone: &[u8], name: &[u8]) -> bool {
    let mut at = 0;
    while name.len() - at >= zone.len() {
        if &name[at..] == zone {
            return true;
        }
        match name.get(at) {
            Some(&len) if len > 0 => at += 1 + usize::from(len),
            _ => return false,
        }
    }
    false
}

/// The name written in wire format at the start of `wire`.
pub fn wire_name(wire: &[u8]) -> LowerName {
    LowerName::new(&Name::read(&mut BinDecoder::new(wire)).unwrap_or_else(|_| Name::root()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, MX, SOA, TXT};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    #[test]
    fn records_come_back_as_written_grouped_by_owner_and_type() {
        let soa = SOA::new(
            name("ns1.Example.com."),
            name("hostmaster.example.com."),
            7,
            3600,
            600,
            86400,
            300,
        );
        let written = vec![
            Record::from_rdata(name("Example.com."), 3600, RData::SOA(soa)),
            Record::from_rdata(name("www.example.com."), 60, RData::A(A::new(192, 0, 2, 1))),
            Record::from_rdata(
                name("example.com."),
                300,
                RData::MX(MX::new(10, name("mail.example.com."))),
            ),
            Record::from_rdata(
                name("WWW.example.com."),
                60,
                RData::TXT(TXT::new(vec!["a b".into(), "c".into()])),
            ),
            Record::from_rdata(name("www.example.com."), 60, RData::A(A::new(192, 0, 2, 2))),
        ];
        let records = Records::build(written.clone());
        assert_eq!(records.len(), 5);
        let back = records.to_vec();
        // The apex: SOA (6) before MX (15); www: A, A, TXT (16).
        let order = [0, 2, 1, 4, 3];
        for (got, &i) in back.iter().zip(&order) {
            let want = &written[i];
            assert_eq!(got.data, want.data);
            assert_eq!(got.ttl, want.ttl);
            assert_eq!(got.record_type(), want.record_type());
            assert_eq!(LowerName::new(&got.name), LowerName::new(&want.name));
        }
        // An owner keeps the case it was first written in.
        assert_eq!(back[4].name.to_ascii(), "www.example.com.");
        let nodes: Vec<_> = records.nodes().map(|(_, r)| r).collect();
        assert_eq!(nodes, vec![0..2, 2..5]);
        assert_eq!(
            records.first_of(RecordType::MX).unwrap().data,
            written[2].data
        );
        // RDATA names are never compressed: the SOA's two names in full.
        let soa = records.rdata(0);
        assert_eq!(
            soa.windows(7)
                .filter(|w| w.eq_ignore_ascii_case(b"example"))
                .count(),
            2
        );
        let key = wire_key(&LowerName::new(&name("WwW.Example.COM.")));
        assert_eq!(&*key, &*lower_wire(records.owner(2)));
        assert_eq!(wire_len(records.owner(2)), key.len());
    }
}
