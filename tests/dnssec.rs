//! DNSSEC in the real world: geofailover signs example.com, its DS goes
//! into a root zone of the test's own (signed with BIND's tools, served by
//! NSD), and a validating Unbound that trusts only that root must find
//! every answer secure, through a failover too; the transferred zone must
//! pass the zone verifiers of BIND, ldns and Knot, before and after a
//! failover. The harness itself is proved first on a zone BIND signed.
//! NSD, Knot and BIND, as secondaries, carry the signed zone and a
//! failover's IXFR to validating resolvers of their own; and Zonemaster
//! finds no more to say about the signed zone's DNSSEC than about the same
//! zone signed by Knot.

mod common;

use std::{
    collections::BTreeSet,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use common::{
    Geofailover, Reference, StandIn, a_records, dig, free_port, repo_zones,
    secondary::{Kind, Secondary},
    soa_serial, try_a_records,
    unbound::{
        Answer, Keys, RootZone, Unbound, axfr_to_file, ds_records, rrsig_ttl_mismatches,
        sign_with_bind, sign_with_bind_keys, verify_zone, zone_lines,
    },
    wait_until, zonemaster,
};

const PRIMARY_A: &str = "192.0.2.10";
const PRIMARY_AAAA: &str = "2001:db8:10::10";
const SECONDARY_A: &str = "198.51.100.10";
const SECONDARY_AAAA: &str = "2001:db8:20::10";

/// The DS of sub.example.com (a signed child whose server is never asked).
const SUB_DS: &str = "60485 13 2 D4B7D520E7BB5F0F67674A0CCEB1E3E0614B93C4F9E99B8383F6A1E4469DA50A";

/// A list of named checks that all run and are reported together, so a
/// failure report shows every check that failed with the evidence.
#[derive(Default)]
struct Checks {
    passed: Vec<String>,
    failed: Vec<String>,
}

impl Checks {
    fn check(&mut self, name: &str, ok: bool, evidence: impl FnOnce() -> String) {
        if ok {
            eprintln!("pass: {name}");
            self.passed.push(name.to_string());
        } else {
            eprintln!("FAIL: {name}");
            self.failed.push(format!("FAIL: {name}\n{}", evidence()));
        }
    }

    fn assert_all(&self, context: impl FnOnce() -> String) {
        assert!(
            self.failed.is_empty(),
            "{} of {} checks failed (passed: {:?}):\n{}\n{}",
            self.failed.len(),
            self.failed.len() + self.passed.len(),
            self.passed,
            self.failed.join("\n"),
            context()
        );
    }
}

/// The proof of the harness: the test zone, with www's primary addresses
/// as plain records, signed by BIND and served by NSD, passes every check
/// the tests below make of geofailover; so does its zone file with the
/// verifiers. And it is no rubber stamp: a zone with a DS in the root
/// and no signatures is bogus to Unbound, and fails the verifiers.
#[test]
fn the_harness_validates_a_zone_signed_by_bind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let zone = format!(
        "{}www             IN  A    {PRIMARY_A}\n                IN  AAAA {PRIMARY_AAAA}\n",
        signed_test_zone()
    );
    // One CSK, as geofailover signs (the root has a KSK and a ZSK).
    let signed = sign_with_bind_keys(dir.path(), "example.com", &zone, Keys::Csk);
    // example.net: keys made and a DS published, but served unsigned, as
    // a zone whose signatures were lost.
    let net = sign_with_bind(
        dir.path(),
        "example.net",
        "$TTL 300\n\
         example.net. IN SOA ns1.example.net. hostmaster.example.net. 1 7200 900 1209600 300\n\
         example.net. IN NS ns1.example.net.\n\
         ns1.example.net. IN A 127.0.0.1\n\
         www.example.net. IN A 192.0.2.20\n",
    );
    let children = Reference::nsd(
        dir.path(),
        &[
            ("example.com", &signed.file),
            ("example.net", "example.net.zone"),
        ],
    );
    let root = RootZone::start(&[
        ("example.com", signed.ds.as_slice()),
        ("example.net", net.ds.as_slice()),
    ]);
    let unbound = Unbound::start(
        &root,
        &[
            ("example.com", children.addr),
            ("example.net", children.addr),
        ],
    );

    let mut checks = ask_everything(&unbound, children.addr);
    let bogus = unbound.query("www.example.net", "A");
    checks.check(
        "a DS in the root and an unsigned zone: SERVFAIL",
        bogus.rcode == "SERVFAIL",
        || bogus.text.clone(),
    );
    checks.check(
        "the log says why",
        wait_until(Duration::from_secs(5), || {
            unbound
                .log()
                .contains("validation failure <www.example.net. A IN>")
        }),
        String::new,
    );
    let verified = verify_zone("example.com", &signed.path);
    checks.check(
        "the verifiers pass the zone BIND signed with a CSK",
        verified.is_ok(),
        || verified.clone().err().unwrap_or_default(),
    );
    let split = tempfile::tempdir().expect("tempdir");
    let split = sign_with_bind(split.path(), "example.com", &zone);
    let verified = verify_zone("example.com", &split.path);
    checks.check(
        "the verifiers pass the zone BIND signed with a KSK and a ZSK",
        verified.is_ok(),
        || verified.clone().err().unwrap_or_default(),
    );
    let mismatches = rrsig_ttl_mismatches(&signed.records());
    checks.check(
        "BIND gives each RRSIG its RRset's TTL",
        mismatches.is_empty() && signed.records().len() > 100,
        || mismatches.join("\n"),
    );
    checks.check(
        "the verifiers fail an unsigned zone",
        verify_zone("example.net", &dir.path().join("example.net.zone")).is_err(),
        String::new,
    );
    checks.assert_all(|| format!("--- root\n{}\n{}", root.text, unbound.log()));
}

/// The shipped example.com with what the tests need added: a DS at the
/// signed delegation sub, and an insecure delegation (no DS).
fn signed_test_zone() -> String {
    let zone = std::fs::read_to_string(repo_zones().join("example.com.zone")).expect("read");
    assert!(
        zone.contains("*.wild          IN  A")
            && zone.contains("IN  TXT  \"wildcard\"")
            && zone.contains("sub             IN  NS   ns.sub"),
        "zones/example.com.zone lost the wildcard or the delegation the DNSSEC tests ask for"
    );
    format!(
        "{zone}\n; added by tests/dnssec.rs\n\
         sub             IN  DS   {SUB_DS}\n\
         insecure        IN  NS   ns.insecure\n\
         ns.insecure     IN  A    192.0.2.101\n"
    )
}

