//! `geofailover check`: validate the config and every zone without serving;
//! with `--live`, also run the failover readiness checks once.

use std::path::Path;

use anyhow::Context;

use super::Failure;
use crate::{config::Config, control::readiness, zone};

pub fn run(path: &Path, live: bool, node: Option<&str>) -> Result<(), Failure> {
    let bad = |e: crate::config::ConfigError| Failure::Config(e.to_string());
    // With several nodes and none named, every node's settings are
    // checked; the zones and the live checks are the first node's.
    let names = Config::node_names(path).map_err(bad)?;
    let config = if node.is_none() && !names.is_empty() {
        let mut first = None;
        for name in &names {
            let config = Config::load_as(path, Some(name)).map_err(bad)?;
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
    let zones = zone::load_all(&config).map_err(|e| Failure::Config(e.to_string()))?;
    // What the next load would serve, against what was served before.
    if let Ok(Some(stored)) = crate::store::LocalStore::new(&config.state_dir).load_now() {
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
