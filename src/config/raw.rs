//! The configuration file exactly as written: serde structs that reject
//! unknown keys. Values serde can check (addresses, durations, enums) are
//! checked here, so their errors carry a line; `super` checks the rest and
//! turns these into a validated `Config`.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use serde::Deserialize;

use super::duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Where state and the journal live; relative to the config's folder.
    #[serde(default)]
    pub state_dir: Option<String>,
    /// With several nodes, only the settings every node shares.
    #[serde(default)]
    pub dns: RawDns,
    pub zones: Vec<RawZone>,
    #[serde(default)]
    pub failover: Option<RawFailover>,
    #[serde(default)]
    pub sites: Vec<RawSite>,
    #[serde(default)]
    pub http: Option<RawHttpServer>,
    #[serde(default)]
    pub notify: Option<RawNotify>,
    #[serde(default)]
    pub drill: Option<RawDrill>,
    /// `local` (the default) or `{etcd: ...}`.
    #[serde(default)]
    pub store: Option<super::cluster::RawStore>,
    /// Which of `nodes` this controller is (`--node` overrides).
    #[serde(default)]
    pub node: Option<String>,
    #[serde(default)]
    pub nodes: Vec<super::cluster::RawNode>,
    #[serde(default)]
    pub quorum: Option<usize>,
    /// Keys for zone transfers and NOTIFY.
    #[serde(default)]
    pub tsig_keys: Vec<super::transfer::RawTsigKey>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDrill {
    /// The authoritative nameservers to verify; default: the zones' NS
    /// records at port 53.
    #[serde(default)]
    pub nameservers: Vec<SocketAddr>,
    #[serde(default, deserialize_with = "duration::optional")]
    pub hold: Option<Duration>,
    /// The longest each wait of a drill may take.
    #[serde(default, deserialize_with = "duration::optional")]
    pub timeout: Option<Duration>,
    /// Run a drill by itself this often.
    #[serde(default, deserialize_with = "duration::optional")]
    pub every: Option<Duration>,
    /// When a scheduled drill may start; default any time.
    #[serde(default)]
    pub window: Option<super::schedule::RawWindow>,
    /// The failover records' TTL during a scheduled drill.
    #[serde(default, deserialize_with = "duration::optional")]
    pub lower_ttl: Option<Duration>,
    /// In `failover.mode: promote`: the account the drill writes with,
    /// to measure write downtime and lost writes.
    #[serde(default)]
    pub writer: Option<RawDrillWriter>,
    /// In `failover.mode: promote`: scheduled drills promote too.
    #[serde(default)]
    pub promote: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDrillWriter {
    pub user: String,
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    pub password_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpServer {
    /// With several nodes, each node's own `http` instead.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// The API token's file; created with a random token when missing.
    #[serde(default)]
    pub token_file: Option<String>,
    /// Require the token for the reading endpoints too.
    #[serde(default)]
    pub protect_reads: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    pub webhooks: Vec<RawWebhook>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    pub url: String,
    #[serde(default, deserialize_with = "duration::optional")]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub retries: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDns {
    /// Each address is served over both UDP and TCP (with several nodes,
    /// each node's own `dns` instead).
    #[serde(default)]
    pub listen: Vec<String>,
    /// Seconds an idle TCP connection is kept, and the longest one write
    /// of an answer may wait for the client to read.open.
    #[serde(default)]
    pub tcp_idle_timeout: Option<u64>,
    /// Open TCP connections at most, over all sources.
    #[serde(default)]
    pub tcp_max_connections: Option<usize>,
    /// Open TCP connections at most from one address.
    #[serde(default)]
    pub tcp_max_per_source: Option<usize>,
    /// Seconds a TCP connection may last, however busy.
    #[serde(default)]
    pub tcp_max_lifetime: Option<u64>,
    /// Answer plain UDP queries from precomputed responses (default true).
    #[serde(default)]
    pub fast_path: Option<bool>,
    /// Response rate limiting over UDP.
    #[serde(default)]
    pub rrl: Option<RawRrl>,
    /// The address NOTIFYs (and the SOA queries that follow) are sent
    /// from, or one per family; default: the kernel's choice.
    #[serde(default)]
    pub notify_source: Option<RawAddresses>,
}

/// One address, or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawAddresses {
    One(String),
    Many(Vec<String>),
}

impl RawAddresses {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(one) => vec![one],
            Self::Many(many) => many,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRrl {
    /// Responses a second per prefix and key (README says which); 0 turns it off.
    #[serde(default)]
    pub rate: Option<u32>,
    /// Every Nth limited response is sent truncated; 0 drops them all.
    #[serde(default)]
    pub slip: Option<u32>,
    /// Seconds over which the rate is averaged.
    #[serde(default)]
    pub window: Option<u64>,
    #[serde(default)]
    pub ipv4_prefix: Option<u8>,
    #[serde(default)]
    pub ipv6_prefix: Option<u8>,
    /// Addresses or prefixes never limited (default: loopback).
    #[serde(default)]
    pub exempt: Option<Vec<String>>,
    #[serde(default)]
    pub dry_run: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawZone {
    pub name: String,
    /// Relative paths are taken from the configuration file's folder.
    pub file: String,
    /// Who may transfer the zone (AXFR, IXFR): `ADDRESS[/LEN] [key NAME]`.
    #[serde(default)]
    pub allow_transfer: Vec<String>,
    /// Secondaries told of each change: `IP:PORT [key NAME]`.
    #[serde(default)]
    pub notify: Vec<String>,
    /// How the served serial follows the zone's content.
    #[serde(default)]
    pub serial_policy: crate::config::SerialPolicy,
    /// Serve the zone signed (DNSSEC): `dnssec: {}` for the defaults.
    #[serde(default)]
    pub dnssec: Option<RawDnssec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDnssec {
    /// 13 (ECDSA P-256 with SHA-256, the default) or 15 (Ed25519).
    #[serde(default)]
    pub algorithm: Option<u8>,
    /// The key files' folder; default `keys` in `state_dir`.
    #[serde(default)]
    pub keys: Option<String>,
    /// How long signatures are valid (default 14d).
    #[serde(default, deserialize_with = "crate::config::duration::optional")]
    pub validity: Option<std::time::Duration>,
    /// How long before they expire the zone is signed again (default 7d).
    #[serde(default, deserialize_with = "crate::config::duration::optional")]
    pub refresh: Option<std::time::Duration>,
    /// Authenticated denial: `nsec` (default) or `nsec3`.
    #[serde(default)]
    pub denial: Option<String>,
    /// The keys made when there are none: `csk` (default) or `ksk_zsk`.
    #[serde(default)]
    pub signing_keys: Option<String>,
    /// Roll the ZSK automatically after this long (with `ksk_zsk`).
    #[serde(default, deserialize_with = "crate::config::duration::optional")]
    pub zsk_lifetime: Option<std::time::Duration>,
    /// The parent zone's nameservers (`IP[:PORT]`), asked for the DS
    /// during a KSK or CSK rollover.
    #[serde(default)]
    pub parent_nameservers: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFailover {
    pub records: Vec<RawRecord>,
    /// Fail over automatically when the primary is down.
    #[serde(default)]
    pub auto: Option<bool>,
    /// No second automatic failover for this long after one.
    #[serde(default, deserialize_with = "duration::optional")]
    pub cooldown: Option<Duration>,
    /// How replication is watched when both sites have databases.
    #[serde(default)]
    pub replication: Option<RawReplication>,
    /// After fail-back, the application flag is cleared when the records'
    /// TTL and this margin have passed.
    #[serde(default, deserialize_with = "duration::optional")]
    pub flag_clear_margin: Option<Duration>,
    /// The longest each read-only step (database, flag file, flag SQL,
    /// flag HTTP call) may take.
    #[serde(default, deserialize_with = "duration::optional")]
    pub step_timeout: Option<Duration>,
    /// How often the failover readiness checks run.
    #[serde(default, deserialize_with = "duration::optional")]
    pub readiness_interval: Option<Duration>,
    /// `read_only` (the default) or `promote`.
    #[serde(default)]
    pub mode: Option<RawMode>,
    /// In `promote` mode: how long the primary must have been down before
    /// the secondary is promoted by itself.
    #[serde(default, deserialize_with = "duration::optional")]
    pub promote_after: Option<Duration>,
    /// In `promote` mode: how long the primary site's node waits, cut from
    /// the cluster, before it fences its own database.
    #[serde(default, deserialize_with = "duration::optional")]
    pub fence_after: Option<Duration>,
    /// Promote by itself even when writes could be lost (replication not
    /// semi-synchronous AFTER_SYNC, or the secondary not acknowledging).
    #[serde(default)]
    pub allow_data_loss: Option<bool>,
    /// In `promote` mode with several nodes: an event in the primary's
    /// database sets it read-only when the primary site's node stops
    /// beating (dead, or cut from the cluster) for `fence_after`.
    #[serde(default)]
    pub fence_heartbeat: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawMode {
    ReadOnly,
    Promote,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReplication {
    #[serde(default, deserialize_with = "duration::optional")]
    pub interval: Option<Duration>,
    #[serde(default, deserialize_with = "duration::optional")]
    pub timeout: Option<Duration>,
    /// Most the secondary may lag for a fail-back.
    #[serde(default, deserialize_with = "duration::optional")]
    pub max_lag: Option<Duration>,
    /// The account a replica connects to its source with: what a promoted
    /// secondary's old primary is rejoined with (`mode: promote`).
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password_file: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[allow(clippy::upper_case_acronyms)]
pub enum RawRecordType {
    A,
    AAAA,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecord {
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: RawRecordType,
    #[serde(default)]
    pub ttl: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawRole {
    Primary,
    Secondary,
}

/// `all`, `any`, or `{at_least: N}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawDownRule {
    All,
    Any,
    AtLeast(u32),
}

impl<'de> Deserialize<'de> for RawDownRule {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        const EXPECTED: &str = "all, any, or {at_least: N}";
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawDownRule;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(EXPECTED)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match v {
                    "all" => Ok(RawDownRule::All),
                    "any" => Ok(RawDownRule::Any),
                    other => Err(E::custom(format!("`{other}`: expected {EXPECTED}"))),
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let key: Option<String> = map.next_key()?;
                match key.as_deref() {
                    Some("at_least") => {
                        let n: u32 = map.next_value()?;
                        if map.next_key::<String>()?.is_some() {
                            return Err(serde::de::Error::custom(format!(
                                "expected only {EXPECTED}"
                            )));
                        }
                        Ok(RawDownRule::AtLeast(n))
                    }
                    other => Err(serde::de::Error::custom(format!(
                        "`{}`: expected {EXPECTED}",
                        other.unwrap_or("")
                    ))),
                }
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSite {
    pub name: String,
    pub role: RawRole,
    /// For each failover record's name, this site's addresses.
    pub addresses: BTreeMap<String, Vec<IpAddr>>,
    /// When the site counts as down; default `all`.
    #[serde(default)]
    pub down_when: Option<RawDownRule>,
    pub checks: Vec<RawCheck>,
    /// The site's database, for replication and read-only mode.
    #[serde(default)]
    pub database: Option<RawDatabase>,
    /// The application's read-only flag at this site.
    #[serde(default)]
    pub read_only: Option<RawReadOnly>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabase {
    pub address: SocketAddr,
    /// An account allowed to set read_only and read replication status.
    pub user: String,
    #[serde(default)]
    pub password_file: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
    /// Application accounts (`user@host`) whose grants are audited.
    #[serde(default)]
    pub app_accounts: Vec<String>,
    /// Refuse read-only mode when an application account could bypass it.
    #[serde(default)]
    pub strict_grants: Option<bool>,
    /// Where the other site's server reaches this one to replicate from
    /// it (default: `address`).
    #[serde(default)]
    pub replication_address: Option<SocketAddr>,
    #[serde(default)]
    pub tls: Option<RawDbTls>,
}

/// TLS to a database; verification is on unless turned off.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDbTls {
    #[serde(default)]
    pub ca_file: Option<String>,
    #[serde(default)]
    pub verify: Option<bool>,
    #[serde(default)]
    pub server_name: Option<String>,
    #[serde(default)]
    pub client_cert: Option<String>,
    #[serde(default)]
    pub client_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReadOnly {
    #[serde(default)]
    pub flag_file: Option<RawFlagFile>,
    #[serde(default)]
    pub sql: Option<RawFlagSql>,
    #[serde(default)]
    pub http: Option<RawFlagHttp>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFlagFile {
    pub path: String,
    #[serde(default)]
    pub content: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFlagSql {
    pub enable: Vec<String>,
    pub disable: Vec<String>,
    #[serde(default)]
    pub verify: Option<RawFlagVerify>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFlagVerify {
    pub query: String,
    pub expect: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFlagHttp {
    #[serde(default)]
    pub method: Option<String>,
    pub url: String,
    #[serde(default)]
    pub expect_status: Option<Vec<u16>>,
    /// Must then report read-only: `check_contains` in its body.
    pub check_url: String,
    pub check_contains: String,
    /// Called at fail-back to undo the flag.
    pub undo_url: String,
    #[serde(default)]
    pub undo_method: Option<String>,
    /// CA certificates (PEM) the flag URLs' TLS is checked against, as a
    /// check's `ca_file`; default: the system's.
    #[serde(default)]
    pub ca_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    pub name: String,
    #[serde(default)]
    pub http: Option<RawHttp>,
    #[serde(default)]
    pub tcp: Option<RawTcp>,
    #[serde(default)]
    pub mysql: Option<RawMysql>,
    #[serde(default, deserialize_with = "duration::optional")]
    pub interval: Option<Duration>,
    #[serde(default, deserialize_with = "duration::optional")]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub fall: Option<u32>,
    #[serde(default)]
    pub rise: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    /// `http://` or `https://`, the address to connect to, and the path.
    pub url: String,
    #[serde(default)]
    pub method: Option<String>,
    /// The Host header, and for https the TLS server name.
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub expect_status: Option<Vec<u16>>,
    #[serde(default)]
    pub body_contains: Option<String>,
    #[serde(default)]
    pub tls_verify: Option<bool>,
    #[serde(default)]
    pub ca_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTcp {
    pub address: SocketAddr,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMysql {
    pub address: SocketAddr,
    pub user: String,
    /// A file holding the password (trailing newline ignored).
    #[serde(default)]
    pub password_file: Option<String>,
    /// An environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    pub tls: Option<RawDbTls>,
}
