//! Configuration: the YAML file an operator writes, read into raw structs
//! (`raw`) and then validated into a `Config` whose every field is usable
//! as it stands. Every error names the file and, where it can, the line.

pub mod cluster;
pub mod duration;
pub mod failover;
mod raw;
pub mod schedule;
pub mod transfer;

use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use hickory_proto::rr::Name;

pub use cluster::{ClusterConfig, EtcdConfig, Node, Place};
pub use failover::{
    Check, CheckKind, Database, Failover, FailoverRecord, FlagFile, FlagHttp, FlagSql, HttpCheck,
    ReadOnlyFlags, ReadOnlyStep, Secret, Site, read_secret,
};
use raw::RawConfig;
pub use schedule::{DrillSchedule, DrillWindow};
pub use transfer::{Allow, NotifyTarget, Prefix, TsigAlgorithm, TsigKey, ZoneTransfer};

/// Seconds an idle TCP connection is kept when the config does not say.
const DEFAULT_TCP_IDLE_TIMEOUT: u64 = 10;
/// Open TCP connections at most, and from one address, by default.
const DEFAULT_TCP_MAX_CONNECTIONS: usize = 1000;
const DEFAULT_TCP_MAX_PER_SOURCE: usize = 32;
/// Seconds a TCP connection may last by default, however busy.
const DEFAULT_TCP_MAX_LIFETIME: u64 = 120;

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// Keys for zone transfers and NOTIFY.
    pub tsig_keys: Vec<TsigKey>,
    /// Where state and the journal are kept.
    pub state_dir: PathBuf,
    pub dns: DnsConfig,
    pub zones: Vec<ZoneSource>,
    /// Failover records, sites and policy; `None` serves the zones as they are.
    pub failover: Option<Failover>,
    /// The status page and API; `None` runs without them.
    pub http: Option<HttpConfig>,
    pub webhooks: Vec<Webhook>,
    pub drill: DrillConfig,
    /// Several controllers sharing one decision through etcd; `None` for
    /// one controller with its state in `state_dir` (`store: local`).
    pub cluster: Option<ClusterConfig>,
}

/// How drills run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillConfig {
    /// Verified at each switch; empty: the zones' NS records at port 53.
    pub nameservers: Vec<SocketAddr>,
    pub hold: Duration,
    pub timeout: Duration,
    /// Drills that run by themselves (`drill.every`).
    pub schedule: Option<schedule::DrillSchedule>,
    /// The account a drill in `failover.mode: promote` writes with.
    pub writer: Option<DrillWriter>,
    /// Scheduled drills promote too (`failover.mode: promote`); by
    /// default they rehearse read-only mode only.
    pub promote_scheduled: bool,
}

/// `drill.writer`: an application-like account (it must not bypass
/// read_only) that writes to `geofailover_drill.writes` during a drill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillWriter {
    pub user: String,
    pub password: Secret,
}

/// The status page and API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Holds the API token; created with a random one when missing.
    pub token_file: PathBuf,
    /// The reading endpoints need the token too.
    pub protect_reads: bool,
}

/// Where notifications are POSTed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub url: String,
    pub timeout: Duration,
    pub retries: u32,
}

/// A webhook gets this long to answer when the config does not say.
const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_WEBHOOK_RETRIES: u32 = 3;
const DEFAULT_DRILL_HOLD: Duration = Duration::from_secs(30);
/// The longest drill period: a year and a day.
const MAX_DRILL_EVERY: Duration = Duration::from_secs(366 * 86_400);
const DEFAULT_DRILL_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// Served over both UDP and TCP.
    pub listen: Vec<SocketAddr>,
    pub tcp_idle_timeout: Duration,
    pub tcp_max_connections: usize,
    pub tcp_max_per_source: usize,
    pub tcp_max_lifetime: Duration,
    /// Plain UDP queries answered from precomputed responses.
    pub fast_path: bool,
    /// Response rate limiting over UDP.
    pub rrl: crate::dns::rrl::RrlConfig,
    /// Where NOTIFYs are sent from, at most one address per family;
    /// none: the kernel's choice.
    pub notify_source: Vec<std::net::IpAddr>,
}

/// One zone the config names: its origin and where its file is.
#[derive(Debug, Clone)]
pub struct ZoneSource {
    pub origin: Name,
    /// Resolved against the config file's folder.
    pub file: PathBuf,
    /// Where the zone is named in the config, for errors about it.
    pub config_line: Option<usize>,
    /// Who may transfer it and whom to notify of its changes.
    pub transfer: ZoneTransfer,
    pub serial_policy: SerialPolicy,
    /// Served signed, with these settings.
    pub dnssec: Option<crate::dnssec::Policy>,
}

/// How a zone's served serial follows its content.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SerialPolicy {
    /// Content that changed is served under a new serial: the zone
    /// file's when it is newer (RFC 1982) than every serial served
    /// before, else the last one served plus one.
    #[default]
    Increment,
    /// The zone file's serial is served as it is whenever it is newer;
    /// content changed under an unchanged serial is served under the old
    /// one, with a warning (for operators who manage serials themselves).
    Keep,
}

/// A place in a file that errors point at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}", self.file.display(), line),
            None => write!(f, "{}", self.file.display()),
        }
    }
}

/// Something wrong with a configuration file.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{location}: {message}")]
pub struct ConfigError {
    pub location: Location,
    pub message: String,
}