/// `geofailover dnssec ds --config CONFIG --zone example.com`: its DS
/// records.
fn dnssec_ds(config: &Path) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_geofailover"))
        .args(["dnssec", "ds", "--config"])
        .arg(config)
        .args(["--zone", "example.com"])
        .env_remove("RUST_LOG")
        .output()
        .expect("run geofailover dnssec ds");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "geofailover dnssec ds exited {}:\n{stdout}{stderr}",
        out.status
    );
    eprintln!("geofailover dnssec ds:\n{stdout}");
    let ds = ds_records(&stdout);
    assert!(!ds.is_empty(), "no DS record printed:\n{stdout}{stderr}");
    for line in &ds {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert!(
            fields.first() == Some(&"example.com.") && fields.contains(&"IN"),
            "not a zone-file DS line for example.com.: {line}"
        );
    }
    ds
}

/// geofailover serving the test zone signed, with the shipped example
/// config's sites (both healthy stand-ins) and failover records of TTL
/// `ttl`; transfers allowed to 127.0.0.1.
struct Signed {
    server: Geofailover,
    primary: StandIn,
    _secondary: StandIn,
    config: PathBuf,
    ds: Vec<String>,
}

fn start_signed(dir: &Path, ttl: u32, ds_before_serve: bool) -> Signed {
    start_signed_with(dir, ttl, ds_before_serve, "{}")
}

/// `start_signed` with the zone's `dnssec:` settings `settings`.
fn start_signed_with(dir: &Path, ttl: u32, ds_before_serve: bool, settings: &str) -> Signed {
    start_signed_zone(
        dir,
        ttl,
        ds_before_serve,
        settings,
        &signed_test_zone(),
        |text| text,
    )
}

/// `start_signed_with` serving `zone_text` as example.com, with `edit`
/// applied to the config last.
fn start_signed_zone(
    dir: &Path,
    ttl: u32,
    ds_before_serve: bool,
    settings: &str,
    zone_text: &str,
    edit: impl FnOnce(String) -> String,
) -> Signed {
    let zone = dir.join("example.com.zone");
    std::fs::write(&zone, zone_text).expect("write the zone");
    let primary = StandIn::start(0);
    let secondary = StandIn::start(0);
    let config = Geofailover::example_config(dir, primary.port, secondary.port);
    let text = std::fs::read_to_string(&config).expect("read");
    let shipped = format!(
        "    file: {}\n",
        repo_zones().join("example.com.zone").display()
    );
    assert!(
        text.contains(&shipped) && text.matches("      ttl: 30\n").count() == 2,
        "config/example.yaml changed: {text}"
    );
    let text = text
        .replace(
            &shipped,
            &format!(
                "    file: {}\n    dnssec: {settings}\n    allow_transfer: [\"127.0.0.1\"]\n",
                zone.display()
            ),
        )
        .replace("      ttl: 30\n", &format!("      ttl: {ttl}\n"));
    std::fs::write(&config, edit(text)).expect("write");
    let before = ds_before_serve.then(|| dnssec_ds(&config));
    let server = Geofailover::start(&config);
    assert!(
        server.wait_for_log("site primary is now healthy", 1)
            && server.wait_for_log("site secondary is now healthy", 1),
        "{}",
        server.log()
    );
    let ds = dnssec_ds(&config);
    if let Some(before) = before {
        assert_eq!(
            before,
            ds,
            "serve did not sign with the keys `dnssec ds` made:\n{}",
            server.log()
        );
    }
    Signed {
        server,
        primary,
        _secondary: secondary,
        config,
        ds,
    }
}

/// What geofailover itself answers (DO bit, no recursion), for reports.
fn direct(server: SocketAddr, name: &str, rtype: &str) -> String {
    dig(
        server,
        &["+dnssec", "+norec", "+time=2", "+tries=1", name, rtype],
    )
}

/// The validating chain in front of `signed`: the test root with its DS,
/// Unbound sent to geofailover for example.com.
fn resolver(signed: &Signed) -> (RootZone, Unbound) {
    let root = RootZone::start(&[("example.com", signed.ds.as_slice())]);
    let unbound = Unbound::start(&root, &[("example.com", signed.server.addr)]);
    (root, unbound)
}

/// Every kind of answer the test zone gives, asked through `unbound`:
/// each must be secure (AD) with the right rcode and data; `server` is
/// the zone's server, asked directly for the report of a failure.
fn ask_everything(unbound: &Unbound, server: SocketAddr) -> Checks {
    let mut checks = Checks::default();
    let mut ask = |title: &str, name: &str, rtype: &str, ok: &dyn Fn(&Answer) -> bool| {
        let answer = unbound.query(name, rtype);
        checks.check(
            &format!(
                "{title}: {name} {rtype} -> {} ad={}",
                answer.rcode, answer.ad
            ),
            answer.rcode != "SERVFAIL" && ok(&answer),
            || {
                format!(
                    "--- unbound's answer\n{}--- geofailover's own answer\n{}",
                    answer.text,
                    direct(server, name, rtype)
                )
            },
        );
    };
    let secure_data = |rtype: &'static str, want: &'static [&'static str]| {
        move |a: &Answer| a.is_secure("NOERROR") && a.data(rtype) == want
    };
    let secure_nodata = |a: &Answer| a.is_secure("NOERROR") && a.records.is_empty();

    ask(
        "the failover record, A",
        "www.example.com",
        "A",
        &secure_data("A", &[PRIMARY_A]),
    );
    ask(
        "the failover record, AAAA",
        "www.example.com",
        "AAAA",
        &secure_data("AAAA", &[PRIMARY_AAAA]),
    );
    ask(
        "the apex",
        "example.com",
        "MX",
        &secure_data("MX", &["10 mail.example.com.", "20 mail2.example.net."]),
    );
    ask(
        "a CNAME to the failover record",
        "shop.example.com",
        "A",
        &|a: &Answer| {
            a.is_secure("NOERROR")
                && a.data("CNAME") == ["www.example.com."]
                && a.data("A") == [PRIMARY_A]
        },
    );
    ask("a missing name", "nope.example.com", "A", &|a: &Answer| {
        a.is_secure("NXDOMAIN")
    });
    ask("a missing type", "mail.example.com", "TXT", &secure_nodata);
    ask(
        "a missing type at the failover name",
        "www.example.com",
        "TXT",
        &secure_nodata,
    );
    ask(
        "an empty non-terminal",
        "b.ent.example.com",
        "TXT",
        &secure_nodata,
    );
    ask(
        "the wildcard, TXT",
        "anything.wild.example.com",
        "TXT",
        &secure_data("TXT", &["\"wildcard\""]),
    );
    ask(
        "the wildcard, A",
        "other.wild.example.com",
        "A",
        &secure_data("A", &["192.0.2.80"]),
    );
    ask(
        "the wildcard, a missing type",
        "third.wild.example.com",
        "MX",
        &secure_nodata,
    );
    ask(
        "the DS of the signed delegation",
        "sub.example.com",
        "DS",
        &|a: &Answer| {
            a.is_secure("NOERROR")
                && a.data("DS")
                    .iter()
                    .map(|d| d.replace(' ', ""))
                    .eq([SUB_DS.replace(' ', "")])
        },
    );
    ask(
        "no DS at the insecure delegation",
        "insecure.example.com",
        "DS",
        &secure_nodata,
    );
    ask("the zone's keys", "example.com", "DNSKEY", &|a: &Answer| {
        a.is_secure("NOERROR") && !a.data("DNSKEY").is_empty()
    });
    checks
}

