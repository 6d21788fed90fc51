//! Standard secondaries of geofailover: NSD, Knot and BIND, each started
//! on a loopback port in a temporary folder, transferring a zone from
//! geofailover (with or without a TSIG key) and accepting its NOTIFY;
//! stopped by PID when dropped. Their logs are read to see how a zone
//! came in (AXFR or IXFR).

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use super::{Process, free_port, require, wait_until};

/// The TSIG key the tests share: config/transfer.key.
pub const KEY_NAME: &str = "transfer-key";

/// The secret of config/transfer.key, base64.
pub fn key_secret() -> String {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/transfer.key"),
    )
    .expect("read config/transfer.key");
    let at = text.find("secret \"").expect("a secret") + "secret \"".len();
    text[at..].split('"').next().expect("a secret").to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Nsd,
    Knot,
    Bind,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Nsd, Kind::Knot, Kind::Bind];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Nsd => "nsd",
            Kind::Knot => "knot",
            Kind::Bind => "bind",
        }
    }
}

/// A secondary nameserver of `zone`, transferring from `primary`.
pub struct Secondary {
    pub kind: Kind,
    pub addr: SocketAddr,
    pub zone: String,
    primaries: Vec<SocketAddr>,
    /// Where it takes NOTIFY from; default the first primary's address.
    notify_from: Option<IpAddr>,
    keyed: bool,
    process: Option<Process>,
    dir: tempfile::TempDir,
}

impl Secondary {
    /// Starts a secondary on a free port.
    pub fn start(kind: Kind, zone: &str, primary: SocketAddr, keyed: bool) -> Self {
        Self::start_on(kind, zone, primary, keyed, free_port())
    }

    /// Starts a secondary on `port`.
    pub fn start_on(kind: Kind, zone: &str, primary: SocketAddr, keyed: bool, port: u16) -> Self {
        Self::start_from(kind, zone, &[primary], keyed, port)
    }

    /// Starts a secondary on `port` that transfers from whichever of
    /// `primaries` answers (on 127.0.0.1).
    pub fn start_from(
        kind: Kind,
        zone: &str,
        primaries: &[SocketAddr],
        keyed: bool,
        port: u16,
    ) -> Self {
        let mut secondary = Self {
            kind,
            addr: ([127, 0, 0, 1], port).into(),
            zone: zone.trim_end_matches('.').to_string(),
            primaries: primaries.to_vec(),
            notify_from: None,
            keyed,
            process: None,
            dir: tempfile::tempdir().expect("tempdir"),
        };
        secondary.run();
        secondary
    }

