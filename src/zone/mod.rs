//! Zones: RFC 1035 zone files read and checked (`lexer`, `parse`), then
//! compiled with the rest of the config into the immutable answer table the
//! DNS query path reads (`table`).

mod lexer;
mod parse;
pub mod records;
pub mod table;

use std::fmt;

use hickory_proto::rr::{LowerName, Name, Record, RecordType};

use crate::config::{Config, Location, ZoneSource};
pub use records::Records;
pub use table::AnswerTable;

/// Something wrong in a zone file, or with the config's entry for it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{location}: {message}")]
pub struct ZoneError {
    pub location: Location,
    pub message: String,
}

/// Every error found in a set of zones.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ZoneErrors(pub Vec<ZoneError>);

impl fmt::Display for ZoneErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// A checked zone: one SOA and at least one NS at the apex, every owner
/// inside the origin, no CNAME beside other data, duplicates removed and
/// each RRset's TTLs made equal (the lowest, RFC 2181 section 5.2).
/// The records are held in wire format and shared: a copy of a zone
/// costs a pointer, and the answer table and the transfers refer to them.
#[derive(Debug, Clone)]
pub struct Zone {
    pub origin: Name,
    pub records: std::sync::Arc<Records>,
    /// What one serial stands for: the zone file's content
    /// (`file_digest`) with the failover records the zone holds, every
    /// site's variant (`with_failover`).
    pub digest: String,
    /// `Records::digest` of the records (with the key tags of a signed
    /// zone): the zone file's part, which a reload compares to keep the
    /// records already held for transfers.
    pub file_digest: String,
    /// The signing state of a zone served signed (`dnssec:`), for the
    /// signatures made as it is served: the SOA's, the failover records'.
    pub signed: Option<std::sync::Arc<crate::dnssec::Signed>>,
}