#[test]
fn a_validating_unbound_finds_every_answer_secure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let signed = start_signed(dir.path(), 30, false);
    let (_root, unbound) = resolver(&signed);
    let checks = ask_everything(&unbound, signed.server.addr);
    checks.assert_all(|| {
        format!(
            "--- DS from geofailover\n{}\n{}\n--- geofailover's log\n{}",
            signed.ds.join("\n"),
            unbound.log(),
            signed.server.log()
        )
    });
}

/// The same with NSEC3 (RFC 5155, as RFC 9276 asks), in Ed25519: every
/// denial is a closest encloser proof, and the zone still passes the
/// verifiers.
#[test]
fn a_validating_unbound_finds_every_answer_secure_with_nsec3_and_ed25519() {
    let dir = tempfile::tempdir().expect("tempdir");
    let signed = start_signed_with(dir.path(), 30, false, "{algorithm: 15, denial: nsec3}");
    assert!(
        signed.ds[0].contains(" DS ") && signed.ds[0].contains(" 15 2 "),
        "{:?}",
        signed.ds
    );
    let (_root, unbound) = resolver(&signed);
    let mut checks = ask_everything(&unbound, signed.server.addr);
    let nx = direct(signed.server.addr, "nothere.example.com", "A");
    checks.check(
        "NXDOMAIN is proven by NSEC3 (a closest encloser proof), not NSEC",
        {
            let types: Vec<&str> = nx
                .lines()
                .filter(|l| !l.starts_with(';'))
                .filter_map(|l| l.split_whitespace().nth(3))
                .collect();
            types.contains(&"NSEC3") && !types.contains(&"NSEC")
        },
        || nx.clone(),
    );
    let file = dir.path().join("nsec3.axfr");
    axfr_to_file(signed.server.addr, "example.com", &file);
    checks.check(
        "the NSEC3 zone passes dnssec-verify, ldns-verify-zone and kzonecheck",
        verify_zone("example.com", &file).is_ok(),
        || format!("{:?}", verify_zone("example.com", &file)),
    );
    checks.assert_all(|| {
        format!(
            "--- DS from geofailover\n{}\n{}\n--- geofailover's log\n{}",
            signed.ds.join("\n"),
            unbound.log(),
            signed.server.log()
        )
    });
}

#[test]
fn a_failover_under_a_validating_resolver_never_goes_bogus() {
    // The shortest TTL a failover record takes.
    const TTL: u64 = 5;
    let dir = tempfile::tempdir().expect("tempdir");
    let _memory = common::state_in_memory(dir.path());
    let signed = start_signed(dir.path(), TTL as u32, false);
    let (_root, unbound) = resolver(&signed);
    let first = unbound.query("www.example.com", "A");
    assert!(
        first.is_secure("NOERROR") && first.data("A") == [PRIMARY_A],
        "before the failover:\n{}\n{}\n{}",
        first.text,
        direct(signed.server.addr, "www.example.com", "A"),
        unbound.log()
    );

    // Asked every 100 ms from the moment the primary fails until the
    // secondary's answer has been served for two TTLs.
    let start = Instant::now();
    signed.primary.set_healthy(false);
    let mut seen: Vec<(Duration, &str, Answer)> = Vec::new();
    let mut moved: Option<Duration> = None;
    while start.elapsed() < Duration::from_secs(40) {
        let tick = Instant::now();
        for rtype in ["A", "AAAA"] {
            seen.push((
                start.elapsed(),
                rtype,
                unbound.query("www.example.com", rtype),
            ));
        }
        let a = &seen[seen.len() - 2].2;
        if moved.is_none() && a.data("A") == [SECONDARY_A] {
            moved = Some(start.elapsed());
        }
        if moved.is_some_and(|at| start.elapsed() > at + Duration::from_secs(2 * TTL)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100).saturating_sub(tick.elapsed()));
    }

    let expected = |rtype: &str| match rtype {
        "A" => [PRIMARY_A, SECONDARY_A],
        _ => [PRIMARY_AAAA, SECONDARY_AAAA],
    };
    let mut bad = Vec::new();
    let mut back = Vec::new();
    for (at, rtype, answer) in &seen {
        let data = answer.data(rtype);
        let known = data.len() == 1 && expected(rtype).contains(&data[0].as_str());
        if !answer.is_secure("NOERROR") || !known {
            bad.push(format!("at {at:?}, {rtype}:\n{}", answer.text));
        }
        if moved.is_some_and(|m| *at > m) && *rtype == "A" && data == [PRIMARY_A] {
            back.push(format!("at {at:?}: back to the primary"));
        }
    }
    let last_aaaa = seen.iter().rev().find(|(_, t, _)| *t == "AAAA");
    eprintln!(
        "{} answers over {:?}; the secondary's A first at {moved:?}; {} not secure",
        seen.len(),
        start.elapsed(),
        bad.len()
    );
    let context = || {
        format!(
            "--- geofailover now\n{}{}\n--- geofailover's log\n{}",
            direct(signed.server.addr, "www.example.com", "A"),
            unbound.log(),
            signed.server.log()
        )
    };
    assert!(
        bad.is_empty(),
        "{} of {} answers were not secure (or not a site's address):\n{}\n{}",
        bad.len(),
        seen.len(),
        bad.join("\n"),
        context()
    );
    assert!(
        moved.is_some_and(|m| m < Duration::from_secs(20)),
        "the secondary's address never came through the resolver (first at {moved:?})\n{}",
        context()
    );
    assert!(back.is_empty(), "{back:?}");
    assert!(
        last_aaaa.is_some_and(|(_, _, a)| a.data("AAAA") == [SECONDARY_AAAA]),
        "AAAA did not follow: {:?}",
        last_aaaa.map(|(_, _, a)| &a.text)
    );

    // Negative answers carry the new SOA: it is signed too.
    let mut checks = Checks::default();
    let missing = unbound.query("after-the-failover.example.com", "A");
    checks.check(
        "a missing name after the failover",
        missing.is_secure("NXDOMAIN"),
        || missing.text.clone(),
    );
    let soa = unbound.query("example.com", "SOA");
    checks.check("the new SOA", soa.is_secure("NOERROR"), || soa.text.clone());
    checks.assert_all(context);
}

