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

pub fn run(command: DnssecCommand) -> Result<(), Failure> {
    match command {
        DnssecCommand::Ds { config, zone, node } => ds(&config, &zone, node.as_deref()),
        DnssecCommand::Status { config, node } => status(&config, node.as_deref()),
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
        let loaded = zone::load(source, &config.path).map_err(|errors| {
            Failure::Config(
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        })?;
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
