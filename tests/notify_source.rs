//! The source address of NOTIFY (`dns.notify_source`): a real NSD on
//! 127.0.0.2 that takes NOTIFY only from 127.0.0.3 follows a change of
//! geofailover (serving on 127.0.0.1) at once when geofailover sends from
//! 127.0.0.3, and refuses it otherwise; a refusing secondary is sent a
//! few NOTIFYs per change, not NOTIFYs for ever.

mod common;

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use common::{
    Geofailover, cluster::Cluster, free_port, secondary::Secondary, soa_serial, status_json,
    wait_until,
};

const NOTIFY_FROM: [u8; 4] = [127, 0, 0, 3];

/// geofailover serving a copy of the example zone, transferable from
/// loopback, notifying `secondary`, sending from `source` when given.
fn start(dir: &Path, secondary: SocketAddr, source: Option<&str>) -> (Geofailover, PathBuf) {
    let zone = dir.join("example.com.zone");
    std::fs::copy(common::repo_zones().join("example.com.zone"), &zone).expect("copy the zone");
    let source = source
        .map(|s| format!("  notify_source: {s}\n"))
        .unwrap_or_default();
    let config = dir.join("geofailover.yaml");
    std::fs::write(
        &config,
        format!(
            "dns:\n  listen: [127.0.0.1:0]\n{source}\
             http:\n  listen: 127.0.0.1:0\n\
             state_dir: {state}\n\
             zones:\n  - name: example.com\n    file: {file}\n    allow_transfer: [\"127.0.0.0/8\"]\n    notify: [\"{secondary}\"]\n",
            state = dir.join("state").display(),
            file = zone.display()
        ),
    )
    .expect("write the config");
    (Geofailover::start(&config), zone)
}

/// A new serial for the zone in `file`, loaded by SIGHUP; the new serial.
fn change(server: &Geofailover, file: &Path) -> u32 {
    let before = soa_serial(server.addr, "example.com.");
    let text = std::fs::read_to_string(file).expect("read the zone");
    let changed = text.replace("2026112101", "2026112102");
    assert_ne!(changed, text);
    std::fs::write(file, changed).expect("write the zone");
    server.process.signal("HUP");
    let mut after = before;
    assert!(
        wait_until(Duration::from_secs(10), || {
            after = soa_serial(server.addr, "example.com.");
            after != before
        }),
        "the change was not loaded:\n{}",
        server.log()
    );
    after
}

fn secondary_status(server: &Geofailover) -> serde_json::Value {
    status_json(server.http.expect("http"))["dns"]["secondaries"][0].clone()
}

fn nsd(server: &Geofailover, at: SocketAddr) -> Secondary {
    let nsd = Secondary::start_nsd_at("example.com", server.addr, at, IpAddr::from(NOTIFY_FROM));
    let serial = soa_serial(server.addr, "example.com.");
    assert!(
        nsd.wait_serial(serial, Duration::from_secs(30)),
        "NSD did not transfer serial {serial}: {}",
        nsd.log()
    );
    nsd
}

#[test]
fn a_secondary_that_takes_notify_from_one_address_follows_when_it_is_the_notify_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    let at = SocketAddr::from(([127, 0, 0, 2], free_port()));
    let (server, zone) = start(dir.path(), at, Some("127.0.0.3"));
    let nsd = nsd(&server, at);
    let serial = change(&server, &zone);
    // NSD refreshes by itself only every two hours (the SOA's refresh):
    // only the NOTIFY brings the new serial this soon.
    assert!(
        nsd.wait_serial(serial, Duration::from_secs(15)),
        "NSD did not follow to {serial}: {}\ngeofailover: {}",
        nsd.log(),
        server.log()
    );
    assert!(
        nsd.log().contains("notify for example.com. from 127.0.0.3")
            && !nsd.log().contains("refused"),
        "{}",
        nsd.log()
    );
    assert!(
        wait_until(Duration::from_secs(10), || {
            let s = secondary_status(&server);
            s["notified_serial"] == serial && s["caught_up"] == true
        }),
        "{}",
        secondary_status(&server)
    );
}

