//! geofailover as the primary of standard secondaries: real NSD, Knot and
//! BIND, each with and without a TSIG key, transfer the zone, answer as
//! geofailover does, follow a failover within a second by IXFR after a
//! NOTIFY, and catch up after being down; `dig`/`kdig` transfers with a
//! wrong key or from an unlisted address get nothing.

mod common;

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use common::{
    a_records,
    corpus::{Case, ask, corpus, normal},
    dig, free_port, query_message,
    secondary::{KEY_NAME, Kind, Secondary, key_secret},
    soa_serial, start_example, status_json, udp, wait_until,
};
use hickory_proto::{
    op::{Message, ResponseCode},
    rr::{DNSClass, Name, RecordType},
};

const PRIMARY_WWW: &str = "192.0.2.10";
const SECONDARY_WWW: &str = "198.51.100.10";

/// The example config with example.com transferable from 127.0.0.1 (under
/// the key when `keyed`) and the secondary at `port` notified.
fn with_transfers(text: String, port: u16, keyed: bool) -> String {
    let key_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/transfer.key");
    let key = if keyed {
        format!(" key {KEY_NAME}")
    } else {
        String::new()
    };
    let text = text.replace(
        "zones:\n  - name: example.com\n    file: ",
        &format!(
            "tsig_keys:\n  - name: {KEY_NAME}\n    algorithm: hmac-sha256\n    secret_file: {}\n\
             zones:\n  - name: example.com\n    allow_transfer: [\"127.0.0.1{key}\"]\n    notify: [\"127.0.0.1:{port}{key}\"]\n    file: ",
            key_file.display()
        ),
    );
    assert!(text.contains("allow_transfer"), "{text}");
    text
}

/// Whether geofailover answers the secondary site within 20 s.
fn answers_the_secondary(server: &common::Geofailover) -> bool {
    wait_until(Duration::from_secs(20), || {
        a_records(server.addr, "www.example.com.") == [SECONDARY_WWW]
    })
}

/// The rcode and the answer section, as text, for one question.
fn answer(addr: SocketAddr, name: &Name, rtype: RecordType) -> (ResponseCode, BTreeSet<String>) {
    let reply = udp(addr, &query_message(name, rtype, true)).expect("an answer");
    (
        reply.metadata.response_code,
        reply.answers.iter().map(ToString::to_string).collect(),
    )
}

/// Every name and type of the zone, as geofailover's AXFR lists them.
fn zone_questions(addr: SocketAddr) -> BTreeSet<(String, String)> {
    let out = Command::new("dig")
        .args([
            "+noall",
            "+answer",
            "-p",
            &addr.port().to_string(),
            "@127.0.0.1",
            "example.com",
            "axfr",
            "-y",
            &format!("hmac-sha256:{KEY_NAME}:{}", key_secret()),
        ])
        .output()
        .expect("dig");
    let text = String::from_utf8_lossy(&out.stdout);
    let questions: BTreeSet<(String, String)> = text
        .lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            (fields.len() > 4 && fields[3] != "TSIG")
                .then(|| (fields[0].to_string(), fields[3].to_string()))
        })
        .collect();
    assert!(questions.len() > 10, "the AXFR listed too little:\n{text}");
    questions
}