/// The YAML of `text` (read from `path`) into the raw structure; an error
/// names its line.
fn parse_raw(path: &Path, text: &str) -> Result<RawConfig, ConfigError> {
    serde_yaml::from_str(text).map_err(|e| ConfigError {
        location: Location {
            file: path.to_path_buf(),
            line: e.location().map(|l| l.line()),
        },
        message: yaml_message(&e),
    })
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        location: Location {
            file: path.to_path_buf(),
            line: None,
        },
        message: format!("cannot read the configuration: {e}"),
    })
}

/// The state folder and the HTTP server's settings, paths made relative
/// to the configuration's folder `base`.
/// With several nodes, `listen` is the node's own address, which takes
/// the place of `http.listen`.
fn http_section(
    base: &Path,
    state_dir: Option<&str>,
    http: Option<raw::RawHttpServer>,
    listen: Option<SocketAddr>,
) -> Result<(PathBuf, Option<HttpConfig>), String> {
    let state_dir = base.join(state_dir.unwrap_or("state"));
    let http = match (http, listen) {
        (Some(h), _) => Some(HttpConfig {
            listen: listen
                .or(h.listen)
                .ok_or("http.listen is missing: expected an address such as 127.0.0.1:8053")?,
            token_file: h
                .token_file
                .map(|f| base.join(f))
                .unwrap_or_else(|| state_dir.join("api.token")),
            protect_reads: h.protect_reads.unwrap_or(false),
        }),
        (None, Some(listen)) => Some(HttpConfig {
            listen,
            token_file: state_dir.join("api.token"),
            protect_reads: false,
        }),
        (None, None) => None,
    };
    Ok((state_dir, http))
}

