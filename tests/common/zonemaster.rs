//! Zonemaster (`zonemaster-cli`, Debian's package) on loopback: it asks
//! the root named by a hints file and the zone's servers on port 53 only,
//! so the test gives it a root of its own (signed with BIND's tools, served
//! by NSD on port 53 of a loopback address) delegating the zone, with its
//! DS, to servers on port 53 of other loopback addresses. And Knot signing
//! a zone file itself, to compare with. Each part runs in its own
//! temporary folder and is stopped by PID when dropped.

use std::{
    collections::BTreeSet,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use super::{
    Process, Reference, query_message, require, udp,
    unbound::{ds_records, sign_with_bind},
    wait_until,
};
use hickory_proto::rr::{Name, RecordType};

/// A root zone of the test's own on port 53 of `addr`, delegating one
/// child zone to its servers (with glue) and holding the child's DS.
pub struct Root {
    pub nsd: Reference,
    /// The hints file naming this root, for `zonemaster-cli --hints`.
    pub hints: PathBuf,
    /// The unsigned root zone, for failure messages.
    pub text: String,
    _dir: tempfile::TempDir,
}

impl Root {
    /// `servers`: the child's nameservers (name, address); `ds`: its DS
    /// records as zone-file lines.
    pub fn start(addr: Ipv4Addr, child: &str, servers: &[(&str, Ipv4Addr)], ds: &[String]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let child = child.trim_end_matches('.');
        let mut text = format!(
            "$TTL 300\n\
             . IN SOA ns.root. hostmaster.root. 1 7200 900 1209600 300\n\
             . IN NS ns.root.\n\
             ns.root. IN A {addr}\n"
        );
        for (name, ip) in servers {
            let name = name.trim_end_matches('.');
            text.push_str(&format!("{child}. IN NS {name}.\n{name}. IN A {ip}\n"));
        }
        for line in ds {
            text.push_str(line);
            text.push('\n');
        }
        let signed = sign_with_bind(dir.path(), ".", &text);
        let nsd = Reference::nsd_at(dir.path(), &[(".", &signed.file)], (addr, 53).into());
        let hints = dir.path().join("root.hints");
        std::fs::write(
            &hints,
            format!(". 3600000 IN NS ns.root.\nns.root. 3600000 IN A {addr}\n"),
        )
        .expect("write the hints");
        Self {
            nsd,
            hints,
            text,
            _dir: dir,
        }
    }
}

/// The levels of Zonemaster's messages, lowest first.
const LEVELS: [&str; 8] = [
    "DEBUG3", "DEBUG2", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL",
];

fn rank(level: &str) -> usize {
    LEVELS
        .iter()
        .position(|l| *l == level)
        .unwrap_or_else(|| panic!("an unknown Zonemaster level {level}"))
}

/// One message of Zonemaster's.
#[derive(Debug, Clone)]
pub struct Message {
    pub level: String,
    pub tag: String,
    pub testcase: String,
    pub args: serde_json::Value,
}

/// What one run of `zonemaster-cli` said.
pub struct Report {
    /// The command, as a shell would run it.
    pub command: String,
    pub messages: Vec<Message>,
    /// stdout and stderr, for failure messages.
    pub output: String,
}

impl Report {
    /// The tags of the messages at `level` or above.
    pub fn tags_at_least(&self, level: &str) -> BTreeSet<String> {
        self.messages
            .iter()
            .filter(|m| rank(&m.level) >= rank(level))
            .map(|m| m.tag.clone())
            .collect()
    }

    /// The messages at `level` or above, one line each.
    pub fn lines_at_least(&self, level: &str) -> Vec<String> {
        self.messages
            .iter()
            .filter(|m| rank(&m.level) >= rank(level))
            .map(|m| format!("{} {} {} {}", m.level, m.testcase, m.tag, m.args))
            .collect()
    }

    /// The test cases that ran to their end.
    pub fn test_cases(&self) -> BTreeSet<String> {
        self.messages
            .iter()
            .filter(|m| m.tag == "TEST_CASE_END")
            .filter_map(|m| m.args["testcase"].as_str().map(str::to_lowercase))
            .collect()
    }

    /// The addresses Zonemaster sent queries to.
    pub fn queried(&self) -> BTreeSet<String> {
        self.messages
            .iter()
            .filter(|m| m.tag == "EXTERNAL_QUERY")
            .filter_map(|m| m.args["ip"].as_str().map(str::to_string))
            .collect()
    }
}

/// `zonemaster-cli` testing `zone` with its DNSSEC module only, from the
/// root in `hints`, over IPv4 only; every message down to DEBUG (which
/// lists each query sent), as JSON.
pub fn run(zone: &str, hints: &Path) -> Report {
    let program = require("zonemaster-cli");
    let hints = hints.display().to_string();
    let args = [
        "--no-ipv6",
        "--hints",
        &hints,
        "--test",
        "DNSSEC",
        "--json",
        "--level",
        "DEBUG",
        "--no-progress",
        zone,
    ];
    let command = format!("zonemaster-cli {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {command}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let output = format!(
        "{stdout}--- stderr\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{command} exited {}:\n{output}",
        out.status
    );
    let json = stdout
        .lines()
        .rev()
        .find(|line| line.starts_with('['))
        .unwrap_or_else(|| panic!("no JSON from {command}:\n{output}"));
    let parsed: Vec<serde_json::Value> = serde_json::from_str(json)
        .unwrap_or_else(|e| panic!("{command} printed JSON that does not parse ({e}):\n{output}"));
    let messages = parsed
        .into_iter()
        .map(|m| Message {
            level: m["level"].as_str().unwrap_or_default().to_string(),
            tag: m["tag"].as_str().unwrap_or_default().to_string(),
            testcase: m["testcase"].as_str().unwrap_or_default().to_string(),
            args: m["args"].clone(),
        })
        .collect();
    Report {
        command,
        messages,
        output,
    }
}

/// knotd signing a zone file itself (`dnssec-signing: on`) with one
/// ECDSA P-256 CSK (a `policy` with `single-type-signing: on`), NSEC,
/// listening on port 53 of each of `addrs`.
pub struct KnotSigner {
    pub process: Process,
    pub addr: SocketAddr,
    zone: String,
    conf: PathBuf,
    dir: tempfile::TempDir,
}

impl KnotSigner {
    /// `file`: the zone file of `zone`.
    pub fn start(zone: &str, file: &Path, addrs: &[Ipv4Addr]) -> Self {
        let knotd = require("knotd");
        let zone = zone.trim_end_matches('.').to_string();
        let dir = tempfile::tempdir().expect("tempdir");
        let run = dir.path().display().to_string();
        // Knot makes no database folder (its keys' store) of its own.
        std::fs::create_dir_all(dir.path().join("db")).expect("knot's database folder");
        std::fs::copy(file, dir.path().join(format!("{zone}.zone"))).expect("copy the zone");
        let listen = addrs
            .iter()
            .map(|a| format!("{a}@53"))
            .collect::<Vec<_>>()
            .join(", ");
        let conf = format!(
            "server:\n  listen: [{listen}]\n  rundir: {run}\n  user: root\n\
             database:\n  storage: {run}/db\n\
             policy:\n  - id: csk\n    algorithm: ecdsap256sha256\n    single-type-signing: on\n\
             template:\n  - id: default\n    storage: {run}\n    zonefile-sync: -1\n    zonefile-load: whole\n    journal-content: none\n\
             log:\n  - target: {run}/knot.log\n    any: info\n\
             zone:\n  - domain: {zone}\n    file: {zone}.zone\n    dnssec-signing: on\n    dnssec-policy: csk\n"
        );
        let path = dir.path().join("knot.conf");
        std::fs::write(&path, conf).expect("write knot.conf");
        let child = Command::new(knotd)
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start knotd");
        let mut process = Process::new(child, "knotd");
        let addr: SocketAddr = (addrs[0], 53).into();
        let origin = Name::from_ascii(format!("{zone}.")).expect("zone");
        // Up once it answers the zone's keys, which it has once signed.
        let mut exited = None;
        let up = wait_until(Duration::from_secs(20), || {
            exited = process.wait_exit(Duration::ZERO);
            let probe = query_message(&origin, RecordType::DNSKEY, true);
            exited.is_some() || matches!(udp(addr, &probe), Some(r) if !r.answers.is_empty())
        });
        let knot = Self {
            process,
            addr,
            zone,
            conf: path,
            dir,
        };
        assert!(
            up && exited.is_none(),
            "knotd did not serve {} signed on {addr} (exit: {exited:?}):\n{}",
            knot.zone,
            knot.log()
        );
        knot
    }

    /// The zone's DS records with SHA-256 digests (as `geofailover dnssec
    /// ds` gives), from Knot's own `keymgr ZONE ds`, as zone-file lines.
    pub fn ds(&self) -> Vec<String> {
        let out = Command::new(require("keymgr"))
            .arg("-c")
            .arg(&self.conf)
            .args([&self.zone, "ds"])
            .output()
            .expect("run keymgr");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "keymgr {} ds exited {}:\n{text}{}",
            self.zone,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        // "example.com. DS 42224 13 2 ef88...": class and TTL written in.
        let lines: Vec<String> = text
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                (fields.len() == 6 && fields[1] == "DS" && fields[4] == "2").then(|| {
                    format!(
                        "{} 3600 IN DS {} {} {} {}",
                        fields[0],
                        fields[2],
                        fields[3],
                        fields[4],
                        fields[5].to_uppercase()
                    )
                })
            })
            .collect();
        let ds = ds_records(&lines.join("\n"));
        assert!(!ds.is_empty(), "no SHA-256 DS from keymgr:\n{text}");
        ds
    }

    /// Its config and log.
    pub fn log(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!(
            "--- knot.conf\n{}--- knot.log\n{}",
            read("knot.conf"),
            read("knot.log")
        )
    }
}
