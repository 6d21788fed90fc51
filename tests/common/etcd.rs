//! Real etcd for tests (Debian's `etcd-server`, 3.4): a cluster of one or
//! more members, each `etcd` in its own temporary folder on free ports of
//! an address of the test's choosing, stopped by PID when dropped.

use std::{
    net::IpAddr,
    process::{Command, Stdio},
    time::Duration,
};

use super::{Process, free_port, wait_until};

pub struct Member {
    pub name: String,
    /// The client URL, such as http://127.0.0.1:2379.
    pub url: String,
    process: Option<Process>,
    command: Vec<String>,
    _dir: tempfile::TempDir,
}

pub struct Etcd {
    pub members: Vec<Member>,
}

fn etcd_binary() -> &'static str {
    for path in ["/usr/bin/etcd", "/usr/local/bin/etcd"] {
        if std::path::Path::new(path).exists() {
            return path;
        }
    }
    panic!("etcd is not installed: run tests/run.sh, which installs etcd-server");
}

impl Etcd {
    /// `size` members on loopback.
    pub fn start(size: usize) -> Self {
        let ips = vec!["127.0.0.1".parse().expect("ip"); size];
        Self::start_on(&ips)
    }

    /// One member on each of `ips`.
    pub fn start_on(ips: &[IpAddr]) -> Self {
        Self::start_with(ips, &[])
    }

    /// One member on each of `ips`, each with `extra` arguments.
    pub fn start_with(ips: &[IpAddr], extra: &[String]) -> Self {
        let token = format!("geofailover-test-{}-{}", std::process::id(), free_port());
        let peers: Vec<(String, IpAddr, u16, u16)> = ips
            .iter()
            .enumerate()
            .map(|(i, ip)| (format!("m{}", i + 1), *ip, free_port(), free_port()))
            .collect();
        let initial: Vec<String> = peers
            .iter()
            .map(|(name, ip, _, peer)| format!("{name}=http://{ip}:{peer}"))
            .collect();
        let mut members: Vec<Member> = peers
            .iter()
            .map(|(name, ip, client, peer)| {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("http://{ip}:{client}");
                let command = vec![
                    format!("--name={name}"),
                    format!("--data-dir={}", dir.path().join("data").display()),
                    format!("--listen-client-urls={url}"),
                    format!("--advertise-client-urls={url}"),
                    format!("--listen-peer-urls=http://{ip}:{peer}"),
                    format!("--initial-advertise-peer-urls=http://{ip}:{peer}"),
                    format!("--initial-cluster={}", initial.join(",")),
                    format!("--initial-cluster-token={token}"),
                    "--initial-cluster-state=new".into(),
                    "--heartbeat-interval=100".into(),
                    "--election-timeout=1000".into(),
                    "--logger=zap".into(),
                    format!("--log-outputs={}", dir.path().join("etcd.log").display()),
                ];
                let command = [command, extra.to_vec()].concat();
                Member {
                    name: name.clone(),
                    url,
                    process: None,
                    command,
                    _dir: dir,
                }
            })
            .collect();
        for member in &mut members {
            member.launch();
        }
        let etcd = Self { members };
        assert!(
            wait_until(Duration::from_secs(30), || etcd.healthy()),
            "etcd did not become healthy"
        );
        etcd
    }

    /// The client URLs.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.url.clone()).collect()
    }

    /// Whether the cluster answers a linearizable read (has a quorum).
    pub fn healthy(&self) -> bool {
        self.members
            .iter()
            .filter(|m| m.process.is_some())
            .any(|m| m.healthy())
    }
}

impl Member {
    fn launch(&mut self) {
        let child = Command::new(etcd_binary())
            .args(&self.command)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start etcd");
        self.process = Some(Process::new(child, "etcd"));
    }

    /// Whether this member answers with its cluster's quorum behind it.
    pub fn healthy(&self) -> bool {
        let Some(addr) = self
            .url
            .strip_prefix("http://")
            .and_then(|a| a.parse().ok())
        else {
            return false;
        };
        let (code, body) =
            super::try_http("GET", addr, "/health", None, "").unwrap_or((0, String::new()));
        code == 200 && body.contains("\"health\":\"true\"")
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a client URL with a port")
    }

    /// Whether it runs (not killed).
    pub fn running(&self) -> bool {
        self.process.is_some()
    }

    /// Stops the member with SIGSTOP, as a long pause or a stuck disk.
    pub fn freeze(&self) {
        if let Some(process) = &self.process {
            process.signal("STOP");
        }
    }

    /// Lets a frozen member go on.
    pub fn thaw(&self) {
        if let Some(process) = &self.process {
            process.signal("CONT");
        }
    }

    /// Kills the member with SIGKILL.
    pub fn kill(&mut self) {
        if let Some(process) = &mut self.process {
            process.signal("KILL");
            let _ = process.wait_exit(Duration::from_secs(10));
        }
        self.process = None;
    }

    /// Starts the member again on its data.
    pub fn restart(&mut self) {
        let command: Vec<String> = self
            .command
            .iter()
            .map(|a| {
                if a == "--initial-cluster-state=new" {
                    "--initial-cluster-state=existing".into()
                } else {
                    a.clone()
                }
            })
            .collect();
        self.command = command;
        self.launch();
    }
}