/// Reads and checks every zone the config names, and that the failover
/// records fit in them; all errors are returned.
pub fn load_all(config: &Config) -> Result<Vec<Zone>, ZoneErrors> {
    let mut zones = Vec::new();
    let mut errors = Vec::new();
    for source in &config.zones {
        match load(source, &config.path) {
            Ok(zone) => zones.push(zone),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        errors = check_failover_records(config, &zones);
    }
    if errors.is_empty() {
        with_failover(config, &mut zones);
        Ok(zones)
    } else {
        Err(ZoneErrors(errors))
    }
}

/// Sets each zone's `digest` to stand for its zone file's content
/// (`file_digest`) and the failover records it holds: their names,
/// types, TTLs and every site's addresses. Two nodes whose failover
/// sections differ would otherwise answer differently under one serial
/// without either noticing. Every site's variant, not the active one's:
/// which site is active is the agreed state's (each failover is a serial
/// of its own), so the digest stays the same across a failover, and one
/// digest with the agreed active site and TTL is one content.
pub fn with_failover(config: &Config, zones: &mut [Zone]) {
    for zone in zones {
        zone.digest = content_digest(config, &zone.origin, &zone.file_digest);
    }
}

/// `file_digest` (and its key tags) with the failover records of the
/// zone `origin` folded in; `file_digest` itself when it holds none.
fn content_digest(config: &Config, origin: &Name, file_digest: &str) -> String {
    use ring::digest::{Context, SHA256};
    let Some(failover) = &config.failover else {
        return file_digest.to_string();
    };
    let origin = LowerName::new(origin);
    // A failover record belongs to the deepest zone that holds its name,
    // as its answers do.
    let holder = |name: &Name| {
        let name = LowerName::new(name);
        config
            .zones
            .iter()
            .filter(|z| LowerName::new(&z.origin).zone_of(&name))
            .max_by_key(|z| z.origin.num_labels())
            .map(|z| LowerName::new(&z.origin))
    };
    let mut entries: Vec<Vec<u8>> = Vec::new();
    for (i, record) in failover.records.iter().enumerate() {
        if holder(&record.name).as_ref() != Some(&origin) {
            continue;
        }
        let mut entry = records::wire_key(&LowerName::new(&record.name)).to_vec();
        entry.extend_from_slice(&u16::from(record.rtype).to_be_bytes());
        entry.extend_from_slice(&record.ttl.to_be_bytes());
        // Primary first: each site's addresses as a set.
        for site in &failover.sites {
            let mut addresses: Vec<Vec<u8>> = site
                .addresses
                .get(i)
                .into_iter()
                .flatten()
                .map(|ip| match ip {
                    std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
                    std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
                })
                .collect();
            addresses.sort();
            addresses.dedup();
            entry.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
            for address in addresses {
                entry.push(address.len() as u8);
                entry.extend_from_slice(&address);
            }
        }
        entries.push(entry);
    }
    if entries.is_empty() {
        return file_digest.to_string();
    }
    entries.sort();
    // The key tags of a signed zone stay readable after the hex digest.
    let (file_hex, keys) = match file_digest.split_once(':') {
        Some((hex, keys)) => (hex, Some(keys)),
        None => (file_digest, None),
    };
    let mut context = Context::new(&SHA256);
    context.update(b"geofailover zone and failover records\0");
    context.update(file_hex.as_bytes());
    for entry in &entries {
        context.update(&(entry.len() as u32).to_be_bytes());
        context.update(entry);
    }
    let hex: String = context
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    match keys {
        Some(keys) => format!("{hex}:{keys}"),
        None => hex,
    }
}

/// A failover record owns its name and type: the zone may not hold records
/// of that type there, nor a CNAME, nor may the name lie below a zone cut.
fn check_failover_records(config: &Config, zones: &[Zone]) -> Vec<ZoneError> {
    let Some(failover) = &config.failover else {
        return Vec::new();
    };
    let mut errors = Vec::new();
    for record in &failover.records {
        let name = LowerName::new(&record.name);
        let Some(zone) = zones
            .iter()
            .filter(|z| LowerName::new(&z.origin).zone_of(&name))
            .max_by_key(|z| z.origin.num_labels())
        else {
            continue;
        };
        let apex = records::wire_key(&LowerName::new(&zone.origin));
        let key = records::wire_key(&name);
        let held = &zone.records;
        let types_at = |name: &[u8]| held.find(name).into_iter().flatten().map(|i| held.rtype(i));
        // The name itself, then each name above it below the apex: a cut.
        let mut suffixes = Vec::new();
        let mut at = 0;
        while key.len() - at > apex.len() {
            suffixes.push(at);
            at += 1 + usize::from(key[at]);
        }
        let here = types_at(&key)
            .find(|t| *t == record.rtype || *t == RecordType::CNAME)
            .map(|rtype| format!(
                "the zone {} already has {rtype} data at {}: remove it from the zone file, the failover record answers for that name",
                zone.origin, record.name
            ));
        let clash = here.or_else(|| {
            suffixes.iter().rev().find_map(|&at| {
                let owner = &key[at..];
                types_at(owner).any(|t| t == RecordType::NS).then(|| format!(
                    "{} lies at or below the delegation {}: a failover record must be in the zone's own data",
                    record.name,
                    Name::from(&records::wire_name(owner))
                ))
            })
        });
        if let Some(message) = clash {
            errors.push(ZoneError {
                location: Location {
                    file: config.path.clone(),
                    line: record.config_line,
                },
                message: format!(
                    "failover record {} {}: {message}",
                    record.name, record.rtype
                ),
            });
        }
    }
    errors
}

/// Reads and checks one zone. `config_path` is where it is named, for an
/// unreadable file.
pub fn load(source: &ZoneSource, config_path: &std::path::Path) -> Result<Zone, Vec<ZoneError>> {
    let text = std::fs::read_to_string(&source.file).map_err(|e| {
        vec![ZoneError {
            location: Location {
                file: config_path.to_path_buf(),
                line: source.config_line,
            },
            message: format!(
                "zone {}: cannot read zone file {}: {e} (expected an RFC 1035 zone file)",
                source.origin,
                source.file.display()
            ),
        }]
    })?;
    from_text(&source.file, &text, &source.origin)
}

/// Parses and checks the zone file text read from `file` (where its
/// `$INCLUDE`s are looked for), with `origin` as the zone's apex.
pub fn from_text(
    file: &std::path::Path,
    text: &str,
    origin: &Name,
) -> Result<Zone, Vec<ZoneError>> {
    let mut errors = Vec::new();
    // Each record is checked as it is read: the file's records are never
    // all held in hickory's form at once.
    let mut checker = Checker::new(origin, text);
    parse::parse_text(file, text, origin, &mut |r| checker.add(r), &mut errors);
    let zone = checker.finish(file, &mut errors);
    if errors.is_empty() {
        Ok(zone)
    } else {
        Err(errors)
    }
}

/// Whether a record's data, written in wire format, reads back: the text
/// parser accepts some data its wire form cannot carry (such as a CAA tag
/// longer than 15 characters), which a client could not read. The common
/// types, whose text form cannot go wrong so, are not written.
fn wire_round_trip(record: &Record) -> Result<(), String> {
    use hickory_proto::{
        rr::RData,
        serialize::binary::{BinDecoder, BinEncodable, BinEncoder, DecodeError, Restrict},
    };
    let rtype = record.record_type();
    if matches!(
        rtype,
        RecordType::A
            | RecordType::AAAA
            | RecordType::NS
            | RecordType::CNAME
            | RecordType::PTR
            | RecordType::MX
            | RecordType::SOA
            | RecordType::SRV
    ) {
        return Ok(());
    }
    let mut bytes = Vec::new();
    record
        .data
        .emit(&mut BinEncoder::new(&mut bytes))
        .map_err(|e| e.to_string())?;
    let length = u16::try_from(bytes.len())
        .map_err(|_| format!("{} bytes, over the 65,535 a record can hold", bytes.len()))?;
    let mut decoder = BinDecoder::new(&bytes);
    RData::read(&mut decoder, rtype, Restrict::new(length))
        .map_err(|e: DecodeError| e.to_string())?;
    if !decoder.is_empty() {
        return Err(format!(
            "{} of its {length} bytes read back",
            decoder.index()
        ));
    }
    Ok(())
}

/// The records of a zone file's text, and the lines of its errors, read
/// with the common types read directly (`true`) and all by hickory
/// (`false`): for the fuzz target that checks both ways agree.
#[doc(hidden)]
pub fn both_ways(
    file: &std::path::Path,
    text: &str,
    origin: &Name,
) -> [(Vec<Record>, Vec<Option<usize>>); 2] {
    [true, false].map(|direct| {
        let (mut records, mut errors) = (Vec::new(), Vec::new());
        parse::parse_text_with(
            file,
            text,
            origin,
            &mut |r| records.push(r),
            &mut errors,
            direct,
        );
        (
            records.into_iter().map(|r| r.record).collect(),
            errors.into_iter().map(|e| e.location.line).collect(),
        )
    })
}

/// The types seen at one owner while checking, each with the line of its
/// first record.
type Draft = Vec<(RecordType, Option<usize>)>;

/// Checks a zone's records one at a time as they are read, keeping
/// those that stand.
struct Checker {
    origin: Name,
    apex: records::WireKey,
    drafts: Vec<Draft>,
    /// The records kept, written as they come; node for node as `drafts`.
    kept: records::Gather,
    soa_count: usize,
    errors: Vec<ZoneError>,
}

impl Checker {
    /// A checker for the zone at `origin` whose file reads `text` (for
    /// room: about a record a line, and less in wire format than as text).
    fn new(origin: &Name, text: &str) -> Self {
        let lines = text.bytes().filter(|&b| b == b'\n').count() + 1;
        Self {
            origin: origin.clone(),
            apex: records::wire_key_of(origin),
            drafts: Vec::with_capacity(lines / 2),
            kept: records::Gather::with_capacity(lines, text.len()),
            soa_count: 0,
            errors: Vec::new(),
        }
    }

    fn add(&mut self, source: parse::SourceRecord) {
        let Self {
            origin,
            apex,
            drafts,
            kept,
            soa_count,
            errors,
        } = self;
        let parse::SourceRecord {
            record,
            file: source_file,
            line,
        } = source;
        let mut fail = |message: String| {
            errors.push(ZoneError {
                location: Location {
                    file: source_file.to_path_buf(),
                    line: Some(line),
                },
                message,
            })
        };
        let key = records::wire_key_of(&record.name);
        if !records::wire_zone_of(apex, &key) {
            fail(format!(
                "{} is outside the zone: expected a name ending in {origin}",
                record.name
            ));
            return;
        }
        let rtype = record.record_type();
        if let Err(why) = wire_round_trip(&record) {
            fail(format!(
                "{rtype} at {}: its data cannot be sent as written: {why}",
                record.name
            ));
            return;
        }
        if rtype == RecordType::SOA {
            if *key != **apex {
                fail(format!(
                    "SOA at {}: the only SOA must be at the apex {origin}",
                    record.name
                ));
                return;
            }
            *soa_count += 1;
            if *soa_count > 1 {
                fail(format!("a second SOA at {origin}: expected exactly one"));
                return;
            }
        }
        let (node, new) = kept.node(&record.name);
        if new {
            drafts.push(Draft::default());
        }
        let seen = &mut drafts[node];
        let clash = if rtype == RecordType::CNAME {
            seen.iter()
                .find(|(t, _)| *t != RecordType::CNAME || rtype == *t)
        } else {
            seen.iter().find(|(t, _)| *t == RecordType::CNAME)
        };
        if let Some((other, other_line)) = clash {
            let other_at = other_line
                .map(|l| format!(" at line {l}"))
                .unwrap_or_default();
            let message = if *other == RecordType::CNAME && rtype == RecordType::CNAME {
                format!(
                    "a second CNAME at {}: the first is{other_at}; a name has at most one CNAME (RFC 2181 section 10.1)",
                    record.name
                )
            } else {
                format!(
                    "{rtype} at {} beside a {other} record{other_at}: a name with a CNAME can have no other data (RFC 1034 section 3.6.2)",
                    record.name
                )
            };
            fail(message);
            return;
        }
        if !seen.iter().any(|(t, _)| *t == rtype) {
            seen.push((rtype, Some(line)));
        }
        // RFC 2181 section 5: an RRset holds each record once.
        // RFC 2181 section 5: an RRset holds each record once.
        if !kept.holds(node, &record)
            && let Err(why) = kept.push(node, &record)
        {
            fail(format!(
                "{rtype} at {}: its data cannot be sent as written: {why}",
                record.name
            ));
        }
    }

    /// The zone, with the errors found in it added to `errors`.
    fn finish(self, file: &std::path::Path, errors: &mut Vec<ZoneError>) -> Zone {
        let Self {
            origin,
            apex,
            drafts,
            kept,
            soa_count,
            errors: found,
        } = self;
        let origin = &origin;
        errors.extend(found);
        let whole_file = || Location {
            file: file.to_path_buf(),
            line: Some(1),
        };
        if soa_count == 0 {
            errors.push(ZoneError {
                location: whole_file(),
                message: format!(
                    "zone {origin} has no SOA record: expected exactly one SOA at the apex"
                ),
            });
        }
        let apex_has_ns = kept
            .find(&apex)
            .is_some_and(|n| drafts[n].iter().any(|(t, _)| *t == RecordType::NS));
        if !apex_has_ns {
            errors.push(ZoneError {
                location: whole_file(),
                message: format!(
                    "zone {origin} has no NS record at the apex: expected at least one"
                ),
            });
        }
        drop(drafts);
        // RFC 2181 section 5.2: an RRset's records share one TTL, the
        // lowest (made so as they are grouped).
        let records = kept.finish(&apex);
        let digest = records.digest();
        Zone {
            origin: origin.clone(),
            file_digest: digest.clone(),
            digest,
            signed: None,
            records: std::sync::Arc::new(records),
        }
    }
}
