//! `geofailover check`: validate the config and every zone without serving.

use std::path::Path;

use super::Failure;
use crate::{config::Config, zone};

pub fn run(path: &Path) -> Result<(), Failure> {
    let config = Config::load(path).map_err(|e| Failure::Config(e.to_string()))?;
    let zones = zone::load_all(&config).map_err(|e| Failure::Config(e.to_string()))?;
    let table = zone::AnswerTable::build(zones);
    let zones: Vec<String> = table
        .summary()
        .iter()
        .map(|(origin, serial)| format!("{origin} (serial {serial})"))
        .collect();
    println!("{}: ok: {}", path.display(), zones.join(", "));
    Ok(())
}
