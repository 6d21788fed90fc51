//! Several controllers, one decision: where the shared state lives
//! (`store: local`, the default, or `store: {etcd: ...}`), the nodes of
//! the cluster with their places and addresses, which node this one is,
//! and how many vantage points make a quorum.

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

use super::{
    ConfigError, Location, Secret, duration, failover::read_secret, raw::RawAddresses, transfer,
};

/// Where a node stands: at a site, or in a third place as a witness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Place {
    Primary,
    Secondary,
    /// Probes both sites and votes, serves no DNS.
    Witness,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Place::Primary => "primary",
            Place::Secondary => "secondary",
            Place::Witness => "witness",
        })
    }
}

/// `store:` as written: `local`, or a map with one key, `etcd`.
#[derive(Debug)]
pub enum RawStore {
    Local,
    Etcd(Box<RawEtcd>),
}

impl<'de> Deserialize<'de> for RawStore {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_yaml::Value::deserialize(deserializer)?;
        match &value {
            serde_yaml::Value::String(s) if s == "local" => Ok(RawStore::Local),
            serde_yaml::Value::Mapping(map) if map.len() == 1 => match map.get("etcd") {
                Some(etcd) => serde_yaml::from_value(etcd.clone())
                    .map(RawStore::Etcd)
                    .map_err(|e| D::Error::custom(format!("store.etcd: {e}"))),
                None => Err(D::Error::custom(
                    "store: expected `local` or `etcd: {endpoints: [...], prefix: ...}`",
                )),
            },
            _ => Err(D::Error::custom(
                "store: expected `local` or `etcd: {endpoints: [...], prefix: ...}`",
            )),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEtcd {
    pub endpoints: Vec<String>,
    pub prefix: String,
    /// How long a node's lease (and so its view, and the leader's
    /// leadership) outlives its last keep-alive.
    #[serde(default, deserialize_with = "duration::optional")]
    pub lease_ttl: Option<Duration>,
    /// The longest one request to etcd may take.
    #[serde(default, deserialize_with = "duration::optional")]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub tls: Option<RawEtcdTls>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password_file: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEtcdTls {
    pub ca_file: String,
    #[serde(default)]
    pub cert_file: Option<String>,
    #[serde(default)]
    pub key_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    pub name: String,
    pub place: Place,
    /// Where it answers DNS; a witness answers none.
    #[serde(default)]
    pub dns: Vec<SocketAddr>,
    /// Its status page and API.
    #[serde(default)]
    pub http: Option<SocketAddr>,
    /// Its own folder (API token, drill reports, the last agreed state);
    /// default: the config's state_dir/<name>.
    #[serde(default)]
    pub state_dir: Option<String>,
    /// The address (one per family) its NOTIFYs leave from: one of its
    /// own host's.
    #[serde(default)]
    pub notify_source: Option<RawAddresses>,
}

/// How to reach etcd.
#[derive(Debug, Clone, PartialEq)]
pub struct EtcdConfig {
    /// Base URLs (`http://host:port` or `https://...`), tried in turn.
    pub endpoints: Vec<String>,
    /// Every key lives below this.
    pub prefix: String,
    pub lease_ttl: Duration,
    pub timeout: Duration,
    pub tls: Option<EtcdTls>,
    /// User and password for etcd's authentication.
    pub auth: Option<(String, Secret)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EtcdTls {
    pub ca_file: PathBuf,
    /// A client certificate and its key, when etcd asks for one.
    pub identity: Option<(PathBuf, PathBuf)>,
}

/// One controller of the cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub place: Place,
    pub dns: Vec<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub state_dir: PathBuf,
    /// Where its NOTIFYs leave from, at most one address per family;
    /// none: the kernel's choice.
    pub notify_source: Vec<IpAddr>,
}

/// Several controllers sharing one decision through etcd.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// This controller's name.
    pub node: String,
    pub nodes: Vec<Node>,
    /// How many vantage points must see a site down (or healthy) for it to
    /// count so.
    pub quorum: usize,
    pub etcd: EtcdConfig,
}

impl ClusterConfig {
    /// This controller.
    pub fn me(&self) -> &Node {
        // Invariant: validation checked that `node` names one of `nodes`.
        self.nodes
            .iter()
            .find(|n| n.name == self.node)
            .unwrap_or(&self.nodes[0])
    }
}

pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(5);
pub const DEFAULT_ETCD_TIMEOUT: Duration = Duration::from_secs(2);

/// The raw cluster settings of a config.
pub struct RawCluster {
    pub store: Option<RawStore>,
    pub node: Option<String>,
    pub nodes: Vec<RawNode>,
    pub quorum: Option<usize>,
}

/// Validates the cluster settings; `chosen` (from `--node`) overrides the
/// config's `node:`. `None` for `store: local` (one controller). What
/// only the chosen node's host can tell (that its `notify_source` is an
/// address of this host) is checked when `here`: every other node's
/// addresses belong to other hosts.
pub fn validate(
    path: &Path,
    text: &str,
    state_dir: &Path,
    raw: RawCluster,
    chosen: Option<&str>,
    here: bool,
) -> Result<Option<ClusterConfig>, ConfigError> {
    let at = |line: Option<usize>, message: String| ConfigError {
        location: Location {
            file: path.to_path_buf(),
            line,
        },
        message,
    };
    let line_of = |needle: &str| super::line_of(text, needle);
    let base = path.parent().unwrap_or(Path::new("."));
    let etcd = match raw.store {
        None | Some(RawStore::Local) => {
            if !raw.nodes.is_empty() || raw.quorum.is_some() {
                return Err(at(
                    line_of("nodes:").or(line_of("quorum:")),
                    "nodes and quorum need a shared store: expected `store: {etcd: {endpoints: [...], prefix: ...}}`".into(),
                ));
            }
            return Ok(None);
        }
        Some(RawStore::Etcd(etcd)) => *etcd,
    };
    let etcd_line = line_of("etcd:");
    if etcd.endpoints.is_empty() {
        return Err(at(
            line_of("endpoints").or(etcd_line),
            "store.etcd.endpoints is empty: expected etcd's client URLs, such as http://127.0.0.1:2379".into(),
        ));
    }
    let mut endpoints = Vec::new();
    for endpoint in &etcd.endpoints {
        let url = reqwest::Url::parse(endpoint).map_err(|e| {
            at(
                line_of(endpoint),
                format!("store.etcd.endpoints: `{endpoint}` is not a URL: {e}"),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(at(
                line_of(endpoint),
                format!(
                    "store.etcd.endpoints: `{endpoint}`: expected http://host:port or https://host:port"
                ),
            ));
        }
        endpoints.push(endpoint.trim_end_matches('/').to_string());
    }
    if !etcd.prefix.starts_with('/') || etcd.prefix.len() < 2 || etcd.prefix.ends_with('/') {
        return Err(at(
            line_of("prefix"),
            format!(
                "store.etcd.prefix `{}`: expected a path such as /geofailover/example.com (a leading slash, none at the end)",
                etcd.prefix
            ),
        ));
    }
    let lease_ttl = etcd.lease_ttl.unwrap_or(DEFAULT_LEASE_TTL);
    let timeout = etcd.timeout.unwrap_or(DEFAULT_ETCD_TIMEOUT);
    if lease_ttl < Duration::from_secs(2) || timeout.is_zero() || timeout * 2 > lease_ttl {
        return Err(at(
            line_of("lease_ttl").or(etcd_line),
            format!(
                "store.etcd: lease_ttl {} and timeout {}: expected a lease of at least 2s and a timeout of at most half of it, so a node renews its lease in time",
                duration::show(lease_ttl),
                duration::show(timeout)
            ),
        ));
    }
    let tls = match etcd.tls {
        None => None,
        Some(tls) => {
            let ca_file = base.join(&tls.ca_file);
            let identity = match (tls.cert_file, tls.key_file) {
                (Some(cert), Some(key)) => Some((base.join(cert), base.join(key))),
                (None, None) => None,
                _ => {
                    return Err(at(
                        line_of("cert_file").or(line_of("key_file")),
                        "store.etcd.tls: cert_file and key_file go together".into(),
                    ));
                }
            };
            for file in std::iter::once(&ca_file).chain(identity.iter().flat_map(|(c, k)| [c, k])) {
                if !file.is_file() {
                    return Err(at(
                        line_of("tls"),
                        format!("store.etcd.tls: {} does not exist", file.display()),
                    ));
                }
            }
            Some(EtcdTls { ca_file, identity })
        }
    };
    let auth = match (etcd.user, etcd.password_file, etcd.password_env) {
        (None, None, None) => None,
        (Some(user), file, env) => {
            let file = file.map(|f| base.join(f));
            let password = read_secret(file.as_deref(), env.as_deref())
                .map_err(|e| at(line_of("user"), format!("store.etcd: {e}")))?;
            Some((user, password))
        }
        (None, _, _) => {
            return Err(at(
                line_of("password_"),
                "store.etcd: a password without a user: expected user: NAME".into(),
            ));
        }
    };

    if raw.nodes.len() < 2 {
        return Err(at(
            line_of("nodes:").or(etcd_line),
            format!(
                "{} node(s) listed: a shared store needs at least two nodes, such as one per site and a witness",
                raw.nodes.len()
            ),
        ));
    }
    let mut nodes: Vec<Node> = Vec::new();
    for node in raw.nodes {
        let line = line_of(&format!("name: {}", node.name));
        let valid = !node.name.is_empty()
            && node
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(at(
                line,
                format!(
                    "node `{}`: a name of letters, digits, - and _ is expected",
                    node.name
                ),
            ));
        }
        if nodes.iter().any(|n| n.name == node.name) {
            return Err(at(line, format!("node `{}` is listed twice", node.name)));
        }
        match (node.place, node.dns.is_empty()) {
            (Place::Witness, false) => {
                return Err(at(
                    line,
                    format!(
                        "node {}: a witness serves no DNS: remove its dns addresses, or give it the place of a site",
                        node.name
                    ),
                ));
            }
            (Place::Primary | Place::Secondary, true) => {
                return Err(at(
                    line,
                    format!(
                        "node {}: no dns addresses: a node at a site answers DNS (expected dns: [IP:PORT, ...])",
                        node.name
                    ),
                ));
            }
            _ => {}
        }
        for addr in &node.dns {
            if addr.ip().is_unspecified() {
                return Err(at(
                    line_of(&addr.to_string()).or(line),
                    format!(
                        "node {}: `{addr}` is a wildcard address: list each address to serve on",
                        node.name
                    ),
                ));
            }
        }
        let state_dir = match &node.state_dir {
            Some(dir) => base.join(dir),
            None => state_dir.join(&node.name),
        };
        let source_line = || super::line_of_from(text, line.unwrap_or(1), "notify_source");
        let notify_source = match (node.notify_source, node.place) {
            (None, _) => Vec::new(),
            (Some(_), Place::Witness) => {
                return Err(at(
                    source_line(),
                    format!(
                        "node {}: a witness notifies no secondary: remove its notify_source",
                        node.name
                    ),
                ));
            }
            (Some(sources), Place::Primary | Place::Secondary) => {
                transfer::notify_addresses(&sources.into_vec()).map_err(|message| {
                    at(
                        source_line(),
                        format!("node {}: notify_source: {message}", node.name),
                    )
                })?
            }
        };
        nodes.push(Node {
            name: node.name,
            place: node.place,
            dns: node.dns,
            http: node.http,
            state_dir,
            notify_source,
        });
    }
    let node = match (chosen, raw.node) {
        (Some(chosen), _) => chosen.to_string(),
        (None, Some(node)) => node,
        (None, None) => {
            return Err(at(
                line_of("nodes:"),
                format!(
                    "which node is this? expected `--node NAME` or `node: NAME`, one of {}",
                    nodes
                        .iter()
                        .map(|n| n.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    };
    if !nodes.iter().any(|n| n.name == node) {
        return Err(at(
            line_of("node:"),
            format!(
                "node `{node}` is not one of the nodes listed: {}",
                nodes
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    if here && let Some(me) = nodes.iter().find(|n| n.name == node) {
        for addr in &me.notify_source {
            transfer::sendable(*addr).map_err(|message| {
                let from = line_of(&format!("name: {}", me.name)).unwrap_or(1);
                at(
                    super::line_of_from(text, from, "notify_source"),
                    format!("node {}: notify_source: {message}", me.name),
                )
            })?;
        }
    }
    let majority = nodes.len() / 2 + 1;
    let quorum = raw.quorum.unwrap_or(majority);
    if quorum < majority || quorum > nodes.len() {
        return Err(at(
            line_of("quorum"),
            format!(
                "quorum {quorum}: expected from {majority} (a majority of the {} nodes, so two disagreeing halves cannot both decide) to {}",
                nodes.len(),
                nodes.len()
            ),
        ));
    }
    Ok(Some(ClusterConfig {
        node,
        nodes,
        quorum,
        etcd: EtcdConfig {
            endpoints,
            prefix: etcd.prefix,
            lease_ttl,
            timeout,
            tls,
            auth,
        },
    }))
}
