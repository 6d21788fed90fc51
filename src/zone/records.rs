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

use std::ops::Range;

use rustc_hash::FxHashMap;

use hickory_proto::{
    rr::{DNSClass, LowerName, Name, RData, Record, RecordType},
    serialize::binary::{
        BinDecodable, BinDecoder, BinEncodable, BinEncoder, NameEncoding, Restrict,
    },
};

/// Bytes of an entry before its RDATA: owner offset, type, class, TTL,
/// RDATA length.
const ENTRY_HEADER: usize = 4 + 2 + 2 + 4 + 2;

/// A zone's records in wire format, grouped by owner.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Records {
    data: Vec<u8>,
    /// Where each record's entry starts in `data`.
    entries: Vec<u32>,
    /// Where each node's records start in `entries`, and one past the last.
    nodes: Vec<u32>,
}

impl Records {
    /// Groups `records` (checked: RRsets without duplicates) by owner.
    pub fn build(records: Vec<Record>) -> Self {
        // Owners in the order they first appear, each with its records.
        let mut order: FxHashMap<Box<[u8]>, usize> = FxHashMap::default();
        let mut nodes: Vec<Vec<u32>> = Vec::new();
        for (i, record) in records.iter().enumerate() {
            let key = wire_key_of(&record.name);
            let node = match order.get(&*key) {
                Some(&node) => node,
                None => {
                    order.insert(key.to_vec().into(), nodes.len());
                    nodes.push(Vec::new());
                    nodes.len() - 1
                }
            };
            nodes[node].push(i as u32);
        }
        Self::from_nodes(&records, nodes)
    }

    /// Writes `records` node by node: each of `nodes` the indices of one
    /// owner's records, in the zone file's order. Within a node the
    /// records go by type code (each RRset keeping its order) with the
    /// RRset's lowest TTL (RFC 2181 section 5.2). A record whose data
    /// cannot be written (which the zone check has already refused) is
    /// left out.
    pub fn from_nodes(records: &[Record], nodes: Vec<Vec<u32>>) -> Self {
        let mut out = Self {
            data: Vec::with_capacity(records.len() * 32),
            entries: Vec::with_capacity(records.len()),
            nodes: Vec::with_capacity(nodes.len() + 1),
        };
        let mut scratch = Vec::with_capacity(256);
        for mut group in nodes {
            let Some(&first) = group.first() else {
                continue;
            };
            // Stable: each RRset keeps the zone file's order.
            group.sort_by_key(|&i| u16::from(records[i as usize].record_type()));
            scratch.clear();
            if records[first as usize]
                .name
                .emit(&mut BinEncoder::new(&mut scratch))
                .is_err()
            {
                continue;
            }
            out.nodes.push(out.entries.len() as u32);
            let owner = out.data.len() as u32;
            out.data.extend_from_slice(&scratch);
            let mut at = 0;
            while at < group.len() {
                let rtype = records[group[at] as usize].record_type();
                let end = group[at..]
                    .iter()
                    .position(|&i| records[i as usize].record_type() != rtype)
                    .map_or(group.len(), |n| at + n);
                let set = &group[at..end];
                let ttl = set
                    .iter()
                    .map(|&i| records[i as usize].ttl)
                    .min()
                    .unwrap_or_default();
                for &i in set {
                    let record = &records[i as usize];
                    scratch.clear();
                    let mut encoder = BinEncoder::new(&mut scratch);
                    let written = record
                        .data
                        .emit(&mut encoder.with_name_encoding(NameEncoding::Uncompressed));
                    let Ok(length) = u16::try_from(scratch.len()) else {
                        continue;
                    };
                    if written.is_err() {
                        continue;
                    }
                    out.entries.push(out.data.len() as u32);
                    out.data.extend_from_slice(&owner.to_le_bytes());
                    out.data.extend_from_slice(&u16::from(rtype).to_be_bytes());
                    out.data
                        .extend_from_slice(&u16::from(record.dns_class).to_be_bytes());
                    out.data.extend_from_slice(&ttl.to_be_bytes());
                    out.data.extend_from_slice(&length.to_be_bytes());
                    out.data.extend_from_slice(&scratch);
                }
                at = end;
            }
        }
        out.nodes.push(out.entries.len() as u32);
        out.data.shrink_to_fit();
        out.entries.shrink_to_fit();
        out.nodes.shrink_to_fit();
        out
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The bytes held, for logs and budgets.
    pub fn size(&self) -> usize {
        self.data.len() + 4 * (self.entries.len() + self.nodes.len())
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
    pub fn nodes(&self) -> impl ExactSizeIterator<Item = (&[u8], Range<usize>)> + '_ {
        self.nodes.windows(2).map(|w| {
            let range = w[0] as usize..w[1] as usize;
            (self.owner(range.start), range)
        })
    }

    /// The records owned by `name`, decoded (a walk over the nodes: for
    /// the apex, or seldom).
    pub fn at(&self, name: &Name) -> Vec<Record> {
        let key = wire_key(&LowerName::new(name));
        self.nodes()
            .find(|(owner, _)| owner.eq_ignore_ascii_case(&key))
            .map(|(_, range)| range.map(|i| self.get(i)).collect())
            .unwrap_or_default()
    }

    /// The first record of type `rtype`, decoded.
    pub fn first_of(&self, rtype: RecordType) -> Option<Record> {
        (0..self.len())
            .find(|&i| self.rtype(i) == rtype)
            .map(|i| self.get(i))
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