/// The secondary answers as geofailover does: the compatibility corpus
/// (its names in example.com) in rcode, flags and answer, the way NSD is
/// compared in tests/compat.rs, and every name and type of the zone as
/// geofailover's AXFR lists them (the failover records too).
fn assert_same_answers(ours: SocketAddr, secondary: &Secondary) {
    let zone = Name::from_ascii("example.com.").expect("zone");
    let mut cases: Vec<Case> = corpus()
        .into_iter()
        .filter(|c| zone.zone_of(&c.name))
        .collect();
    for (name, rtype) in zone_questions(ours) {
        cases.push(Case {
            name: Name::from_ascii(&name).expect("name"),
            rtype: rtype.parse().expect("type"),
            edns: true,
            tcp: false,
        });
    }
    assert!(cases.len() > 300, "{} cases", cases.len());
    let mut differences = Vec::new();
    for case in &cases {
        let mine = normal(&ask(ours, case), case);
        let theirs = normal(&ask(secondary.addr, case), case);
        // BIND writes answer owners in the zone's case, not the
        // question's; names are case-insensitive (RFC 4343), so either is
        // right.
        let same = (mine.qname_case_kept == theirs.qname_case_kept
            || secondary.kind == Kind::Bind)
            && mine.rcode == theirs.rcode
            && mine.aa == theirs.aa
            && mine.tc == theirs.tc
            // A truncated answer's records are the server's choice.
            && (mine.tc || mine.answer == theirs.answer);
        // RFC 8482: ANY is answered with any one RRset.
        if !same && case.rtype != RecordType::ANY {
            differences.push(format!(
                "{case}\n  ours: {mine:?}\n  {}: {theirs:?}",
                secondary.kind.name()
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {} queries answered differently by {}:\n{}",
        differences.len(),
        cases.len(),
        secondary.kind.name(),
        differences.join("\n")
    );
}

fn follows_a_failover(kind: Kind, keyed: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let (server, primary, _secondary_site, _config) =
        start_example(dir.path(), None, |text| with_transfers(text, port, keyed));
    let secondary = Secondary::start_on(kind, "example.com", server.addr, keyed, port);
    let serial = soa_serial(server.addr, "example.com.");
    assert!(
        secondary.wait_serial(serial, Duration::from_secs(30)),
        "{} did not transfer serial {serial}: {}\ngeofailover: {}",
        kind.name(),
        secondary.log(),
        server.log()
    );
    assert_same_answers(server.addr, &secondary);
    assert_eq!(a_records(secondary.addr, "www.example.com."), [PRIMARY_WWW]);
    let http = server.http.expect("http");
    assert!(
        wait_until(Duration::from_secs(10), || {
            let status = status_json(http);
            let s = &status["dns"]["secondaries"][0];
            s["caught_up"] == true && s["notified_serial"] == serial
        }),
        "{}",
        status_json(http)["dns"]
    );

    // A failover: the secondary answers the secondary site within a
    // second of geofailover itself, by IXFR after a NOTIFY.
    let ixfrs = server.log().matches("IXFR sent: the difference").count();
    primary.set_healthy(false);
    assert!(answers_the_secondary(&server), "{}", server.log());
    let moved = Instant::now();
    assert!(
        wait_until(Duration::from_secs(5), || a_records(
            secondary.addr,
            "www.example.com."
        ) == [SECONDARY_WWW]),
        "{} still answers the primary: {}",
        kind.name(),
        secondary.log()
    );
    let took = moved.elapsed();
    assert!(
        took <= Duration::from_secs(1),
        "{} followed in {took:?}",
        kind.name()
    );
    assert!(
        wait_until(Duration::from_secs(5), || server
            .log()
            .matches("IXFR sent: the difference")
            .count()
            > ixfrs),
        "{} took no IXFR: {}\n{}",
        kind.name(),
        secondary.log(),
        server.log()
    );
    assert_same_answers(server.addr, &secondary);
    let serial = soa_serial(server.addr, "example.com.");
    let metrics = common::http("GET", http, "/metrics", None, "").1;
    assert!(
        wait_until(Duration::from_secs(10), || {
            let s = &status_json(http)["dns"]["secondaries"][0];
            s["caught_up"] == true && s["answered_serial"] == serial
        }),
        "{}",
        status_json(http)["dns"]
    );
    assert!(
        metrics.contains("geofailover_secondary_notified_serial{zone=\"example.com.\""),
        "{metrics}"
    );
    drop(primary);
}

#[test]
fn nsd_follows_a_failover_with_a_key() {
    follows_a_failover(Kind::Nsd, true);
}

#[test]
fn nsd_follows_a_failover_without_a_key() {
    follows_a_failover(Kind::Nsd, false);
}

#[test]
fn knot_follows_a_failover_with_a_key() {
    follows_a_failover(Kind::Knot, true);
}

#[test]
fn knot_follows_a_failover_without_a_key() {
    follows_a_failover(Kind::Knot, false);
}

#[test]
fn bind_follows_a_failover_with_a_key() {
    follows_a_failover(Kind::Bind, true);
}

#[test]
fn bind_follows_a_failover_without_a_key() {
    follows_a_failover(Kind::Bind, false);
}

/// kdig's output (stdout and stderr) against geofailover, and whether it
/// exited 0.
fn kdig(addr: SocketAddr, args: &[&str]) -> (bool, String) {
    let out = Command::new("kdig")
        .args(["-p", &addr.port().to_string(), "@127.0.0.1"])
        .args(args)
        .output()
        .expect("kdig");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The records of a transfer's answer, by dig +noall +answer.
fn records(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty() && !l.contains("\tTSIG\t"))
        .map(ToString::to_string)
        .collect()
}

#[test]
fn a_ten_thousand_record_zone_transfers_in_many_messages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut zone = std::fs::read_to_string(common::repo_zones().join("example.com.zone"))
        .expect("read the example zone");
    for i in 0..10_000 {
        zone.push_str(&format!(
            "h{i} 300 IN A 10.{}.{}.{}\n",
            i >> 16,
            (i >> 8) & 255,
            i & 255
        ));
    }
    let zone_file = dir.path().join("example.com.zone");
    std::fs::write(&zone_file, zone).expect("write the zone");
    let port = free_port();
    let key = format!(" key {KEY_NAME}");
    let config = dir.path().join("geofailover.yaml");
    std::fs::write(
        &config,
        format!(
            "dns:\n  listen: [127.0.0.1:0]\nstate_dir: {state}\n\
             tsig_keys:\n  - name: {KEY_NAME}\n    algorithm: hmac-sha256\n    secret_file: {secret}\n\
             zones:\n  - name: example.com\n    file: {file}\n    allow_transfer: [\"127.0.0.1{key}\"]\n    notify: [\"127.0.0.1:{port}{key}\"]\n",
            state = dir.path().join("state").display(),
            secret = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("config/transfer.key")
                .display(),
            file = zone_file.display()
        ),
    )
    .expect("write the config");
    let server = common::Geofailover::start(&config);
    let text = dig(
        server.addr,
        &[
            "example.com",
            "axfr",
            "-y",
            &format!("hmac-sha256:{KEY_NAME}:{}", key_secret()),
        ],
    );
    let got = records(&text);
    assert!(got.len() > 10_000, "{} records:\n{text}", got.len());
    let messages: usize = text
        .lines()
        .find_map(|l| l.split("messages ").nth(1))
        .and_then(|m| m.split(',').next())
        .and_then(|m| m.trim().parse().ok())
        .unwrap_or_else(|| panic!("no XFR size line:\n{text}"));
    assert!(messages > 4, "one transfer in {messages} messages");
    assert!(!text.contains("Couldn't verify"), "{text}");
    let secondary = Secondary::start_on(Kind::Knot, "example.com", server.addr, true, port);
    let serial = soa_serial(server.addr, "example.com.");
    assert!(
        secondary.wait_serial(serial, Duration::from_secs(30)),
        "{}",
        secondary.log()
    );
    for name in [
        "h0.example.com.",
        "h4321.example.com.",
        "h9999.example.com.",
    ] {
        let name = Name::from_ascii(name).expect("name");
        assert_eq!(
            answer(secondary.addr, &name, RecordType::A),
            answer(server.addr, &name, RecordType::A)
        );
    }
    assert_eq!(
        answer(
            secondary.addr,
            &Name::from_ascii("h4321.example.com.").expect("name"),
            RecordType::A
        )
        .1,
        BTreeSet::from(["h4321.example.com. 300 IN A 10.0.16.225".to_string()])
    );
}

#[test]
fn a_wrong_key_and_an_unlisted_address_get_nothing_of_the_zone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, _primary, _secondary, _config) = start_example(dir.path(), None, |text| {
        with_transfers(text, free_port(), true)
    });
    let good = format!("hmac-sha256:{KEY_NAME}:{}", key_secret());
    assert!(
        records(&dig(
            server.addr,
            &["+noall", "+answer", "example.com", "axfr", "-y", &good]
        ))
        .len()
            > 10
    );

    // A wrong secret: NOTAUTH with BADSIG, no records.
    let wrong = format!("hmac-sha256:{KEY_NAME}:AAAAZWugaz9Ya621xr8mqbWOYHw17OWlgKfJ6f5M9KE=");
    let text = dig(server.addr, &["example.com", "axfr", "-y", &wrong]);
    assert!(
        text.contains("BADSIG") && records(&text).is_empty(),
        "{text}"
    );
    // An unknown key: BADKEY.
    let unknown = format!("hmac-sha256:other-key:{}", key_secret());
    let text = dig(server.addr, &["example.com", "axfr", "-y", &unknown]);
    assert!(
        text.contains("BADKEY") && records(&text).is_empty(),
        "{text}"
    );
    // No key where one is required, and the right key from an unlisted
    // address: REFUSED, no records.
    let text = dig(
        server.addr,
        &["+noall", "+answer", "+comments", "example.com", "axfr"],
    );
    assert!(
        records(&text).is_empty() && text.contains("Transfer failed"),
        "{text}"
    );
    for _ in 0..3 {
        let text = dig(
            server.addr,
            &[
                "-b",
                "127.0.0.2",
                "+noall",
                "+answer",
                "example.com",
                "axfr",
                "-y",
                &good,
            ],
        );
        assert!(
            records(&text).is_empty() && text.contains("Transfer failed"),
            "{text}"
        );
        let text = dig(
            server.addr,
            &[
                "-b",
                "127.0.0.2",
                "example.com",
                "ixfr=1",
                "+notcp",
                "-y",
                &good,
            ],
        );
        assert!(records(&text).is_empty(), "{text}");
    }
    // kdig transfers with the key, its signatures verified...
    let (ok, text) = kdig(server.addr, &["example.com", "axfr", "-y", &good]);
    assert!(
        ok && text.contains("www.example.com.") && !text.contains(";; ERROR"),
        "{text}"
    );
    // ...and, from an unlisted address, sees the same refusal as dig.
    let (_, text) = kdig(
        server.addr,
        &["-b", "127.0.0.2", "example.com", "axfr", "-y", &good],
    );
    assert!(
        text.contains("REFUSED") && !text.contains("\tSOA\t"),
        "{text}"
    );
    // Told once per source per minute, not per packet.
    let log = server.log();
    assert_eq!(
        log.matches("refused: a transfer of example.com. with key transfer-key., which is not allowed from 127.0.0.2")
            .count(),
        1,
        "{log}"
    );
    assert!(!log.contains(&key_secret()));
}