    /// An NSD secondary listening on `addr` (any loopback address) that
    /// transfers from `primary` without a key and takes NOTIFY only from
    /// `notify_from`.
    pub fn start_nsd_at(
        zone: &str,
        primary: SocketAddr,
        addr: SocketAddr,
        notify_from: IpAddr,
    ) -> Self {
        let mut secondary = Self {
            kind: Kind::Nsd,
            addr,
            zone: zone.trim_end_matches('.').to_string(),
            primaries: vec![primary],
            notify_from: Some(notify_from),
            keyed: false,
            process: None,
            dir: tempfile::tempdir().expect("tempdir"),
        };
        secondary.run();
        secondary
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join(format!("{}.log", self.kind.name()))
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    /// Stops it (SIGTERM, then SIGKILL), keeping its folder.
    pub fn stop(&mut self) {
        self.process.take();
    }

    /// Starts it again with the same config and files.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    fn run(&mut self) {
        let dir = self.dir.path().display().to_string();
        let port = self.addr.port();
        let ip = self.addr.ip();
        let primary_ip = self.primaries[0].ip();
        let notify_from = self.notify_from.unwrap_or(primary_ip);
        let zone = &self.zone;
        let secret = key_secret();
        let log = self.log_file().display().to_string();
        let (binary, args, conf, name): (String, Vec<String>, String, &'static str) = match self
            .kind
        {
            Kind::Nsd => {
                let key = if self.keyed { KEY_NAME } else { "NOKEY" };
                let requests: String = self
                    .primaries
                    .iter()
                    .map(|p| format!("  request-xfr: {}@{} {key}\n", p.ip(), p.port()))
                    .collect();
                let keys = if self.keyed {
                    format!(
                        "key:\n  name: {KEY_NAME}\n  algorithm: hmac-sha256\n  secret: \"{secret}\"\n"
                    )
                } else {
                    String::new()
                };
                let conf = format!(
                    "server:\n  ip-address: {ip}@{port}\n  port: {port}\n  username: \"\"\n  chroot: \"\"\n\
                         \x20 zonesdir: \"{dir}\"\n  pidfile: \"{dir}/nsd.pid\"\n  database: \"\"\n\
                         \x20 zonelistfile: \"{dir}/zone.list\"\n  xfrdfile: \"{dir}/xfrd.state\"\n  xfrdir: \"{dir}\"\n\
                         \x20 logfile: \"{log}\"\n  verbosity: 2\n  server-count: 1\n  rrl-ratelimit: 0\n\
                         remote-control:\n  control-enable: no\n{keys}\
                         zone:\n  name: {zone}\n  zonefile: {zone}.zone\n  allow-notify: {notify_from} {key}\n{requests}"
                );
                let path = format!("{dir}/nsd.conf");
                (
                    require("nsd"),
                    vec!["-d".into(), "-c".into(), path],
                    conf,
                    "nsd",
                )
            }
            Kind::Knot => {
                // Knot makes no database folder of its own: without one it
                // cannot keep an IXFR's changes in its journal ("failed to
                // store changes (not exists)") and falls back to AXFR.
                std::fs::create_dir_all(format!("{dir}/db")).expect("knot's database folder");
                let addresses = self
                    .primaries
                    .iter()
                    .map(|p| format!("{}@{}", p.ip(), p.port()))
                    .collect::<Vec<_>>()
                    .join(", ");
                let (keys, key) = if self.keyed {
                    (
                        format!(
                            "key:\n  - id: {KEY_NAME}\n    algorithm: hmac-sha256\n    secret: {secret}\n"
                        ),
                        format!("    key: {KEY_NAME}\n"),
                    )
                } else {
                    (String::new(), String::new())
                };
                let conf = format!(
                    "server:\n  listen: {ip}@{port}\n  rundir: {dir}\n  user: root\n\
                         database:\n  storage: {dir}/db\n{keys}\
                         remote:\n  - id: primary\n    address: [{addresses}]\n{key}\
                         acl:\n  - id: notify\n    address: {primary_ip}\n{key}    action: notify\n\
                         template:\n  - id: default\n    storage: {dir}\n    zonefile-sync: -1\n    journal-content: changes\n\
                         zone:\n  - domain: {zone}\n    master: primary\n    acl: notify\n\
                         log:\n  - target: {log}\n    any: info\n"
                );
                let path = format!("{dir}/knot.conf");
                (require("knotd"), vec!["-c".into(), path], conf, "knotd")
            }
            Kind::Bind => {
                let (keys, key) = if self.keyed {
                    (
                        format!(
                            "key \"{KEY_NAME}\" {{ algorithm hmac-sha256; secret \"{secret}\"; }};\n"
                        ),
                        format!(" key {KEY_NAME}"),
                    )
                } else {
                    (String::new(), String::new())
                };
                let primaries: String = self
                    .primaries
                    .iter()
                    .map(|p| format!("{} port {}{key}; ", p.ip(), p.port()))
                    .collect();
                let conf = format!(
                    "options {{\n  directory \"{dir}\";\n  listen-on port {port} {{ {ip}; }};\n  listen-on-v6 {{ none; }};\n\
                         \x20 pid-file \"{dir}/named.pid\";\n  session-keyfile \"{dir}/session.key\";\n\
                         \x20 managed-keys-directory \"{dir}\";\n  recursion no;\n  notify no;\n  dnssec-validation no;\n\
                         \x20 allow-query {{ any; }};\n}};\n\
                         controls {{ }};\n{keys}\
                         logging {{\n  channel all {{ file \"{log}\"; severity info; print-time yes; print-category yes; }};\n\
                         \x20 category default {{ all; }};\n  category xfer-in {{ all; }};\n  category notify {{ all; }};\n}};\n\
                         zone \"{zone}\" {{\n  type secondary;\n  primaries {{ {primaries} }};\n\
                         \x20 file \"{dir}/{zone}.db\";\n  allow-notify {{ {primary_ip}; }};\n}};\n"
                );
                let path = format!("{dir}/named.conf");
                (
                    require("named"),
                    vec!["-f".into(), "-u".into(), "root".into(), "-c".into(), path],
                    conf,
                    "named",
                )
            }
        };
        let path = args.last().expect("config path").clone();
        std::fs::write(&path, conf).expect("write the secondary's config");
        let child = Command::new(binary)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let mut process = Process::new(child, name);
        // It is up once it answers on its port (with the zone or not).
        let addr = self.addr;
        let origin = hickory_proto::rr::Name::from_ascii(format!("{}.", self.zone)).expect("zone");
        let up = wait_until(Duration::from_secs(20), || {
            let probe = super::query_message(&origin, hickory_proto::rr::RecordType::SOA, false);
            super::udp(addr, &probe).is_some() || process.child.try_wait().ok().flatten().is_some()
        });
        assert!(
            up && process.child.try_wait().ok().flatten().is_none(),
            "{name} did not start on {addr}: {}",
            std::fs::read_to_string(self.log_file()).unwrap_or_default()
        );
        self.process = Some(process);
    }

    /// The SOA serial it answers with, if it serves the zone.
    pub fn serial(&self) -> Option<u32> {
        let origin = hickory_proto::rr::Name::from_ascii(format!("{}.", self.zone)).ok()?;
        let probe = super::query_message(&origin, hickory_proto::rr::RecordType::SOA, false);
        let answer = super::udp(self.addr, &probe)?;
        answer.answers.iter().find_map(|r| match &r.data {
            hickory_proto::rr::RData::SOA(soa) => Some(soa.serial),
            _ => None,
        })
    }

    /// Waits until it answers `serial`.
    pub fn wait_serial(&self, serial: u32, timeout: Duration) -> bool {
        wait_until(timeout, || self.serial() == Some(serial))
    }
}