#[test]
fn without_the_notify_source_the_secondary_refuses_and_is_not_notified_for_ever() {
    let dir = tempfile::tempdir().expect("tempdir");
    let at = SocketAddr::from(([127, 0, 0, 2], free_port()));
    let (server, zone) = start(dir.path(), at, None);
    let nsd = nsd(&server, at);
    let old = soa_serial(server.addr, "example.com.");
    let serial = change(&server, &zone);
    // geofailover gives up on this change after a few refusals, and says
    // why in the status.
    assert!(
        wait_until(Duration::from_secs(20), || {
            let s = secondary_status(&server);
            s["serial"] == serial
                && s["error"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("NOTIFY refused"))
        }),
        "{}\n{}",
        secondary_status(&server),
        server.log()
    );
    assert_eq!(nsd.serial(), Some(old), "{}", nsd.log());
    assert!(
        nsd.log()
            .contains("notify for example.com. from 127.0.0.1 refused"),
        "{}",
        nsd.log()
    );
    // Said once in the log, though refused for both serials.
    assert_eq!(
        server.log().matches("NOTIFY refused").count(),
        1,
        "{}",
        server.log()
    );
    // And no NOTIFY after the give-up: while geofailover goes on asking
    // NSD's SOA (seconds of it), NSD refuses nothing more.
    let refusals = nsd.log().matches("refused").count();
    let asked = secondary_status(&server)["answered_at"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        wait_until(Duration::from_secs(20), || {
            secondary_status(&server)["answered_at"]
                .as_u64()
                .is_some_and(|at| at > asked + 3_000)
        }),
        "{}",
        secondary_status(&server)
    );
    assert_eq!(
        nsd.log().matches("refused").count(),
        refusals,
        "{}",
        nsd.log()
    );
    assert_eq!(secondary_status(&server)["caught_up"], false);
}

/// With several nodes, each node's NOTIFYs leave from its own
/// `notify_source` (under `nodes`): ns1's from 127.0.0.3, which NSD takes
/// and follows at once after a failover, ns2's from 127.0.0.4, which NSD
/// refuses, and ns2 says so naming its address.
#[test]
fn with_several_nodes_each_node_notifies_from_its_own_source() {
    let at = SocketAddr::from(([127, 0, 0, 2], free_port()));
    let cluster = Cluster::start(|config| {
        config
            .replacen(
                "    place: primary\n",
                "    place: primary\n    notify_source: 127.0.0.3\n",
                1,
            )
            .replacen(
                "    place: secondary\n",
                "    place: secondary\n    notify_source: 127.0.0.4\n",
                1,
            )
            .replace(
                "  - name: example.com\n",
                &format!(
                    "  - name: example.com\n    allow_transfer: [\"127.0.0.0/8\"]\n    notify: [\"{at}\"]\n"
                ),
            )
    });
    let ns1 = cluster.node("ns1").dns.expect("dns");
    let serial = cluster
        .wait_all_answer("192.0.2.10", Duration::from_secs(10))
        .expect("every node answers the primary");
    let nsd = Secondary::start_nsd_at("example.com", ns1, at, IpAddr::from(NOTIFY_FROM));
    assert!(
        nsd.wait_serial(serial, Duration::from_secs(30)),
        "NSD did not transfer serial {serial}: {}",
        nsd.log()
    );
    cluster.primary.set_healthy(false);
    let after = cluster
        .wait_all_answer("198.51.100.10", Duration::from_secs(20))
        .unwrap_or_else(|| panic!("{:?}\n{}", cluster.answers(), cluster.logs()));
    // Only a NOTIFY brings the new serial this soon (NSD's refresh is
    // two hours), and only ns1's is taken.
    assert!(
        nsd.wait_serial(after, Duration::from_secs(15)),
        "NSD did not follow to {after}: {}\n{}",
        nsd.log(),
        cluster.logs()
    );
    assert!(
        nsd.log().contains("notify for example.com. from 127.0.0.3")
            && !nsd.log().contains("from 127.0.0.3 refused"),
        "{}",
        nsd.log()
    );
    // ns2 sends from its own address, which NSD refuses; ns2 says so.
    assert!(
        wait_until(Duration::from_secs(20), || cluster
            .server("ns2")
            .log()
            .contains("does it take NOTIFY from 127.0.0.4 without a key?")),
        "{}\n{}",
        cluster.server("ns2").log(),
        nsd.log()
    );
    assert!(
        nsd.log()
            .contains("notify for example.com. from 127.0.0.4 refused"),
        "{}",
        nsd.log()
    );
}