/// One look through a secondary's validating resolver, and at the
/// secondary itself, during a failover.
struct Sample {
    /// When the secondary was asked, from the start of the failover.
    direct_at: Duration,
    /// www's A records the secondary answered (no DO bit), if it answered.
    direct: Option<Vec<String>>,
    /// When the resolver's answer came back.
    answer_at: Duration,
    answer: Answer,
}

/// Asks `unbound` (whose stub for example.com is `secondary`) and the
/// secondary for www.example.com A every 100 ms from `start` until the
/// resolver has answered the secondary site's address for `hold`, or
/// `deadline` passes.
fn watch(
    unbound: &Unbound,
    secondary: &Secondary,
    start: Instant,
    hold: Duration,
    deadline: Duration,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut moved: Option<Duration> = None;
    while start.elapsed() < deadline {
        let tick = Instant::now();
        let direct_at = start.elapsed();
        let direct = try_a_records(secondary.addr, "www.example.com.");
        let answer = unbound.query("www.example.com", "A");
        let answer_at = start.elapsed();
        if moved.is_none() && answer.data("A") == [SECONDARY_A] {
            moved = Some(answer_at);
        }
        samples.push(Sample {
            direct_at,
            direct,
            answer_at,
            answer,
        });
        if moved.is_some_and(|at| answer_at > at + hold) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100).saturating_sub(tick.elapsed()));
    }
    samples
}

/// Whether a secondary's log since a change (`new`) shows that it took
/// the change by IXFR, where its log can tell: Knot names the transfer
/// ("IXFR, incoming, ..., finished", and "fallback to AXFR" when it could
/// not apply one); BIND 9.18 at severity info does not name it, but counts
/// the records ("Transfer completed: 1 messages, 14 records"), which must
/// be those of the difference geofailover logged sending ("IXFR sent: the
/// difference ..., 14 records"), not the whole zone's. NSD 4.6 logs
/// "received update to serial N ... of B bytes" for either kind, so its
/// log cannot tell (None): that it took an IXFR shows only on
/// geofailover's side, which sends no whole zone after the change.
fn took_an_ixfr(kind: Kind, new: &str, geofailover_log: &str) -> Option<bool> {
    match kind {
        Kind::Nsd => None,
        Kind::Knot => Some(
            new.lines()
                .any(|l| l.contains("IXFR, incoming") && l.contains(", finished"))
                && !new.contains("AXFR, incoming")
                && !new.contains("fallback to AXFR"),
        ),
        Kind::Bind => {
            let count = |line: &str, after: &str, unit: &str| -> Option<u32> {
                line.split(after)
                    .nth(1)?
                    .split(unit)
                    .next()?
                    .trim()
                    .parse()
                    .ok()
            };
            let sent = geofailover_log
                .lines()
                .rev()
                .find(|l| l.contains("IXFR sent: the difference"))
                .and_then(|l| count(l, ", ", " records in"));
            let received: Vec<u32> = new
                .lines()
                .filter_map(|l| count(l, "messages, ", " records"))
                .collect();
            Some(sent.is_some() && received.len() == 1 && sent == Some(received[0]))
        }
    }
}

