//! What the answer table the DNS side serves is made of: the zones as
//! loaded (`base`, once per load), the failover records for the active
//! site and the SOA serials to serve.

use std::collections::BTreeMap;

use hickory_proto::rr::{
    LowerName, RData, Record, RecordType,
    rdata::{A, AAAA},
};

use crate::{
    config::{Failover, SerialPolicy, ZoneSource},
    dns::transfer::newer,
    engine::Role,
    zone::Zone,
};

/// What choosing the serials found worth telling: a zone whose content
/// changed, and whether the operator should act (a warning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialNote {
    pub zone: String,
    pub warning: bool,
    pub text: String,
}

/// The serial each zone is to be served with, given the serials served
/// before (`served`, stored across restarts) and the content digests they
/// stood for (`digests`): the zone file's when it is newer (RFC 1982
/// order), the one served before when the content is the same, and for
/// content that changed under a serial that is not newer, the one served
/// before plus one (`serial_policy: increment`, the default) or the one
/// served before, with a warning (`keep`). A serial served before without
/// a digest (stored by an older version) counts as other content.
pub fn serials(
    zones: &[Zone],
    sources: &[ZoneSource],
    served: &BTreeMap<String, u32>,
    digests: &BTreeMap<String, String>,
) -> (BTreeMap<String, u32>, Vec<SerialNote>) {
    let mut notes = Vec::new();
    // Zones not loaded now keep their entries: a zone served again later
    // goes on from its last serial, never back to one used before.
    let mut serials: BTreeMap<String, u32> = served
        .iter()
        .filter(|(origin, _)| !zones.iter().any(|z| z.origin.to_string() == **origin))
        .map(|(origin, serial)| (origin.clone(), *serial))
        .collect();
    let picked: Vec<(String, u32)> = zones
        .iter()
        .filter_map(|zone| {
            let file = file_serial(zone)?;
            let origin = zone.origin.to_string();
            let policy = sources
                .iter()
                .find(|s| s.origin == zone.origin)
                .map_or(SerialPolicy::default(), |s| s.serial_policy);
            let Some(&before) = served.get(&origin) else {
                return Some((origin, file));
            };
            let same = digests.get(&origin) == Some(&zone.digest);
            let serial = if newer(file, before) {
                file
            } else if same {
                before
            } else if policy == SerialPolicy::Keep {
                notes.push(SerialNote {
                    zone: origin.clone(),
                    warning: true,
                    text: format!(
                        "zone {origin} changed but its serial {file} is not above the {before} served before: it is served under {before} (serial_policy: keep), so secondaries that hold {before} keep the old content; raise the serial in the zone file"
                    ),
                });
                before
            } else {
                let next = before.wrapping_add(1);
                notes.push(SerialNote {
                    zone: origin.clone(),
                    warning: false,
                    text: format!(
                        "zone {origin} changed under serial {file} (not above the {before} served before): served under {next}"
                    ),
                });
                next
            };
            Some((origin, serial))
        })
        .collect();
    serials.extend(picked);
    (serials, notes)
}