#[test]
fn ixfr_answers_the_difference_and_a_secondary_that_was_down_catches_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let (server, primary, _secondary_site, _config) =
        start_example(dir.path(), None, |text| with_transfers(text, port, true));
    let key = format!("hmac-sha256:{KEY_NAME}:{}", key_secret());
    let mut secondary = Secondary::start_on(Kind::Nsd, "example.com", server.addr, true, port);
    let before = soa_serial(server.addr, "example.com.");
    assert!(
        secondary.wait_serial(before, Duration::from_secs(30)),
        "{}",
        secondary.log()
    );

    // Down during the failover.
    secondary.stop();
    primary.set_healthy(false);
    assert!(answers_the_secondary(&server), "{}", server.log());
    let after = soa_serial(server.addr, "example.com.");
    assert_ne!(before, after);

    // dig ixfr=BEFORE: the condensed difference, www's addresses swapped.
    let text = dig(
        server.addr,
        &[
            "+noall",
            "+answer",
            "example.com",
            &format!("ixfr={before}"),
            "-y",
            &key,
        ],
    );
    let got = records(&text);
    assert_eq!(got.len(), 8, "{text}");
    assert!(
        got[1].contains(&before.to_string()) && got[2].contains(PRIMARY_WWW),
        "{text}"
    );
    assert!(got.iter().any(|r| r.contains(SECONDARY_WWW)), "{text}");
    // Over UDP, the current SOA alone.
    let text = dig(
        server.addr,
        &[
            "+noall",
            "+answer",
            "+notcp",
            "example.com",
            &format!("ixfr={before}"),
            "-y",
            &key,
        ],
    );
    assert_eq!(records(&text).len(), 1, "{text}");
    assert!(text.contains(&after.to_string()), "{text}");
    // Up to date: the SOA alone.
    let text = dig(
        server.addr,
        &[
            "+noall",
            "+answer",
            "example.com",
            &format!("ixfr={after}"),
            "-y",
            &key,
        ],
    );
    assert_eq!(records(&text).len(), 1, "{text}");

    let http = server.http.expect("http");
    assert!(wait_until(Duration::from_secs(5), || {
        status_json(http)["dns"]["secondaries"][0]["error"].is_string()
    }));
    assert_eq!(
        status_json(http)["dns"]["secondaries"][0]["caught_up"],
        false
    );
    // Back: it catches up by itself.
    secondary.restart();
    assert!(
        secondary.wait_serial(after, Duration::from_secs(30)),
        "{}",
        secondary.log()
    );
    assert_eq!(
        a_records(secondary.addr, "www.example.com."),
        [SECONDARY_WWW]
    );
    assert!(
        wait_until(
            Duration::from_secs(30),
            || status_json(http)["dns"]["secondaries"][0]["caught_up"] == true
        ),
        "{}",
        status_json(http)["dns"]
    );
}