/// The standard secondaries of the README, NSD, Knot and BIND, transfer
/// the signed zone from geofailover and each sits behind a validating
/// Unbound of its own (the test root holding geofailover's DS, a stub for
/// example.com at that secondary only). Through a failover every answer
/// of every resolver is secure, and each moves to the secondary site's
/// address within the TTL after its secondary took the change, which it
/// takes by IXFR after geofailover's NOTIFY.
#[test]
fn a_failover_reaches_validating_resolvers_through_nsd_knot_and_bind_secondaries() {
    const TTL: u64 = 5;
    let dir = tempfile::tempdir().expect("tempdir");
    let _memory = common::state_in_memory(dir.path());
    let ports: Vec<u16> = Kind::ALL.iter().map(|_| free_port()).collect();
    let notify: Vec<String> = ports.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
    let signed = start_signed_zone(
        dir.path(),
        TTL as u32,
        false,
        "{}",
        &signed_test_zone(),
        |text| {
            let allow = "    allow_transfer: [\"127.0.0.1\"]\n";
            assert!(text.contains(allow), "{text}");
            text.replace(
                allow,
                &format!("{allow}    notify: [{}]\n", notify.join(", ")),
            )
        },
    );
    let server = signed.server.addr;
    let secondaries: Vec<Secondary> = Kind::ALL
        .iter()
        .zip(&ports)
        .map(|(kind, port)| Secondary::start_on(*kind, "example.com", server, false, *port))
        .collect();
    let first = soa_serial(server, "example.com.");
    for secondary in &secondaries {
        assert!(
            secondary.wait_serial(first, Duration::from_secs(30)),
            "{} did not transfer the signed zone at serial {first}:\n{}\n--- geofailover's log\n{}",
            secondary.kind.name(),
            secondary.log(),
            signed.server.log()
        );
    }
    let root = RootZone::start(&[("example.com", signed.ds.as_slice())]);
    let resolvers: Vec<Unbound> = secondaries
        .iter()
        .map(|secondary| Unbound::start(&root, &[("example.com", secondary.addr)]))
        .collect();
    for (secondary, unbound) in secondaries.iter().zip(&resolvers) {
        let answer = unbound.query("www.example.com", "A");
        assert!(
            answer.is_secure("NOERROR") && answer.data("A") == [PRIMARY_A],
            "through {} before the failover:\n{}\n--- {} itself\n{}\n{}",
            secondary.kind.name(),
            answer.text,
            secondary.kind.name(),
            direct(secondary.addr, "www.example.com", "A"),
            unbound.log()
        );
    }
    let sent = |what: &str| signed.server.log().matches(what).count();
    let whole_before = sent("AXFR sent") + sent("as AXFR");
    let ixfrs_before = sent("IXFR sent: the difference");
    let logs_before: Vec<usize> = secondaries.iter().map(|s| s.log().len()).collect();

    // The primary fails; each resolver is watched from then until it has
    // answered the secondary site for a TTL and a second more.
    let start = Instant::now();
    signed.primary.set_healthy(false);
    let hold = Duration::from_secs(TTL + 1);
    let deadline = Duration::from_secs(40);
    let (switched, watched) = std::thread::scope(|scope| {
        let watchers: Vec<_> = secondaries
            .iter()
            .zip(&resolvers)
            .map(|(secondary, unbound)| {
                scope.spawn(move || watch(unbound, secondary, start, hold, deadline))
            })
            .collect();
        let mut switched = None;
        wait_until(Duration::from_secs(20), || {
            let now = start.elapsed();
            let moved =
                try_a_records(server, "www.example.com.").is_some_and(|a| a == [SECONDARY_A]);
            if moved {
                switched = Some(now);
            }
            moved
        });
        let watched: Vec<Vec<Sample>> = watchers
            .into_iter()
            .map(|w| w.join().expect("a watcher panicked"))
            .collect();
        (switched, watched)
    });
    let context = || {
        let logs: String = secondaries
            .iter()
            .zip(&resolvers)
            .map(|(s, u)| {
                format!(
                    "--- {}'s log\n{}\n--- its resolver\n{}",
                    s.kind.name(),
                    s.log(),
                    u.log()
                )
            })
            .collect();
        format!("{logs}\n--- geofailover's log\n{}", signed.server.log())
    };
    let switched =
        switched.unwrap_or_else(|| panic!("geofailover never failed over\n{}", context()));
    let serial = soa_serial(server, "example.com.");
    assert!(
        serial != first,
        "the failover did not change the serial {first}"
    );

    let mut checks = Checks::default();
    for ((secondary, samples), before) in secondaries.iter().zip(&watched).zip(&logs_before) {
        let name = secondary.kind.name();
        let bad: Vec<String> = samples
            .iter()
            .filter(|s| {
                let data = s.answer.data("A");
                !s.answer.is_secure("NOERROR")
                    || data.len() != 1
                    || ![PRIMARY_A, SECONDARY_A].contains(&data[0].as_str())
            })
            .map(|s| format!("at {:?}:\n{}", s.answer_at, s.answer.text))
            .collect();
        checks.check(
            &format!(
                "through {name}: all {} answers NOERROR with AD and one site's address",
                samples.len()
            ),
            bad.is_empty(),
            || bad.join("\n"),
        );
        let took = samples
            .iter()
            .find(|s| s.direct.as_deref() == Some(&[SECONDARY_A.to_string()][..]))
            .map(|s| s.direct_at.saturating_sub(switched));
        let answered = samples
            .iter()
            .find(|s| s.answer.data("A") == [SECONDARY_A])
            .map(|s| s.answer_at.saturating_sub(switched));
        eprintln!(
            "{name}: geofailover switched {switched:?} after the primary failed; \
             {name} served the change {took:?} after that, its resolver answered it {answered:?} after that"
        );
        checks.check(
            &format!("{name} served the change within 5 s of geofailover ({took:?})"),
            took.is_some_and(|t| t <= Duration::from_secs(5)),
            || {
                format!(
                    "{}\n{}",
                    secondary.log(),
                    direct(secondary.addr, "www.example.com", "A")
                )
            },
        );
        checks.check(
            &format!(
                "through {name}: the secondary site's address within the TTL ({TTL} s) of the transfer, \
                 plus a second ({answered:?})"
            ),
            answered.is_some_and(|a| {
                took.is_some_and(|t| a <= t + Duration::from_secs(TTL + 1))
            }),
            || {
                samples
                    .iter()
                    .map(|s| format!("{:?}: {:?} ({:?} direct)", s.answer_at, s.answer.data("A"), s.direct))
                    .collect::<Vec<_>>()
                    .join("\n")
            },
        );
        let back: Vec<Duration> = samples
            .iter()
            .skip_while(|s| s.answer.data("A") != [SECONDARY_A])
            .filter(|s| s.answer.data("A") == [PRIMARY_A])
            .map(|s| s.answer_at)
            .collect();
        checks.check(
            &format!("through {name}: never back to the primary"),
            back.is_empty(),
            || format!("the primary again at {back:?}"),
        );
        checks.check(
            &format!("{name} serves geofailover's serial {serial}"),
            secondary.wait_serial(serial, Duration::from_secs(10)),
            || format!("it serves {:?}:\n{}", secondary.serial(), secondary.log()),
        );
        let log = secondary.log();
        let new = log.get(*before..).unwrap_or_default();
        if let Some(by_ixfr) = took_an_ixfr(secondary.kind, new, &signed.server.log()) {
            checks.check(
                &format!("{name}'s log shows the change came by IXFR"),
                by_ixfr,
                || format!("--- {name}'s log since the failover\n{new}"),
            );
        }
    }
    checks.check(
        "geofailover sent an IXFR to each of the three and no whole zone",
        wait_until(Duration::from_secs(5), || {
            sent("IXFR sent: the difference") >= ixfrs_before + 3
        }) && sent("AXFR sent") + sent("as AXFR") == whole_before,
        || signed.server.log(),
    );
    checks.assert_all(context);
}

