//! A cluster as the tests run it: a real three-member etcd, stand-in
//! sites, and config/example-cluster.yaml's three nodes (ns1 at the
//! primary site, ns2 at the secondary, a witness), each the real binary
//! with `--node`, on loopback ports of their own.

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use super::{
    Geofailover, StandIn, a_records, etcd::Etcd, free_port, netns::Namespace, repo_zones,
    soa_serial, status_json, try_http, wait_until,
};

pub const NODES: [&str; 3] = ["ns1", "ns2", "witness"];

/// An etcd member's client address, from its URL.
pub fn member_address(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .parse()
        .expect("member address")
}

pub struct Node {
    pub name: &'static str,
    /// Running, or stopped by the test.
    pub server: Option<Geofailover>,
    /// Stopped with SIGSTOP, as a process paused (or a node partitioned)
    /// for a while.
    pub frozen: Option<Geofailover>,
    pub dns: Option<SocketAddr>,
    pub http: SocketAddr,
}

pub struct Cluster {
    /// The nodes in network namespaces of their own, each with its
    /// namespace (etcd and the sites listen on the first one's link).
    pub apart: Vec<(&'static str, Namespace)>,
    pub nodes: Vec<Node>,
    pub etcd: Etcd,
    pub primary: StandIn,
    pub secondary: StandIn,
    pub config: PathBuf,
    pub dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Cluster {
    /// Starts etcd, the stand-in sites and the three nodes, with `edit`
    /// applied to the config; waits until a leader leads and every node
    /// sees both sites healthy.
    pub fn start(edit: impl FnOnce(String) -> String) -> Self {
        Self::start_with(edit, &[])
    }

    pub fn start_with(edit: impl FnOnce(String) -> String, env: &[(&str, &str)]) -> Self {
        Self::start_inner(edit, env, Vec::new())
    }

    /// `start`, with the node `apart` in a network namespace of its own:
    /// etcd and the sites listen on this side's end of its link, which
    /// every node reaches, so its links can be cut one by one.
    /// `edit` gets the address the sites and etcd listen on, for flag
    /// endpoints of the test's own.
    pub fn start_apart(apart: &'static str, edit: impl FnOnce(String, IpAddr) -> String) -> Self {
        let namespace = Namespace::create();
        let host: IpAddr = namespace.host_ip.into();
        Self::start_inner(|config| edit(config, host), &[], vec![(apart, namespace)])
    }

    /// `start_apart` for every node: each in a namespace of its own, so
    /// each node's links can be cut one by one.
    pub fn start_all_apart(edit: impl FnOnce(String, IpAddr) -> String) -> Self {
        let apart: Vec<(&'static str, Namespace)> =
            NODES.iter().map(|n| (*n, Namespace::create())).collect();
        let host: IpAddr = apart[0].1.host_ip.into();
        Self::start_inner(|config| edit(config, host), &[], apart)
    }

    fn start_inner(
        edit: impl FnOnce(String) -> String,
        env: &[(&str, &str)],
        apart: Vec<(&'static str, Namespace)>,
    ) -> Self {
        let host: IpAddr = match apart.first() {
            Some((_, namespace)) => namespace.host_ip.into(),
            None => [127, 0, 0, 1].into(),
        };
        let etcd = Etcd::start_on(&[host; 3]);
        let primary = StandIn::start_on(host, 0);
        let secondary = StandIn::start_on(host, 0);
        let dir = tempfile::tempdir().expect("tempdir");
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example-cluster.yaml"),
        )
        .expect("read config/example-cluster.yaml");
        let endpoints = etcd.endpoints().join(", ");
        let mut text = text
            .replace(
                "state_dir: ../state",
                &format!("state_dir: {}", dir.path().join("state").display()),
            )
            .replace(
                "token_file: ../state/api.token",
                &format!(
                    "token_file: {}",
                    dir.path().join("state/api.token").display()
                ),
            )
            .replace("../zones/", &format!("{}/", repo_zones().display()))
            .replace(
                "[http://127.0.0.1:2379, http://127.0.0.1:22379, http://127.0.0.1:32379]",
                &format!("[{endpoints}]"),
            )
            .replace("lease_ttl: 5s", "lease_ttl: 3s")
            .replace("timeout: 2s ", "timeout: 1s ")
            .replace("127.0.0.1:18081", &format!("{host}:{}", primary.port))
            .replace("127.0.0.1:18082", &format!("{host}:{}", secondary.port));
        let mut nodes = Vec::new();
        let nodes_at = [
            ("ns1", Some("127.0.0.1:5301"), "127.0.0.1:8101"),
            ("ns2", Some("127.0.0.1:5302"), "127.0.0.1:8102"),
            ("witness", None, "127.0.0.1:8103"),
        ];
        // Each example address becomes a placeholder first: a port given
        // to one node must not be taken for another's example address
        // (127.0.0.1:53011 holds 127.0.0.1:5301).
        let mut placeholders = Vec::new();
        for (name, dns, http) in nodes_at {
            let placeholder = format!("@{name}-http@");
            text = text.replace(http, &placeholder);
            placeholders.push((http, placeholder));
            if let Some(d) = dns {
                let placeholder = format!("@{name}-dns@");
                text = text.replace(d, &placeholder);
                placeholders.push((d, placeholder));
            }
        }
        let placeholder_of = |address: &str| {
            placeholders
                .iter()
                .find(|(a, _)| *a == address)
                .map(|(_, p)| p.clone())
                .expect("a placeholder")
        };
        for (name, dns, http) in nodes_at {
            let ip: IpAddr = match apart.iter().find(|(node, _)| *node == name) {
                Some((_, namespace)) => namespace.ns_ip.into(),
                None => [127, 0, 0, 1].into(),
            };
            let http_port = free_port();
            text = text.replace(&placeholder_of(http), &format!("{ip}:{http_port}"));
            let dns = dns.map(|d| {
                let port = free_port();
                text = text.replace(&placeholder_of(d), &format!("{ip}:{port}"));
                SocketAddr::new(ip, port)
            });
            nodes.push(Node {
                name,
                server: None,
                frozen: None,
                dns,
                http: SocketAddr::new(ip, http_port),
            });
        }
        let config = dir.path().join("example-cluster.yaml");
        std::fs::write(&config, edit(text)).expect("write config");
        let mut cluster = Self {
            nodes,
            etcd,
            primary,
            secondary,
            config,
            dir,
            apart,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        // The (first) node apart starts first and leads: its links to
        // etcd can then be cut under a leader.
        if let Some(first) = cluster.apart.first().map(|(n, _)| *n) {
            cluster.start_node(first);
            let leads = wait_until(Duration::from_secs(20), || {
                cluster
                    .status(first)
                    .is_some_and(|s| s["cluster"]["leading"] == true)
            });
            assert!(leads, "{first} did not lead:\n{}", cluster.logs());
        }
        for name in NODES {
            if cluster.node(name).server.is_none() {
                cluster.start_node(name);
            }
        }
        cluster.wait_settled();
        cluster
    }

    /// Cuts the (first) node apart from every etcd member (its packets
    /// to them dropped), or mends the cut.
    pub fn cut_from_etcd(&self, cut: bool) {
        let node = self.apart.first().map(|(n, _)| *n).expect("a node apart");
        for member in &self.etcd.members {
            self.cut_link(node, member_address(&member.url), cut);
        }
    }

    /// Cuts `node`'s link to `to` (a node apart), or mends it.
    pub fn cut_link(&self, node: &str, to: SocketAddr, cut: bool) {
        let (_, namespace) = self
            .apart
            .iter()
            .find(|(n, _)| *n == node)
            .expect("the node is apart");
        if cut {
            namespace.cut(to);
        } else {
            namespace.mend(to);
        }
    }

    /// The address the sites, etcd and the flag endpoints listen on: the
    /// loopback, or this side of the apart node's link.
    pub fn host(&self) -> IpAddr {
        match self.apart.first() {
            Some((_, namespace)) => namespace.host_ip.into(),
            None => [127, 0, 0, 1].into(),
        }
    }

    pub fn node(&self, name: &str) -> &Node {
        self.nodes.iter().find(|n| n.name == name).expect("node")
    }

    fn node_mut(&mut self, name: &str) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .expect("node")
    }

    pub fn start_node(&mut self, name: &str) {
        let config = self.config.clone();
        self.start_node_from(name, &config);
    }

    /// Starts the node `name` from a config file of its own.
    pub fn start_node_from(&mut self, name: &str, config: &Path) {
        let env: Vec<(String, String)> = self.env.clone();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let namespace = self
            .apart
            .iter()
            .find(|(node, _)| *node == name)
            .map(|(_, namespace)| namespace);
        let server = Geofailover::start_in(namespace, config, Some(name), &env);
        self.node_mut(name).server = Some(server);
    }

    /// Kills the node with SIGKILL.
    pub fn kill(&mut self, name: &str) {
        if let Some(mut server) = self.node_mut(name).server.take() {
            server.process.signal("KILL");
            let _ = server.process.wait_exit(Duration::from_secs(10));
        }
    }

    /// Stops the node with SIGSTOP: it answers nothing, holds its lease
    /// no more, and knows nothing of it until `thaw`.
    pub fn freeze(&mut self, name: &str) {
        let node = self.node_mut(name);
        if let Some(server) = node.server.take() {
            server.process.signal("STOP");
            node.frozen = Some(server);
        }
    }

    /// SIGCONT for a frozen node.
    pub fn thaw(&mut self, name: &str) {
        let node = self.node_mut(name);
        if let Some(server) = node.frozen.take() {
            server.process.signal("CONT");
            node.server = Some(server);
        }
    }

    pub fn server(&self, name: &str) -> &Geofailover {
        self.node(name).server.as_ref().expect("a running node")
    }

    /// The node's status, when it answers.
    pub fn status(&self, name: &str) -> Option<serde_json::Value> {
        let (code, body) =
            try_http("GET", self.node(name).http, "/api/v1/status", None, "").ok()?;
        (code == 200)
            .then(|| serde_json::from_str(&body).ok())
            .flatten()
    }

    /// The secondary site's application flag as a file (`READONLY` beside
    /// the config) and behind `switch`, added to the config text.
    pub fn with_flags(config: String, switch: &super::AppSwitch) -> String {
        let anchor = "      www.example.com: [198.51.100.10, 2001:db8:20::10]\n";
        assert!(config.contains(anchor));
        let flags = format!(
            "    read_only:\n      flag_file:\n        path: READONLY\n{}",
            switch.config()
        );
        config.replacen(anchor, &format!("{anchor}{flags}"), 1)
    }

    pub fn flag_file(&self) -> PathBuf {
        self.dir.path().join("READONLY")
    }

    /// The leader, as every running node agrees.
    pub fn leader(&self) -> Option<String> {
        let mut leaders = self.nodes.iter().filter(|n| n.server.is_some()).map(|n| {
            self.status(n.name)
                .and_then(|s| s["cluster"]["leader"].as_str().map(str::to_string))
        });
        let first = leaders.next()??;
        leaders
            .all(|l| l.as_deref() == Some(first.as_str()))
            .then_some(first)
    }

    /// Waits until a leader leads and every running node has the views of
    /// all running nodes, with both sites healthy by the quorum.
    pub fn wait_settled(&self) {
        let running = self.nodes.iter().filter(|n| n.server.is_some()).count();
        let settled = wait_until(Duration::from_secs(40), || {
            self.leader().is_some()
                && self.nodes.iter().filter(|n| n.server.is_some()).all(|n| {
                    self.status(n.name).is_some_and(|s| {
                        let live = s["cluster"]["nodes"]
                            .as_array()
                            .map_or(0, |ns| ns.iter().filter(|x| x["live"] == true).count());
                        live == running
                            && s["cluster"]["agreed"][0]["health"] == "healthy"
                            && s["cluster"]["agreed"][1]["health"] == "healthy"
                    })
                })
        });
        assert!(settled, "the cluster did not settle:\n{}", self.logs());
    }

    /// What every DNS-serving node answers for www.example.com A.
    pub fn answers(&self) -> Vec<(&'static str, Vec<String>)> {
        self.nodes
            .iter()
            .filter(|n| n.server.is_some())
            .filter_map(|n| {
                n.dns
                    .map(|dns| (n.name, a_records(dns, "www.example.com.")))
            })
            .collect()
    }

    /// Waits until every running DNS node answers `address`, with one
    /// serial; the serial.
    pub fn wait_all_answer(&self, address: &str, within: Duration) -> Option<u32> {
        let mut serial = None;
        let done = wait_until(within, || {
            let answers = self.answers();
            if answers.is_empty() || !answers.iter().all(|(_, a)| a == &[address]) {
                return false;
            }
            let serials: Vec<u32> = self
                .nodes
                .iter()
                .filter(|n| n.server.is_some())
                .filter_map(|n| n.dns.map(|dns| soa_serial(dns, "example.com.")))
                .collect();
            serial = serials.first().copied();
            serials.windows(2).all(|w| w[0] == w[1])
        });
        done.then_some(serial).flatten()
    }

    /// The shared journal, as `node` shows it.
    pub fn events(&self, node: &str) -> Vec<serde_json::Value> {
        super::journal(self.node(node).http)
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("state/api.token"))
            .expect("the API token")
            .trim()
            .to_string()
    }

    /// POSTs to a node's API with the token.
    pub fn post(&self, node: &str, path: &str, body: &str) -> (u16, String) {
        super::http(
            "POST",
            self.node(node).http,
            path,
            Some(&self.token()),
            body,
        )
    }

    /// Every running node's log, for a failure message.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .filter_map(|n| {
                n.server
                    .as_ref()
                    .map(|s| format!("--- {} ---\n{}", n.name, s.log()))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn status_json(&self, node: &str) -> serde_json::Value {
        status_json(self.node(node).http)
    }
}