#[test]
fn a_drill_verifies_the_secondaries_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let (server, _primary, _secondary_site, _config) =
        start_example(dir.path(), None, |text| with_transfers(text, port, true));
    let secondary = Secondary::start_on(Kind::Knot, "example.com", server.addr, true, port);
    let serial = soa_serial(server.addr, "example.com.");
    assert!(
        secondary.wait_serial(serial, Duration::from_secs(30)),
        "{}",
        secondary.log()
    );
    let http = server.http.expect("http");
    let token = common::Geofailover::token(dir.path());
    let (code, reply) = common::http(
        "POST",
        http,
        "/api/v1/drill",
        Some(&token),
        r#"{"hold": "1s", "lower_ttl": "5s"}"#,
    );
    assert_eq!(code, 202, "{reply}");
    let id: serde_json::Value = serde_json::from_str(&reply).expect("json");
    let ended = wait_until(Duration::from_secs(120), || {
        let st = status_json(http);
        st["drill"].is_null() && st["last_drill"]["id"] == id["id"]
    });
    assert!(ended, "{}", server.log());
    let (_, body) = common::http("GET", http, "/api/v1/drill/last", None, "");
    let report: serde_json::Value = serde_json::from_str(&body).expect("report");
    assert_eq!(report["result"], "pass", "{report:#}");
    let verified = report["nameservers"].to_string();
    assert!(verified.contains(&secondary.addr.to_string()), "{verified}");
    let step = report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["name"] == "all nameservers answer the secondary")
        .expect("the step")
        .to_string();
    assert!(step.contains("2 nameserver(s) answer alike"), "{step}");
}