/// Applies a `dig IXFR` answer (`+noall +answer` lines) to `zone`; a reply
/// that is a whole zone (AXFR style) replaces it.
fn apply_ixfr(zone: &BTreeSet<String>, ixfr: &[String]) -> BTreeSet<String> {
    let is_soa = |line: &String| line.split_whitespace().nth(3) == Some("SOA");
    assert!(
        !ixfr.is_empty() && is_soa(&ixfr[0]),
        "not a transfer: {ixfr:?}"
    );
    if ixfr.len() < 2 || !is_soa(&ixfr[1]) {
        return ixfr.iter().cloned().collect();
    }
    // After the first SOA: the old SOA opens a deletion, the new one an
    // addition, in turn; the last SOA closes the last addition.
    let mut zone = zone.clone();
    let mut adding = true;
    for line in &ixfr[1..] {
        if is_soa(line) {
            adding = !adding;
        }
        if adding {
            zone.insert(line.clone());
        } else {
            zone.remove(line);
        }
    }
    zone.insert(ixfr[ixfr.len() - 1].clone());
    zone
}

/// Writes `records` as a zone file, SOA first.
fn write_zone(file: &Path, records: &BTreeSet<String>) {
    let (soa, rest): (Vec<&String>, Vec<&String>) = records
        .iter()
        .partition(|l| l.split_whitespace().nth(3) == Some("SOA"));
    let text: String = soa
        .iter()
        .chain(rest.iter())
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(file, text).expect("write the zone");
}

fn serial(records: &[String]) -> u32 {
    records[0]
        .split_whitespace()
        .nth(6)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no serial in {:?}", records[0]))
}

/// geofailover's DS records match those BIND's `dnssec-dsfromkey` makes
/// from the key files in the keys folder.
fn ds_matches_the_key_files(keys: &Path, ds: &[String]) -> Result<(), String> {
    let normal = |line: &str| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let at = fields.iter().position(|f| *f == "DS").unwrap_or(0);
        fields[at + 1..].concat().to_uppercase()
    };
    let mut from_keys = BTreeSet::new();
    let entries = std::fs::read_dir(keys).map_err(|e| format!("{}: {e}", keys.display()))?;
    let mut names = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        names.push(name.clone());
        if name.starts_with("Kexample.com.+") && name.ends_with(".key") {
            let out = Command::new("dnssec-dsfromkey")
                .args(["-2"])
                .arg(&path)
                .output()
                .map_err(|e| e.to_string())?;
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                from_keys.insert(normal(line));
            }
        }
    }
    let printed: BTreeSet<String> = ds.iter().map(|l| normal(l)).collect();
    if !printed.is_empty() && printed.is_subset(&from_keys) {
        Ok(())
    } else {
        Err(format!(
            "printed {printed:?}; from the key files {from_keys:?}; files {names:?}"
        ))
    }
}

#[test]
fn the_signed_zone_passes_the_zone_verifiers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let signed = start_signed(dir.path(), 30, true);
    let server = signed.server.addr;
    let mut checks = Checks::default();

    let keys = dir.path().join("state/keys");
    let matched = ds_matches_the_key_files(&keys, &signed.ds);
    checks.check(
        "the DS printed is BIND's DS of a key file in state/keys",
        matched.is_ok(),
        || matched.clone().err().unwrap_or_default(),
    );

    let before_file = dir.path().join("before.zone");
    let before = axfr_to_file(server, "example.com", &before_file);
    let has = |records: &[String], rtype: &str| {
        records
            .iter()
            .any(|l| l.split_whitespace().nth(3) == Some(rtype))
    };
    checks.check(
        "the AXFR holds DNSKEY, RRSIG and NSEC records",
        has(&before, "DNSKEY") && has(&before, "RRSIG") && has(&before, "NSEC"),
        || before.join("\n"),
    );
    let verified = verify_zone("example.com", &before_file);
    checks.check(
        "the AXFR passes dnssec-verify, ldns-verify-zone and kzonecheck",
        verified.is_ok(),
        || verified.clone().err().unwrap_or_default(),
    );
    let mismatches = rrsig_ttl_mismatches(&before);
    checks.check(
        "each RRSIG has the TTL of the RRset it covers (RFC 4034 3)",
        mismatches.is_empty(),
        || mismatches.join("\n"),
    );

    // A failover changes www's RRsets and the SOA: a secondary gets them
    // by IXFR, signed.
    let old_serial = serial(&before);
    signed.primary.set_healthy(false);
    let moved = wait_until(Duration::from_secs(20), || {
        a_records(server, "www.example.com.") == [SECONDARY_A]
    });
    assert!(moved, "no failover:\n{}", signed.server.log());
    let new_serial = soa_serial(server, "example.com.");
    assert!(
        new_serial > old_serial,
        "serial {old_serial} -> {new_serial}"
    );

    let after_file = dir.path().join("after.zone");
    let after = axfr_to_file(server, "example.com", &after_file);
    checks.check(
        "after the failover the AXFR has www at the secondary",
        after
            .iter()
            .any(|l| l.starts_with("www.example.com.") && l.ends_with(&format!("A {SECONDARY_A}"))),
        || after.join("\n"),
    );
    let verified = verify_zone("example.com", &after_file);
    checks.check(
        "after the failover the AXFR passes the verifiers",
        verified.is_ok(),
        || verified.clone().err().unwrap_or_default(),
    );

    let ixfr_text = dig(
        server,
        &[
            "+noall",
            "+answer",
            "+time=5",
            "+tries=1",
            "example.com",
            &format!("IXFR={old_serial}"),
        ],
    );
    let ixfr = zone_lines(&ixfr_text);
    let covers = |rtype: &str, owner: &str| {
        ixfr.iter().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 4 && f[0] == owner && f[3] == "RRSIG" && f[4] == rtype
        })
    };
    checks.check(
        "the IXFR carries the new signatures of www A, www AAAA and the SOA",
        covers("A", "www.example.com.")
            && covers("AAAA", "www.example.com.")
            && covers("SOA", "example.com."),
        || ixfr_text.clone(),
    );
    if !ixfr.is_empty() {
        let old: BTreeSet<String> = before.iter().cloned().collect();
        let applied = apply_ixfr(&old, &ixfr);
        let applied_file = dir.path().join("ixfr-applied.zone");
        write_zone(&applied_file, &applied);
        let whole: BTreeSet<String> = after.iter().cloned().collect();
        checks.check(
            "the zone before plus the IXFR is the zone after",
            applied == whole,
            || {
                format!(
                    "only in the applied IXFR: {:?}\nonly in the AXFR: {:?}\n--- IXFR\n{ixfr_text}",
                    applied.difference(&whole).collect::<Vec<_>>(),
                    whole.difference(&applied).collect::<Vec<_>>()
                )
            },
        );
        let verified = verify_zone("example.com", &applied_file);
        checks.check(
            "the zone before plus the IXFR passes the verifiers",
            verified.is_ok(),
            || verified.clone().err().unwrap_or_default(),
        );
    } else {
        checks.check("an IXFR answer", false, || ixfr_text.clone());
    }
    checks.assert_all(|| {
        format!(
            "config {}\n--- geofailover's log\n{}",
            signed.config.display(),
            signed.server.log()
        )
    });
}

