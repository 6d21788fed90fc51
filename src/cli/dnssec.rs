//! `geofailover dnssec`: the keys of the signed zones and the DS records
//! their parent needs, read from the key folders (made when missing, as
//! `serve` would make them).

use std::path::PathBuf;

use clap::Subcommand;
use hickory_proto::rr::{Name, RData, RecordType};

use super::Failure;
use crate::{config::Config, dnssec, zone};

#[derive(Debug, Subcommand)]
pub enum DnssecCommand {
    /// Print the DS records of a signed zone's keys in zone-file form, for
    /// the registrar (the zone's keys are made when it has none).
    Ds {
        /// The configuration file.
        #[arg(long, short, default_value = "config/example.yaml")]
        config: PathBuf,
        /// The zone, such as example.com.
        #[arg(long)]
        zone: String,
        /// With several nodes: as this one.
        #[arg(long)]
        node: Option<String>,
    },
    /// Begin a key rollover: a successor key published now; a ZSK's
    /// predecessor retires on its own, a KSK's or CSK's once the parent
    /// serves the successor's DS (asked of `parent_nameservers`). Run
    /// `geofailover reload` after it.
    Rollover {
        /// The configuration file.
        #[arg(long, short, default_value = "config/example.yaml")]
        config: PathBuf,
        /// The zone, such as example.com.
        #[arg(long)]
        zone: String,
        /// Which key: zsk, ksk or csk.
        #[arg(long)]
        key: String,
        /// With several nodes: as this one.
        #[arg(long)]
        node: Option<String>,
    },
    /// Show each signed zone's keys, the signatures' validity now and when
    /// the zone is next signed again.
    Status {
        /// The configuration file.
        #[arg(long, short, default_value = "config/example.yaml")]
        config: PathBuf,
        /// With several nodes: as this one.
        #[arg(long)]
        node: Option<String>,
    },
}