/// Each zone's content digest, by origin; those of `before` for zones
/// not loaded now are kept (as their serials are).
pub fn digests(zones: &[Zone], before: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut digests = before.clone();
    for zone in zones {
        digests.insert(zone.origin.to_string(), zone.digest.clone());
    }
    digests
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

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::Name;

    fn zone(serial: u32, extra: &str) -> Zone {
        let text = format!(
            "$ORIGIN example.com.\n$TTL 300\n@ IN SOA ns1 hostmaster {serial} 7200 900 1209600 300\n  IN NS ns1\nns1 IN A 192.0.2.1\n{extra}"
        );
        let origin = Name::from_ascii("example.com.").unwrap();
        crate::zone::from_text(std::path::Path::new("t.zone"), &text, &origin).unwrap()
    }

    fn source(policy: SerialPolicy) -> ZoneSource {
        ZoneSource {
            origin: Name::from_ascii("example.com.").unwrap(),
            file: "t.zone".into(),
            config_line: None,
            transfer: Default::default(),
            serial_policy: policy,
            dnssec: None,
        }
    }

    /// The serial served for `zone` after `before` was served for the
    /// content `digest`.
    fn served(zone: &Zone, policy: SerialPolicy, before: u32, digest: &str) -> (u32, usize) {
        let key = "example.com.".to_string();
        let (serials, notes) = serials(
            std::slice::from_ref(zone),
            &[source(policy)],
            &BTreeMap::from([(key.clone(), before)]),
            &BTreeMap::from([(key.clone(), digest.to_string())]),
        );
        (serials[&key], notes.len())
    }

    #[test]
    fn the_digest_is_the_content_not_the_order_nor_the_serial() {
        let a = zone(1, "a IN A 192.0.2.2\nb IN A 192.0.2.3\n");
        let b = zone(7, "b IN A 192.0.2.3\na IN A 192.0.2.2\n");
        let c = zone(1, "a IN A 192.0.2.2\nb IN A 192.0.2.4\n");
        assert_eq!(a.digest, b.digest);
        assert_ne!(a.digest, c.digest);
        assert_eq!(a.digest.len(), 64);
    }

    /// The digest one serial stands for covers the failover records a
    /// zone holds, every site's addresses and the TTL, not only the zone
    /// file: two nodes whose failover sections differ differ in digest.
    /// The active site is not part of it (a failover is a serial of its
    /// own), nor the order addresses are listed in.
    #[test]
    fn the_digest_covers_the_failover_records_the_zone_holds() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.yaml");
        let config = crate::config::Config::load(&path).unwrap();
        let zones = crate::zone::load_all(&config).unwrap();
        let digest_of = |config: &crate::config::Config, origin: &str| {
            let mut zones = zones.clone();
            crate::zone::with_failover(config, &mut zones);
            let zone = zones
                .iter()
                .find(|z| z.origin.to_string() == origin)
                .unwrap();
            (zone.digest.clone(), zone.file_digest.clone())
        };
        let (digest, file) = digest_of(&config, "example.com.");
        assert_ne!(digest, file, "the failover records are in the digest");
        // The reverse zone holds no failover record: its file's digest.
        let (reverse, reverse_file) = digest_of(&config, "2.0.192.in-addr.arpa.");
        assert_eq!(reverse, reverse_file);

        let edited = |edit: &dyn Fn(&mut crate::config::Failover)| {
            let mut other = config.clone();
            edit(other.failover.as_mut().unwrap());
            digest_of(&other, "example.com.")
        };
        // One address of the site not active differs: another digest,
        // the same zone file.
        let (other, other_file) =
            edited(&|f| f.sites[1].addresses[0] = vec!["198.51.100.11".parse().unwrap()]);
        assert_ne!(other, digest);
        assert_eq!(other_file, file);
        // So does the primary's, and the TTL.
        assert_ne!(
            edited(&|f| f.sites[0].addresses[1] = vec!["2001:db8:10::11".parse().unwrap()]).0,
            digest
        );
        assert_ne!(edited(&|f| f.records[0].ttl += 1).0, digest);
        // The addresses are a set: their order does not count.
        let two = |f: &mut crate::config::Failover, a: &str, b: &str| {
            f.sites[1].addresses[0] = vec![a.parse().unwrap(), b.parse().unwrap()];
        };
        assert_eq!(
            edited(&|f| two(f, "198.51.100.10", "198.51.100.11")).0,
            edited(&|f| two(f, "198.51.100.11", "198.51.100.10")).0
        );
        // The same config, the same digest (whichever site is active).
        assert_eq!(digest_of(&config, "example.com.").0, digest);
    }

    #[test]
    fn changed_content_moves_the_serial_whatever_the_file_says() {
        let old = zone(10, "");
        let new = zone(11, "added IN A 192.0.2.9\n");
        // Failovers raised the served serial to 12: the file's 11 is
        // older, the content is new.
        assert_eq!(
            served(&new, SerialPolicy::Increment, 12, &old.digest),
            (13, 1)
        );
        // The same content keeps its serial; a newer file serial wins.
        assert_eq!(
            served(&new, SerialPolicy::Increment, 12, &new.digest),
            (12, 0)
        );
        assert_eq!(
            served(&new, SerialPolicy::Increment, 5, &old.digest),
            (11, 0)
        );
        // keep: the operator's serial, and a warning.
        assert_eq!(served(&new, SerialPolicy::Keep, 12, &old.digest), (12, 1));
        // A state stored without digests counts as other content.
        assert_eq!(served(&new, SerialPolicy::Increment, 12, ""), (13, 1));
    }

    #[test]
    fn a_zone_not_loaded_keeps_its_serial_for_when_it_comes_back() {
        let key = "example.com.".to_string();
        let other = "example.net.".to_string();
        let served = BTreeMap::from([(key.clone(), 40), (other.clone(), 7)]);
        let digests = BTreeMap::from([(key.clone(), "x".to_string())]);
        let (serials, _) = serials(&[zone(1, "")], &[], &served, &digests);
        // example.com changed (digest "x" is not its content): 41; the
        // zone no longer loaded keeps its entry.
        assert_eq!(serials[&key], 41);
        assert_eq!(serials.get(&other), Some(&7));
        let kept = super::digests(
            &[zone(1, "")],
            &BTreeMap::from([(other.clone(), "y".into())]),
        );
        assert_eq!(kept.get(&other).map(String::as_str), Some("y"));
    }

    #[test]
    fn serials_compare_and_wrap_in_rfc_1982_order() {
        let new = zone(4_294_967_290, "added IN A 192.0.2.9\n");
        let old = zone(1, "");
        // Served 5 after wrapping past 2^32: the file's 4294967290 is
        // older than 5 in serial order, not newer.
        assert_eq!(
            served(&new, SerialPolicy::Increment, 5, &new.digest),
            (5, 0)
        );
        assert_eq!(
            served(&new, SerialPolicy::Increment, 5, &old.digest),
            (6, 1)
        );
        // The last serial before 2^32 goes on to 0.
        assert_eq!(
            served(&new, SerialPolicy::Increment, u32::MAX, &old.digest),
            (0, 1)
        );
    }
}