/// `geofailover` run with `args`, its stdout; it must succeed.
fn geofailover(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_geofailover"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run geofailover");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "geofailover {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The DNSKEY tags geofailover serves for example.com.
fn dnskey_tags(server: SocketAddr) -> BTreeSet<String> {
    let out = dig(server, &["+norec", "+dnssec", "example.com", "DNSKEY"]);
    out.lines()
        .filter(|l| l.contains("\tRRSIG\tDNSKEY "))
        .filter_map(|l| l.split_whitespace().nth(10).map(str::to_string))
        .collect()
}

/// A CSK rollover (double KSK) with the parent watched: the successor is
/// published and signs beside the old key, a validating Unbound finds
/// every answer secure through it; while the parent serves only the old
/// DS the old key stays; once every parent nameserver serves the new DS,
/// the old key is given its end, and with the old DS gone from the parent
/// the zone validates through the new key alone.
#[test]
fn a_csk_rollover_waits_for_the_parent_s_ds_and_stays_secure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let signed = start_signed(dir.path(), 30, false);
    let old_root = RootZone::start(&[("example.com", signed.ds.as_slice())]);
    let text = std::fs::read_to_string(&signed.config).expect("config");
    let watched = |parent: SocketAddr| {
        text.replace(
            "    dnssec: {}\n",
            &format!("    dnssec: {{parent_nameservers: [\"{parent}\"]}}\n"),
        )
    };
    std::fs::write(&signed.config, watched(old_root.addr())).expect("write");
    let config = signed.config.display().to_string();
    let url = signed.server.url();
    let token_file = dir.path().join("state/api.token").display().to_string();
    let reload = || geofailover(&["reload", "--url", &url, "--token-file", &token_file]);
    reload();
    let old_tags = dnskey_tags(signed.server.addr);
    assert_eq!(old_tags.len(), 1, "{old_tags:?}");

    let begun = geofailover(&[
        "dnssec",
        "rollover",
        "--config",
        &config,
        "--zone",
        "example.com",
        "--key",
        "csk",
    ]);
    let new_ds: Vec<String> = ds_records(&begun);
    assert_eq!(new_ds.len(), 1, "{begun}");
    // The successor would sign after the DNSKEY TTL and an hour: made to
    // sign now, as an operator would with BIND's tool.
    let keys = dir.path().join("state/keys");
    let successor = std::fs::read_dir(&keys)
        .expect("keys")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "key"))
        .find(|p| {
            let tag = new_ds[0].split_whitespace().nth(4).unwrap_or_default();
            p.display().to_string().contains(&format!("+{tag:0>5}."))
        })
        .expect("the successor's file");
    let stem = successor.with_extension("");
    let out = Command::new("dnssec-settime")
        .args(["-A", "now"])
        .arg(&stem)
        .output()
        .expect("dnssec-settime");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    reload();
    let both = dnskey_tags(signed.server.addr);
    assert_eq!(both.len(), 2, "both keys sign the DNSKEY set: {both:?}");
    let cds = dig(
        signed.server.addr,
        &["+norec", "+short", "example.com", "CDS"],
    );
    assert_eq!(cds.lines().count(), 2, "a CDS for each key: {cds}");

    // The parent still serves only the old DS: nothing retires.
    let unbound = Unbound::start(&old_root, &[("example.com", signed.server.addr)]);
    let mut checks = ask_everything(&unbound, signed.server.addr);
    reload();
    let status = geofailover(&["dnssec", "status", "--config", &config]);
    checks.check(
        "no key retires while the parent serves only the old DS",
        !status.contains("inactive"),
        || status.clone(),
    );

    // Every parent serves both DS: the old key gets its end (logged), and
    // still signs until then.
    let both_ds: Vec<String> = signed.ds.iter().chain(&new_ds).cloned().collect();
    let new_root = RootZone::start(&[("example.com", both_ds.as_slice())]);
    std::fs::write(&signed.config, watched(new_root.addr())).expect("write");
    reload();
    reload();
    let retired = signed.server.wait_for_log("stops signing at", 1);
    let status = geofailover(&["dnssec", "status", "--config", &config]);
    checks.check(
        "the old key is given its Inactive and Delete times once the parent serves the new DS",
        retired && status.contains("inactive") && status.contains("deleted"),
        || format!("{status}\n{}", signed.server.log()),
    );
    // The old DS gone from the parent: the new key alone validates.
    let newest = RootZone::start(&[("example.com", new_ds.as_slice())]);
    let unbound = Unbound::start(&newest, &[("example.com", signed.server.addr)]);
    let through_new = ask_everything(&unbound, signed.server.addr);
    checks.check(
        "with only the new DS at the parent every answer is secure",
        through_new.failed.is_empty(),
        || through_new.failed.join("\n"),
    );
    checks.assert_all(|| signed.server.log());
}

/// Where the Zonemaster test's servers listen, each on port 53 (the only
/// port Zonemaster asks): the zone's two nameservers and the root.
const ZONEMASTER_NS: [Ipv4Addr; 2] = [Ipv4Addr::new(127, 53, 53, 1), Ipv4Addr::new(127, 53, 53, 2)];
const ZONEMASTER_ROOT: Ipv4Addr = Ipv4Addr::new(127, 53, 53, 9);

