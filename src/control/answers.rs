//! What the answer table the DNS side serves is made of: the zones as
//! loaded (`base`, once per load), the failover records for the active
//! site and the SOA serials to serve.

use std::collections::BTreeMap;

use hickory_proto::rr::{
    LowerName, RData, Record, RecordType,
    rdata::{A, AAAA},
};

use crate::{config::Failover, engine::Role, zone::Zone};

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
    match zone.records.first_of(RecordType::SOA)?.data {
        RData::SOA(soa) => Some(soa.serial),
        _ => None,
    }
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

/// What a load of `zones` builds once for `config`: the table of the
/// zone files (with the failover records' names) and the answers that no
/// failover changes. Slow for a large zone: run it off the async runtime.
pub fn base(config: &crate::config::Config, zones: &[Zone]) -> crate::dns::Base {
    let dynamic: Vec<hickory_proto::rr::Name> = config
        .failover
        .iter()
        .flat_map(|f| f.records.iter().map(|r| r.name.clone()))
        .collect();
    let base = crate::dns::Base::build(zones.to_vec(), &dynamic, crate::dns::PRECOMPUTED_BUDGET);
    release_free_memory();
    base
}

/// Gives the memory freed after reading and compiling a zone back to the
/// system: glibc keeps it in its arenas otherwise, and a large zone's
/// parse leaves hundreds of megabytes behind.
fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}