/// With several nodes, every node serving DNS notifies the secondary and
/// answers its transfers: the secondary lists both site nodes and follows
/// the failover even though the primary site's node died with it.
#[test]
fn with_several_nodes_a_secondary_follows_from_whichever_node_answers() {
    use common::cluster::Cluster;
    let port = free_port();
    let mut cluster = Cluster::start(|text| with_transfers(text, port, true));
    let primaries: Vec<SocketAddr> = ["ns1", "ns2"]
        .iter()
        .map(|n| cluster.node(n).dns.expect("a DNS address"))
        .collect();
    let secondary = Secondary::start_from(Kind::Nsd, "example.com", &primaries, true, port);
    let serial = soa_serial(primaries[1], "example.com.");
    assert!(
        secondary.wait_serial(serial, Duration::from_secs(30)),
        "{}",
        secondary.log()
    );
    cluster.kill("ns1");
    cluster.primary.set_healthy(false);
    cluster
        .wait_all_answer(SECONDARY_WWW, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("{:?}\n{}", cluster.answers(), cluster.logs()));
    assert!(
        wait_until(Duration::from_secs(10), || a_records(
            secondary.addr,
            "www.example.com."
        ) == [SECONDARY_WWW]),
        "{}\n{}",
        secondary.log(),
        cluster.logs()
    );
    let status = cluster.status_json("ns2");
    assert!(
        wait_until(
            Duration::from_secs(10),
            || cluster.status_json("ns2")["dns"]["secondaries"][0]["caught_up"] == true
        ),
        "{status}"
    );
}

