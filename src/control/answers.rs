//! Builds the answer table the DNS side serves from the zones as loaded,
//! the failover records for the active site and the SOA serials to serve.

use std::collections::BTreeMap;

use hickory_proto::rr::{
    LowerName, RData, Record,
    rdata::{A, AAAA},
};

use crate::{
    config::Failover,
    engine::Role,
    zone::{AnswerTable, Zone},
};

/// The serial each zone is to be served with: the zone file's, unless a
/// higher one was served before (never go back, across restarts too).
pub fn serials(zones: &[Zone], stored: &BTreeMap<String, u32>) -> BTreeMap<String, u32> {
    zones
        .iter()
        .filter_map(|zone| {
            let file = file_serial(zone)?;
            let origin = zone.origin.to_string();
            let served = stored.get(&origin).map_or(file, |s| (*s).max(file));
            Some((origin, served))
        })
        .collect()
}

/// The serials after a change of answers: one higher for every zone that
/// holds a failover record.
pub fn bump(
    serials: &BTreeMap<String, u32>,
    zones: &[Zone],
    failover: &Failover,
) -> BTreeMap<String, u32> {
    let mut next = serials.clone();
    for zone in zones {
        let origin = LowerName::new(&zone.origin);
        let holds_failover = failover
            .records
            .iter()
            .any(|r| origin.zone_of(&LowerName::new(&r.name)));
        if holds_failover && let Some(serial) = next.get_mut(&zone.origin.to_string()) {
            *serial = serial.wrapping_add(1);
        }
    }
    next
}

fn file_serial(zone: &Zone) -> Option<u32> {
    zone.records.iter().find_map(|r| match &r.data {
        RData::SOA(soa) => Some(soa.serial),
        _ => None,
    })
}

/// The failover records as the active site answers them; `ttl` replaces
/// the configured TTL while a drill lowers it.
pub fn failover_records(failover: &Failover, active: Role, ttl: Option<u32>) -> Vec<Record> {
    let site = failover.site(active);
    failover
        .records
        .iter()
        .zip(&site.addresses)
        .flat_map(|(record, addresses)| {
            addresses.iter().map(move |ip| {
                let rdata = match ip {
                    std::net::IpAddr::V4(v4) => RData::A(A(*v4)),
                    std::net::IpAddr::V6(v6) => RData::AAAA(AAAA(*v6)),
                };
                Record::from_rdata(record.name.clone(), ttl.unwrap_or(record.ttl), rdata)
            })
        })
        .collect()
}

/// The table for `zones` with `records` added (each to the closest zone
/// that holds its name) and the given serials.
pub fn build(zones: &[Zone], records: &[Record], serials: &BTreeMap<String, u32>) -> AnswerTable {
    let mut zones: Vec<Zone> = zones.to_vec();
    for zone in &mut zones {
        if let Some(serial) = serials.get(&zone.origin.to_string()) {
            for record in &mut zone.records {
                if let RData::SOA(soa) = &mut record.data {
                    soa.serial = *serial;
                }
            }
        }
    }
    for record in records {
        let name = LowerName::new(&record.name);
        let closest = zones
            .iter_mut()
            .filter(|z| LowerName::new(&z.origin).zone_of(&name))
            .max_by_key(|z| z.origin.num_labels());
        if let Some(zone) = closest {
            zone.records.push(record.clone());
        }
    }
    AnswerTable::build(zones)
}
