//! A large zone reloaded under way: while 200,000 names (400,000
//! records) are read, checked and compiled after SIGHUP, UDP and TCP
//! queries and the status API keep answering within 100 ms from the old
//! table, and a failing health check meanwhile still moves the failover
//! record; then the new zone answers.

mod common;

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use common::{a_records, query_message, start_example, tcp, try_http, udp, wait_until};
use hickory_proto::rr::{Name, RecordType};

const NAMES: usize = 200_000;

/// How long `ask` took, failing the test past `limit`.
fn within(limit: Duration, what: &str, ask: impl FnOnce() -> bool) {
    let started = Instant::now();
    let answered = ask();
    let took = started.elapsed();
    assert!(answered, "{what}: no answer");
    assert!(took <= limit, "{what} took {took:?} during the reload");
}

#[test]
fn a_large_zone_reloads_while_queries_status_and_probes_go_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let zones = dir.path().join("zones");
    std::fs::create_dir(&zones).expect("mkdir");
    for file in ["example.com.zone", "2.0.192.in-addr.arpa.zone"] {
        std::fs::copy(common::repo_zones().join(file), zones.join(file)).expect("copy zone");
    }
    let (server, primary, _secondary, _config) = start_example(dir.path(), None, |text| {
        text.replace(
            &format!("{}/example.com.zone", common::repo_zones().display()),
            &zones.join("example.com.zone").display().to_string(),
        )
    });
    let http = server.http.expect("http");
    let mut big = std::fs::read_to_string(zones.join("example.com.zone")).expect("read");
    big = big.replace("2026112101", "2026112201");
    for i in 0..NAMES {
        big.push_str(&format!(
            "h{i} 300 IN A 10.{}.{}.{}\nh{i} 300 IN TXT \"host {i}\"\n",
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255
        ));
    }
    std::fs::write(zones.join("example.com.zone"), big).expect("write the large zone");
    let last = format!("h{}.example.com.", NAMES - 1);
    assert!(a_records(server.addr, &last).is_empty());

    server.process.signal("HUP");
    assert!(server.wait_for_log("reloading", 1), "{}", server.log());
    let question = query_message(
        &Name::from_ascii("mail.example.com.").expect("name"),
        RecordType::A,
        false,
    );
    let limit = Duration::from_millis(100);
    let mut rounds = 0;
    let mut failed_over = false;
    while !server.log().contains("reload succeeded") {
        within(limit, "a UDP query", || {
            udp(server.addr, &question).is_some()
        });
        within(limit, "a TCP query", || {
            tcp(server.addr, &question).is_some()
        });
        within(limit, "GET /api/v1/status", || {
            try_http("GET", http, "/api/v1/status", None, "").is_ok_and(|(code, _)| code == 200)
        });
        rounds += 1;
        if rounds == 5 {
            // A probe result arriving during the reload is acted on.
            primary.set_healthy(false);
        }
        if !failed_over && a_records(server.addr, "www.example.com.") == ["198.51.100.10"] {
            failed_over = !server.log().contains("reload succeeded");
        }
        std::thread::sleep(Duration::from_millis(50));
        assert!(rounds < 6000, "the reload did not end: {}", server.log());
    }
    assert!(
        rounds >= 5,
        "the reload ended after {rounds} rounds: too quick to tell"
    );
    assert!(
        failed_over,
        "no failover while the zone reloaded: {}",
        server.log()
    );
    let addr: SocketAddr = server.addr;
    assert!(
        wait_until(Duration::from_secs(5), || a_records(addr, &last)
            == ["10.3.13.63"]),
        "{}",
        server.log()
    );
    assert_eq!(
        a_records(server.addr, "www.example.com."),
        ["198.51.100.10"]
    );
}
