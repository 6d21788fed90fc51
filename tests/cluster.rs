//! Several nameservers, one decision: three real geofailover nodes (one
//! per site and a witness, config/example-cluster.yaml) agreeing through a
//! real three-member etcd on loopback, with stand-in sites.

mod common;

use std::time::Duration;

use common::cluster::Cluster;

const PRIMARY: &str = "192.0.2.10";
const SECONDARY: &str = "198.51.100.10";

#[test]
fn the_primary_dies_one_failover_and_every_node_answers_the_secondary_with_one_serial() {
    let cluster = Cluster::start(|config| config);
    let serial = cluster
        .wait_all_answer(PRIMARY, Duration::from_secs(10))
        .expect("every node answers the primary");
    cluster.primary.set_healthy(false);
    let after = cluster
        .wait_all_answer(SECONDARY, Duration::from_secs(20))
        .unwrap_or_else(|| panic!("{:?}\n{}", cluster.answers(), cluster.logs()));
    assert!(after > serial, "serial {serial} -> {after}");
    // One failover, one epoch, decided once, seen alike from every node
    // (the shared journal follows the answers within moments).
    for node in ["ns1", "ns2", "witness"] {
        let status = cluster.status_json(node);
        assert_eq!(status["epoch"], 1, "{node}: {status}");
        assert_eq!(status["active_role"], "secondary", "{node}");
        let failovers = || -> Vec<serde_json::Value> {
            cluster
                .events(node)
                .into_iter()
                .filter(|e| e["event"] == "failed_over")
                .collect()
        };
        assert!(
            common::wait_until(Duration::from_secs(5), || !failovers().is_empty()),
            "{node}: {:#?}",
            cluster.events(node)
        );
        let failovers = failovers();
        assert_eq!(failovers.len(), 1, "{node}: {failovers:#?}");
        assert_eq!(failovers[0]["epoch"], 1);
    }
}

/// The records' TTL at 5 s, so a drill's drain is short.
fn short_ttl(config: String) -> String {
    config.replace("      ttl: 30\n", "      ttl: 5\n")
}

#[test]
fn pause_failback_and_a_drill_given_at_followers_are_carried_out_by_the_leader() {
    let cluster = Cluster::start(short_ttl);
    let leader = cluster.leader().expect("a leader");
    let followers: Vec<&str> = ["ns1", "ns2", "witness"]
        .into_iter()
        .filter(|n| *n != leader)
        .collect();

    // Pause at a follower: every node shows it, the primary's outage is
    // then not acted on.
    let (code, reply) = cluster.post(followers[0], "/api/v1/pause", r#"{"operator": "erin"}"#);
    assert_eq!(code, 200, "{reply}");
    for node in ["ns1", "ns2", "witness"] {
        assert!(
            common::wait_until(
                Duration::from_secs(5),
                || cluster.status_json(node)["paused"] == true
            ),
            "{node}"
        );
    }
    let (code, reply) = cluster.post(followers[1], "/api/v1/resume", r#"{"operator": "erin"}"#);
    assert_eq!(code, 200, "{reply}");

    // A drill asked of a follower runs at the leader and verifies every
    // node's answers.
    let (code, reply) = cluster.post(
        followers[1],
        "/api/v1/drill",
        r#"{"hold": "2s", "operator": "dana"}"#,
    );
    assert_eq!(code, 202, "{reply}");
    let passed = common::wait_until(Duration::from_secs(60), || {
        cluster.status_json(followers[0])["last_drill"]["result"] == "pass"
            || cluster.status_json(&leader)["last_drill"]["result"] == "pass"
    });
    let report = common::http(
        "GET",
        cluster.node(&leader).http,
        "/api/v1/drill/last",
        None,
        "",
    )
    .1;
    assert!(passed, "{report}\n{}", cluster.logs());
    for node in ["ns1", "ns2"] {
        let address = cluster.node(node).dns.expect("dns").to_string();
        assert!(
            report.contains(&address),
            "the drill did not verify {node}: {report}"
        );
    }
    assert!(
        cluster
            .wait_all_answer(PRIMARY, Duration::from_secs(10))
            .is_some()
    );

    // A real outage, and the fail-back asked of a follower.
    cluster.primary.set_healthy(false);
    cluster
        .wait_all_answer(SECONDARY, Duration::from_secs(20))
        .unwrap_or_else(|| panic!("{:?}\n{}", cluster.answers(), cluster.logs()));
    cluster.primary.set_healthy(true);
    assert!(common::wait_until(Duration::from_secs(20), || {
        cluster.status_json(followers[0])["ready_for_failback"] == true
    }));
    let (code, reply) = cluster.post(followers[0], "/api/v1/failback", r#"{"operator": "erin"}"#);
    assert_eq!(code, 200, "{reply}");
    cluster
        .wait_all_answer(PRIMARY, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("{:?}\n{}", cluster.answers(), cluster.logs()));
}

#[test]
fn without_etcd_quorum_every_node_keeps_its_answer_decides_nothing_and_says_so() {
    let mut cluster = Cluster::start(|config| config);
    let serial = cluster
        .wait_all_answer(PRIMARY, Duration::from_secs(10))
        .expect("every node answers the primary");
    cluster.etcd.members[0].kill();
    cluster.etcd.members[1].kill();
    for node in ["ns1", "ns2", "witness"] {
        assert!(
            common::wait_until(Duration::from_secs(15), || {
                cluster
                    .status(node)
                    .is_some_and(|s| s["cluster"]["etcd"]["up"] == false)
            }),
            "{node} does not say etcd is gone:\n{}",
            cluster.logs()
        );
        // The leader stops deciding before its lease can have expired.
        let stopped = common::wait_until(Duration::from_secs(5), || {
            let (_, metrics) = common::http("GET", cluster.node(node).http, "/metrics", None, "");
            metrics.contains("geofailover_etcd_up 0") && metrics.contains("geofailover_leader 0")
        });
        assert!(stopped, "{node}:\n{}", cluster.logs());
    }
    // The primary fails meanwhile: nobody decides, every node keeps the
    // last agreed answer.
    cluster.primary.set_healthy(false);
    let moved = common::wait_until(Duration::from_secs(6), || {
        cluster.answers().iter().any(|(_, a)| a != &[PRIMARY])
    });
    assert!(!moved, "{:?}", cluster.answers());
    cluster.primary.set_healthy(true);

    // Quorum back: a leader again, and no move.
    cluster.etcd.members[0].restart();
    cluster.etcd.members[1].restart();
    cluster.wait_settled();
    assert_eq!(
        cluster.wait_all_answer(PRIMARY, Duration::from_secs(5)),
        Some(serial),
        "{:?}",
        cluster.answers()
    );
    for node in ["ns1", "ns2", "witness"] {
        assert_eq!(cluster.status_json(node)["epoch"], 0, "{node}");
    }
}