impl Config {
    /// Reads and validates the configuration at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_as(path, None)
    }

    /// The nodes a configuration lists (none for one controller), read
    /// without validating anything else.
    pub fn node_names(path: &Path) -> Result<Vec<String>, ConfigError> {
        let text = read(path)?;
        let raw = parse_raw(path, &text)?;
        Ok(raw.nodes.into_iter().map(|n| n.name).collect())
    }

    /// Reads and validates the configuration at `path` for the node named
    /// `node` (`--node`), which overrides the config's `node:`.
    pub fn load_as(path: &Path, node: Option<&str>) -> Result<Self, ConfigError> {
        Self::parse_as(path, &read(path)?, node)
    }

    /// Only what a client of the API needs from the configuration at
    /// `path`: its `http` section. The rest is parsed (an unknown key is
    /// still an error) but not validated, so secrets the controller needs,
    /// such as database passwords, need not be at hand.
    /// With several nodes, the address is that of `node` (or the config's
    /// `node:`); the token file is the shared one.
    pub fn load_http(path: &Path, node: Option<&str>) -> Result<Option<HttpConfig>, ConfigError> {
        let text = read(path)?;
        let raw = parse_raw(path, &text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let fail = |message: String| ConfigError {
            location: Location {
                file: path.to_path_buf(),
                line: line_of(&text, "http:"),
            },
            message,
        };
        if raw.nodes.is_empty() {
            return http_section(base, raw.state_dir.as_deref(), raw.http, None)
                .map(|(_, http)| http)
                .map_err(fail);
        }
        let Some(name) = node.or(raw.node.as_deref()) else {
            return Err(ConfigError {
                location: Location {
                    file: path.to_path_buf(),
                    line: line_of(&text, "nodes:"),
                },
                message: "which node to talk to? expected --node NAME or --url".into(),
            });
        };
        let Some(listen) = raw
            .nodes
            .iter()
            .find(|n| n.name == name)
            .and_then(|n| n.http)
        else {
            return Err(ConfigError {
                location: Location {
                    file: path.to_path_buf(),
                    line: line_of(&text, "nodes:"),
                },
                message: format!("node `{name}` is not listed with an http address"),
            });
        };
        http_section(base, raw.state_dir.as_deref(), raw.http, Some(listen))
            .map(|(_, http)| http)
            .map_err(fail)
    }

    /// Validates configuration text that was read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        Self::parse_as(path, text, None)
    }

    /// `parse`, for the node named `node`.
    pub fn parse_as(path: &Path, text: &str, node: Option<&str>) -> Result<Self, ConfigError> {
        Self::parse_for(path, text, node, true)
    }

    /// `load_as`, from another host than the node's: what only the
    /// node's own host can tell (that its `notify_source` is one of this
    /// host's addresses) is not checked. For `check` of every node.
    pub fn load_elsewhere(path: &Path, node: &str) -> Result<Self, ConfigError> {
        Self::parse_for(path, &read(path)?, Some(node), false)
    }

    /// `parse_as`; the node's host-bound settings checked when `here`.
    fn parse_for(
        path: &Path,
        text: &str,
        node: Option<&str>,
        here: bool,
    ) -> Result<Self, ConfigError> {
        let at = |line: Option<usize>, message: String| ConfigError {
            location: Location {
                file: path.to_path_buf(),
                line,
            },
            message,
        };
        let mut raw = parse_raw(path, text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let shared_state_dir = base.join(raw.state_dir.as_deref().unwrap_or("state"));
        let cluster = cluster::validate(
            path,
            text,
            &shared_state_dir,
            cluster::RawCluster {
                store: raw.store.take(),
                node: raw.node.take(),
                nodes: std::mem::take(&mut raw.nodes),
                quorum: raw.quorum,
            },
            node,
            here,
        )?;
        if let Some(cluster) = &cluster {
            if !raw.dns.listen.is_empty() {
                return Err(at(
                    line_of(text, "listen"),
                    "dns.listen with several nodes: each node's addresses are its own `dns` under nodes".into(),
                ));
            }
            raw.dns.listen = cluster.me().dns.iter().map(ToString::to_string).collect();
        } else if raw.dns.listen.is_empty() {
            return Err(at(
                line_of(text, "listen"),
                "dns.listen is empty: expected at least one address such as 127.0.0.1:5353".into(),
            ));
        }
        let mut listen = Vec::new();
        for addr in &raw.dns.listen {
            let parsed: SocketAddr = addr.parse().map_err(|_| {
                at(
                    line_of(text, addr),
                    format!(
                        "dns.listen: `{addr}` is not an address: expected IP:PORT such as 127.0.0.1:5353 or [::1]:53"
                    ),
                )
            })?;
            if parsed.ip().is_unspecified() {
                return Err(at(
                    line_of(text, addr),
                    format!(
                        "dns.listen: `{addr}` is a wildcard address: on a host with several addresses a UDP answer could leave from another one than the query reached, and be dropped; list each address to serve on, such as 203.0.113.53:53"
                    ),
                ));
            }
            if listen.contains(&parsed) {
                return Err(at(
                    line_of(text, addr),
                    format!("dns.listen: `{addr}` is listed twice"),
                ));
            }
            listen.push(parsed);
        }
        let tcp_idle_timeout = raw.dns.tcp_idle_timeout.unwrap_or(DEFAULT_TCP_IDLE_TIMEOUT);
        if tcp_idle_timeout == 0 {
            return Err(at(
                line_of(text, "tcp_idle_timeout"),
                "dns.tcp_idle_timeout is 0: expected a number of seconds, at least 1".into(),
            ));
        }
        let rrl = rrl_section(raw.dns.rrl.take().unwrap_or_default())
            .map_err(|message| at(line_of(text, "rrl:"), format!("dns.rrl: {message}")))?;
        let notify_source = match (raw.dns.notify_source.take(), &cluster) {
            (None, None) => Vec::new(),
            (None, Some(cluster)) => cluster.me().notify_source.clone(),
            (Some(_), Some(_)) => {
                return Err(at(
                    line_of(text, "notify_source"),
                    "dns.notify_source with several nodes: `dns` holds what every node shares, and a source address is one host's; give each node its own `notify_source` under nodes".into(),
                ));
            }
            (Some(sources), None) => {
                transfer::notify_sources(&sources.into_vec()).map_err(|message| {
                    at(
                        line_of(text, "notify_source"),
                        format!("dns.notify_source: {message}"),
                    )
                })?
            }
        };
        let tcp_max_connections = raw
            .dns
            .tcp_max_connections
            .unwrap_or(DEFAULT_TCP_MAX_CONNECTIONS);
        let tcp_max_per_source = raw
            .dns
            .tcp_max_per_source
            .unwrap_or(DEFAULT_TCP_MAX_PER_SOURCE);
        let tcp_max_lifetime = raw.dns.tcp_max_lifetime.unwrap_or(DEFAULT_TCP_MAX_LIFETIME);
        for (key, value) in [
            ("tcp_max_connections", tcp_max_connections as u64),
            ("tcp_max_per_source", tcp_max_per_source as u64),
            ("tcp_max_lifetime", tcp_max_lifetime),
        ] {
            if value == 0 {
                return Err(at(
                    line_of(text, key),
                    format!("dns.{key} is 0: expected at least 1"),
                ));
            }
        }

        if raw.zones.is_empty() {
            return Err(at(
                line_of(text, "zones"),
                "zones is empty: expected at least one zone with a name and a file".into(),
            ));
        }
        let tsig_keys = transfer::keys(std::mem::take(&mut raw.tsig_keys), base).map_err(
            |(key, message)| {
                at(
                    line_of_from(text, line_of(text, "tsig_keys").unwrap_or(1), &key),
                    message,
                )
            },
        )?;
        let mut zones: Vec<ZoneSource> = Vec::new();
        for zone in &raw.zones {
            let line = line_of(text, &zone.name);
            let mut origin = Name::from_utf8(&zone.name).map_err(|e| {
                at(
                    line,
                    format!(
                        "zone name `{}` is not a domain name ({e}): expected a name such as example.com",
                        zone.name
                    ),
                )
            })?;
            origin.set_fqdn(true);
            if zones.iter().any(|z| z.origin == origin) {
                return Err(at(line, format!("zone {origin} is listed twice")));
            }
            if zone.file.is_empty() {
                return Err(at(
                    line,
                    format!("zone {origin}: file is empty: expected the path of its zone file"),
                ));
            }
            let mut transfer = ZoneTransfer::default();
            for entry in &zone.allow_transfer {
                transfer
                    .allow
                    .push(transfer::allow(entry, &tsig_keys).map_err(|e| {
                        at(
                            line_of_from(text, line.unwrap_or(1), entry),
                            format!("zone {origin}: {e}"),
                        )
                    })?);
            }
            for entry in &zone.notify {
                transfer
                    .notify
                    .push(transfer::notify(entry, &tsig_keys).map_err(|e| {
                        at(
                            line_of_from(text, line.unwrap_or(1), entry),
                            format!("zone {origin}: {e}"),
                        )
                    })?);
            }
            let dnssec = match &zone.dnssec {
                Some(raw) => Some(dnssec_policy(raw, &shared_state_dir, base).map_err(|e| {
                    at(
                        line_of_from(text, line.unwrap_or(1), "dnssec"),
                        format!("zone {origin}: dnssec: {e}"),
                    )
                })?),
                None => None,
            };
            zones.push(ZoneSource {
                origin,
                file: base.join(&zone.file),
                config_line: line_of(text, &zone.file),
                transfer,
                serial_policy: zone.serial_policy,
                dnssec,
            });
        }

        if cluster.is_some()
            && let Some(zone) = zones
                .iter()
                .find(|z| z.dnssec.as_ref().is_some_and(|d| d.zsk_lifetime.is_some()))
        {
            // Each node signs itself: one making a successor key alone
            // would sign with keys the others lack.
            return Err(at(
                line_of(text, "zsk_lifetime"),
                format!(
                    "zone {}: zsk_lifetime with several nodes: each node would make its own successor key; roll the ZSK by hand (README, \"Key timing\") and give every node the same key folder",
                    zone.origin
                ),
            ));
        }
        let failover = failover::validate(path, text, raw.failover, raw.sites)?;
        if cluster.is_some() && failover.is_none() {
            // The nodes agree on the serials and their content through the
            // failover state: without it they could not.
            return Err(at(
                line_of(text, "nodes:"),
                "several nodes need a failover section: expected `failover:` with the records they answer".into(),
            ));
        }
        if cluster.is_none()
            && failover
                .as_ref()
                .and_then(|f| f.promotion.as_ref())
                .is_some_and(|p| p.fence_heartbeat)
        {
            return Err(at(
                line_of(text, "fence_heartbeat"),
                "failover.fence_heartbeat is for several nodes: the primary site's node keeps the heartbeat".into(),
            ));
        }
        if let Some(failover) = &failover {
            for record in &failover.records {
                if !zones.iter().any(|z| z.origin.zone_of(&record.name)) {
                    return Err(at(
                        record.config_line,
                        format!(
                            "failover record {} is in no served zone: expected a name in {}",
                            record.name,
                            zones
                                .iter()
                                .map(|z| z.origin.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
        }

        let http_listen = cluster.as_ref().and_then(|c| c.me().http);
        let (mut state_dir, http) =
            http_section(base, raw.state_dir.as_deref(), raw.http, http_listen)
                .map_err(|message| at(line_of(text, "http:"), message))?;
        if let Some(cluster) = &cluster {
            state_dir = cluster.me().state_dir.clone();
        }
        let mut webhooks = Vec::new();
        for hook in raw.notify.map(|n| n.webhooks).unwrap_or_default() {
            let line = line_of(text, &hook.url);
            let url = reqwest::Url::parse(&hook.url)
                .map_err(|e| at(line, format!("notify: `{}` is not a URL: {e}", hook.url)))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(at(
                    line,
                    format!(
                        "notify: `{}`: expected an http:// or https:// URL",
                        hook.url
                    ),
                ));
            }
            webhooks.push(Webhook {
                url: hook.url,
                timeout: hook.timeout.unwrap_or(DEFAULT_WEBHOOK_TIMEOUT),
                retries: hook.retries.unwrap_or(DEFAULT_WEBHOOK_RETRIES),
            });
        }

        let drill = match raw.drill {
            None => DrillConfig {
                nameservers: Vec::new(),
                hold: DEFAULT_DRILL_HOLD,
                timeout: DEFAULT_DRILL_TIMEOUT,
                schedule: None,
                writer: None,
                promote_scheduled: false,
            },
            Some(d) => {
                let line = line_of(text, "drill:");
                let schedule = match (d.every, d.window, d.lower_ttl) {
                    (None, None, None) => None,
                    (None, _, _) => {
                        return Err(at(
                            line,
                            "drill: a window or lower_ttl without `every`: expected every: PERIOD, such as 30d".into(),
                        ));
                    }
                    (Some(every), window, lower_ttl) => {
                        if every < Duration::from_secs(1) || every > MAX_DRILL_EVERY {
                            return Err(at(
                                line_of(text, "every:").or(line),
                                "drill.every: expected from 1s to 366d, such as 30d".into(),
                            ));
                        }
                        let window = window
                            .map(schedule::DrillWindow::from_raw)
                            .transpose()
                            .map_err(|e| at(line_of(text, "window:").or(line), e))?
                            .unwrap_or_default();
                        let lower_ttl = lower_ttl
                            .map(|ttl| {
                                u32::try_from(ttl.as_secs())
                                    .ok()
                                    .filter(|s| *s >= failover::MIN_TTL)
                                    .ok_or_else(|| {
                                        at(
                                            line_of(text, "lower_ttl:").or(line),
                                            format!(
                                                "drill.lower_ttl: expected at least {}s",
                                                failover::MIN_TTL
                                            ),
                                        )
                                    })
                            })
                            .transpose()?;
                        Some(schedule::DrillSchedule {
                            every,
                            window,
                            lower_ttl,
                        })
                    }
                };
                let promotes = failover.as_ref().is_some_and(|f| f.promotion.is_some());
                if d.promote == Some(true) && !promotes {
                    return Err(at(
                        line_of(text, "promote: true").or(line),
                        "drill.promote: only with failover.mode: promote".into(),
                    ));
                }
                let writer = match d.writer {
                    None => None,
                    Some(w) => {
                        let line = line_of(text, "writer:").or(line);
                        if !promotes {
                            return Err(at(
                                line,
                                "drill.writer: only drills in failover.mode: promote write (a read-only drill leaves the primary writable)".into(),
                            ));
                        }
                        let file = w.password_file.as_ref().map(|f| base.join(f));
                        let password = read_secret(file.as_deref(), w.password_env.as_deref())
                            .map_err(|e| at(line, format!("drill.writer: {e}")))?;
                        Some(DrillWriter {
                            user: w.user,
                            password,
                        })
                    }
                };
                DrillConfig {
                    nameservers: d.nameservers,
                    hold: d.hold.unwrap_or(DEFAULT_DRILL_HOLD),
                    timeout: d.timeout.unwrap_or(DEFAULT_DRILL_TIMEOUT),
                    schedule,
                    writer,
                    promote_scheduled: d.promote.unwrap_or(false),
                }
            }
        };

        Ok(Self {
            path: path.to_path_buf(),
            tsig_keys,
            cluster,
            http,
            webhooks,
            drill,
            state_dir,
            failover,
            dns: DnsConfig {
                listen,
                tcp_idle_timeout: Duration::from_secs(tcp_idle_timeout),
                tcp_max_connections,
                tcp_max_per_source,
                tcp_max_lifetime: Duration::from_secs(tcp_max_lifetime),
                rrl,
                notify_source,
                fast_path: raw.dns.fast_path.unwrap_or(true),
            },
            zones,
        })
    }
}

/// Response rate limiting: by default 100 responses a second for each
/// /24 (IPv4) or /56 (IPv6), class and name, every second limited one
/// slipped, over 15 s, loopback exempt (README "How it answers" says why).
fn rrl_section(raw: raw::RawRrl) -> Result<crate::dns::rrl::RrlConfig, String> {
    let ipv4_prefix = raw.ipv4_prefix.unwrap_or(24);
    let ipv6_prefix = raw.ipv6_prefix.unwrap_or(56);
    if ipv4_prefix > 32 || ipv6_prefix > 128 {
        return Err("ipv4_prefix is at most 32 and ipv6_prefix at most 128".into());
    }
    let window = raw.window.unwrap_or(15);
    if window == 0 {
        return Err("window is 0: expected a number of seconds, at least 1".into());
    }
    let exempt = match raw.exempt {
        Some(list) => list
            .iter()
            .map(|e| transfer::prefix(e).map_err(|m| format!("exempt: {m}")))
            .collect::<Result<Vec<_>, _>>()?,
        None => vec![transfer::prefix("127.0.0.0/8")?, transfer::prefix("::1")?],
    };
    Ok(crate::dns::rrl::RrlConfig {
        rate: raw.rate.unwrap_or(100),
        slip: raw.slip.unwrap_or(2),
        window: Duration::from_secs(window),
        ipv4_prefix,
        ipv6_prefix,
        exempt,
        dry_run: raw.dry_run.unwrap_or(false),
    })
}

/// serde_yaml's message without its trailing "at line L column C", which
/// the location already says.
fn yaml_message(e: &serde_yaml::Error) -> String {
    let text = e.to_string();
    match text.find(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// The first line (1-based) that mentions `needle` outside a comment, for
/// pointing errors found after parsing at their line.
fn line_of(text: &str, needle: &str) -> Option<usize> {
    line_of_from(text, 1, needle)
}

/// Like `line_of`, from line `from` on.
fn line_of_from(text: &str, from: usize, needle: &str) -> Option<usize> {
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find(|(_, line)| line.split('#').next().unwrap_or(line).contains(needle))
        .map(|(i, _)| i + 1)
}

/// A zone's `dnssec:` settings, checked.
fn dnssec_policy(
    raw: &raw::RawDnssec,
    state_dir: &Path,
    base: &Path,
) -> Result<crate::dnssec::Policy, String> {
    use crate::dnssec::{Algorithm, Policy};
    let algorithm = match raw.algorithm {
        None => Algorithm::default(),
        Some(n) => Algorithm::from_number(n).ok_or_else(|| {
            format!("algorithm {n}: expected 13 (ECDSA P-256 with SHA-256) or 15 (Ed25519)")
        })?,
    };
    let denial = match raw.denial.as_deref() {
        None | Some("nsec") => crate::dnssec::Denial::Nsec,
        Some("nsec3") => crate::dnssec::Denial::Nsec3,
        Some(other) => return Err(format!("denial `{other}`: expected nsec or nsec3")),
    };
    let split_keys = match raw.signing_keys.as_deref() {
        None | Some("csk") => false,
        Some("ksk_zsk") => true,
        Some(other) => {
            return Err(format!(
                "signing_keys `{other}`: expected csk (one combined key) or ksk_zsk"
            ));
        }
    };
    if let Some(lifetime) = raw.zsk_lifetime {
        if !split_keys {
            return Err(
                "zsk_lifetime without a ZSK: expected signing_keys: ksk_zsk with it".into(),
            );
        }
        if lifetime < std::time::Duration::from_secs(86_400) {
            return Err(format!(
                "zsk_lifetime {}: expected at least 1d (a rollover takes the DNSKEY TTL and the zone's largest TTL, plus an hour each)",
                duration::show(lifetime)
            ));
        }
    }
    let mut parent_nameservers = Vec::new();
    for entry in &raw.parent_nameservers {
        let address = entry
            .parse::<std::net::SocketAddr>()
            .or_else(|_| {
                entry
                    .parse::<std::net::IpAddr>()
                    .map(|ip| std::net::SocketAddr::new(ip, 53))
            })
            .map_err(|_| {
                format!("parent_nameservers: `{entry}`: expected an address, IP or IP:PORT")
            })?;
        parent_nameservers.push(address);
    }
    let validity = raw.validity.unwrap_or(Policy::VALIDITY);
    let refresh = raw.refresh.unwrap_or(Policy::REFRESH);
    if validity < std::time::Duration::from_secs(2 * 3600) {
        return Err("validity below 2h: expected at least 2h (14d by default)".into());
    }
    if refresh + std::time::Duration::from_secs(3600) > validity {
        return Err(format!(
            "refresh {} leaves less than an hour of the validity {}: expected refresh well below validity (7d of 14d by default)",
            duration::show(refresh),
            duration::show(validity)
        ));
    }
    let keys = match &raw.keys {
        Some(dir) if dir.is_empty() => return Err("keys is empty: expected a folder".into()),
        Some(dir) => base.join(dir),
        None => state_dir.join("keys"),
    };
    Ok(Policy {
        algorithm,
        keys,
        validity,
        refresh,
        denial,
        split_keys,
        zsk_lifetime: raw.zsk_lifetime,
        parent_nameservers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::cluster::Place;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("config/test.yaml"), text)
    }

    const GOOD: &str = "dns:\n  listen:\n    - 127.0.0.1:5353\nzones:\n  - name: example.com\n    file: ../zones/example.com.zone\n";

    #[test]
    fn a_client_reads_the_http_section_without_the_controllers_secrets() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example-mysql.yaml");
        // The database password's variable is deliberately not set here.
        let text = std::fs::read_to_string(&example)
            .unwrap()
            .replace("GEOFAILOVER_DB_PASSWORD", "GEOFAILOVER_UNSET_IN_THIS_TEST");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, &text).unwrap();
        let full = Config::load(&path).unwrap_err();
        assert!(
            full.message.contains("GEOFAILOVER_UNSET_IN_THIS_TEST"),
            "{full}"
        );
        let http = Config::load_http(&path, None)
            .unwrap()
            .expect("an http section");
        assert_eq!(http.listen, "127.0.0.1:8053".parse().unwrap());
        assert_eq!(http.token_file, dir.path().join("../state/api.token"));
        // Still a YAML error with its line for a broken file.
        std::fs::write(&path, "http: [\n").unwrap();
        let broken = Config::load_http(&path, None).unwrap_err();
        assert!(broken.location.line.is_some(), "{broken}");
    }

    /// config/example-mysql.yaml with its passwords in files, edited by
    /// `edit`, parsed from a temporary folder.
    fn mysql_example(edit: impl FnOnce(String) -> String) -> Result<Config, ConfigError> {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example-mysql.yaml");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), "s3cret\n").unwrap();
        let text = std::fs::read_to_string(&example).unwrap().replace(
            "password_env: GEOFAILOVER_DB_PASSWORD",
            "password_file: secret",
        );
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, edit(text)).unwrap();
        Config::load(&path)
    }

    /// `mode: promote` with the replication account, promotion after 1m.
    fn promote(text: String) -> String {
        text.replace(
            "  flag_clear_margin: 1s",
            "  flag_clear_margin: 1s\n  mode: promote\n  promote_after: 1m",
        )
        .replace(
            "    max_lag: 5s ",
            "    user: repl\n    password_file: secret\n    max_lag: 5s ",
        )
    }

    fn with_writer(text: String) -> String {
        text.replace(
            "  timeout: 60s ",
            "  writer:\n    user: drill\n    password_file: secret\n  timeout: 60s ",
        )
    }

    #[test]
    fn promotion_settings_are_checked_each_at_its_line() {
        let config = mysql_example(promote).unwrap();
        let promotion = config.failover.unwrap().promotion.expect("promote mode");
        assert_eq!(promotion.after, Duration::from_secs(60));
        assert_eq!(promotion.fence_after, failover::DEFAULT_FENCE_AFTER);
        assert_eq!(promotion.replication_password.expose(), "s3cret");

        let late_fence = mysql_example(|t| {
            promote(t).replace("promote_after: 1m", "promote_after: 1m\n  fence_after: 2m")
        })
        .unwrap_err();
        assert!(
            late_fence.message.contains("must be below promote_after"),
            "{late_fence}"
        );
        assert!(late_fence.location.line.is_some(), "{late_fence}");

        let single = mysql_example(|t| {
            promote(t).replace(
                "promote_after: 1m",
                "promote_after: 1m\n  fence_heartbeat: true",
            )
        })
        .unwrap_err();
        assert!(
            single
                .message
                .contains("fence_heartbeat is for several nodes"),
            "{single}"
        );
        assert!(single.location.line.is_some(), "{single}");

        let no_account = mysql_example(|t| {
            promote(t).replace("    user: repl\n    password_file: secret\n", "")
        })
        .unwrap_err();
        assert!(
            no_account
                .message
                .contains("needs failover.replication.user"),
            "{no_account}"
        );

        let in_read_only = mysql_example(|t| {
            t.replace(
                "  flag_clear_margin: 1s",
                "  flag_clear_margin: 1s\n  promote_after: 1m",
            )
        })
        .unwrap_err();
        assert!(
            in_read_only.message.contains("is for `mode: promote`"),
            "{in_read_only}"
        );
    }

    #[test]
    fn a_drill_writer_is_for_promotion_drills_and_its_password_comes_from_a_file() {
        let config = mysql_example(|t| with_writer(promote(t))).unwrap();
        let writer = config.drill.writer.expect("a writer");
        assert_eq!(writer.user, "drill");
        assert_eq!(writer.password.expose(), "s3cret");
        assert!(!format!("{writer:?}").contains("s3cret"));

        let read_only = mysql_example(with_writer).unwrap_err();
        assert!(
            read_only
                .message
                .contains("drill.writer: only drills in failover.mode: promote"),
            "{read_only}"
        );
        let line = read_only.location.line.expect("a line");
        let text = with_writer(
            std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example-mysql.yaml"),
            )
            .unwrap(),
        );
        assert_eq!(text.lines().nth(line - 1).map(str::trim), Some("writer:"));

        let scheduled =
            mysql_example(|t| t.replace("  timeout: 60s ", "  promote: true\n  timeout: 60s "))
                .unwrap_err();
        assert!(
            scheduled
                .message
                .contains("drill.promote: only with failover.mode: promote"),
            "{scheduled}"
        );
        assert!(
            mysql_example(
                |t| promote(t).replace("  timeout: 60s ", "  promote: true\n  timeout: 60s ")
            )
            .unwrap()
            .drill
            .promote_scheduled
        );

        let no_password = mysql_example(|t| {
            promote(t).replace(
                "  timeout: 60s ",
                "  writer:\n    user: drill\n  timeout: 60s ",
            )
        })
        .unwrap_err();
        assert!(
            no_password
                .message
                .contains("drill.writer: expected password_file or password_env"),
            "{no_password}"
        );
    }

    #[test]
    fn one_name_is_a_failover_record_for_a_and_aaaa_each_answering_its_family() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.yaml");
        let config = Config::load(&example).unwrap();
        let failover = config.failover.expect("failover");
        let types: Vec<String> = failover
            .records
            .iter()
            .map(|r| format!("{} {}", r.name, r.rtype))
            .collect();
        assert_eq!(types, ["www.example.com. A", "www.example.com. AAAA"]);
        let primary = &failover.sites[0].addresses;
        assert_eq!(
            primary[0],
            ["192.0.2.10".parse::<std::net::IpAddr>().unwrap()]
        );
        assert_eq!(
            primary[1],
            ["2001:db8:10::10".parse::<std::net::IpAddr>().unwrap()]
        );

        // An IPv6 address for a name that is a failover record of type A
        // only: refused, saying how to serve both.
        let text = std::fs::read_to_string(&example).unwrap();
        let aaaa = "    - name: www.example.com\n      type: AAAA\n      ttl: 30\n";
        assert!(text.contains(aaaa));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("example.yaml");
        std::fs::write(&path, text.replacen(aaaa, "", 1)).unwrap();
        let error = Config::load(&path).unwrap_err();
        assert!(
            error
                .message
                .contains("2001:db8:10::10 cannot answer www.example.com.: it is a failover record of type A only"),
            "{error}"
        );
        assert!(error.location.line.is_some(), "{error}");
    }

    #[test]
    fn the_cluster_settings_are_checked_with_their_lines() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example-cluster.yaml");
        let text = std::fs::read_to_string(&example).unwrap();
        let at = |edited: &str, node: Option<&str>| {
            Config::parse_as(&example, edited, node).map(|c| c.cluster.expect("a cluster"))
        };
        let cluster = at(&text, Some("witness")).unwrap();
        assert_eq!(cluster.quorum, 2);
        assert_eq!(cluster.me().place, Place::Witness);
        assert!(cluster.me().dns.is_empty());
        assert!(cluster.me().state_dir.ends_with("state/witness"));
        let ns1 = Config::parse_as(&example, &text, Some("ns1")).unwrap();
        assert_eq!(ns1.dns.listen, ["127.0.0.1:5301".parse().unwrap()]);
        assert_eq!(
            ns1.http.map(|h| h.listen),
            Some("127.0.0.1:8101".parse().unwrap())
        );

        let cases = [
            (
                text.replace(
                    "    place: witness             # checks the sites and votes, serves no DNS",
                    "    place: witness\n    dns: [127.0.0.1:5303]",
                ),
                "a witness serves no DNS",
            ),
            (
                text.replace("nodes:  ", "quorum: 1\nnodes:  "),
                "quorum 1: expected from 2",
            ),
            (
                text.replace("lease_ttl: 5s", "lease_ttl: 1s"),
                "expected a lease of at least 2s",
            ),
            (
                text.replace("prefix: /geofailover/example.com", "prefix: geofailover"),
                "expected a path such as /geofailover/example.com",
            ),
            (
                text.replace(
                    "    endpoints: [http://127.0.0.1:2379,",
                    "    endpoints: [127.0.0.1:2379,",
                ),
                "is not a URL",
            ),
        ];
        for (edited, expected) in cases {
            let error = at(&edited, Some("ns1")).unwrap_err();
            assert!(error.message.contains(expected), "{error}");
            assert!(error.location.line.is_some(), "{error}");
        }
        let error = at(&text, Some("ns9")).unwrap_err();
        assert!(
            error
                .message
                .contains("`ns9` is not one of the nodes listed"),
            "{error}"
        );
        let error = at(&text, None).unwrap_err();
        assert!(error.message.contains("--node NAME"), "{error}");
        // Nodes without a shared store.
        let cut = text.find("store:").unwrap();
        let end = text.find("nodes:").unwrap();
        let local = format!("{}{}", &text[..cut], &text[end..]);
        let error = Config::parse_as(&example, &local, Some("ns1")).unwrap_err();
        assert!(error.message.contains("need a shared store"), "{error}");
    }

    #[test]
    fn a_wildcard_listen_address_is_refused_with_its_line() {
        for wildcard in ["0.0.0.0:53", "\"[::]:53\""] {
            let text = GOOD.replace("127.0.0.1:5353", wildcard);
            let error = parse(&text).unwrap_err();
            assert_eq!(error.location.line, Some(3), "{error}");
            assert!(error.message.contains("wildcard"), "{error}");
        }
    }

    #[test]
    fn good_config_resolves_zone_paths_against_the_config_folder() {
        let config = parse(GOOD).unwrap();
        assert_eq!(config.dns.listen, vec!["127.0.0.1:5353".parse().unwrap()]);
        assert_eq!(config.zones[0].origin.to_string(), "example.com.");
        assert_eq!(
            config.zones[0].file,
            Path::new("config/../zones/example.com.zone")
        );
        assert_eq!(config.zones[0].config_line, Some(6));
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let text = GOOD.replace("    file:", "    rotocol: udp\n    file:");
        let err = parse(&text).unwrap_err();
        assert_eq!(err.location.line, Some(6), "{err}");
        assert!(err.message.contains("unknown field `rotocol`"), "{err}");
    }

    #[test]
    fn bad_listen_address_points_at_its_line() {
        let err = parse(&GOOD.replace("127.0.0.1:5353", "localhost")).unwrap_err();
        assert_eq!(err.location.line, Some(3), "{err}");
        assert!(err.message.contains("expected IP:PORT"), "{err}");
    }

    #[test]
    fn a_notify_source_this_host_cannot_send_from_is_refused_with_its_line() {
        let with = |source: &str| {
            GOOD.replace(
                "    - 127.0.0.1:5353\n",
                &format!("    - 127.0.0.1:5353\n  notify_source: {source}\n"),
            )
        };
        assert_eq!(
            parse(&with("127.0.0.3")).unwrap().dns.notify_source,
            ["127.0.0.3".parse::<std::net::IpAddr>().unwrap()]
        );
        assert!(parse(GOOD).unwrap().dns.notify_source.is_empty());
        let err = parse(&with("192.0.2.99")).unwrap_err();
        assert_eq!(
            err.to_string().split(": ").next(),
            Some("config/test.yaml:4")
        );
        assert!(
            err.message
                .contains("dns.notify_source: `192.0.2.99` is not an address of this host"),
            "{err}"
        );
        let err = parse(&with("[127.0.0.3, nowhere]")).unwrap_err();
        assert_eq!(err.location.line, Some(4), "{err}");
        assert!(err.message.contains("`nowhere` is not an address"), "{err}");
    }

    /// Each node sends its NOTIFYs from its own `notify_source`, checked
    /// to be an address of this host only for the node this is: the
    /// others' are their hosts' addresses.
    #[test]
    fn each_node_has_its_own_notify_source_checked_only_on_its_own_host() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example-cluster.yaml");
        let text = std::fs::read_to_string(&example).unwrap();
        let with = |ns1: &str, ns2: &str| {
            text.replace(
                "    dns: [127.0.0.1:5301]\n",
                &format!("    dns: [127.0.0.1:5301]\n    notify_source: {ns1}\n"),
            )
            .replace(
                "    dns: [127.0.0.1:5302]\n",
                &format!("    dns: [127.0.0.1:5302]\n    notify_source: {ns2}\n"),
            )
        };
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let edited = with("127.0.0.3", "127.0.0.4");
        let ns1 = Config::parse_as(&example, &edited, Some("ns1")).unwrap();
        assert_eq!(ns1.dns.notify_source, [ip("127.0.0.3")]);
        let ns2 = Config::parse_as(&example, &edited, Some("ns2")).unwrap();
        assert_eq!(ns2.dns.notify_source, [ip("127.0.0.4")]);
        let witness = Config::parse_as(&example, &edited, Some("witness")).unwrap();
        assert!(witness.dns.notify_source.is_empty());
        let nodes = &ns2.cluster.expect("a cluster").nodes;
        assert_eq!(nodes[0].notify_source, [ip("127.0.0.3")]);

        // ns1's address is another host's: refused at ns1, at its line;
        // accepted at ns2, and by a check made from elsewhere.
        let edited = with("192.0.2.99", "127.0.0.4");
        let error = Config::parse_as(&example, &edited, Some("ns1")).unwrap_err();
        let line = edited
            .lines()
            .position(|l| l.contains("notify_source: 192.0.2.99"))
            .map(|i| i + 1);
        assert_eq!(error.location.line, line, "{error}");
        assert!(
            error
                .message
                .contains("node ns1: notify_source: `192.0.2.99` is not an address of this host"),
            "{error}"
        );
        let ns2 = Config::parse_as(&example, &edited, Some("ns2")).unwrap();
        assert_eq!(ns2.dns.notify_source, [ip("127.0.0.4")]);
        let elsewhere = Config::parse_for(&example, &edited, Some("ns1"), false).unwrap();
        assert_eq!(elsewhere.dns.notify_source, [ip("192.0.2.99")]);

        // The form is checked for every node, wherever.
        let edited = with("127.0.0.3", "[127.0.0.4, 127.0.0.5]");
        let error = Config::parse_as(&example, &edited, Some("ns1")).unwrap_err();
        assert!(
            error
                .message
                .contains("node ns2: notify_source: 127.0.0.4 and 127.0.0.5 are of one family"),
            "{error}"
        );
        assert!(error.location.line.is_some(), "{error}");
        let witness = text.replace(
            "    place: witness             # checks the sites and votes, serves no DNS\n",
            "    place: witness\n    notify_source: 127.0.0.3\n",
        );
        let error = Config::parse_as(&example, &witness, Some("ns1")).unwrap_err();
        assert!(
            error.message.contains("a witness notifies no secondary"),
            "{error}"
        );
        // `dns.notify_source` is shared by every node: refused, naming
        // the per-node setting.
        let shared = text.replace(
            "http:\n  token_file",
            "dns:\n  notify_source: 127.0.0.3\nhttp:\n  token_file",
        );
        let error = Config::parse_as(&example, &shared, Some("ns1")).unwrap_err();
        assert!(
            error
                .message
                .contains("give each node its own `notify_source` under nodes"),
            "{error}"
        );
    }

    #[test]
    fn duplicate_zone_is_an_error() {
        let text = format!("{GOOD}  - name: Example.COM.\n    file: other.zone\n");
        let err = parse(&text).unwrap_err();
        assert!(err.message.contains("listed twice"), "{err}");
    }
}