/// The test zone with ns1 and ns2 at the Zonemaster test's addresses (and
/// no IPv6 address), so Zonemaster asks nothing but the servers under
/// test.
fn zonemaster_zone() -> String {
    let zone = signed_test_zone();
    let [ns1, ns2] = ZONEMASTER_NS;
    let replaced = zone
        .replace(
            "ns1             IN  A    192.0.2.53\n                IN  AAAA 2001:db8::53\n",
            &format!("ns1             IN  A    {ns1}\n"),
        )
        .replace(
            "ns2         600 IN  A    198.51.100.53\n",
            &format!("ns2         600 IN  A    {ns2}\n"),
        );
    assert!(
        replaced.contains(&format!("IN  A    {ns1}\n"))
            && replaced.contains(&format!("IN  A    {ns2}\n"))
            && !replaced.contains("2001:db8::53"),
        "zones/example.com.zone's ns1 and ns2 changed:\n{zone}"
    );
    replaced
}

/// Zonemaster's DNSSEC module on example.com, delegated with `ds` by a
/// root of the test's own to ns1 and ns2 at `ZONEMASTER_NS`.
fn zonemaster_with(ds: &[String]) -> zonemaster::Report {
    let [ns1, ns2] = ZONEMASTER_NS;
    let root = zonemaster::Root::start(
        ZONEMASTER_ROOT,
        "example.com",
        &[("ns1.example.com", ns1), ("ns2.example.com", ns2)],
        ds,
    );
    let report = zonemaster::run("example.com", &root.hints);
    eprintln!(
        "{}\n  with the root's DS {ds:?}: at NOTICE or above {:?}; at INFO {:?}",
        report.command,
        report.tags_at_least("NOTICE"),
        report.tags_at_least("INFO")
    );
    // Zonemaster asks the parent, the servers it names and the names in
    // the zone; all of them must be the test's own.
    let queried = report.queried();
    let ours: BTreeSet<String> = ZONEMASTER_NS
        .iter()
        .chain([&ZONEMASTER_ROOT])
        .map(ToString::to_string)
        .collect();
    assert!(
        queried.is_subset(&ours) && queried.len() == 3,
        "Zonemaster asked {queried:?}, not the test's servers {ours:?}:\n{}\n--- root\n{}",
        report.output,
        root.text
    );
    report
}

/// The issue's bar: "Zonemaster finds nothing about DNSSEC that it does
/// not find for the same zone signed by Knot". The same zone file,
/// served signed by geofailover (with www's failover record) and by Knot
/// signing it itself (one ECDSA P-256 CSK, NSEC, www's primary addresses
/// written in), each on port 53 of the zone's two nameserver addresses and
/// delegated with its DS by a root of the test's own on port 53:
/// Zonemaster's DNSSEC module (`zonemaster-cli --hints ROOT --test DNSSEC`,
/// a delegated test, so the DS comes from the parent) reports no tag at
/// NOTICE or above for geofailover that it does not report for Knot. The
/// harness proves itself first: with a DS matching no key of
/// geofailover's, Zonemaster reports more.
#[test]
fn zonemaster_finds_nothing_about_dnssec_that_it_does_not_find_for_knot() {
    let uid = Command::new("id").arg("-u").output().expect("id -u");
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "Zonemaster asks port 53 only: run the tests as root"
    );
    let zone = zonemaster_zone();
    let dir = tempfile::tempdir().expect("tempdir");
    let listen: String = ZONEMASTER_NS
        .iter()
        .map(|ip| format!("    - {ip}:53\n"))
        .collect();
    let signed = start_signed_zone(dir.path(), 30, false, "{}", &zone, |text| {
        let ephemeral = "  listen:\n    - 127.0.0.1:0\n";
        assert!(text.contains(ephemeral), "{text}");
        text.replacen(ephemeral, &format!("  listen:\n{listen}"), 1)
    });
    assert_eq!(
        signed.server.addr,
        (ZONEMASTER_NS[0], 53).into(),
        "{}",
        signed.server.log()
    );
    let ours = zonemaster_with(&signed.ds);

    // A DS whose digest matches no key: Zonemaster must say so.
    let wrong: Vec<String> = signed
        .ds
        .iter()
        .map(|line| {
            let last = line.chars().last().expect("a DS line");
            let other = if last == '0' { '1' } else { '0' };
            format!("{}{other}", &line[..line.len() - 1])
        })
        .collect();
    let broken = zonemaster_with(&wrong);
    drop(signed);

    let knot_dir = tempfile::tempdir().expect("tempdir");
    let file = knot_dir.path().join("example.com.zone");
    std::fs::write(
        &file,
        format!(
            "{zone}www             IN  A    {PRIMARY_A}\n                IN  AAAA {PRIMARY_AAAA}\n"
        ),
    )
    .expect("write the zone");
    let knot = zonemaster::KnotSigner::start("example.com", &file, &ZONEMASTER_NS);
    let theirs = zonemaster_with(&knot.ds());

    let mut checks = Checks::default();
    let cases = |report: &zonemaster::Report| report.test_cases();
    checks.check(
        "Zonemaster ran the same DNSSEC test cases on both, dnssec01 to dnssec18 among them",
        cases(&ours) == cases(&theirs)
            && ["dnssec01", "dnssec02", "dnssec04", "dnssec10", "dnssec18"]
                .iter()
                .all(|c| cases(&ours).contains(*c)),
        || {
            format!(
                "geofailover: {:?}\nknot: {:?}",
                cases(&ours),
                cases(&theirs)
            )
        },
    );
    let (mine, knots) = (ours.tags_at_least("NOTICE"), theirs.tags_at_least("NOTICE"));
    checks.check(
        &format!("geofailover's tags at NOTICE or above {mine:?} are among Knot's {knots:?}"),
        mine.is_subset(&knots),
        || {
            format!(
                "--- geofailover\n{}\n--- knot\n{}",
                ours.lines_at_least("NOTICE").join("\n"),
                theirs.lines_at_least("NOTICE").join("\n")
            )
        },
    );
    let more: BTreeSet<String> = broken
        .tags_at_least("ERROR")
        .difference(&mine)
        .cloned()
        .collect();
    checks.check(
        &format!("with a DS matching no key Zonemaster reports an error more: {more:?}"),
        !more.is_empty(),
        || broken.output.clone(),
    );
    checks.assert_all(|| {
        format!(
            "--- zonemaster on geofailover\n{}\n--- zonemaster on knot\n{}\n{}",
            ours.output,
            theirs.output,
            knot.log()
        )
    });
}
