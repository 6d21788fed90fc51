//! `geofailover check`: validate the config and every zone without serving;
//! with `--live`, also run the failover readiness checks once.

use std::path::Path;

use anyhow::Context;

use super::Failure;
use crate::{config::Config, control::readiness, zone};

pub fn run(path: &Path, live: bool, node: Option<&str>) -> Result<(), Failure> {
    let bad = |e: crate::config::ConfigError| Failure::Config(e.to_string());
    // With several nodes and none named, every node's settings are
    // checked (each as from another host: a node's notify_source is its
    // own host's address); the zones and the live checks are the first
    // node's.
    let names = Config::node_names(path).map_err(bad)?;
    let config = if node.is_none() && !names.is_empty() {
        let mut first = None;
        for name in &names {
            let config = Config::load_elsewhere(path, name).map_err(bad)?;
            first.get_or_insert(config);
        }
        println!(
            "{}: the cluster's settings are valid for every node: {}",
            path.display(),
            names.join(", ")
        );
        first.ok_or_else(|| Failure::Config("no nodes".into()))?
    } else {
        Config::load_as(path, node).map_err(bad)?
    };
    let mut zones = zone::load_all(&config).map_err(|e| Failure::Config(e.to_string()))?;
    // Signed zones: their keys checked (never made here) and the zone
    // signed as serve would sign it now, so its digest is the one served.
    let mut keyless = Vec::new();
    for source in &config.zones {
        let Some(policy) = &source.dnssec else {
            continue;
        };
        let keys = crate::dnssec::keys::load(&policy.keys, &source.origin, policy.algorithm)
            .map_err(|e| Failure::Config(format!("zone {}: {e}", source.origin)))?;
        if keys.is_empty() {
            println!(
                "note: zone {} is to be signed but has no keys in {}: the first serve (or `geofailover dnssec ds`) makes one",
                source.origin,
                policy.keys.display()
            );
            keyless.push(source.origin.clone());
        } else {
            let tags: Vec<String> = keys.iter().map(|k| format!("{:05}", k.tag)).collect();
            println!(
                "zone {} is signed with algorithm {}, keys {}",
                source.origin,
                policy.algorithm.number(),
                tags.join(", ")
            );
        }
    }
    let signable: Vec<zone::Zone> = zones
        .iter()
        .filter(|z| !keyless.contains(&z.origin))
        .cloned()
        .collect();
    let now_s = crate::control::clock::now_ms() / 1000;
    let signed =
        crate::dnssec::sign_all(&config, signable, now_s, false).map_err(Failure::Config)?;
    for zone in signed {
        if let Some(slot) = zones.iter_mut().find(|z| z.origin == zone.origin) {
            *slot = zone;
        }
    }
    // What the next load would serve, against what was served before.
    if let Ok(Some(stored)) = crate::store::LocalStore::new(&config.state_dir).load_now() {
        let zones: Vec<zone::Zone> = zones
            .iter()
            .filter(|z| !keyless.contains(&z.origin))
            .cloned()
            .collect();
        let (_, notes) = crate::control::answers::serials(
            &zones,
            &config.zones,
            &stored.serials,
            &stored.digests,
        );
        for note in notes {
            let mark = if note.warning { "warning" } else { "note" };
            println!("{mark}: {}", note.text);
        }
    }
    let table = zone::AnswerTable::build(zones);
    let zones: Vec<String> = table
        .summary()
        .iter()
        .map(|(origin, serial)| format!("{origin} (serial {serial})"))
        .collect();
    println!("{}: ok: {}", path.display(), zones.join(", "));
    if !live {
        return Ok(());
    }
    let Some(failover) = &config.failover else {
        println!("no failover section: no failover steps to check");
        return Ok(());
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let found = runtime.block_on(readiness::check(failover, &config.state_dir));
    for item in &found.items {
        let mark = if item.ok { "ok    " } else { "FAILED" };
        println!("{mark} {}: {}", item.name, item.detail);
    }
    if found.ready {
        println!("failover ready: yes");
        Ok(())
    } else {
        Err(Failure::Other(anyhow::anyhow!(
            "failover ready: {}",
            found.sentence()
        )))
    }
}
