//! TSIG with a client other than ours: dnspython (Debian's
//! python3-dnspython) signs with a fudge of 600, as it and miekg/dns may,
//! and checks every answer's signature itself; a signed UDP answer near
//! 512 bytes still fits the client once its TSIG is added.

mod common;

use std::{path::Path, process::Command};

use common::{Geofailover, secondary::key_secret};

/// Asks over UDP (one question, signed, no EDNS) or transfers over TCP
/// (AXFR), and prints what came back as `key=value` words; any error,
/// a signature that does not verify included, is printed as
/// `error=<class>`.
const CLIENT: &str = r#"
import socket, sys
import dns.message, dns.query, dns.rcode, dns.flags, dns.tsig, dns.zone
port, secret, fudge, mode, name = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
key = dns.tsig.Key("transfer-key.", secret, "hmac-sha256")
try:
    if mode == "axfr":
        q = dns.message.make_query(name, "AXFR")
        q.use_tsig(key, fudge=fudge)
        zone = dns.zone.Zone(name)
        dns.query.inbound_xfr("127.0.0.1", zone, q, port=port, timeout=10)
        print("names=%d" % len(zone.nodes))
    else:
        q = dns.message.make_query(name, mode, use_edns=False)
        q.use_tsig(key, fudge=fudge)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(5)
        s.sendto(q.to_wire(), ("127.0.0.1", port))
        data = s.recv(65535)
        r = dns.message.from_wire(data, keyring=q.keyring, request_mac=q.mac)
        print("size=%d rcode=%s tc=%d answers=%d signed=%d fudge=%d" % (
            len(data), dns.rcode.to_text(r.rcode()), int(bool(r.flags & dns.flags.TC)),
            sum(len(rrset) for rrset in r.answer), int(r.had_tsig), r.tsig[0].fudge))
except Exception as e:
    print("error=%s %s" % (type(e).__name__, e))
"#;

fn python() -> &'static str {
    let python = "/usr/bin/python3";
    let ok = Command::new(python)
        .args(["-c", "import dns.tsig"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "dnspython is not installed: run tests/run.sh, which installs the test dependencies"
    );
    python
}

fn dnspython(server: &Geofailover, fudge: u16, mode: &str, name: &str) -> String {
    let out = Command::new(python())
        .args(["-c", CLIENT])
        .arg(server.addr.port().to_string())
        .arg(key_secret())
        .arg(fudge.to_string())
        .args([mode, name])
        .output()
        .expect("run python3");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The example zone with a TXT set at near.example.com whose answer
/// takes 502 bytes unsigned (so about 590 signed), served with the key.
fn start(dir: &Path) -> Geofailover {
    let mut zone = std::fs::read_to_string(common::repo_zones().join("example.com.zone"))
        .expect("read the example zone");
    for i in 0..4 {
        zone.push_str(&format!("near 300 IN TXT \"{i}{}\"\n", "x".repeat(99)));
    }
    let zone_file = dir.join("example.com.zone");
    std::fs::write(&zone_file, zone).expect("write the zone");
    let config = dir.join("geofailover.yaml");
    std::fs::write(
        &config,
        format!(
            "dns:\n  listen:\n    - 127.0.0.1:0\n\
             tsig_keys:\n  - name: transfer-key\n    algorithm: hmac-sha256\n    secret_file: {secret}\n\
             zones:\n  - name: example.com\n    file: {file}\n    allow_transfer: [\"127.0.0.1 key transfer-key\"]\n",
            secret = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("config/transfer.key")
                .display(),
            file = zone_file.display()
        ),
    )
    .expect("write the config");
    Geofailover::start(&config)
}

#[test]
fn a_client_signing_with_a_fudge_of_600_gets_verified_answers_with_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path());
    let text = dnspython(&server, 600, "SOA", "example.com.");
    assert!(
        text.contains("rcode=NOERROR") && text.contains("answers=1") && text.contains("fudge=600"),
        "{text}"
    );
    // A transfer too: every message signed, each verified by dnspython.
    let text = dnspython(&server, 600, "axfr", "example.com.");
    let names: usize = text
        .trim()
        .strip_prefix("names=")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!(names > 10, "{text}");
    // The usual fudge still works.
    let text = dnspython(&server, 300, "SOA", "example.com.");
    assert!(
        text.contains("rcode=NOERROR") && text.contains("fudge=300"),
        "{text}"
    );
}

#[test]
fn a_signed_udp_answer_near_512_bytes_fits_with_its_tsig_and_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path());
    // Unsigned, the answer fits in 512 bytes, whole.
    let out = Command::new("dig")
        .args(["-p", &server.addr.port().to_string(), "@127.0.0.1"])
        .args(["+noedns", "+ignore", "near.example.com", "TXT"])
        .output()
        .expect("dig");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ANSWER: 4") && text.contains("MSG SIZE  rcvd: 502"),
        "{text}"
    );
    // Signed, the same answer and its TSIG do not fit: a signed TC answer
    // within 512 bytes, which dnspython verifies.
    let text = dnspython(&server, 300, "TXT", "near.example.com.");
    let size: usize = text
        .split("size=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!(size <= 512, "{size} bytes: {text}");
    assert!(
        text.contains("tc=1") && text.contains("signed=1") && !text.contains("error="),
        "{text}"
    );
}
