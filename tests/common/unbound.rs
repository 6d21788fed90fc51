//! A real validating resolver over a DNSSEC chain of the test's own: a
//! root zone signed with BIND's tools (`dnssec-keygen`, `dnssec-signzone`)
//! and served by NSD, delegating child zones and holding their DS records;
//! and Unbound, validating from that root's key (and nothing else) and
//! sent to the child zones' servers by stub zones, so nothing needs port
//! 53 or the Internet. Each part runs in its own temporary folder on a
//! loopback port and is stopped by PID when dropped. The DNSSEC zone
//! verifiers (BIND's `dnssec-verify`, ldns' `ldns-verify-zone`, Knot's
//! `kzonecheck`) check zone files.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use super::{Process, Reference, dig, free_port, query_message, require, udp, wait_until};
use hickory_proto::rr::{Name, RecordType};

/// Runs a tool in `dir`; panics with its output when it fails.
fn run(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(require(program))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\n{text}",
        out.status
    );
    text
}

/// A zone signed by BIND's `dnssec-signzone` in a folder of the caller's.
pub struct BindSigned {
    pub origin: String,
    /// The signed zone file's name, in the folder.
    pub file: String,
    /// The signed zone file.
    pub path: PathBuf,
    /// The zone's DS records (SHA-256), as zone-file lines.
    pub ds: Vec<String>,
}

/// The name a zone's files take: `root` for the root.
fn stem(origin: &str) -> String {
    match origin.trim_end_matches('.') {
        "" => "root".to_string(),
        name => name.to_string(),
    }
}

/// The keys a zone is signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    /// A KSK (flags 257) signing the DNSKEY RRset, a ZSK (256) the rest.
    Split,
    /// One combined signing key (flags 257) signing everything, as
    /// geofailover signs.
    Csk,
}

/// Signs `zone` (zone-file text for `origin`) in `dir` with a new
/// ECDSA P-256 KSK and ZSK, as an operator would with BIND's tools.
pub fn sign_with_bind(dir: &Path, origin: &str, zone: &str) -> BindSigned {
    sign_with_bind_keys(dir, origin, zone, Keys::Split)
}

/// `sign_with_bind` with the keys of the caller's choice.
pub fn sign_with_bind_keys(dir: &Path, origin: &str, zone: &str, layout: Keys) -> BindSigned {
    let stem = stem(origin);
    let unsigned = format!("{stem}.zone");
    let signed = format!("{stem}.signed");
    std::fs::write(dir.join(&unsigned), zone).expect("write the zone");
    let keys = dir.display().to_string();
    let roles: &[&[&str]] = match layout {
        Keys::Split => &[&["-f", "KSK"], &[]],
        Keys::Csk => &[&["-f", "KSK"]],
    };
    for role in roles {
        let mut args = vec!["-q", "-a", "ECDSAP256SHA256", "-K", &keys];
        args.extend_from_slice(role);
        args.push(origin);
        run(dir, "dnssec-keygen", &args);
    }
    // -O full: one record a line.
    let mut args = vec![
        "-S", "-O", "full", "-K", &keys, "-d", &keys, "-o", origin, "-f", &signed,
    ];
    if layout == Keys::Csk {
        // Every RRset signed with the key that has the KSK flag.
        args.push("-z");
    }
    args.push(&unsigned);
    run(dir, "dnssec-signzone", &args);
    let absolute = format!("{}.", origin.trim_end_matches('.'));
    let dsset = std::fs::read_to_string(dir.join(format!("dsset-{absolute}")))
        .expect("read the dsset file dnssec-signzone wrote");
    let ds = ds_records(&dsset);
    assert!(!ds.is_empty(), "no DS in the dsset file:\n{dsset}");
    BindSigned {
        origin: absolute,
        path: dir.join(&signed),
        file: signed,
        ds,
    }
}

impl BindSigned {
    /// The signed zone's records, one line each.
    pub fn records(&self) -> Vec<String> {
        zone_lines(&std::fs::read_to_string(&self.path).expect("read the signed zone"))
    }
}

/// The records of zone-file text written one a line (dig's, or
/// `dnssec-signzone -O full`'s), each with its fields one space apart.
pub fn zone_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|line| !line.trim().is_empty() && !line.trim_start().starts_with(';'))
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// The DS records among zone-file lines (such as the output of
/// `geofailover dnssec ds` or a dsset file).
pub fn ds_records(text: &str) -> Vec<String> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with(';'))
        .filter(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            words.windows(2).any(|pair| pair == ["IN", "DS"])
        })
        .map(|line| line.trim().to_string())
        .collect()
}

/// The test's own root zone, signed with BIND's tools and served by NSD.
/// Each child zone is delegated to `ns1.<child>` (glue 127.0.0.1) and
/// carries the DS records the caller gave (none: an insecure delegation).
/// Resolvers reach the children through stub zones, not this glue.
pub struct RootZone {
    pub nsd: Reference,
    /// The trust anchor: the root's DS records, as zone-file lines.
    pub trust_anchor: Vec<String>,
    /// The unsigned root zone, for failure messages.
    pub text: String,
    _dir: tempfile::TempDir,
}

