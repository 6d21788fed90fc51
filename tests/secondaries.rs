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
    a_records, free_port, query_message,
    secondary::{KEY_NAME, Kind, Secondary, key_secret},
    soa_serial, start_example, status_json, udp, wait_until,
};
use hickory_proto::{
    op::ResponseCode,
    rr::{Name, RecordType},
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

/// The secondary answers every name and type of the zone as geofailover.
fn assert_same_answers(ours: SocketAddr, secondary: &Secondary) {
    let mut differences = Vec::new();
    let mut questions = zone_questions(ours);
    // And names that are not there.
    questions.insert(("nothing-here.example.com.".into(), "A".into()));
    questions.insert(("www.example.com.".into(), "MX".into()));
    for (name, rtype) in &questions {
        let name = Name::from_ascii(name).expect("name");
        let rtype: RecordType = rtype.parse().expect("type");
        let mine = answer(ours, &name, rtype);
        let theirs = answer(secondary.addr, &name, rtype);
        if mine != theirs {
            differences.push(format!(
                "{name} {rtype}\n  ours: {mine:?}\n  {}: {theirs:?}",
                secondary.kind.name()
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{} answers differently:\n{}",
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
    assert!(
        wait_until(Duration::from_secs(20), || a_records(
            server.addr,
            "www.example.com."
        ) == [SECONDARY_WWW]),
        "{}",
        server.log()
    );
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
