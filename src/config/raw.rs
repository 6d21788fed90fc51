//! The configuration file exactly as written: serde structs that reject
//! unknown keys. Nothing here is checked beyond its YAML type; `super`
//! turns these into a validated `Config`.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub dns: RawDns,
    pub zones: Vec<RawZone>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDns {
    /// Each address is served over both UDP and TCP.
    pub listen: Vec<String>,
    /// Seconds an idle TCP connection is kept open.
    #[serde(default)]
    pub tcp_idle_timeout: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawZone {
    pub name: String,
    /// Relative paths are taken from the configuration file's folder.
    pub file: String,
}