impl RootZone {
    /// `children`: (child zone, its DS records as zone-file lines).
    pub fn start(children: &[(&str, &[String])]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut text = String::from(
            "$TTL 300\n\
             . IN SOA ns.root. hostmaster.root. 1 7200 900 1209600 300\n\
             . IN NS ns.root.\n\
             ns.root. IN A 127.0.0.1\n",
        );
        for (child, ds) in children {
            let child = child.trim_end_matches('.');
            text.push_str(&format!(
                "{child}. IN NS ns1.{child}.\nns1.{child}. IN A 127.0.0.1\n"
            ));
            for line in *ds {
                text.push_str(line);
                text.push('\n');
            }
        }
        let signed = sign_with_bind(dir.path(), ".", &text);
        let nsd = Reference::nsd(dir.path(), &[(".", &signed.file)]);
        Self {
            nsd,
            trust_anchor: signed.ds,
            text,
            _dir: dir,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.nsd.addr
    }
}

/// One answer of the resolver, read from dig's output.
#[derive(Debug, Clone)]
pub struct Answer {
    /// NOERROR, NXDOMAIN, SERVFAIL..., or "NO REPLY".
    pub rcode: String,
    /// The AD (authenticated data) flag.
    pub ad: bool,
    /// The answer section's records, one zone-file line each.
    pub records: Vec<String>,
    /// dig's whole output.
    pub text: String,
}

impl Answer {
    fn parse(text: String) -> Self {
        let rcode = text
            .split("status: ")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .unwrap_or("NO REPLY")
            .to_string();
        let ad = text
            .lines()
            .find_map(|line| line.strip_prefix(";; flags: "))
            .and_then(|flags| flags.split(';').next())
            .is_some_and(|flags| flags.split_whitespace().any(|flag| flag == "ad"));
        let records = text
            .lines()
            .skip_while(|line| !line.starts_with(";; ANSWER SECTION:"))
            .skip(1)
            .take_while(|line| !line.trim().is_empty())
            .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        Self {
            rcode,
            ad,
            records,
            text,
        }
    }

    /// The data of the answer's records of `rtype`, such as
    /// `192.0.2.10` for an A record, sorted (Unbound rotates RRsets).
    pub fn data(&self, rtype: &str) -> Vec<String> {
        let mut data: Vec<String> = self
            .records
            .iter()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                (fields.len() > 4 && fields[3] == rtype).then(|| fields[4..].join(" "))
            })
            .collect();
        data.sort();
        data
    }

    /// NOERROR or NXDOMAIN as asked, with AD set.
    pub fn is_secure(&self, rcode: &str) -> bool {
        self.rcode == rcode && self.ad
    }
}