/// One zone read and checked; its errors, each with file and line.
fn load_zone(
    source: &crate::config::ZoneSource,
    config: &std::path::Path,
) -> Result<zone::Zone, Failure> {
    zone::load(source, config).map_err(|errors| {
        Failure::Config(
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })
}

pub fn run(command: DnssecCommand) -> Result<(), Failure> {
    match command {
        DnssecCommand::Ds { config, zone, node } => ds(&config, &zone, node.as_deref()),
        DnssecCommand::Status { config, node } => status(&config, node.as_deref()),
        DnssecCommand::Rollover {
            config,
            zone,
            key,
            node,
        } => rollover(&config, &zone, &key, node.as_deref()),
    }
}

/// The signed zones of the config: source and loaded zone.
fn signed_zones(
    config: &Config,
) -> Result<Vec<(&crate::config::ZoneSource, &dnssec::Policy, u32)>, Failure> {
    let mut out = Vec::new();
    for source in &config.zones {
        let Some(policy) = &source.dnssec else {
            continue;
        };
        let loaded = load_zone(source, &config.path)?;
        let ttl = loaded
            .records
            .first_of(RecordType::SOA)
            .map_or(3600, |soa| match soa.data {
                RData::SOA(_) => soa.ttl,
                _ => 3600,
            });
        out.push((source, policy, ttl));
    }
    Ok(out)
}

fn ds(path: &std::path::Path, zone: &str, node: Option<&str>) -> Result<(), Failure> {
    let config = Config::load_as(path, node).map_err(|e| Failure::Config(e.to_string()))?;
    let mut wanted = Name::from_utf8(zone)
        .map_err(|e| Failure::Config(format!("`{zone}` is not a domain name: {e}")))?;
    wanted.set_fqdn(true);
    let zones = signed_zones(&config)?;
    let Some((source, policy, ttl)) = zones.iter().find(|(s, _, _)| s.origin == wanted) else {
        return Err(Failure::Config(format!(
            "{}: zone {wanted} is not served signed: expected a zone with `dnssec:` (signed: {})",
            path.display(),
            if zones.is_empty() {
                "none".to_string()
            } else {
                zones
                    .iter()
                    .map(|(s, _, _)| s.origin.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        )));
    };
    let (keys, created) = dnssec::keys::load_or_create(
        &policy.keys,
        &source.origin,
        policy.algorithm,
        *ttl,
        policy.split_keys,
    )
    .map_err(Failure::Config)?;
    if created {
        eprintln!(
            "made a signing key for {} in {}",
            source.origin,
            policy.keys.display()
        );
    }
    for line in dnssec::ds_lines(&source.origin, &keys, *ttl) {
        println!("{line}");
    }
    Ok(())
}

fn rollover(
    path: &std::path::Path,
    zone: &str,
    which: &str,
    node: Option<&str>,
) -> Result<(), Failure> {
    let config = Config::load_as(path, node).map_err(|e| Failure::Config(e.to_string()))?;
    let mut wanted = Name::from_utf8(zone)
        .map_err(|e| Failure::Config(format!("`{zone}` is not a domain name: {e}")))?;
    wanted.set_fqdn(true);
    let (source, policy) = config
        .zones
        .iter()
        .filter(|s| s.origin == wanted)
        .find_map(|s| s.dnssec.as_ref().map(|policy| (s, policy)))
        .ok_or_else(|| {
            Failure::Config(format!(
                "{}: zone {wanted} is not served signed: expected a zone with `dnssec:`",
                path.display()
            ))
        })?;
    let loaded = load_zone(source, &config.path)?;
    let records = &loaded.records;
    let soa_ttl = records
        .first_of(RecordType::SOA)
        .map_or(3600, |soa| soa.ttl);
    let largest = (0..records.len())
        .map(|i| records.ttl(i))
        .max()
        .unwrap_or(soa_ttl);
    let now = crate::control::clock::now_ms() / 1000;
    let publication = u64::from(soa_ttl) + dnssec::PROPAGATION;
    let keys = dnssec::keys::load(&policy.keys, &source.origin, policy.algorithm)
        .map_err(Failure::Config)?;
    let zsks = keys.iter().any(|k| k.flags & 1 == 0);
    let utc = |s: u64| crate::engine::utc(s * 1000);
    match (which, zsks) {
        ("zsk", true) => {
            let done = dnssec::keys::roll_zsk(
                &policy.keys,
                &source.origin,
                policy.algorithm,
                soa_ttl,
                now,
                0,
                publication,
                u64::from(largest) + dnssec::PROPAGATION,
            )
            .map_err(|e| Failure::Other(anyhow::anyhow!(e)))?;
            match done {
                Some(done) => println!("{done}"),
                None => {
                    return Err(Failure::Other(anyhow::anyhow!(
                        "no ZSK rollover begun: one is under way already (see `geofailover dnssec status`)"
                    )));
                }
            }
        }
        ("ksk", true) | ("csk", false) => {
            let new = dnssec::keys::begin_sep_rollover(
                &policy.keys,
                &source.origin,
                policy.algorithm,
                soa_ttl,
                now,
                publication,
            )
            .map_err(|e| Failure::Other(anyhow::anyhow!(e)))?;
            println!(
                "{} rollover: key {:05} published now, signing from {}; give the parent its DS:",
                which.to_uppercase(),
                new.tag,
                utc(now + publication)
            );
            for line in dnssec::ds_lines(&source.origin, std::slice::from_ref(&new), soa_ttl) {
                println!("  {line}");
            }
            if policy.parent_nameservers.is_empty() {
                println!(
                    "The old key signs on; once the parent serves the new DS, retire it by hand: dnssec-settime -K {} -I +DS_TTL+1h -D +1d <old key>",
                    policy.keys.display()
                );
            } else {
                println!(
                    "The old key signs on until every parent nameserver ({}) serves the new DS; it is retired then.",
                    policy
                        .parent_nameservers
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        ("zsk", false) => {
            return Err(Failure::Config(format!(
                "zone {wanted} is signed with a CSK, not a ZSK: roll it with --key csk"
            )));
        }
        ("ksk", false) => {
            return Err(Failure::Config(format!(
                "zone {wanted} is signed with a CSK, not a KSK: roll it with --key csk"
            )));
        }
        ("csk", true) => {
            return Err(Failure::Config(format!(
                "zone {wanted} is signed with a KSK and a ZSK: roll them with --key ksk or --key zsk"
            )));
        }
        (other, _) => {
            return Err(Failure::Config(format!(
                "--key `{other}`: expected zsk, ksk or csk"
            )));
        }
    }
    println!("Run `geofailover reload` (or send SIGHUP) for the server to publish it.");
    Ok(())
}

fn status(path: &std::path::Path, node: Option<&str>) -> Result<(), Failure> {
    let config = Config::load_as(path, node).map_err(|e| Failure::Config(e.to_string()))?;
    let zones = signed_zones(&config)?;
    if zones.is_empty() {
        println!("no zone is served signed (no zone has `dnssec:`)");
        return Ok(());
    }
    let now_s = crate::control::clock::now_ms() / 1000;
    for (source, policy, ttl) in zones {
        let keys = dnssec::keys::load(&policy.keys, &source.origin, policy.algorithm)
            .map_err(Failure::Config)?;
        println!("zone {}", source.origin);
        println!(
            "  algorithm {}, keys in {}",
            policy.algorithm.number(),
            policy.keys.display()
        );
        if keys.is_empty() {
            println!("  no keys yet: the first serve (or `geofailover dnssec ds`) makes one");
            continue;
        }
        let zsks = keys.iter().any(|k| k.flags & 1 == 0);
        for key in &keys {
            let role = match (key.flags & 1 == 1, zsks) {
                (true, true) => "KSK",
                (true, false) => "CSK",
                (false, _) => "ZSK",
            };
            let t = key.timing;
            let state = if t.signs(now_s) {
                "signing"
            } else if t.published(now_s) {
                "published, not signing"
            } else if t.publish.is_some_and(|p| p > now_s) {
                "not yet published"
            } else {
                "retired"
            };
            let when = |what: &str, at: Option<u64>| {
                at.map(|s| format!(", {what} {}", crate::engine::utc(s * 1000)))
                    .unwrap_or_default()
            };
            println!(
                "  key {:05} {role} (flags {}), {state}{}{}{}{}, {}",
                key.tag,
                key.flags,
                when("published", t.publish),
                when("active", t.activate),
                when("inactive", t.inactive),
                when("deleted", t.delete),
                key.file.display()
            );
        }
        let times = dnssec::times(&source.origin, policy, now_s);
        let ms = |s: u32| crate::engine::utc(u64::from(s) * 1000);
        println!(
            "  signatures valid {} to {}; signed again at {}",
            ms(times.inception),
            ms(times.expiration),
            crate::engine::utc(dnssec::due(policy, times) * 1000)
        );
        println!("  DS for the parent:");
        for line in dnssec::ds_lines(&source.origin, &keys, ttl) {
            println!("    {line}");
        }
    }
    Ok(())
}