/// The example with example.com served from a copy of the zone (`text`)
/// in `dir`, transferable from 127.0.0.1 without a key, the secondaries
/// at `ports` notified; the server, the sites' stand-ins and the zone
/// file.
fn with_zone_copy(
    dir: &Path,
    text: &str,
    ports: &[u16],
) -> (
    common::Geofailover,
    [common::StandIn; 2],
    std::path::PathBuf,
) {
    let zone_file = dir.join("example.com.zone");
    std::fs::write(&zone_file, text).expect("write the zone");
    let (server, primary, secondary, _config) = start_example(dir, None, |text| {
        let text = with_transfers(text, ports[0], false);
        let more: String = ports[1..]
            .iter()
            .map(|p| format!(", \"127.0.0.1:{p}\""))
            .collect();
        let text = text
            .replace(
                &format!("notify: [\"127.0.0.1:{}\"]", ports[0]),
                &format!("notify: [\"127.0.0.1:{}\"{more}]", ports[0]),
            )
            .replace(
                &common::repo_zones()
                    .join("example.com.zone")
                    .display()
                    .to_string(),
                &zone_file.display().to_string(),
            );
        assert!(
            text.contains(&zone_file.display().to_string()) && text.contains(&more),
            "{text}"
        );
        text
    });
    (server, [primary, secondary], zone_file)
}

/// The edit people make after a failover and a fail-back (which raised
/// the served serial above the file's): a name added, the file's serial
/// raised by one, SIGHUP. The content changed, so the served serial
/// moves above every one served before, and NSD, Knot and BIND, notified,
/// each serve the new name within 2 s of the signal.
#[test]
fn a_zone_edited_after_a_failover_reaches_nsd_knot_and_bind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let original = std::fs::read_to_string(common::repo_zones().join("example.com.zone"))
        .expect("the example zone");
    let kinds = [Kind::Nsd, Kind::Knot, Kind::Bind];
    let ports: Vec<u16> = kinds.iter().map(|_| free_port()).collect();
    let (server, [primary, _secondary_site], zone_file) =
        with_zone_copy(dir.path(), &original, &ports);
    let secondaries: Vec<Secondary> = kinds
        .iter()
        .zip(&ports)
        .map(|(kind, port)| Secondary::start_on(*kind, "example.com", server.addr, false, *port))
        .collect();
    let first = soa_serial(server.addr, "example.com.");
    for secondary in &secondaries {
        assert!(
            secondary.wait_serial(first, Duration::from_secs(30)),
            "{} did not transfer serial {first}: {}",
            secondary.kind.name(),
            secondary.log()
        );
    }

    // A failover and a fail-back raise the served serial by two.
    let http = server.http.expect("http");
    primary.set_healthy(false);
    assert!(answers_the_secondary(&server), "{}", server.log());
    primary.set_healthy(true);
    common::fail_back_when_ready(http, &common::Geofailover::token(dir.path()), "test");
    let served = soa_serial(server.addr, "example.com.");
    assert_eq!(served, first.wrapping_add(2));

    // The operator's edit: one name more, the file's serial one higher
    // (still below the one served).
    let file_serial = 2026112101u32;
    assert!(original.contains(&format!("{file_serial} ; serial")));
    let edited = original.replace(
        &format!("{file_serial} ; serial"),
        &format!("{} ; serial", file_serial + 1),
    ) + "added          IN  A    192.0.2.77\n";
    assert!(
        file_serial + 1 < served,
        "the file's serial must stay below {served}"
    );
    std::fs::write(&zone_file, edited).expect("edit the zone");
    server.process.signal("HUP");
    let signalled = Instant::now();
    assert!(
        wait_until(Duration::from_secs(10), || a_records(
            server.addr,
            "added.example.com."
        ) == ["192.0.2.77"]),
        "{}",
        server.log()
    );
    let now_served = soa_serial(server.addr, "example.com.");
    assert_eq!(
        now_served,
        served.wrapping_add(1),
        "changed content must be served under a new serial: {}",
        server.log()
    );
    for secondary in &secondaries {
        assert!(
            wait_until(Duration::from_secs(10), || a_records(
                secondary.addr,
                "added.example.com."
            ) == ["192.0.2.77"]),
            "{} never served the new name: {}\ngeofailover: {}",
            secondary.kind.name(),
            secondary.log(),
            server.log()
        );
    }
    let took = signalled.elapsed();
    assert!(
        took <= Duration::from_secs(2),
        "the secondaries served the new name {took:?} after SIGHUP"
    );
    let zones = &status_json(http)["dns"]["zones"];
    assert_eq!(zones[0]["agreed"], true, "{zones}");
}