/// A validating Unbound (`/usr/sbin/unbound -d`) trusting only the test
/// root's key: the root through a stub zone at its NSD, each child zone
/// through a stub zone at the server the test gives.
pub struct Unbound {
    pub process: Process,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Unbound {
    /// `stubs`: (zone, the address of its server).
    pub fn start(root: &RootZone, stubs: &[(&str, SocketAddr)]) -> Self {
        let unbound = require("unbound");
        let dir = tempfile::tempdir().expect("tempdir");
        let run = dir.path().display().to_string();
        let port = free_port();
        // so-reuseport: no. dig binds its UDP socket to a port of the
        // kernel's choice with SO_REUSEPORT, and the kernel may then hand
        // it a port that a socket with SO_REUSEPORT already holds: with
        // Unbound's, dig asks itself and reads its own query back ("query
        // response not set"), seen once in about a thousand queries.
        let anchor = dir.path().join("root.anchor");
        std::fs::write(&anchor, root.trust_anchor.join("\n") + "\n").expect("write the anchor");
        let mut conf = format!(
            "server:\n\
             \x20 interface: 127.0.0.1@{port}\n\
             \x20 port: {port}\n\
             \x20 do-ip6: no\n\
             \x20 chroot: \"\"\n\
             \x20 username: \"\"\n\
             \x20 directory: \"{run}\"\n\
             \x20 pidfile: \"{run}/unbound.pid\"\n\
             \x20 use-syslog: no\n\
             \x20 logfile: \"{run}/unbound.log\"\n\
             \x20 log-time-ascii: yes\n\
             \x20 verbosity: 1\n\
             \x20 val-log-level: 2\n\
             \x20 num-threads: 1\n\
             \x20 so-reuseport: no\n\
             \x20 do-not-query-localhost: no\n\
             \x20 module-config: \"validator iterator\"\n\
             \x20 trust-anchor-file: \"{anchor}\"\n\
             \x20 trust-anchor-signaling: no\n\
             \x20 root-key-sentinel: no\n\
             remote-control:\n\
             \x20 control-enable: no\n\
             stub-zone:\n\
             \x20 name: \".\"\n\
             \x20 stub-addr: 127.0.0.1@{root}\n",
            anchor = anchor.display(),
            root = root.addr().port(),
        );
        for (zone, addr) in stubs {
            conf.push_str(&format!(
                "stub-zone:\n  name: \"{}\"\n  stub-addr: {}@{}\n",
                zone.trim_end_matches('.'),
                addr.ip(),
                addr.port()
            ));
        }
        let path = dir.path().join("unbound.conf");
        std::fs::write(&path, conf).expect("write unbound.conf");
        let stderr = std::fs::File::create(dir.path().join("unbound.stderr")).expect("stderr file");
        let child = Command::new(unbound)
            .arg("-d")
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start unbound");
        let mut process = Process::new(child, "unbound");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        // Its own localhost zone answers without asking anyone.
        let localhost = Name::from_ascii("localhost.").expect("name");
        let mut exited = None;
        let up = wait_until(Duration::from_secs(20), || {
            exited = process.wait_exit(Duration::ZERO);
            exited.is_none()
                && udp(addr, &query_message(&localhost, RecordType::A, false)).is_some()
                || exited.is_some()
        });
        let unbound = Self { process, addr, dir };
        assert!(
            up && exited.is_none(),
            "unbound did not start on {addr} (exit: {exited:?}):\n{}",
            unbound.log()
        );
        unbound
    }

    /// Asks for `name` `rtype` (with the AD bit, as a stub resolver that
    /// wants to know would).
    pub fn query(&self, name: &str, rtype: &str) -> Answer {
        Answer::parse(dig(
            self.addr,
            &["+adflag", "+time=5", "+tries=2", name, rtype],
        ))
    }

    /// Its config, log file and stderr (the validator's reasons are in the
    /// log, at val-log-level 2).
    pub fn log(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!(
            "--- unbound.conf\n{}--- unbound.log\n{}--- stderr\n{}",
            read("unbound.conf"),
            read("unbound.log"),
            read("unbound.stderr")
        )
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

/// The DNSSEC zone verifiers of three implementations, each on the zone
/// file `file` of `origin`: BIND's `dnssec-verify -z`, ldns'
/// `ldns-verify-zone` and Knot's `kzonecheck --dnssec on`. Ok when all
/// exit 0; otherwise each failing one's command and output.
pub fn verify_zone(origin: &str, file: &Path) -> Result<(), String> {
    let origin = origin.trim_end_matches('.');
    let file = file.display().to_string();
    let checks: [(&str, Vec<&str>); 3] = [
        // -z: a key with the KSK flag may sign every RRset (a CSK, as
        // geofailover's); without it dnssec-verify wants a ZSK as well
        // and fails a zone BIND itself signed with one CSK.
        ("dnssec-verify", vec!["-z", "-o", origin, &file]),
        ("ldns-verify-zone", vec![&file]),
        ("kzonecheck", vec!["-o", origin, "--dnssec", "on", &file]),
    ];
    let mut failures = Vec::new();
    for (program, args) in checks {
        let out = Command::new(require(program))
            .args(&args)
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}"));
        if !out.status.success() {
            failures.push(format!(
                "{program} {} exited {}:\n{}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

/// The zone as `dig AXFR` from `addr` prints it (`+noall +answer`),
/// written to `file`; its records, one line each.
pub fn axfr_to_file(addr: SocketAddr, zone: &str, file: &Path) -> Vec<String> {
    let text = dig(
        addr,
        &["+noall", "+answer", "+time=5", "+tries=1", zone, "AXFR"],
    );
    std::fs::write(file, &text).expect("write the transferred zone");
    zone_lines(&text)
}

/// The RRSIGs among zone-file `records` (one per line, as
/// `axfr_to_file` returns them) whose TTL is not that of the RRset they
/// cover, which RFC 4034 section 3 requires; none of the verifiers checks
/// it. Each as "RRSIG line (covered RRset's TTL N)".
pub fn rrsig_ttl_mismatches(records: &[String]) -> Vec<String> {
    let fields =
        |line: &String| -> Vec<String> { line.split_whitespace().map(str::to_string).collect() };
    let mut ttls = std::collections::HashMap::new();
    for line in records {
        let f = fields(line);
        if f.len() > 4 && f[3] != "RRSIG" {
            ttls.insert((f[0].to_lowercase(), f[3].clone()), f[1].clone());
        }
    }
    records
        .iter()
        .filter_map(|line| {
            let f = fields(line);
            if f.len() < 5 || f[3] != "RRSIG" {
                return None;
            }
            let covered = ttls.get(&(f[0].to_lowercase(), f[4].clone()))?;
            (*covered != f[1]).then(|| format!("{line} (covered RRset's TTL {covered})"))
        })
        .collect()
}