/// An AXFR question in `class`, with an OPT record of `version`.
fn axfr_with_edns(class: DNSClass, version: u8) -> Message {
    let mut message = query_message(
        &Name::from_ascii("example.com.").expect("name"),
        RecordType::AXFR,
        true,
    );
    message.queries[0].set_query_class(class);
    if let Some(edns) = message.edns.as_mut() {
        edns.set_version(version);
    }
    message
}

#[test]
fn transfer_refusals_and_badvers_are_answered_as_nsd_answers_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, _primary, _secondary, _config) = start_example(dir.path(), None, |text| {
        with_transfers(text, free_port(), true)
    });
    let nsd = common::Reference::nsd(&common::repo_zones(), common::EXAMPLE_ZONES);
    let cases = [
        // EDNS version 1: BADVERS (16), with OPT version 0.
        ("EDNS version 1", axfr_with_edns(DNSClass::IN, 1), 16),
        // Another class than IN: REFUSED.
        ("class CH", axfr_with_edns(DNSClass::CH, 0), 5),
        // Not allowed (unsigned, where a key is needed): REFUSED, with OPT.
        ("unsigned", axfr_with_edns(DNSClass::IN, 0), 5),
    ];
    for (what, query, rcode) in cases {
        for (who, addr) in [("geofailover", server.addr), ("nsd", nsd.addr)] {
            let reply = common::tcp(addr, &query).unwrap_or_else(|| panic!("{who}: {what}"));
            assert_eq!(
                u16::from(reply.metadata.response_code),
                rcode,
                "{who}: {what}: {reply:?}"
            );
            assert_eq!(
                reply.edns.as_ref().map(|e| e.version()),
                Some(0),
                "{who}: {what}: {reply:?}"
            );
            assert!(reply.answers.is_empty(), "{who}: {what}");
        }
    }
    // kdig reads the same.
    let (_, text) = kdig(server.addr, &["+edns=1", "example.com", "axfr"]);
    assert!(text.contains("BADVERS"), "{text}");
    let (_, text) = kdig(server.addr, &["-c", "CH", "example.com", "axfr"]);
    assert!(text.contains("REFUSED"), "{text}");
}

/// One record larger than a transfer message (a 40 KiB TXT) goes alone in
/// a message of its own: NSD and Knot take the whole zone and serve the
/// record as geofailover does over TCP.
#[test]
fn a_40_kib_record_is_transferred_to_nsd_and_knot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let strings: Vec<String> = (0..160)
        .map(|i| {
            format!(
                "\"{}\"",
                char::from(b'a' + (i % 26) as u8).to_string().repeat(250)
            )
        })
        .collect();
    let text = std::fs::read_to_string(common::repo_zones().join("example.com.zone"))
        .expect("the example zone")
        + &format!(
            "big IN TXT ( {} )\nafter IN A 192.0.2.99\n",
            strings.join("\n    ")
        );
    let kinds = [Kind::Nsd, Kind::Knot];
    let ports: Vec<u16> = kinds.iter().map(|_| free_port()).collect();
    let (server, _sites, _zone) = with_zone_copy(dir.path(), &text, &ports);
    let ours = dig(
        server.addr,
        &["+tcp", "+noall", "+answer", "big.example.com", "TXT"],
    );
    assert!(ours.len() > 40_000, "{} bytes", ours.len());
    let serial = soa_serial(server.addr, "example.com.");
    for (kind, port) in kinds.iter().zip(&ports) {
        let secondary = Secondary::start_on(*kind, "example.com", server.addr, false, *port);
        assert!(
            secondary.wait_serial(serial, Duration::from_secs(30)),
            "{} did not transfer the zone: {}\ngeofailover: {}",
            kind.name(),
            secondary.log(),
            server.log()
        );
        let theirs = dig(
            secondary.addr,
            &["+tcp", "+noall", "+answer", "big.example.com", "TXT"],
        );
        assert_eq!(records(&theirs), records(&ours), "{}", kind.name());
        assert_eq!(
            a_records(secondary.addr, "after.example.com."),
            ["192.0.2.99"]
        );
    }
}
